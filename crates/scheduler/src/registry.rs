//! The registry: tenant records, API keys, task-create idempotency records and stored
//! replies, under `<prefix>:{global}:…` (one slot; `keys.rs` names each key). API keys
//! arrive here already hashed (the caller hashes them): the registry never sees a key.
//!
//! Each function takes one pooled connection and gives it back before it calls anything
//! else that takes one: holding one while taking another deadlocks a busy pool.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use switchyard_core::{Config, Plan, ServiceMode};

use crate::{Scheduler, SchedulerError, TenantSettings, keys};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Id (`t_…`).
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Pool used when a request leaves `service_mode` empty.
    pub default_service_mode: ServiceMode,
    /// Fail a waiting BYOA task over to PPU after this long (0: only when no account can
    /// serve).
    pub failover_max_wait_s: u64,
    /// Account notifications go here.
    #[serde(default)]
    pub notification_webhook: Option<String>,
    /// Sealed secret of the notification webhook.
    #[serde(default)]
    pub notification_secret: Option<String>,
    /// The operator approved this tenant for output fields its plan gives "upon
    /// approval only" (Midjourney's intermediate images on PPU).
    #[serde(default)]
    pub approved_extras: bool,
    /// The tenant's own limit on tasks waiting per provider (never above the plan's).
    #[serde(default)]
    pub max_queued: Option<u32>,
    /// A task waiting longer than this fails `expired_in_queue`, refunded (0: never).
    #[serde(default)]
    pub max_pending_s: u64,
    /// A fast or turbo task that none of the accounts can run for want of fast hours
    /// runs in relax (GoAPI's behaviour; on unless the tenant turns it off).
    #[serde(default = "on")]
    pub downgrade_when_no_fast_hours: bool,
}

fn on() -> bool {
    true
}

impl Tenant {
    /// The scheduler's view of this tenant under `config`'s plan table.
    pub fn settings(&self, config: &Config) -> TenantSettings {
        TenantSettings::from_plan(
            self.plan.as_str(),
            config.plans.get(self.plan),
            self.failover_max_wait_s * 1000,
        )
        .with_max_queued(self.max_queued)
        .with_max_pending_ms(self.max_pending_s * 1000)
        .with_downgrade(self.downgrade_when_no_fast_hours)
    }
}

/// Which provider a task-create `Idempotency-Key` belongs to, across providers.
///
/// The scheduler remembers a key per provider shard, atomically with the task it
/// created (`submit.lua`); this record only keeps a key from creating tasks with two
/// providers. A request *reserves* the key for its provider before its submit and
/// *releases* it after: the record stays (for `scheduler.idempotency_ttl_s`) only once a
/// task was created with the key; a refused request leaves nothing. While a request holds
/// the key, requests for the same provider go on (the submit script settles them: the
/// same body gets the same task, another body 409), and requests for another provider
/// get [`IdemClaim::Taken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemClaim {
    /// Reserved for this provider: submit, then [`Scheduler::idempotency_release`].
    Reserved,
    /// The key belongs to another provider's task (`created`) or request in progress.
    Taken {
        /// That provider.
        provider: String,
        /// Whether a task was created with it (else a request is still in progress).
        created: bool,
    },
}

/// How long a reservation without a created task lasts if its request never releases
/// it (the process died between reserve and release), in seconds.
const IDEM_PENDING_TTL_S: u64 = 120;

/// How long a stored reply is kept, in seconds.
const REPLY_TTL_S: u64 = 24 * 3600;

static IDEM_RESERVE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/idem_reserve.lua")));
static IDEM_RELEASE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/idem_release.lua")));

impl Scheduler {
    fn global(&self) -> String {
        keys::global_base(self.prefix())
    }

    async fn write_tenant_record(
        &self,
        t: &Tenant,
        key_hash: Option<&str>,
    ) -> Result<(), SchedulerError> {
        let g = self.global();
        let json = serde_json::to_string(t).unwrap_or_default();
        let mut c = self.conn().await?;
        let _: () = c.hset(keys::tenants(&g), &t.tenant_id, json).await?;
        if let Some(h) = key_hash {
            let _: () = c.hset(keys::api_keys(&g), h, &t.tenant_id).await?;
        }
        Ok(())
    }

