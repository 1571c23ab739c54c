//! Tenants and API keys. Keys are random (32 bytes), shown once, stored only as SHA-256
//! hashes; a request's key is hashed and looked up. Tenant records live under
//! `<prefix>:{global}:…` (one slot).

use std::sync::LazyLock;

use rand::RngCore;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchyard_core::{Plan, ServiceMode};
use switchyard_scheduler::{Scheduler, SchedulerError, TenantSettings};

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
}

fn global(s: &Scheduler, name: &str) -> String {
    format!("{}:{{global}}:{name}", s.prefix())
}

/// SHA-256 of an API key, hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new API key: `sy_` + 64 hex characters from the OS's CSPRNG.
pub fn new_key() -> String {
    let mut b = [0u8; 32];
    // ThreadRng is a CSPRNG (ChaCha, seeded from the OS).
    rand::rng().fill_bytes(&mut b);
    format!("sy_{}", hex::encode(b))
}

/// Compare two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The scheduler's view of a tenant.
pub fn settings(t: &Tenant, config: &switchyard_core::Config) -> TenantSettings {
    TenantSettings::from_plan(
        t.plan.as_str(),
        config.plans.get(t.plan),
        t.failover_max_wait_s * 1000,
    )
}

/// Store a new tenant with a new key; returns the key (shown once).
pub async fn create(s: &Scheduler, t: &Tenant) -> Result<String, SchedulerError> {
    let key = new_key();
    {
        // One pooled connection at a time: holding one while the scheduler takes another
        // deadlocks a busy pool.
        let mut c = s.connection().await?;
        let json = serde_json::to_string(t).unwrap_or_default();
        let _: () = c.hset(global(s, "tenants"), &t.tenant_id, json).await?;
        let _: () = c
            .hset(global(s, "keys"), hash_key(&key), &t.tenant_id)
            .await?;
    }
    s.upsert_tenant(&t.tenant_id, &settings(t, s.config()))
        .await?;
    Ok(key)
}

/// Save changes to a tenant (and its scheduling settings).
pub async fn save(s: &Scheduler, t: &Tenant) -> Result<(), SchedulerError> {
    {
        let mut c = s.connection().await?;
        let json = serde_json::to_string(t).unwrap_or_default();
        let _: () = c.hset(global(s, "tenants"), &t.tenant_id, json).await?;
    }
    s.upsert_tenant(&t.tenant_id, &settings(t, s.config()))
        .await?;
    Ok(())
}

/// A tenant by id.
pub async fn get(s: &Scheduler, id: &str) -> Result<Option<Tenant>, SchedulerError> {
    let mut c = s.connection().await?;
    let v: Option<String> = c.hget(global(s, "tenants"), id).await?;
    Ok(v.and_then(|j| serde_json::from_str(&j).ok()))
}

/// The tenant an API key belongs to.
pub async fn by_key(s: &Scheduler, key: &str) -> Result<Option<Tenant>, SchedulerError> {
    let id: Option<String> = {
        let mut c = s.connection().await?;
        c.hget(global(s, "keys"), hash_key(key)).await?
    };
    match id {
        Some(id) => get(s, &id).await,
        None => Ok(None),
    }
}

/// Every tenant.
pub async fn list(s: &Scheduler) -> Result<Vec<Tenant>, SchedulerError> {
    let mut c = s.connection().await?;
    let all: std::collections::HashMap<String, String> = c.hgetall(global(s, "tenants")).await?;
    let mut v: Vec<Tenant> = all
        .values()
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect();
    v.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    Ok(v)
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
    /// Reserved for this provider: submit, then [`idempotency_release`].
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

const IDEM_RESERVE: &str = r"
local p = redis.call('HGET', KEYS[1], 'provider')
if p and p ~= ARGV[1] then
  return {p, redis.call('HGET', KEYS[1], 'created') or '0'}
end
redis.call('HSET', KEYS[1], 'provider', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'inflight', 1)
if redis.call('HGET', KEYS[1], 'created') ~= '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {}
";

const IDEM_RELEASE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'inflight', -1)
local created = redis.call('HGET', KEYS[1], 'created') == '1'
if ARGV[1] == '1' and not created then
  -- Kept from the first creation on, as long as the scheduler keeps the key (a replay
  -- does not extend it).
  redis.call('HSET', KEYS[1], 'created', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
elseif n <= 0 and not created and ARGV[1] ~= '1' then
  redis.call('DEL', KEYS[1])
end
return 1
";

static IDEM_RESERVE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(IDEM_RESERVE));
static IDEM_RELEASE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(IDEM_RELEASE));

fn idem_key(s: &Scheduler, tenant: &str, key: &str) -> String {
    global(s, &format!("idemp:{tenant}:{}", hash_key(key)))
}

/// Reserve a task-create `Idempotency-Key` for `provider` (see [`IdemClaim`]).
pub async fn idempotency_reserve(
    s: &Scheduler,
    tenant: &str,
    key: &str,
    provider: &str,
) -> Result<IdemClaim, SchedulerError> {
    let mut c = s.connection().await?;
    let r: Vec<String> = IDEM_RESERVE_SCRIPT
        .key(idem_key(s, tenant, key))
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
    s: &Scheduler,
    tenant: &str,
    key: &str,
    created: bool,
) -> Result<(), SchedulerError> {
    let mut c = s.connection().await?;
    let _: i64 = IDEM_RELEASE_SCRIPT
        .key(idem_key(s, tenant, key))
        .arg(if created { "1" } else { "0" })
        .arg(s.config().scheduler.idempotency_ttl_s)
        .invoke_async(&mut c)
        .await?;
    Ok(())
}

fn reply_key(s: &Scheduler, scope: &str, key: &str) -> String {
    global(s, &format!("reply:{scope}:{}", hash_key(key)))
}

/// Keep the reply given for an idempotency key (24 h), for replays.
pub async fn store_reply(
    s: &Scheduler,
    scope: &str,
    key: &str,
    reply: &serde_json::Value,
) -> Result<(), SchedulerError> {
    let mut c = s.connection().await?;
    let _: () = c
        .set_ex(reply_key(s, scope, key), reply.to_string(), 24 * 3600)
        .await?;
    Ok(())
}

/// The reply first given for an idempotency key.
pub async fn stored_reply(
    s: &Scheduler,
    scope: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, SchedulerError> {
    let mut c = s.connection().await?;
    let v: Option<String> = c.get(reply_key(s, scope, key)).await?;
    Ok(v.and_then(|p| serde_json::from_str(&p).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = new_key();
        assert!(a.starts_with("sy_") && a.len() == 67);
        assert_ne!(a, new_key());
        assert_eq!(hash_key(&a).len(), 64);
        assert!(!hash_key(&a).contains(&a[3..]));
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
