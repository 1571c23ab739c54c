//! Shared helpers for the scheduler's integration tests (real Redis, private server).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use switchyard_core::{
    Config, Cost, Plan, PlanTable, ProcessMode, Provider, QuotaKind, ServiceMode,
};
use switchyard_scheduler::{AccountSpec, NewTask, Owner, Scheduler, TenantSettings};

/// A scheduler on this binary's private Redis, under a fresh key prefix.
pub async fn scheduler(name: &str) -> Scheduler {
    scheduler_with(name, |_| {}).await
}

/// As [`scheduler`], with config changes.
pub async fn scheduler_with(name: &str, f: impl FnOnce(&mut Config)) -> Scheduler {
    let r = switchyard_test_support::redis();
    let mut c = Config::default();
    c.scheduler.pacing =
        switchyard_core::config::PacingDefaults::all(switchyard_core::config::Pacing::NONE);
    c.redis.url = r.url.clone();
    c.redis.key_prefix = switchyard_test_support::unique_prefix(name);
    c.redis.pool_size = 96;
    c.scheduler.lease_ms = 1000;
    c.scheduler.retry_backoff_ms = 10;
    c.scheduler.retry_backoff_max_ms = 50;
    f(&mut c);
    c.validate().unwrap();
    Scheduler::connect(&c).await.unwrap()
}

/// Create a tenant on a plan with default settings.
pub async fn tenant(s: &Scheduler, id: &str, plan: Plan) {
    tenant_wait(s, id, plan, 0).await
}

/// Create a tenant with a failover max wait. Its queues are unbounded (these tests queue
/// deep backlogs; `queue_full_refuses_once_the_tenants_queue_is_at_its_limit` tests the
/// plan's limit).
pub async fn tenant_wait(s: &Scheduler, id: &str, plan: Plan, max_wait_ms: u64) {
    let table = PlanTable::seed();
    let mut settings = TenantSettings::from_plan(plan.as_str(), table.get(plan), max_wait_ms);
    settings.max_queued = settings.max_queued.map(|(p, _)| (p, None));
    s.upsert_tenant(id, &settings).await.unwrap();
}

/// Create a tenant with its plan's queue limits.
pub async fn tenant_as_planned(s: &Scheduler, id: &str, plan: Plan) {
    let table = PlanTable::seed();
    s.upsert_tenant(
        id,
        &TenantSettings::from_plan(plan.as_str(), table.get(plan), 0),
    )
    .await
    .unwrap();
}

/// Add an account with capacity per mode [relax, fast, turbo].
pub async fn account(s: &Scheduler, p: Provider, owner: &Owner, id: &str, cap: [u32; 3]) {
    account_with(s, p, owner, id, cap, 1, false).await
}

/// Add an account with weight and backup flag.
pub async fn account_with(
    s: &Scheduler,
    p: Provider,
    owner: &Owner,
    id: &str,
    cap: [u32; 3],
    weight: u32,
    backup: bool,
) {
    s.add_account(
        p,
        owner,
        id,
        &AccountSpec {
            name: Some(id.to_string()),
            capacity: Some(cap),
            weight: Some(weight),
            backup: Some(backup),
            secret: Some(format!("secret-of-{id}")),
            ..AccountSpec::default()
        },
    )
    .await
    .unwrap();
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A new task with a fresh id.
pub fn task(tenant: &str, p: Provider, sm: ServiceMode, mode: ProcessMode, price: u64) -> NewTask {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    NewTask {
        id: format!("task-{n}-{}", uuid::Uuid::now_v7()),
        tenant: tenant.to_string(),
        provider: p,
        service_mode: sm,
        process_mode: mode,
        pin: None,
        pin_holds: None,
        ppu_price: Cost {
            kind: QuotaKind::of(p),
            amount: price,
        },
        body: format!("{{\"n\":{n},\"tenant\":\"{tenant}\"}}"),
        extra: vec![],
        idempotency: None,
        log: vec![],
    }
}

/// Give a tenant quota.
pub async fn fund(s: &Scheduler, tenant: &str, kind: QuotaKind, amount: i64) {
    let key = format!("fund-{}", uuid::Uuid::now_v7());
    s.top_up(tenant, kind, amount, &key).await.unwrap();
}
