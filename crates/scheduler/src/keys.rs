//! Key names. Every scheduling key is `<prefix>:{<provider>:<shard>}:<name>`; the part in
//! braces is the Redis Cluster hash tag, so a shard's keys share one slot and every script
//! runs on one node. The registry's keys (tenant records, API keys, idempotency records,
//! stored replies) are `<prefix>:{global}:<name>`, one slot of their own. The Lua side
//! builds the same names with `k()` in `lua/includes/keys.lua`; `docs/redis-layout.md` lists
//! every key. Every key shape is named here, those only the scripts build included; a
//! test checks the scripts' `k('<name>', …)` calls and the document against this file.

use switchyard_core::Provider;

/// The base of every key of one provider shard (passed to scripts as `KEYS[1]`).
pub fn shard_base(prefix: &str, provider: Provider, shard: u32) -> String {
    format!("{prefix}:{{{provider}:{shard}}}")
}

/// The shard a tenant's state lives in (FNV-1a of the tenant id).
pub fn shard_of(tenant: &str, shards: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in tenant.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % shards.max(1)
}

/// A task's hash.
pub fn task(base: &str, id: &str) -> String {
    format!("{base}:t:{id}")
}

/// A task's body (its own key, so the task hash stays compact).
pub fn task_body(base: &str, id: &str) -> String {
    format!("{base}:tb:{id}")
}

/// A task's log list (webhook attempts and other entries).
pub fn task_log(base: &str, id: &str) -> String {
    format!("{base}:tlog:{id}")
}

/// A tenant's settings in a shard.
pub fn tenant(base: &str, tenant: &str) -> String {
    format!("{base}:tn:{tenant}")
}

/// A tenant's balance of the shard's provider quota (and, for Midjourney, credits).
pub fn balance(base: &str, tenant: &str) -> String {
    format!("{base}:bal:{tenant}")
}

/// An account's hash.
pub fn account(base: &str, id: &str) -> String {
    format!("{base}:a:{id}")
}

/// The accounts of an owner (a tenant id, or `pool`).
pub fn accounts_of(base: &str, owner: &str) -> String {
    format!("{base}:accs:{owner}")
}

/// The last account number given to an owner's accounts (`bot` of the account hash).
pub fn bot_numbers(base: &str, owner: &str) -> String {
    format!("{base}:bots:{owner}")
}

/// The in-flight set of an account in a mode.
pub fn account_in_flight(base: &str, id: &str, mode: &str) -> String {
    format!("{base}:ainf:{id}:{mode}")
}

/// A tenant's PPU in-flight set.
pub fn tenant_ppu_in_flight(base: &str, tenant: &str) -> String {
    format!("{base}:tinf:{tenant}")
}

/// A tenant's BYOA in-flight set.
pub fn tenant_byoa_in_flight(base: &str, tenant: &str) -> String {
    format!("{base}:binf:{tenant}")
}

/// The lease deadlines of the shard.
pub fn leases(base: &str) -> String {
    format!("{base}:leases")
}

/// What complete and heartbeat need of each running task (task id -> lease terms),
/// written by claim and removed with the lease.
pub fn running(base: &str) -> String {
    format!("{base}:running")
}

/// The wake-up list claimers block on.
pub fn wake(base: &str) -> String {
    format!("{base}:wake")
}

/// Tasks queued in the shard, all lanes (the autoscaling signal).
pub fn depth(base: &str) -> String {
    format!("{base}:depth")
}

/// The shard's event stream.
pub fn events(base: &str) -> String {
    format!("{base}:ev")
}

/// A lane's id, `tenant|pool|mode|pin` (`pin` empty when unpinned), as `lane_id` in
/// `lua/includes/lanes.lua` builds it.
pub fn lane_id(tenant: &str, pool: &str, mode: &str, pin: &str) -> String {
    format!("{tenant}|{pool}|{mode}|{pin}")
}

/// A lane's queue of task ids (`lane`: a [`lane_id`]). Built by the scripts.
pub fn lane_queue(base: &str, lane: &str) -> String {
    format!("{base}:q:{lane}")
}

/// Waiting tasks whose tenant limits their wait, by deadline (`max_pending_s`). Built by
/// the scripts.
pub fn expiry(base: &str) -> String {
    format!("{base}:expiry")
}

/// Which account (and pool) owns an upstream object a tenant's task produced (a
/// conversation, a clip, a generation…): `<pool>|<account>`, kept as long as the task.
/// Built by the scripts.
pub fn owner(base: &str, tenant: &str, object: &str) -> String {
    format!("{base}:obj:{tenant}:{object}")
}

/// An owner's primary accounts that are active and serve a mode now (while any is
/// there, its backups take no work). Built by the scripts.
pub fn usable_primaries(base: &str, owner: &str, mode: &str) -> String {
    format!("{base}:usep:{owner}:{mode}")
}

