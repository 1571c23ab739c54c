//! Switchyard's scheduler: every piece of scheduling state, on Redis.
//!
//! It owns submit, claim, heartbeat, report, complete, fail, cancel and reap of tasks;
//! per-tenant caps; account selection and health; failover from a tenant's own accounts
//! (BYOA) to the operator's pool (PPU); quota holds and their settlement; the event
//! stream. Every state change is one Lua script (`lua/*.lua`, one Rust module per
//! script) that reads the time from Redis and touches the keys of one provider shard, so
//! it runs unchanged on Redis Cluster.
//!
//! It knows nothing of HTTP, of upstream protocols, or of how a task's input looks: the
//! task body is an opaque string the dispatcher writes and the workers read.

mod accounts;
mod balances;
mod cancel;
mod claim;
pub mod connection;
mod events;
mod files;
mod intake;
pub mod keys;
mod lease;
mod reap;
mod registry;
mod scripts;
mod sessions;
mod stats;
mod submit;
mod tasks;
mod tenants;
pub mod usage;

use std::sync::Arc;

use redis::aio::ConnectionLike;
use switchyard_core::config::{Config, SchedulerConfig};
use switchyard_core::{Provider, QuotaKind};
use thiserror::Error;

/// Most tasks one claim, heartbeat or complete script call takes: a script holds Redis
/// for its whole batch, so larger requests are split into calls of this size.
pub(crate) const MAX_PER_CALL: usize = 256;

pub use accounts::{
    AccountError, AccountInfo, AccountSpec, BY_TENANT, DueProbe, Owner, ProbeOutcome,
};
pub use balances::Balance;
pub use cancel::CancelOutcome;
pub use claim::{Claimed, ClaimedTask};
pub use connection::RedisPool;
pub use events::Event;
pub use files::DueFiles;
pub use intake::{IntakeError, TaskRequest};
pub use lease::{CompleteOutcome, Completion, FailKind, FailOutcome, Lease};
pub use registry::{IdemClaim, Tenant};
pub use sessions::SessionEvent;
pub use stats::{ProviderLoad, TenantLoad};
pub use submit::{NewTask, Submitted};
pub use tasks::{StoredStatus, TaskError, TaskRecord, Webhook};
pub use tenants::TenantSettings;
pub use usage::UsageDay;

/// What went wrong talking to Redis or with the scheduler's own setup.
#[derive(Debug, Error)]
pub enum SchedulerError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A reply did not have the expected shape.
    #[error("redis reply: {0}")]
    Parse(#[from] redis::ParsingError),
    /// No connection could be had from the pool.
    #[error("redis pool: {0}")]
    Pool(String),
    /// The Redis configuration cannot be used.
    #[error("redis config: {0}")]
    Config(String),
    /// A script answered something this code does not understand (a bug).
    #[error("unexpected reply from {script}: {reply}")]
    Protocol {
        /// The script.
        script: &'static str,
        /// What it said.
        reply: String,
    },
}

/// Why a submit was refused. Nothing was written.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The tenant does not exist in the scheduler.
    #[error("unknown tenant {0}")]
    NoTenant(String),
    /// The PPU hold does not fit the balance (after Midjourney's automatic conversion).
    #[error("insufficient {kind}: the task needs {needed}, {available} is available")]
    InsufficientQuota {
        /// The quota kind.
        kind: QuotaKind,
        /// The task's price.
        needed: u64,
        /// What the balance holds.
        available: u64,
    },
    /// A private task and no usable account, and no failover.
    #[error("no account: {0}")]
    NoAccount(String),
    /// A pinned account is not the tenant's.
    #[error("account {0} not found")]
    AccountNotFound(String),
    /// The idempotency key was used with a different request.
    #[error("idempotency key already used for task {0} with a different request")]
    IdempotencyKeyReused(String),
    /// The tenant already has its most tasks waiting for this provider (the limit).
    #[error("the queue is full: {0} tasks waiting")]
    QueueFull(u32),
    /// Redis failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

impl From<redis::RedisError> for SubmitError {
    fn from(e: redis::RedisError) -> Self {
        SubmitError::Scheduler(SchedulerError::Redis(e))
    }
}

/// The scheduler: a handle over a Redis pool; cheap to clone.
#[derive(Clone, Debug)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: RedisPool,
    prefix: String,
    cfg: SchedulerConfig,
    config: Config,
    scripts: scripts::Scripts,
    prompt_checker: switchyard_core::prompt_check::PromptChecker,
}

