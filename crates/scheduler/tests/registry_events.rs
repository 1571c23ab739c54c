//! The registry (tenant records, API keys, idempotency records, stored replies) and the
//! event consumer (consumer group read, ack, keep claimed, claim stale), on a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use switchyard_core::{Plan, ProcessMode, Provider, QuotaKind, ServiceMode};
use switchyard_scheduler::{IdemClaim, Tenant};

const MJ: Provider = Provider::Midjourney;

fn record(id: &str) -> Tenant {
    Tenant {
        tenant_id: id.into(),
        name: format!("name of {id}"),
        plan: Plan::Premium,
        created_at: "2026-01-01T00:00:00Z".into(),
        default_service_mode: ServiceMode::Ppu,
        failover_max_wait_s: 0,
        notification_webhook: None,
        notification_secret: None,
        approved_extras: false,
        max_queued: None,
        max_pending_s: 0,
        downgrade_when_no_fast_hours: true,
    }
}

#[tokio::test]
async fn tenants_keys_and_idempotency_records() {
    let s = scheduler("registry").await;
    s.create_tenant(&record("t_b"), "hash-b").await.unwrap();
    s.create_tenant(&record("t_a"), "hash-a").await.unwrap();
    let ids: Vec<String> = s
        .tenant_records()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.tenant_id)
        .collect();
    assert_eq!(ids, ["t_a", "t_b"]);
    assert_eq!(
        s.tenant_by_key_hash("hash-a")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        "t_a"
    );
    assert!(s.tenant_by_key_hash("nope").await.unwrap().is_none());
    let mut t = s.tenant_record("t_a").await.unwrap().unwrap();
    t.name = "renamed".into();
    s.save_tenant(&t).await.unwrap();
    assert_eq!(
        s.tenant_record("t_a").await.unwrap().unwrap().name,
        "renamed"
    );

    assert_eq!(
        s.idempotency_reserve("t_a", "k", "suno").await.unwrap(),
        IdemClaim::Reserved
    );
    assert_eq!(
        s.idempotency_reserve("t_a", "k", "luma").await.unwrap(),
        IdemClaim::Taken {
            provider: "suno".into(),
            created: false
        }
    );
    s.idempotency_release("t_a", "k", true).await.unwrap();
    // A refused request leaves nothing; a created task keeps the key.
    s.idempotency_release("t_a", "k2", false).await.unwrap();
    assert_eq!(
        s.idempotency_reserve("t_a", "k", "luma").await.unwrap(),
        IdemClaim::Taken {
            provider: "suno".into(),
            created: true
        }
    );

    let reply = serde_json::json!({"balance": 5});
    s.store_reply("credit:t_a", "h", &reply).await.unwrap();
    assert_eq!(
        s.stored_reply("credit:t_a", "h").await.unwrap(),
        Some(reply)
    );
    assert_eq!(s.stored_reply("credit:t_b", "h").await.unwrap(), None);
}

#[tokio::test]
async fn consumer_group_reads_acks_and_takes_over_idle_entries() {
    let s = scheduler("consumer").await;
    tenant(&s, "t_c", Plan::Premium).await;
    fund(&s, "t_c", QuotaKind::MjQuota, 1000).await;
    let mut t = task("t_c", MJ, ServiceMode::Ppu, ProcessMode::Fast, 8);
    t.extra
        .push(("wh_endpoint".into(), "https://hooks.example/g".into()));
    s.submit(&t).await.unwrap();
    let base = s.base_for(MJ, "t_c");
    s.ensure_event_group(&base, "g").await.unwrap();
    s.ensure_event_group(&base, "g").await.unwrap();
    let read = s.read_event_group(&base, "g", "a", 100, 10).await.unwrap();
    let created: Vec<_> = read.iter().filter(|e| e.kind == "created").collect();
    assert_eq!(created.len(), 1);
    assert!(
        s.read_event_group(&base, "g", "a", 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Pending with `a`: another consumer takes over what has been idle long enough.
    let id = created[0].id.clone();
    s.keep_event_claimed(&base, "g", "a", &id).await.unwrap();
    assert!(
        s.claim_stale_events(&base, "g", "b", 60_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = s.claim_stale_events(&base, "g", "b", 0, 100).await.unwrap();
    assert!(taken.iter().any(|e| e.id == id));
    for e in &read {
        s.ack_event(&base, "g", &e.id).await.unwrap();
    }
    assert!(
        s.claim_stale_events(&base, "g", "b", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // The recent events of the provider include the task's creation.
    let recent = s.recent_events(MJ, 0, 100).await.unwrap();
    assert!(recent.iter().any(|e| e.id == id));
}