/// Set while an owner's backups are promoted in a mode (no primary serves it): the time
/// they were. Built by the scripts.
pub fn backups_promoted(base: &str, owner: &str, mode: &str) -> String {
    format!("{base}:promo:{owner}:{mode}")
}

/// Completed tasks with hosted result files, by the time their retention ends (then the
/// files are deleted). Built by the scripts.
pub fn files(base: &str) -> String {
    format!("{base}:files")
}

/// An owner's accounts paused for want of fast hours (`nofast_until` set).
pub fn nofast(base: &str, owner: &str) -> String {
    format!("{base}:nofast:{owner}")
}

/// An account's upstream session lease: holder, until, epoch, session id.
pub fn session(base: &str, account: &str) -> String {
    format!("{base}:gw:{account}")
}

/// The events of an account's upstream session, for every process following its jobs.
pub fn session_events(base: &str, account: &str) -> String {
    format!("{base}:gwev:{account}")
}

/// Accounts whose probe is due, scored by the time it is (ms).
pub fn probe(base: &str) -> String {
    format!("{base}:probe")
}

/// A tenant's usage report of one UTC day (`day`: days since the Unix epoch): outcome
/// counts, quota spent, completion-time buckets. Built by the scripts.
pub fn usage(base: &str, tenant: &str, day: impl std::fmt::Display) -> String {
    format!("{base}:usage:{tenant}:{day}")
}

/// Tasks waiting to retry, by due time. Built by the scripts.
pub fn delayed(base: &str) -> String {
    format!("{base}:delayed")
}

/// The earliest time any delayed retry, timer or cool-down falls due. Built by the
/// scripts.
pub fn due(base: &str) -> String {
    format!("{base}:due")
}

/// The due time one idle claimer watches for (claim tells only that one). Built by the
/// scripts.
pub fn due_watch(base: &str) -> String {
    format!("{base}:duewatch")
}

/// A task-create idempotency key's task in the shard. Built by the scripts.
pub fn idempotency(base: &str, tenant: &str, key: &str) -> String {
    format!("{base}:idem:{tenant}:{key}")
}

/// A rotation of lanes with work (`rotation`: `<pool>:<mode>`, or `pin`). Built by the
/// scripts.
pub fn rotation(base: &str, rotation: &str) -> String {
    format!("{base}:rr:{rotation}")
}

/// A tenant's PPU lanes parked on its plan cap. Built by the scripts.
pub fn parked_on_cap(base: &str, tenant: &str) -> String {
    format!("{base}:park:cap:{tenant}")
}

/// A tenant's BYOA lanes parked on its accounts. Built by the scripts.
pub fn parked_on_tenant_accounts(base: &str, tenant: &str) -> String {
    format!("{base}:park:t:{tenant}")
}

/// Lanes pinned to an account, parked on it. Built by the scripts.
pub fn parked_on_account(base: &str, account: &str) -> String {
    format!("{base}:park:a:{account}")
}

/// Failover max-wait timers of lanes. Built by the scripts.
pub fn timers(base: &str) -> String {
    format!("{base}:timers")
}

/// The shard's sequence (rotation scores, fencing tokens, LRU). Built by the scripts.
pub fn seq(base: &str) -> String {
    format!("{base}:seq")
}

/// The rotation a claim starts at. Built by the scripts.
pub fn rotation_seq(base: &str) -> String {
    format!("{base}:rotseq")
}

/// A top-up's result, for replays. Built by the scripts.
pub fn top_up(base: &str, tenant: &str, key: &str) -> String {
    format!("{base}:topup:{tenant}:{key}")
}

/// Usable primary accounts of an owner with free capacity in a mode. Built by the
/// scripts.
pub fn free(base: &str, owner: &str, mode: &str) -> String {
    format!("{base}:free:{owner}:{mode}")
}

/// Usable backup accounts of an owner with free capacity in a mode. Built by the scripts.
pub fn free_backup(base: &str, owner: &str, mode: &str) -> String {
    format!("{base}:freeb:{owner}:{mode}")
}

/// An owner's accounts, not disabled, that serve a mode. Built by the scripts.
pub fn live(base: &str, owner: &str, mode: &str) -> String {
    format!("{base}:live:{owner}:{mode}")
}

/// An owner's active accounts that serve a mode. Built by the scripts.
pub fn usable(base: &str, owner: &str, mode: &str) -> String {
    format!("{base}:use:{owner}:{mode}")
}

/// Cooling accounts and fast-hours pauses, by end time. Built by the scripts.
pub fn cool(base: &str) -> String {
    format!("{base}:cool")
}

/// The base of the registry's keys (`<prefix>:{global}`).
pub fn global_base(prefix: &str) -> String {
    format!("{prefix}:{{global}}")
}