impl Scheduler {
    /// Connect with `config` (one round trip to Redis: it must answer).
    pub async fn connect(config: &Config) -> Result<Self, SchedulerError> {
        let pool = RedisPool::new(&config.redis)?;
        let s = Scheduler {
            inner: Arc::new(Inner {
                pool,
                prefix: config.redis.key_prefix.clone(),
                cfg: config.scheduler.clone(),
                config: config.clone(),
                scripts: scripts::Scripts::load(config),
                prompt_checker: switchyard_core::prompt_check::PromptChecker::new(
                    &config.prompt_check,
                )
                .map_err(SchedulerError::Config)?,
            }),
        };
        s.ping().await?;
        match s.eviction_policy().await {
            Ok(p) if p == "noeviction" => {}
            Ok(p) => tracing::warn!(
                policy = %p,
                "Redis maxmemory-policy is `{p}`: under memory pressure Redis may evict tasks, \
                 leases and quota holds. Set `maxmemory-policy noeviction` (see deploy/redis.conf)."
            ),
            // Managed Redis services often refuse CONFIG; say so once and carry on.
            Err(e) => tracing::warn!(error = %e, "could not read Redis maxmemory-policy"),
        }
        Ok(s)
    }

    /// As [`Scheduler::connect`], but while Redis cannot be reached (not started yet,
    /// restarting, loading its data) wait for it: retry with backoff (100 ms doubling to
    /// 2 s, with jitter), saying at once and then every 30 s which URL it waits for
    /// (password redacted). Errors that waiting cannot mend (a bad URL, refused
    /// credentials, a script error) are returned.
    pub async fn connect_waiting(config: &Config) -> Result<Self, SchedulerError> {
        use std::time::{Duration, Instant};
        let url = connection::redact_url(&config.redis.url);
        let mut backoff =
            connection::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let started = Instant::now();
        let mut last_said: Option<Instant> = None;
        loop {
            match Scheduler::connect(config).await {
                Ok(s) => {
                    if last_said.is_some() {
                        tracing::info!(
                            waited_s = started.elapsed().as_secs(),
                            "Redis at {url} is up"
                        );
                    }
                    return Ok(s);
                }
                Err(e) if e.is_transient() => {
                    if last_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                        tracing::warn!(
                            error = %e,
                            waited_s = started.elapsed().as_secs(),
                            "waiting for Redis at {url}"
                        );
                        last_said = Some(Instant::now());
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The configuration this scheduler runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The shard base of a tenant's state for a provider.
    pub fn base_for(&self, provider: Provider, tenant: &str) -> String {
        let shard = keys::shard_of(tenant, self.inner.cfg.shards);
        keys::shard_base(&self.inner.prefix, provider, shard)
    }

    /// Every shard base of a provider.
    pub fn bases(&self, provider: Provider) -> Vec<String> {
        (0..self.inner.cfg.shards)
            .map(|s| keys::shard_base(&self.inner.prefix, provider, s))
            .collect()
    }

    pub(crate) async fn conn(&self) -> Result<connection::Conn, SchedulerError> {
        self.inner.pool.get().await
    }

    /// The configured key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Check the Redis eviction policy; anything but `noeviction` can lose tasks.
    /// Returns the policy found (cluster: of the node answering).
    pub async fn eviction_policy(&self) -> Result<String, SchedulerError> {
        let mut conn = self.conn().await?;
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await?;
        Ok(v.get(1).cloned().unwrap_or_default())
    }

    /// Run commands that may live in different shards: one pipeline on a single node; on
    /// a cluster one pipeline per shard (a pipeline must not cross slots). Replies come
    /// back in the order of `cmds`.
    pub(crate) async fn query_grouped(
        &self,
        cmds: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<redis::Value>, SchedulerError> {
        let mut conn = self.conn().await?;
        if matches!(self.inner.pool, RedisPool::Single(_)) {
            let mut pipe = redis::pipe();
            for (_, c) in &cmds {
                pipe.add_command(c.clone());
            }
            return Ok(pipe.query_async(&mut conn).await?);
        }
        let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, (base, _)) in cmds.iter().enumerate() {
            groups.entry(base.as_str()).or_default().push(i);
        }
        let mut out = vec![redis::Value::Nil; cmds.len()];
        for idx in groups.values() {
            let mut pipe = redis::pipe();
            for i in idx {
                pipe.add_command(cmds[*i].1.clone());
            }
            let vals: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
            for (i, v) in idx.iter().zip(vals) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    /// Round-trip to Redis (readiness).
    pub async fn ping(&self) -> Result<(), SchedulerError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// Run a prepared script invocation on a connection.
pub(crate) async fn invoke<T: redis::FromRedisValue, C: ConnectionLike>(
    inv: &redis::ScriptInvocation<'_>,
    conn: &mut C,
) -> Result<T, SchedulerError> {
    Ok(inv.invoke_async(conn).await?)
}