    /// Store a new tenant, its API key (by `key_hash`, the key's SHA-256 in hex) and its
    /// scheduling settings in every provider shard.
    pub async fn create_tenant(&self, t: &Tenant, key_hash: &str) -> Result<(), SchedulerError> {
        self.write_tenant_record(t, Some(key_hash)).await?;
        self.upsert_tenant(&t.tenant_id, &t.settings(self.config()))
            .await?;
        Ok(())
    }

    /// Save changes to a tenant (and its scheduling settings).
    pub async fn save_tenant(&self, t: &Tenant) -> Result<(), SchedulerError> {
        self.write_tenant_record(t, None).await?;
        self.upsert_tenant(&t.tenant_id, &t.settings(self.config()))
            .await?;
        Ok(())
    }

    /// A tenant by id.
    pub async fn tenant_record(&self, id: &str) -> Result<Option<Tenant>, SchedulerError> {
        let mut c = self.conn().await?;
        let v: Option<String> = c.hget(keys::tenants(&self.global()), id).await?;
        Ok(v.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// The tenant an API key belongs to, by the key's SHA-256 (hex).
    pub async fn tenant_by_key_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<Tenant>, SchedulerError> {
        let id: Option<String> = {
            let mut c = self.conn().await?;
            c.hget(keys::api_keys(&self.global()), key_hash).await?
        };
        match id {
            Some(id) => self.tenant_record(&id).await,
            None => Ok(None),
        }
    }

    /// Every tenant, by id.
    pub async fn tenant_records(&self) -> Result<Vec<Tenant>, SchedulerError> {
        let mut c = self.conn().await?;
        let all: HashMap<String, String> = c.hgetall(keys::tenants(&self.global())).await?;
        let mut v: Vec<Tenant> = all
            .values()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        v.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        Ok(v)
    }

    /// Reserve a task-create `Idempotency-Key` (by its SHA-256, hex) for `provider` (see
    /// [`IdemClaim`]).
    pub async fn idempotency_reserve(
        &self,
        tenant: &str,
        key_hash: &str,
        provider: &str,
    ) -> Result<IdemClaim, SchedulerError> {
        let mut c = self.conn().await?;
        let r: Vec<String> = IDEM_RESERVE
            .key(keys::idempotency_claim(&self.global(), tenant, key_hash))
            .arg(provider)
            .arg(IDEM_PENDING_TTL_S)
            .invoke_async(&mut c)
            .await?;
        Ok(match r.as_slice() {
            [p, created, ..] => IdemClaim::Taken {
                provider: p.clone(),
                created: created == "1",
            },
            _ => IdemClaim::Reserved,
        })
    }

    /// End a reservation: with `created` (a task exists for the key, new or replayed) the
    /// key stays for `scheduler.idempotency_ttl_s`; without, and with no other request
    /// holding it, the key is forgotten.
    pub async fn idempotency_release(
        &self,
        tenant: &str,
        key_hash: &str,
        created: bool,
    ) -> Result<(), SchedulerError> {
        let mut c = self.conn().await?;
        let _: i64 = IDEM_RELEASE
            .key(keys::idempotency_claim(&self.global(), tenant, key_hash))
            .arg(if created { "1" } else { "0" })
            .arg(self.config().scheduler.idempotency_ttl_s)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Keep the reply given for an idempotency key (by its SHA-256, hex) in `scope`, for
    /// replays (24 h).
    pub async fn store_reply(
        &self,
        scope: &str,
        key_hash: &str,
        reply: &serde_json::Value,
    ) -> Result<(), SchedulerError> {
        let mut c = self.conn().await?;
        let _: () = c
            .set_ex(
                keys::stored_reply(&self.global(), scope, key_hash),
                reply.to_string(),
                REPLY_TTL_S,
            )
            .await?;
        Ok(())
    }

    /// The reply first given for an idempotency key (by its SHA-256, hex) in `scope`.
    pub async fn stored_reply(
        &self,
        scope: &str,
        key_hash: &str,
    ) -> Result<Option<serde_json::Value>, SchedulerError> {
        let mut c = self.conn().await?;
        let v: Option<String> = c
            .get(keys::stored_reply(&self.global(), scope, key_hash))
            .await?;
        Ok(v.and_then(|p| serde_json::from_str(&p).ok()))
    }
}
