//! One connection type over a single Redis node or a Redis Cluster.

use deadpool_redis::{Runtime, cluster};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use switchyard_core::config::RedisConfig;

use crate::SchedulerError;

/// A pool of connections to a single node or to a cluster.
#[derive(Clone)]
pub enum RedisPool {
    /// A single node (or a Sentinel-managed primary behind one address).
    Single(deadpool_redis::Pool),
    /// A Redis Cluster.
    Cluster(cluster::Pool),
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisPool::Single(_) => f.write_str("RedisPool::Single"),
            RedisPool::Cluster(_) => f.write_str("RedisPool::Cluster"),
        }
    }
}

/// A pooled connection of either kind; it speaks `ConnectionLike`, so commands, pipelines
/// and scripts run on it the same way.
pub enum Conn {
    /// Single node.
    Single(deadpool_redis::Connection),
    /// Cluster.
    Cluster(cluster::Connection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisPool {
    /// Build the pool (connections are made lazily).
    pub fn new(cfg: &RedisConfig) -> Result<Self, SchedulerError> {
        if cfg.cluster {
            let mut c = cluster::Config::from_urls(vec![cfg.url.clone()]);
            c.pool = Some(deadpool_redis::PoolConfig::new(cfg.pool_size));
            let pool = c
                .create_pool(Some(Runtime::Tokio1))
                .map_err(|e| SchedulerError::Config(e.to_string()))?;
            Ok(RedisPool::Cluster(pool))
        } else {
            // Scripts on deep backlogs and wake-up blocks may outlast the client's default
            // 500 ms response timeout.
            let conn_cfg = redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(10)));
            let manager = deadpool_redis::Manager::new_with_config(cfg.url.as_str(), conn_cfg)
                .map_err(|e| SchedulerError::Config(e.to_string()))?;
            let pool = deadpool_redis::Pool::builder(manager)
                .max_size(cfg.pool_size)
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| SchedulerError::Config(e.to_string()))?;
            Ok(RedisPool::Single(pool))
        }
    }

    /// A connection from the pool.
    pub async fn get(&self) -> Result<Conn, SchedulerError> {
        match self {
            RedisPool::Single(p) => Ok(Conn::Single(p.get().await.map_err(pool_error)?)),
            RedisPool::Cluster(p) => Ok(Conn::Cluster(p.get().await.map_err(pool_error)?)),
        }
    }
}

/// Keep the Redis error of a failed connect (so it can be told transient or not); other
/// pool failures as text.
fn pool_error(e: deadpool_redis::PoolError) -> SchedulerError {
    match e {
        deadpool_redis::PoolError::Backend(e) => SchedulerError::Redis(e),
        e => SchedulerError::Pool(e.to_string()),
    }
}

impl Conn {
    /// Take this connection out of its pool and close it. For a connection that may still
    /// be blocked server-side (a `BLPOP` whose caller went away): back in the pool it would
    /// hold up the next user's commands until the block ended.
    pub(crate) fn discard(self) {
        match self {
            Conn::Single(c) => drop(deadpool_redis::Connection::take(c)),
            Conn::Cluster(c) => drop(cluster::Connection::take(c)),
        }
    }
}

impl SchedulerError {
    /// Whether the error is Redis being away or not ready (refused or dropped connection,
    /// timeout, loading its data set after a restart, a cluster or replica failover): the
    /// same call may succeed later. Script, reply and configuration errors are not.
    pub fn is_transient(&self) -> bool {
        use redis::{ErrorKind, ServerErrorKind};
        match self {
            SchedulerError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        ErrorKind::ClusterConnectionNotFound
                            | ErrorKind::Server(
                                ServerErrorKind::BusyLoading
                                    | ServerErrorKind::TryAgain
                                    | ServerErrorKind::ClusterDown
                                    | ServerErrorKind::MasterDown
                                    | ServerErrorKind::ReadOnly
                            )
                    )
            }
            SchedulerError::Pool(_) => true,
            SchedulerError::Parse(_)
            | SchedulerError::Config(_)
            | SchedulerError::Protocol { .. } => false,
        }
    }
}

/// A Redis URL fit for logs: the password (in the user part or a `password=` query
/// parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        // `user:password@host`, `:password@host`; a bare `secret@host` may be a password.
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") =>
                    {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// Exponential backoff with jitter: each delay is drawn between half and all of the
/// current step, and the step doubles up to a ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: std::time::Duration,
    step: std::time::Duration,
    max: std::time::Duration,
}

impl Backoff {
    /// Steps from `first`, doubling up to `max`.
    pub fn new(first: std::time::Duration, max: std::time::Duration) -> Backoff {
        Backoff {
            first,
            step: first,
            max: max.max(first),
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> std::time::Duration {
        use std::hash::{BuildHasher, Hasher};
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        // A fresh `RandomState` is randomly keyed: enough randomness for jitter.
        let r = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        half + std::time::Duration::from_nanos(r % nanos)
    }

    /// Start again from the first step (after a success).
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

/// A connection with a blocking command in flight (`BLPOP`, `XREAD BLOCK`): back to the
/// pool only when the command ended well ([`Blocked::finish`]); dropped before, or after
/// a failure, it is closed instead.
pub(crate) struct Blocked(pub(crate) Option<Conn>);

impl Blocked {
    /// The command ended: the connection goes back to the pool when it `ok`, else closes.
    pub(crate) fn finish(&mut self, ok: bool) {
        if let Some(c) = self.0.take() {
            if ok {
                drop(c);
            } else {
                c.discard();
            }
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.discard();
        }
    }
}