/// Every tenant record (tenant id -> JSON).
pub fn tenants(global: &str) -> String {
    format!("{global}:tenants")
}

/// Every API key (SHA-256 of the key, hex -> tenant id).
pub fn api_keys(global: &str) -> String {
    format!("{global}:keys")
}

/// Which provider a tenant's task-create `Idempotency-Key` belongs to (`key_hash`: the
/// key's SHA-256, hex).
pub fn idempotency_claim(global: &str, tenant: &str, key_hash: &str) -> String {
    format!("{global}:idemp:{tenant}:{key_hash}")
}

/// The reply first given for an idempotency key in a scope (e.g. `credit:<tenant>`).
pub fn stored_reply(global: &str, scope: &str, key_hash: &str) -> String {
    format!("{global}:reply:{scope}:{key_hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_carries_the_hash_tag() {
        assert_eq!(shard_base("sy", Provider::Suno, 3), "sy:{suno:3}");
        assert_eq!(task("sy:{suno:3}", "x"), "sy:{suno:3}:t:x");
        assert_eq!(tenants(&global_base("sy")), "sy:{global}:tenants");
        assert_eq!(
            idempotency_claim(&global_base("sy"), "t_1", "ab"),
            "sy:{global}:idemp:t_1:ab"
        );
    }

    /// Every key name a script builds with `k('<name>', …)` is built here too, and every
    /// key shape built here is listed in `docs/redis-layout.md`.
    #[test]
    fn keys_rs_and_the_layout_document_name_every_key() {
        let b = "B";
        let g = global_base("G");
        let shard = [
            task(b, "<task>"),
            task_body(b, "<task>"),
            task_log(b, "<task>"),
            lane_queue(b, "<lane>"),
            delayed(b),
            due(b),
            due_watch(b),
            leases(b),
            running(b),
            idempotency(b, "<tenant>", "<key>"),
            rotation(b, "<pool>:<mode>"),
            rotation(b, "pin"),
            parked_on_cap(b, "<tenant>"),
            parked_on_tenant_accounts(b, "<tenant>"),
            parked_on_account(b, "<account>"),
            timers(b),
            seq(b),
            rotation_seq(b),
            wake(b),
            depth(b),
            tenant(b, "<tenant>"),
            tenant_ppu_in_flight(b, "<tenant>"),
            tenant_byoa_in_flight(b, "<tenant>"),
            balance(b, "<tenant>"),
            top_up(b, "<tenant>", "<key>"),
            account(b, "<account>"),
            accounts_of(b, "<owner>"),
            bot_numbers(b, "<owner>"),
            account_in_flight(b, "<account>", "<mode>"),
            free(b, "<owner>", "<mode>"),
            free_backup(b, "<owner>", "<mode>"),
            live(b, "<owner>", "<mode>"),
            usable(b, "<owner>", "<mode>"),
            cool(b),
            events(b),
            usage(b, "<tenant>", "<day>"),
            expiry(b),
            files(b),
            owner(b, "<tenant>", "<object>"),
            usable_primaries(b, "<owner>", "<mode>"),
            backups_promoted(b, "<owner>", "<mode>"),
            probe(b),
            nofast(b, "<owner>"),
            session(b, "<account>"),
            session_events(b, "<account>"),
        ];
        let global = [
            tenants(&g),
            api_keys(&g),
            idempotency_claim(&g, "<tenant>", "<key hash>"),
            stored_reply(&g, "<scope>", "<key hash>"),
        ];
        let doc = include_str!("../../../docs/redis-layout.md");
        for k in shard.iter() {
            assert!(
                doc.contains(&format!("`{k}`")),
                "{k} not in redis-layout.md"
            );
        }
        for k in global.iter() {
            let k = k.replace("G:{global}", "G");
            assert!(
                doc.contains(&format!("`{k}`")),
                "{k} not in redis-layout.md"
            );
        }
        let names: Vec<&str> = shard
            .iter()
            .filter_map(|k| k.strip_prefix("B:"))
            .map(|k| k.split(':').next().unwrap_or_default())
            .collect();
        let lua = crate::scripts::SCRIPTS
            .iter()
            .map(|(_, text)| *text)
            .chain(crate::scripts::INCLUDES.iter().map(|(_, text)| *text));
        for src in lua {
            for part in src.split("k('").skip(1) {
                let name = part.split('\'').next().unwrap_or_default();
                assert!(
                    names.contains(&name),
                    "the scripts build `{name}` keys, keys.rs does not"
                );
            }
        }
    }

    #[test]
    fn shards_spread_tenants() {
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            seen[shard_of(&format!("t_{i}"), 4) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 150), "{seen:?}");
        assert_eq!(shard_of("anything", 1), 0);
    }
}
