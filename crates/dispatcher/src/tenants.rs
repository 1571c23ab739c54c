//! Tenants and API keys. Keys are random (32 bytes), shown once, stored only as SHA-256
//! hashes; a request's key is hashed and looked up. The records live in the scheduler's
//! registry (`switchyard_scheduler::Scheduler::create_tenant` and friends); this module
//! makes and hashes keys and hands the registry only hashes.

use rand::RngCore;
use sha2::{Digest, Sha256};
use switchyard_scheduler::{Scheduler, SchedulerError, TenantSettings};

pub use switchyard_scheduler::{IdemClaim, Tenant};

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
    t.settings(config)
}

/// Store a new tenant with a new key; returns the key (shown once).
pub async fn create(s: &Scheduler, t: &Tenant) -> Result<String, SchedulerError> {
    let key = new_key();
    s.create_tenant(t, &hash_key(&key)).await?;
    Ok(key)
}

/// Save changes to a tenant (and its scheduling settings).
pub async fn save(s: &Scheduler, t: &Tenant) -> Result<(), SchedulerError> {
    s.save_tenant(t).await
}

/// A tenant by id.
pub async fn get(s: &Scheduler, id: &str) -> Result<Option<Tenant>, SchedulerError> {
    s.tenant_record(id).await
}

/// The tenant an API key belongs to.
pub async fn by_key(s: &Scheduler, key: &str) -> Result<Option<Tenant>, SchedulerError> {
    s.tenant_by_key_hash(&hash_key(key)).await
}

/// Every tenant.
pub async fn list(s: &Scheduler) -> Result<Vec<Tenant>, SchedulerError> {
    s.tenant_records().await
}

/// Reserve a task-create `Idempotency-Key` for `provider` (see [`IdemClaim`]).
pub async fn idempotency_reserve(
    s: &Scheduler,
    tenant: &str,
    key: &str,
    provider: &str,
) -> Result<IdemClaim, SchedulerError> {
    s.idempotency_reserve(tenant, &hash_key(key), provider)
        .await
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
    s.idempotency_release(tenant, &hash_key(key), created).await
}

/// Keep the reply given for an idempotency key (24 h), for replays.
pub async fn store_reply(
    s: &Scheduler,
    scope: &str,
    key: &str,
    reply: &serde_json::Value,
) -> Result<(), SchedulerError> {
    s.store_reply(scope, &hash_key(key), reply).await
}

/// The reply first given for an idempotency key.
pub async fn stored_reply(
    s: &Scheduler,
    scope: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, SchedulerError> {
    s.stored_reply(scope, &hash_key(key)).await
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
