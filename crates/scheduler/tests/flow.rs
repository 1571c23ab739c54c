//! The life of a task on real Redis: submit, claim, lease, complete, fail, cancel, reap;
//! fencing, metering, balancing and failover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use switchyard_core::{AccountState, Plan, ProcessMode, Provider, QuotaKind, ServiceMode};
use switchyard_scheduler::{
    AccountSpec, CancelOutcome, ClaimedTask, CompleteOutcome, FailKind, FailOutcome, NewTask,
    Owner, StoredStatus, SubmitError, TaskError,
};

const MJ: Provider = Provider::Midjourney;
const PPU: ServiceMode = ServiceMode::Ppu;
const BYOA: ServiceMode = ServiceMode::Byoa;
const FAST: ProcessMode = ProcessMode::Fast;
const RELAX: ProcessMode = ProcessMode::Relax;
const NOW: Duration = Duration::ZERO;

async fn wait_reaped(s: &switchyard_scheduler::Scheduler, p: Provider, want: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < want {
        got += s.reap(p, 1000).await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "reaped {got} of {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ppu_task_runs_and_is_charged_once() {
    let s = scheduler("flow").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "pool1", [5, 5, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;

    let t = task("t_a", MJ, PPU, FAST, 14);
    let sub = s.submit(&t).await.unwrap();
    assert_eq!(sub.pool, Some(PPU));
    assert_eq!(sub.held, 14);
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.available, bal.held), (86, 14));

    let claimed = s.claim(MJ, 4, NOW).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!(c.lease.id, t.id);
    assert_eq!(c.account, "pool1");
    assert_eq!(c.attempt, 1);
    assert_eq!(c.body, t.body);
    assert_eq!(c.account_secret, "secret-of-pool1");
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.status, StoredStatus::Processing);

    assert!(
        s.report(&c.lease, Some("nonce-1"), Some(40), None)
            .await
            .unwrap()
    );
    assert_eq!(
        s.heartbeat(std::slice::from_ref(&c.lease)).await.unwrap(),
        vec![true]
    );
    assert_eq!(
        s.complete(&c.lease, "{\"ok\":1}").await.unwrap(),
        CompleteOutcome::Completed
    );
    // Repeated completes charge nothing more.
    for _ in 0..3 {
        assert_eq!(
            s.complete(&c.lease, "{}").await.unwrap(),
            CompleteOutcome::AlreadyCompleted
        );
    }
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.available, bal.held, bal.captured), (86, 0, 14));
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.status, StoredStatus::Completed);
    assert_eq!(rec.output, serde_json::json!({"ok": 1}));
    assert_eq!(rec.upstream.as_deref(), Some("nonce-1"));
    assert_eq!(rec.consume, 14);
    // Another tenant cannot see it.
    assert!(s.get_task("t_b", &t.id).await.unwrap().is_none());
}

#[tokio::test]
async fn insufficient_quota_refuses_and_writes_nothing() {
    let s = scheduler("meter").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, Provider::Suno, &Owner::Pool, "p", [5, 0, 0]).await;
    fund(&s, "t_a", QuotaKind::SunoQuota, 9).await;
    let t = task("t_a", Provider::Suno, PPU, RELAX, 10);
    match s.submit(&t).await {
        Err(SubmitError::InsufficientQuota {
            needed, available, ..
        }) => assert_eq!((needed, available), (10, 9)),
        other => panic!("expected InsufficientQuota, got {other:?}"),
    }
    assert!(s.get_task("t_a", &t.id).await.unwrap().is_none());
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((bal.available, bal.held), (9, 0));
    assert!(s.claim(Provider::Suno, 5, NOW).await.unwrap().is_empty());
}

#[tokio::test]
async fn queue_full_refuses_once_the_tenants_queue_is_at_its_limit() {
    let s = scheduler("queue_full").await;
    // Hobbyist Suno: cap 2, so the plan's limit is max(10 × 2, 100) = 100 waiting.
    tenant_as_planned(&s, "t_h", Plan::Hobbyist).await;
    fund(&s, "t_h", QuotaKind::SunoQuota, 10_000).await;
    let batch: Vec<_> = (0..101)
        .map(|_| task("t_h", Provider::Suno, PPU, RELAX, 10))
        .collect();
    let replies = s.submit_batch(&batch).await.unwrap();
    assert!(replies[..100].iter().all(Result::is_ok));
    assert!(
        matches!(replies[100], Err(SubmitError::QueueFull(100))),
        "{:?}",
        replies[100]
    );
    // The refused one holds nothing and exists nowhere.
    assert!(s.get_task("t_h", &batch[100].id).await.unwrap().is_none());
    let bal = s.balances("t_h").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((bal.available, bal.held), (10_000 - 1000, 1000));
    // A short balance is answered first (402 before 429).
    assert!(matches!(
        s.submit(&task("t_h", Provider::Suno, PPU, RELAX, 100_000))
            .await,
        Err(SubmitError::InsufficientQuota { .. })
    ));
    // One leaves the queue (started or cancelled): one more fits.
    assert_eq!(
        s.cancel("t_h", &batch[0].id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    s.submit(&task("t_h", Provider::Suno, PPU, RELAX, 10))
        .await
        .unwrap();
    assert!(matches!(
        s.submit(&task("t_h", Provider::Suno, PPU, RELAX, 10)).await,
        Err(SubmitError::QueueFull(100))
    ));
    // Midjourney's queue is its own.
    fund(&s, "t_h", QuotaKind::MjQuota, 100).await;
    s.submit(&task("t_h", MJ, PPU, RELAX, 3)).await.unwrap();
}

#[tokio::test]
async fn a_task_waiting_past_max_pending_fails_expired_in_queue_and_is_refunded() {
    let s = scheduler("expiry").await;
    let table = switchyard_core::PlanTable::seed();
    let settings =
        switchyard_scheduler::TenantSettings::from_plan("developer", table.get(Plan::Developer), 0)
            .with_max_pending_ms(300);
    s.upsert_tenant("t_a", &settings).await.unwrap();
    fund(&s, "t_a", QuotaKind::SunoQuota, 100).await;
    // No account serves Suno yet: the task waits.
    let waiting = task("t_a", Provider::Suno, PPU, RELAX, 10);
    s.submit(&waiting).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.reap(Provider::Suno, 100).await.unwrap();
    let rec = s.get_task("t_a", &waiting.id).await.unwrap().unwrap();
    assert_eq!(rec.status, StoredStatus::Failed);
    assert_eq!(rec.error.as_ref().unwrap().code, "expired_in_queue");
    assert_eq!(rec.consume, 0);
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((bal.available, bal.held), (100, 0), "refunded");
    let load = s.tenant_load("t_a").await.unwrap();
    let suno = load.iter().find(|l| l.provider == Provider::Suno).unwrap();
    assert_eq!(suno.queued, 0);
    // A task claimed before its deadline runs on.
    account(&s, Provider::Suno, &Owner::Pool, "p", [5, 0, 0]).await;
    let started = task("t_a", Provider::Suno, PPU, RELAX, 10);
    s.submit(&started).await.unwrap();
    let got = s.claim(Provider::Suno, 5, NOW).await.unwrap();
    assert_eq!(got.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Due work runs in claims too.
    assert!(s.claim(Provider::Suno, 5, NOW).await.unwrap().is_empty());
    let rec = s.get_task("t_a", &started.id).await.unwrap().unwrap();
    assert_eq!(rec.status, StoredStatus::Processing);
}

#[tokio::test]
async fn midjourney_converts_2100_then_700_credits() {
    let s = scheduler("conv").await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::Credits, 2800).await;
    account(&s, MJ, &Owner::Pool, "p", [50, 50, 50]).await;
    // 0 quota < 100: 2100 credits → 600 quotas, then hold 32.
    s.submit(&task("t_a", MJ, PPU, ProcessMode::Turbo, 32))
        .await
        .unwrap();
    let b = s.balances("t_a").await.unwrap();
    assert_eq!(b[&QuotaKind::Credits].available, 700);
    assert_eq!(b[&QuotaKind::MjQuota].available, 568);
    // Spend down below 100 (15 × 32 = 480 → 88 left).
    for _ in 0..15 {
        s.submit(&task("t_a", MJ, PPU, ProcessMode::Turbo, 32))
            .await
            .unwrap();
    }
    assert_eq!(
        s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota].available,
        88
    );
    // Below 100 with 700 credits: the 2100 step is short, 700 → 200 quotas.
    s.submit(&task("t_a", MJ, PPU, ProcessMode::Turbo, 32))
        .await
        .unwrap();
    let b = s.balances("t_a").await.unwrap();
    assert_eq!(b[&QuotaKind::Credits].available, 0);
    assert_eq!(b[&QuotaKind::MjQuota].available, 88 + 200 - 32);
    // Below 100 again later with no credits: no conversion, refused when short.
    for _ in 0..5 {
        s.submit(&task("t_a", MJ, PPU, ProcessMode::Turbo, 32))
            .await
            .unwrap();
    }
    let avail = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota].available;
    assert_eq!(avail, 256 - 160);
    let r = s
        .submit(&task("t_a", MJ, PPU, ProcessMode::Turbo, 120))
        .await;
    assert!(
        matches!(r, Err(SubmitError::InsufficientQuota { .. })),
        "{r:?}"
    );
}

/// One batch reads the balance once and writes it once: the conversions and holds inside
/// it must still follow task by task, exactly as single submits would.
#[tokio::test]
async fn a_batch_converts_and_holds_task_by_task() {
    let s = scheduler("convbatch").await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::Credits, 2800).await;
    account(&s, MJ, &Owner::Pool, "p", [50, 50, 50]).await;
    let batch: Vec<_> = (0..40)
        .map(|_| task("t_a", MJ, PPU, ProcessMode::Turbo, 32))
        .collect();
    let res = s.submit_batch(&batch).await.unwrap();
    // 2100 → 600 at the first task; 16 holds leave 88; 700 → 200 at the 17th (288 → 256);
    // 5 more leave 96; no credits left, so 3 more (64, 32, 0) and then short.
    let accepted: Vec<bool> = res.iter().map(|r| r.is_ok()).collect();
    assert_eq!(accepted.iter().filter(|a| **a).count(), 25);
    assert!(accepted[..25].iter().all(|a| *a), "{accepted:?}");
    for r in &res[25..] {
        assert!(
            matches!(r, Err(SubmitError::InsufficientQuota { available: 0, .. })),
            "{r:?}"
        );
    }
    let b = s.balances("t_a").await.unwrap();
    assert_eq!(b[&QuotaKind::Credits].available, 0);
    let mj = b[&QuotaKind::MjQuota];
    assert_eq!((mj.available, mj.held), (0, 25 * 32));
    assert_eq!(s.provider_load(MJ).await.unwrap().queued, 25);
    // The refused tasks wrote nothing.
    for t in &batch[25..] {
        assert!(s.get_task("t_a", &t.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn idempotency_key_returns_the_same_task_and_holds_once() {
    let s = scheduler("idem").await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    let mut t = task("t_a", MJ, PPU, FAST, 14);
    t.idempotency = Some(("key-1".into(), "hash-a".into()));
    let first = s.submit(&t).await.unwrap();
    let mut again = task("t_a", MJ, PPU, FAST, 14);
    again.idempotency = Some(("key-1".into(), "hash-a".into()));
    let second = s.submit(&again).await.unwrap();
    assert!(second.replayed);
    assert_eq!(second.id, first.id);
    assert!(s.get_task("t_a", &again.id).await.unwrap().is_none());
    let mut other = task("t_a", MJ, PPU, FAST, 14);
    other.idempotency = Some(("key-1".into(), "hash-b".into()));
    assert!(matches!(
        s.submit(&other).await,
        Err(SubmitError::IdempotencyKeyReused(id)) if id == first.id
    ));
    assert_eq!(
        s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota].held,
        14
    );
}

#[tokio::test]
async fn fencing_refuses_a_stale_worker() {
    let s = scheduler("fence").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "p", [5, 5, 5]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let a = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    // A's lease expires; the reaper requeues; B claims.
    wait_reaped(&s, MJ, 1).await;
    let b = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(b.lease.id, a.lease.id);
    assert_ne!(b.lease.token, a.lease.token);
    assert_eq!(b.attempt, 2);

    assert_eq!(
        s.heartbeat(std::slice::from_ref(&a.lease)).await.unwrap(),
        vec![false]
    );
    assert!(!s.report(&a.lease, Some("x"), Some(10), None).await.unwrap());
    assert_eq!(
        s.complete(&a.lease, "{\"from\":\"a\"}").await.unwrap(),
        CompleteOutcome::Stale
    );
    assert_eq!(
        s.fail(&a.lease, &FailKind::BadRequest, "no", "")
            .await
            .unwrap(),
        FailOutcome::Stale
    );
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.status, StoredStatus::Processing);
    assert_eq!(rec.upstream, None);
    // Both leases in one heartbeat: only B's is extended.
    assert_eq!(
        s.heartbeat(&[a.lease.clone(), b.lease.clone()])
            .await
            .unwrap(),
        vec![false, true]
    );
    assert_eq!(
        s.complete(&b.lease, "{\"from\":\"b\"}").await.unwrap(),
        CompleteOutcome::Completed
    );
    // A finished task's lease is gone, for its holder too.
    assert_eq!(
        s.heartbeat(std::slice::from_ref(&b.lease)).await.unwrap(),
        vec![false]
    );
    assert_eq!(
        s.complete(&b.lease, "{}").await.unwrap(),
        CompleteOutcome::AlreadyCompleted
    );
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.output, serde_json::json!({"from": "b"}));
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.captured, bal.held, bal.available), (14, 0, 86));
}

#[tokio::test]
async fn fail_kinds_drive_retries_cooldowns_and_accounts() {
    let s = scheduler("failkinds").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "p1", [0, 1, 0]).await;
    account(&s, MJ, &Owner::Pool, "p2", [0, 1, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 1000).await;

    // bad_request: failed, refunded, no retry.
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(
        s.fail(
            &c.lease,
            &FailKind::BadRequest,
            "Banned prompt",
            "raw embed"
        )
        .await
        .unwrap(),
        FailOutcome::Failed
    );
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(
        (
            rec.status,
            rec.error
                .as_ref()
                .map(|e| (e.code.as_str(), e.raw.as_str()))
        ),
        (
            StoredStatus::Failed,
            Some(("upstream_rejected", "raw embed"))
        )
    );
    // Refunded once, whatever is retried.
    for _ in 0..3 {
        assert_eq!(
            s.fail(&c.lease, &FailKind::BadRequest, "x", "")
                .await
                .unwrap(),
            FailOutcome::Stale
        );
        assert_eq!(
            s.cancel("t_a", &t.id).await.unwrap(),
            CancelOutcome::NotCancellable("failed".into())
        );
    }
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.available, bal.held, bal.refunded), (1000, 0, 14));

    // rate_limited: the account cools down, the task goes to the other account.
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    let first_acc = c.account.clone();
    assert_eq!(
        s.fail(
            &c.lease,
            &FailKind::RateLimited {
                retry_after_ms: 60_000
            },
            "429",
            ""
        )
        .await
        .unwrap(),
        FailOutcome::Requeued
    );
    let acc = s
        .get_account(MJ, &Owner::Pool, &first_acc)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(acc.state, AccountState::CoolingDown { .. }));
    let c2 = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(c2.lease.id, t.id);
    assert_ne!(c2.account, first_acc);
    assert_eq!(
        c2.attempt, 1,
        "account-level failures do not spend the budget"
    );

    // account_dead: disabled with its reason, an account event in the stream.
    assert_eq!(
        s.fail(
            &c2.lease,
            &FailKind::AccountDead {
                reason: "banned".into()
            },
            "",
            ""
        )
        .await
        .unwrap(),
        FailOutcome::Requeued
    );
    let acc = s
        .get_account(MJ, &Owner::Pool, &c2.account)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        acc.state,
        AccountState::Disabled {
            reason: "banned".into()
        }
    );
    // Both accounts unusable: nothing is claimable (no account is ever chosen).
    assert!(s.claim(MJ, 1, NOW).await.unwrap().is_empty());
    // The cooled account comes back when its cool-down ends.
    s.set_account_state(
        MJ,
        &Owner::Pool,
        &first_acc,
        Some(&AccountState::CoolingDown {
            until_ms: 0,
            reason: String::new(),
        }),
    )
    .await
    .unwrap();
    let c3 = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(c3.account, first_acc);

    // transient: retried after backoff, then retries_exhausted after the budget (3).
    assert_eq!(
        s.fail(&c3.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    let mut lease = s
        .claim(MJ, 1, Duration::from_secs(2))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(lease.attempt, 2);
    assert_eq!(
        s.fail(&lease.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    lease = s
        .claim(MJ, 1, Duration::from_secs(2))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(lease.attempt, 3);
    assert_eq!(
        s.fail(&lease.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Failed
    );
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.error.unwrap().code, "retries_exhausted");
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.held, bal.refunded, bal.captured), (0, 28, 0));
}

/// Midjourney's "Credits exhausted": the account takes no fast or turbo work for a while
/// but keeps serving relax, the fast task goes to an account with fast hours, the tenant
/// is told, and fast work comes back to the account when the pause ends.
#[tokio::test]
async fn no_fast_hours_keep_relax_running_and_come_back() {
    let s = scheduler("nofast").await;
    tenant(&s, "t_a", Plan::Premium).await;
    // This tenant keeps fast work in fast mode (fast → relax is in limits.rs).
    let table = switchyard_core::PlanTable::seed();
    let settings =
        switchyard_scheduler::TenantSettings::from_plan("premium", table.get(Plan::Premium), 0)
            .with_downgrade(false);
    s.upsert_tenant("t_a", &settings).await.unwrap();
    fund(&s, "t_a", QuotaKind::MjQuota, 10_000).await;
    account(&s, MJ, &Owner::Pool, "p", [2, 2, 2]).await;
    let fast = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&fast).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(c.account, "p");
    let kind = FailKind::NoFastHours {
        retry_after_ms: 1_500,
    };
    assert_eq!(
        s.fail(&c.lease, &kind, "Credits exhausted", "")
            .await
            .unwrap(),
        FailOutcome::Requeued
    );
    let p = &s.list_accounts(MJ, &Owner::Pool).await.unwrap()[0];
    assert_eq!(p.state, AccountState::Active);
    assert!(p.fast_off_until_ms.is_some());
    // No fast hours anywhere: the fast task waits; relax still runs on the account.
    assert!(s.try_claim(MJ, 5).await.unwrap().is_empty());
    let relax = task("t_a", MJ, PPU, RELAX, 6);
    s.submit(&relax).await.unwrap();
    let got = s.try_claim(MJ, 5).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].lease.id.as_str(), got[0].account.as_str()),
        (relax.id.as_str(), "p")
    );
    // An account with fast hours takes the fast task at once, as its first attempt.
    account(&s, MJ, &Owner::Pool, "q", [0, 1, 0]).await;
    let got = s.try_claim(MJ, 5).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].lease.id.as_str(), got[0].account.as_str()),
        (fast.id.as_str(), "q")
    );
    assert_eq!(got[0].attempt, 1);
    // The pause ends: p takes fast work again (q is full).
    let fast2 = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&fast2).await.unwrap();
    assert!(s.try_claim(MJ, 5).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let got = s.try_claim(MJ, 5).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].lease.id.as_str(), got[0].account.as_str()),
        (fast2.id.as_str(), "p")
    );
    let p = &s.list_accounts(MJ, &Owner::Pool).await.unwrap()[0];
    assert_eq!(p.fast_off_until_ms, None);
    // Paused again for a minute; enabling the account by hand ends the pause at once.
    let fast3 = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&fast3).await.unwrap();
    let c = s.try_claim(MJ, 5).await.unwrap().remove(0);
    assert_eq!(c.account, "p");
    let kind = FailKind::NoFastHours {
        retry_after_ms: 60_000,
    };
    s.fail(&c.lease, &kind, "Credits exhausted", "")
        .await
        .unwrap();
    assert!(s.try_claim(MJ, 5).await.unwrap().is_empty());
    let enable = AccountSpec {
        enabled: Some(true),
        ..AccountSpec::default()
    };
    s.update_account(MJ, &Owner::Pool, "p", &enable)
        .await
        .unwrap();
    let got = s.try_claim(MJ, 5).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].lease.id.as_str(), got[0].account.as_str()),
        (fast3.id.as_str(), "p")
    );
    // The account event says why, for the tenant's notification.
    let mut events = Vec::new();
    for base in s.bases(MJ) {
        events.extend(s.read_events(&base, "0", 1000, 0).await.unwrap());
    }
    assert!(events.iter().any(|e| {
        e.kind == "account"
            && e.fields.get("state").map(String::as_str) == Some("active")
            && e.fields
                .get("reason")
                .is_some_and(|r| r.starts_with("no_fast_hours"))
    }));
}

/// A fast-hours pause on an account that is resting for another reason keeps that state,
/// and its event says so.
#[tokio::test]
async fn a_fast_hours_pause_keeps_the_accounts_state() {
    let s = scheduler("nofaststate").await;
    tenant(&s, "t_a", Plan::Premium).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 10_000).await;
    account(&s, MJ, &Owner::Pool, "p", [1, 1, 1]).await;
    s.submit(&task("t_a", MJ, PPU, FAST, 14)).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    let resting = AccountState::CoolingDown {
        until_ms: u64::MAX / 2,
        reason: "rate_limited".into(),
    };
    s.set_account_state(MJ, &Owner::Pool, "p", Some(&resting))
        .await
        .unwrap();
    let kind = FailKind::NoFastHours {
        retry_after_ms: 60_000,
    };
    s.fail(&c.lease, &kind, "Credits exhausted", "")
        .await
        .unwrap();
    let p = &s.list_accounts(MJ, &Owner::Pool).await.unwrap()[0];
    assert!(
        matches!(p.state, AccountState::CoolingDown { .. }),
        "{:?}",
        p.state
    );
    assert!(p.fast_off_until_ms.is_some());
    let mut events = Vec::new();
    for base in s.bases(MJ) {
        events.extend(s.read_events(&base, "0", 1000, 0).await.unwrap());
    }
    let paused = events
        .iter()
        .filter(|e| e.kind == "account")
        .find(|e| {
            e.fields
                .get("reason")
                .is_some_and(|r| r.starts_with("no_fast_hours"))
        })
        .expect("an account event for the pause");
    assert_eq!(paused.fields["state"], "cooling_down");
}

#[tokio::test]
async fn cancel_refunds_once_and_claim_skips_it() {
    let s = scheduler("cancel").await;
    tenant(&s, "t_a", Plan::Hobbyist).await;
    account(&s, MJ, &Owner::Pool, "p", [1, 1, 1]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    let a = task("t_a", MJ, PPU, RELAX, 6);
    let b = task("t_a", MJ, PPU, RELAX, 6);
    s.submit(&a).await.unwrap();
    s.submit(&b).await.unwrap();
    assert_eq!(
        s.cancel("t_a", &a.id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        s.cancel("t_a", &a.id).await.unwrap(),
        CancelOutcome::AlreadyCancelled
    );
    assert_eq!(
        s.cancel("t_other", &b.id).await.unwrap(),
        CancelOutcome::NotFound
    );
    let c = s.claim(MJ, 5, NOW).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].lease.id, b.id);
    assert_eq!(
        s.cancel("t_a", &b.id).await.unwrap(),
        CancelOutcome::NotCancellable("processing".into())
    );
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.available, bal.held, bal.refunded), (94, 6, 6));
    let rec = s.get_task("t_a", &a.id).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.consume), (StoredStatus::Cancelled, 0));
}

#[tokio::test]
async fn ppu_cap_binds_and_frees() {
    let s = scheduler("cap").await;
    tenant(&s, "t_h", Plan::Hobbyist).await;
    account(&s, MJ, &Owner::Pool, "p", [100, 100, 100]).await;
    fund(&s, "t_h", QuotaKind::MjQuota, 1000).await;
    for _ in 0..5 {
        s.submit(&task("t_h", MJ, PPU, FAST, 14)).await.unwrap();
    }
    let c = s.claim(MJ, 10, NOW).await.unwrap();
    assert_eq!(c.len(), 3, "hobbyist: 3 midjourney jobs at once");
    assert!(s.claim(MJ, 10, NOW).await.unwrap().is_empty());
    s.complete(&c[0].lease, "{}").await.unwrap();
    assert_eq!(s.claim(MJ, 10, NOW).await.unwrap().len(), 1);
}

#[tokio::test]
async fn balancing_least_loaded_pin_weight_backup_and_modes() {
    let s = scheduler("balance").await;
    let owner = Owner::Tenant("t_p".into());
    tenant(&s, "t_p", Plan::Premium).await;
    account(&s, MJ, &owner, "a1", [3, 3, 0]).await;
    account(&s, MJ, &owner, "a2", [3, 3, 0]).await;
    account_with(&s, MJ, &owner, "bk", [3, 3, 3], 1, true).await;

    // Least loaded: four tasks spread 2/2, never on the backup.
    for _ in 0..4 {
        s.submit(&task("t_p", MJ, BYOA, FAST, 14)).await.unwrap();
    }
    let c = s.claim(MJ, 4, NOW).await.unwrap();
    let on = |acc: &str| c.iter().filter(|t| t.account == acc).count();
    assert_eq!((on("a1"), on("a2"), on("bk")), (2, 2, 0));
    assert!(c.iter().all(|t| t.pool == BYOA));

    // Turbo: only the backup serves it, so the backup takes it.
    s.submit(&task("t_p", MJ, BYOA, ProcessMode::Turbo, 32))
        .await
        .unwrap();
    let t = s.claim(MJ, 1, NOW).await.unwrap();
    assert_eq!(t[0].account, "bk");

    // Pin: a task pinned to a2 runs on a2 even though a1 is as free.
    let mut pinned = task("t_p", MJ, BYOA, RELAX, 6);
    pinned.pin = Some("a2".into());
    s.submit(&pinned).await.unwrap();
    let p = s.claim(MJ, 1, NOW).await.unwrap();
    assert_eq!(p[0].account, "a2");

    // Fill the primaries' fast capacity: the next fast task waits. Busy primaries keep
    // the backup idle; it takes work only when no primary can serve (see `backups_…`).
    for _ in 0..3 {
        s.submit(&task("t_p", MJ, BYOA, FAST, 14)).await.unwrap();
    }
    let more = s.claim(MJ, 3, NOW).await.unwrap();
    assert_eq!(more.len(), 2, "{more:?}");
    assert!(more.iter().all(|t| t.account != "bk"), "{more:?}");

    // Disabled and cooling accounts are never chosen.
    let s2 = scheduler("balance2").await;
    let owner = Owner::Tenant("t_d".into());
    tenant(&s2, "t_d", Plan::Developer).await;
    account(&s2, MJ, &owner, "ok", [10, 0, 0]).await;
    account(&s2, MJ, &owner, "off", [10, 0, 0]).await;
    account(&s2, MJ, &owner, "cool", [10, 0, 0]).await;
    s2.set_account_state(
        MJ,
        &owner,
        "off",
        Some(&AccountState::Disabled {
            reason: "by test".into(),
        }),
    )
    .await
    .unwrap();
    s2.set_account_state(
        MJ,
        &owner,
        "cool",
        Some(&AccountState::CoolingDown {
            until_ms: u64::MAX / 2,
            reason: "429".into(),
        }),
    )
    .await
    .unwrap();
    for _ in 0..6 {
        s2.submit(&task("t_d", MJ, BYOA, RELAX, 6)).await.unwrap();
    }
    let c = s2.claim(MJ, 6, NOW).await.unwrap();
    assert_eq!(c.len(), 6);
    assert!(c.iter().all(|t| t.account == "ok"));

    // Weights: weight 3 against weight 1, equal capacity: the heavy one takes more.
    let s3 = scheduler("weights").await;
    let owner = Owner::Tenant("t_w".into());
    tenant(&s3, "t_w", Plan::Developer).await;
    account_with(&s3, MJ, &owner, "heavy", [10, 0, 0], 3, false).await;
    account_with(&s3, MJ, &owner, "light", [10, 0, 0], 1, false).await;
    for _ in 0..8 {
        s3.submit(&task("t_w", MJ, BYOA, RELAX, 6)).await.unwrap();
    }
    let c = s3.claim(MJ, 8, NOW).await.unwrap();
    let heavy = c.iter().filter(|t| t.account == "heavy").count();
    assert!(heavy >= 6, "heavy took {heavy} of 8");
}

#[tokio::test]
async fn failover_premium_runs_on_the_pool_hobbyist_waits() {
    let s = scheduler("failover").await;
    tenant(&s, "t_p", Plan::Premium).await;
    tenant(&s, "t_h", Plan::Hobbyist).await;
    let prem = Owner::Tenant("t_p".into());
    let hob = Owner::Tenant("t_h".into());
    account(&s, MJ, &prem, "p_acc", [0, 2, 0]).await;
    account(&s, MJ, &hob, "h_acc", [0, 2, 0]).await;
    account(&s, MJ, &Owner::Pool, "pool", [0, 50, 0]).await;
    fund(&s, "t_p", QuotaKind::MjQuota, 500).await;
    fund(&s, "t_h", QuotaKind::MjQuota, 500).await;
    let disabled = AccountState::Disabled {
        reason: "banned".into(),
    };
    s.set_account_state(MJ, &prem, "p_acc", Some(&disabled))
        .await
        .unwrap();
    s.set_account_state(MJ, &hob, "h_acc", Some(&disabled))
        .await
        .unwrap();

    // Premium: at submit, on the pool, held once.
    let t = task("t_p", MJ, BYOA, FAST, 14);
    let sub = s.submit(&t).await.unwrap();
    assert_eq!((sub.pool, sub.failover, sub.held), (Some(PPU), true, 14));
    let c = s.claim(MJ, 5, NOW).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].account.as_str(), c[0].pool), ("pool", PPU));
    s.complete(&c[0].lease, "{}").await.unwrap();
    let bal = s.balances("t_p").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.captured, bal.held, bal.available), (14, 0, 486));
    let rec = s.get_task("t_p", &t.id).await.unwrap().unwrap();
    assert!(rec.failover);

    // Hobbyist: no failover; only disabled accounts → refused at submit.
    assert!(matches!(
        s.submit(&task("t_h", MJ, BYOA, FAST, 14)).await,
        Err(SubmitError::NoAccount(_))
    ));
    // A queued task whose account gets disabled waits, then runs when re-enabled.
    s.set_account_state(MJ, &hob, "h_acc", Some(&AccountState::Active))
        .await
        .unwrap();
    s.set_account_state(MJ, &prem, "p_acc", Some(&AccountState::Active))
        .await
        .unwrap();
    // Fill both accounts, then queue one more each, then disable the accounts.
    for t in ["t_h", "t_p"] {
        for _ in 0..3 {
            s.submit(&task(t, MJ, BYOA, FAST, 14)).await.unwrap();
        }
    }
    let running = s.claim(MJ, 10, NOW).await.unwrap();
    assert_eq!(running.len(), 4);
    s.set_account_state(MJ, &hob, "h_acc", Some(&disabled))
        .await
        .unwrap();
    s.set_account_state(MJ, &prem, "p_acc", Some(&disabled))
        .await
        .unwrap();
    // Premium's queued task fails over at claim time; Hobbyist's waits.
    let c = s.claim(MJ, 10, NOW).await.unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].pool, PPU);
    let rec = s.get_task("t_p", &c[0].lease.id).await.unwrap().unwrap();
    assert!(rec.failover);
    assert!(s.claim(MJ, 10, NOW).await.unwrap().is_empty());
    // Tasks already running on a disabled account finish.
    for r in running.iter().filter(|r| r.account == "h_acc") {
        assert_eq!(
            s.complete(&r.lease, "{}").await.unwrap(),
            CompleteOutcome::Completed
        );
    }
    assert!(s.claim(MJ, 10, NOW).await.unwrap().is_empty());
    s.set_account_state(MJ, &hob, "h_acc", Some(&AccountState::Active))
        .await
        .unwrap();
    let c = s.claim(MJ, 10, NOW).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].account, "h_acc");
}

#[tokio::test]
async fn busy_accounts_fail_over_only_after_max_wait() {
    let s = scheduler("maxwait").await;
    tenant_wait(&s, "t_p", Plan::Premium, 300).await;
    let prem = Owner::Tenant("t_p".into());
    account(&s, MJ, &prem, "only", [0, 1, 0]).await;
    account(&s, MJ, &Owner::Pool, "pool", [0, 50, 0]).await;
    fund(&s, "t_p", QuotaKind::MjQuota, 500).await;
    s.submit(&task("t_p", MJ, BYOA, FAST, 14)).await.unwrap();
    let waiting = task("t_p", MJ, BYOA, FAST, 14);
    s.submit(&waiting).await.unwrap();
    let c = s.claim(MJ, 5, NOW).await.unwrap();
    assert_eq!(c.len(), 1, "the busy account is no reason to fail over yet");
    assert_eq!(c[0].account, "only");
    // After failover_max_wait_s the waiting task runs on the pool.
    let c = s.claim(MJ, 5, Duration::from_secs(3)).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].lease.id.as_str(), c[0].pool),
        (waiting.id.as_str(), PPU)
    );
    let bal = s.balances("t_p").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!(bal.held, 14, "held once, on failover only");
}

#[tokio::test]
async fn account_dead_on_byoa_fails_over_for_premium() {
    let s = scheduler("deadfo").await;
    tenant(&s, "t_p", Plan::Premium).await;
    let prem = Owner::Tenant("t_p".into());
    account(&s, Provider::Suno, &prem, "mine", [2, 0, 0]).await;
    account(&s, Provider::Suno, &Owner::Pool, "pool", [10, 0, 0]).await;
    fund(&s, "t_p", QuotaKind::SunoQuota, 100).await;
    let t = task("t_p", Provider::Suno, BYOA, RELAX, 10);
    let sub = s.submit(&t).await.unwrap();
    assert_eq!((sub.pool, sub.held), (Some(BYOA), 0));
    let c = s.claim(Provider::Suno, 1, NOW).await.unwrap().remove(0);
    assert_eq!(
        s.fail(
            &c.lease,
            &FailKind::AccountDead {
                reason: "cookie expired".into()
            },
            "",
            ""
        )
        .await
        .unwrap(),
        FailOutcome::FailedOver
    );
    let c = s.claim(Provider::Suno, 1, NOW).await.unwrap().remove(0);
    assert_eq!((c.account.as_str(), c.pool), ("pool", PPU));
    s.complete(&c.lease, "{}").await.unwrap();
    let bal = s.balances("t_p").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((bal.captured, bal.available), (10, 90));
}

#[tokio::test]
async fn top_up_is_idempotent_and_luma_trial_is_credited_once() {
    let s = scheduler("topup").await;
    tenant(&s, "t_a", Plan::Developer).await;
    tenant(&s, "t_a", Plan::Premium).await; // an update credits nothing
    let b = s.balances("t_a").await.unwrap();
    assert_eq!(b[&QuotaKind::LumaQuota].available, 150);
    assert_eq!(
        s.top_up("t_a", QuotaKind::GptsQuota, 1000, "k1")
            .await
            .unwrap(),
        (1000, false)
    );
    assert_eq!(
        s.top_up("t_a", QuotaKind::GptsQuota, 1000, "k1")
            .await
            .unwrap(),
        (1000, true)
    );
    assert_eq!(
        s.balances("t_a").await.unwrap()[&QuotaKind::GptsQuota].available,
        1000
    );
}

#[tokio::test]
async fn events_record_the_life_of_tasks_and_accounts() {
    let s = scheduler("events").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "p", [5, 5, 5]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    // Task events are for the webhook deliverer: written for tasks with a webhook.
    let hooked = |mut t: NewTask| {
        t.extra.push((
            "wh_endpoint".to_string(),
            "https://hooks.example/t".to_string(),
        ));
        t
    };
    let done = hooked(task("t_a", MJ, PPU, FAST, 14));
    let cancelled = hooked(task("t_a", MJ, PPU, FAST, 14));
    let quiet = task("t_a", MJ, PPU, FAST, 14);
    let quiet_cancelled = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&done).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    s.submit(&quiet).await.unwrap();
    let q = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(q.lease.id, quiet.id);
    s.submit(&cancelled).await.unwrap();
    s.cancel("t_a", &cancelled.id).await.unwrap();
    s.submit(&quiet_cancelled).await.unwrap();
    s.cancel("t_a", &quiet_cancelled.id).await.unwrap();
    s.report(&c.lease, None, Some(50), None).await.unwrap();
    s.report(&q.lease, None, Some(50), None).await.unwrap();
    s.complete_many(&[
        (c.lease.clone(), "{}".into()),
        (q.lease.clone(), "{}".into()),
    ])
    .await
    .unwrap();
    s.set_account_state(
        MJ,
        &Owner::Pool,
        "p",
        Some(&AccountState::Disabled {
            reason: "captcha".into(),
        }),
    )
    .await
    .unwrap();
    let base = c.lease.base.clone();
    let events = s.read_events(&base, "0", 100, 0).await.unwrap();
    let of = |id: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.fields.get("task").map(String::as_str) == Some(id))
            .map(|e| e.kind.clone())
            .collect()
    };
    assert_eq!(of(&done.id), ["created", "progress", "completed"]);
    assert_eq!(of(&cancelled.id), ["created", "cancelled"]);
    assert_eq!(of(&quiet.id), Vec::<String>::new(), "no webhook, no events");
    // ...but its completion is counted for the dashboard, in the call's `completed_n`.
    let counted: Vec<(String, u64)> = events.iter().flat_map(|e| e.completions()).collect();
    assert_eq!(counted, [("p".to_string(), 1), ("p".to_string(), 1)]);
    assert!(events.iter().any(|e| e.kind == "completed_n"));
    assert_eq!(of(&quiet_cancelled.id), Vec::<String>::new());
    for id in [&quiet.id, &quiet_cancelled.id] {
        let r = s.get_task("t_a", id).await.unwrap().unwrap();
        assert!(r.status.is_terminal(), "{r:?}");
    }
    let acc = events
        .iter()
        .rfind(|e| {
            e.kind == "account" && e.fields.get("state").map(String::as_str) == Some("disabled")
        })
        .expect("an account event");
    assert_eq!(acc.fields["state"], "disabled");
    assert_eq!(acc.fields["reason"], "captcha");
    // Every event carries its time (epoch ms, from the entry id) and reads empty
    // values as empty.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for e in &events {
        let at: u64 = e.fields["at"].parse().unwrap();
        assert!(now_ms - at < 60_000, "{e:?}");
    }
    let completed = events.iter().find(|e| e.kind == "completed").unwrap();
    assert_eq!(completed.fields.get("code").map_or("", String::as_str), "");
    assert_eq!(completed.fields["account"], "p");
    // A cursor continues after what was read; blocking reads return new events.
    let last = events.last().unwrap().id.clone();
    assert!(
        s.read_events(&base, &last, 100, 0)
            .await
            .unwrap()
            .is_empty()
    );
    s.submit(&hooked(task("t_a", MJ, PPU, FAST, 14)))
        .await
        .unwrap();
    let more = s.read_events(&base, &last, 100, 300).await.unwrap();
    assert_eq!(more[0].kind, "created");
}

#[tokio::test]
async fn get_task_returns_the_body() {
    let s = scheduler("body").await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.body, t.body);
    assert_eq!((rec.status, rec.hold), (StoredStatus::Queued, 14));
}

/// A Developer tenant, two Midjourney pool accounts, and one fast task submitted and
/// claimed.
async fn one_claimed_of_two_pool_accounts(
    name: &str,
) -> (switchyard_scheduler::Scheduler, NewTask, ClaimedTask) {
    let s = scheduler(name).await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    account(&s, MJ, &Owner::Pool, "p1", [0, 5, 0]).await;
    account(&s, MJ, &Owner::Pool, "p2", [0, 5, 0]).await;
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let first = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    (s, t, first)
}

#[tokio::test]
async fn a_task_accepted_upstream_stays_with_its_account() {
    let (s, t, first) = one_claimed_of_two_pool_accounts("resume").await;
    assert!(
        s.report(&first.lease, Some("nonce-9"), None, None)
            .await
            .unwrap()
    );
    // The worker dies; the reaper requeues the task pinned to the account holding the job.
    wait_reaped(&s, MJ, 1).await;
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.pin.as_deref()),
        (StoredStatus::Queued, Some(first.account.as_str()))
    );
    let again = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(again.account, first.account);
    assert_eq!(again.upstream_ref.as_deref(), Some("nonce-9"));
    // An account-level failure drops the reference: the job is lost with the account.
    s.fail(
        &again.lease,
        &FailKind::AccountDead {
            reason: "banned".into(),
        },
        "",
        "",
    )
    .await
    .unwrap();
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.upstream, None);
}

#[tokio::test]
async fn an_empty_reference_forgets_the_job_and_frees_the_retry_to_move() {
    let (s, t, first) = one_claimed_of_two_pool_accounts("forget").await;
    // An intent stored before submitting, then the upstream refuses the submission.
    assert!(
        s.report(&first.lease, Some("intent"), Some(5), None)
            .await
            .unwrap()
    );
    assert!(s.report(&first.lease, Some(""), None, None).await.unwrap());
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!((rec.upstream, rec.progress), (None, 5));
    s.fail(
        &first.lease,
        &FailKind::Transient,
        "upstream answered 502",
        "",
    )
    .await
    .unwrap();
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.pin, None, "nothing upstream holds it to the account");
    assert_eq!(
        rec.avoid,
        Some(first.account),
        "the retry prefers another account"
    );
}

#[tokio::test]
async fn one_claim_spreads_over_more_accounts_than_it_reads_at_once() {
    // A claim call reads a free set 16 accounts at a time; with 40 the least-loaded choice
    // must still hold over the whole set: every account takes one task before any takes
    // a second.
    let s = scheduler("spread").await;
    let owner = Owner::Tenant("t_p".into());
    tenant(&s, "t_p", Plan::Premium).await;
    let names: Vec<String> = (0..40).map(|i| format!("a{i:02}")).collect();
    for n in &names {
        account(&s, MJ, &owner, n, [0, 2, 0]).await;
    }
    for _ in 0..80 {
        s.submit(&task("t_p", MJ, BYOA, FAST, 14)).await.unwrap();
    }
    let per_account = |c: &[ClaimedTask]| {
        let mut m: std::collections::BTreeMap<String, usize> = Default::default();
        for t in c {
            *m.entry(t.account.clone()).or_default() += 1;
        }
        m
    };
    let first = s.claim(MJ, 40, NOW).await.unwrap();
    assert_eq!(first.len(), 40);
    let m = per_account(&first);
    assert_eq!(m.len(), 40, "{m:?}");
    assert!(m.values().all(|n| *n == 1), "{m:?}");
    let second = s.claim(MJ, 40, NOW).await.unwrap();
    let m = per_account(&second);
    assert_eq!((second.len(), m.len()), (40, 40), "{m:?}");
    assert!(s.claim(MJ, 1, NOW).await.unwrap().is_empty());
    for a in s.list_accounts(MJ, &owner).await.unwrap() {
        assert_eq!(a.in_flight, [0, 2, 0], "{}", a.id);
    }
}

#[tokio::test]
async fn a_handed_back_task_resumes_its_upstream_job_on_its_first_attempt() {
    let (s, t, first) = one_claimed_of_two_pool_accounts("handback").await;
    assert_eq!((first.attempt, first.upstream_ref.as_deref()), (1, None));
    let started = s.get_task("t_a", &t.id).await.unwrap().unwrap().started_ms;
    assert!(started > 0);
    assert!(
        s.report(&first.lease, Some("job-7"), None, None)
            .await
            .unwrap()
    );
    // A worker shutting down hands the task back: the attempt is not counted (the task is
    // back at 0 attempts), yet the job upstream must be resumed, not submitted again.
    assert_eq!(
        s.fail(&first.lease, &FailKind::Handback, "", "")
            .await
            .unwrap(),
        FailOutcome::Requeued
    );
    let again = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(again.attempt, 1);
    assert_eq!(again.account, first.account);
    assert_eq!(again.upstream_ref.as_deref(), Some("job-7"));
    // The run started when it was first claimed.
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.started_ms, started);
}

#[tokio::test]
async fn after_an_account_failure_a_resumed_task_may_move() {
    let s = scheduler("unpin").await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    account(&s, MJ, &Owner::Pool, "p1", [0, 5, 0]).await;
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let first = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    s.report(&first.lease, Some("ref"), None, None)
        .await
        .unwrap();
    wait_reaped(&s, MJ, 1).await;
    let again = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    s.fail(
        &again.lease,
        &FailKind::AccountDead {
            reason: "banned".into(),
        },
        "",
        "",
    )
    .await
    .unwrap();
    account(&s, MJ, &Owner::Pool, "p2", [0, 5, 0]).await;
    let moved = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(
        (moved.account.as_str(), moved.upstream_ref.clone()),
        ("p2", None)
    );
}

#[tokio::test]
async fn loads_count_queued_and_in_flight() {
    let s = scheduler("load").await;
    tenant(&s, "t_a", Plan::Developer).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 1000).await;
    account(&s, MJ, &Owner::Pool, "p", [0, 1, 0]).await;
    for _ in 0..3 {
        s.submit(&task("t_a", MJ, PPU, FAST, 14)).await.unwrap();
    }
    s.claim(MJ, 5, NOW).await.unwrap();
    let l = s.tenant_load("t_a").await.unwrap();
    let mj = l.iter().find(|l| l.provider == MJ).unwrap();
    assert_eq!((mj.cap, mj.ppu_in_flight, mj.queued), (Some(9), 1, 2));
    let p = s.provider_load(MJ).await.unwrap();
    assert_eq!((p.queued, p.in_flight), (2, 1));
    let luma = l.iter().find(|l| l.provider == Provider::Luma).unwrap();
    assert_eq!(luma.cap, None);
}

#[tokio::test]
async fn a_resume_pin_on_a_dead_account_is_dropped_a_client_pin_is_kept() {
    let s = scheduler("deadpin").await;
    tenant(&s, "t_p", Plan::Premium).await;
    fund(&s, "t_p", QuotaKind::MjQuota, 1000).await;
    account(&s, MJ, &Owner::Pool, "p1", [0, 5, 0]).await;
    account(&s, MJ, &Owner::Pool, "p2", [0, 5, 0]).await;
    let t = task("t_p", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    s.report(&c.lease, Some("job-1"), None, None).await.unwrap();
    // A transient failure after the upstream accepted: retried on the same account.
    assert_eq!(
        s.fail(&c.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    let rec = s.get_task("t_p", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.pin.as_ref(), Some(&c.account));
    // That account dies meanwhile: the task must not wait for it forever.
    s.set_account_state(
        MJ,
        &Owner::Pool,
        &c.account,
        Some(&AccountState::Disabled {
            reason: "banned".into(),
        }),
    )
    .await
    .unwrap();
    let moved = s
        .claim(MJ, 1, Duration::from_secs(2))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(moved.lease.id, t.id);
    assert_ne!(moved.account, c.account);
    assert_eq!(moved.upstream_ref, None);

    // A client's pin (bot_id) waits for its account instead.
    let owner = Owner::Tenant("t_p".into());
    account(&s, MJ, &owner, "mine", [0, 2, 0]).await;
    let mut pinned = task("t_p", MJ, BYOA, FAST, 14);
    pinned.pin = Some("mine".into());
    s.submit(&pinned).await.unwrap();
    s.set_account_state(
        MJ,
        &owner,
        "mine",
        Some(&AccountState::Disabled {
            reason: "by tenant".into(),
        }),
    )
    .await
    .unwrap();
    assert!(s.claim(MJ, 5, NOW).await.unwrap().is_empty());
    let rec = s.get_task("t_p", &pinned.id).await.unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.pin.as_deref()),
        (StoredStatus::Queued, Some("mine"))
    );
}

#[tokio::test]
async fn a_batch_of_completes_frees_every_slot_and_charges_each_task_once() {
    let s = scheduler("batchdone").await;
    tenant(&s, "t_a", Plan::Premium).await;
    tenant(&s, "t_b", Plan::Premium).await;
    account(&s, MJ, &Owner::Pool, "pool1", [0, 3, 0]).await;
    account(&s, MJ, &Owner::Pool, "pool2", [0, 3, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 1000).await;
    fund(&s, "t_b", QuotaKind::MjQuota, 1000).await;
    for _ in 0..4 {
        s.submit(&task("t_a", MJ, PPU, FAST, 14)).await.unwrap();
    }
    for _ in 0..3 {
        s.submit(&task("t_b", MJ, PPU, FAST, 10)).await.unwrap();
    }
    // Six slots in all: both accounts full, one task left queued.
    let got = s.claim(MJ, 16, NOW).await.unwrap();
    assert_eq!(got.len(), 6);
    assert!(s.claim(MJ, 1, NOW).await.unwrap().is_empty());

    // One call: every lease once, one of them twice, plus a stale token.
    let mut batch: Vec<_> = got
        .iter()
        .map(|c| (c.lease.clone(), "{}".to_string()))
        .collect();
    batch.push(batch[0].clone());
    let mut stale = got[1].lease.clone();
    stale.token = "0".into();
    batch.push((stale, "{}".to_string()));
    let out = s.complete_many(&batch).await.unwrap();
    assert!(
        out[..6].iter().all(|o| *o == CompleteOutcome::Completed),
        "{out:?}"
    );
    assert_eq!(out[6], CompleteOutcome::AlreadyCompleted);
    assert_eq!(out[7], CompleteOutcome::AlreadyCompleted);

    // Charged once each, per tenant; every slot free again.
    let a = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    let b = s.balances("t_b").await.unwrap()[&QuotaKind::MjQuota];
    let (a_done, b_done) = got.iter().fold((0, 0), |(x, y), c| {
        if c.tenant == "t_a" {
            (x + 1, y)
        } else {
            (x, y + 1)
        }
    });
    assert_eq!((a.captured, a.held), (14 * a_done, 14 * (4 - a_done)));
    assert_eq!((b.captured, b.held), (10 * b_done, 10 * (3 - b_done)));
    for acc in s.list_accounts(MJ, &Owner::Pool).await.unwrap() {
        assert_eq!(acc.in_flight, [0, 0, 0], "{}", acc.id);
    }
    for t in ["t_a", "t_b"] {
        let load = s.tenant_load(t).await.unwrap();
        let mj = load.iter().find(|l| l.provider == MJ).unwrap();
        assert_eq!(mj.ppu_in_flight, 0, "{t}");
    }
    // The freed capacity serves the task that was waiting.
    let last = s.claim(MJ, 16, NOW).await.unwrap();
    assert_eq!(last.len(), 1);
}

#[tokio::test]
async fn a_completion_after_a_failed_run_clears_the_error() {
    let s = scheduler("clearerr").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "pool1", [0, 5, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(
        s.fail(&c.lease, &FailKind::Transient, "502", "bad gateway")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(
        rec.error,
        Some(TaskError {
            raw: "bad gateway".into(),
            ..TaskError::default()
        }),
        "a retry keeps the raw message, with no code yet"
    );
    let c = s
        .claim(MJ, 1, Duration::from_secs(2))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.attempt, 2);
    s.complete(&c.lease, "{}").await.unwrap();
    let rec = s.get_task("t_a", &t.id).await.unwrap().unwrap();
    assert_eq!(rec.status, StoredStatus::Completed);
    assert_eq!(rec.error, None);
}

#[tokio::test]
async fn ten_thousand_claims_and_completes_in_one_request_each() {
    let s = scheduler("bigbatch").await;
    tenant(&s, "t_a", Plan::Premium).await;
    account(&s, MJ, &Owner::Pool, "pool1", [5000, 0, 0]).await;
    account(&s, MJ, &Owner::Pool, "pool2", [5000, 0, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100_000).await;
    let batch: Vec<_> = (0..10_000)
        .map(|_| task("t_a", MJ, PPU, RELAX, 7))
        .collect();
    for r in s.submit_batch(&batch).await.unwrap() {
        r.unwrap();
    }
    // Lift the plan's cap so that all 10,000 can be in flight at once.
    let uncapped = switchyard_scheduler::TenantSettings {
        plan: "enterprise".into(),
        caps: Provider::ALL.map(|p| (p, None)),
        failover: false,
        failover_max_wait_ms: 0,
        retention_s: 3600,
        max_queued: Provider::ALL.map(|p| (p, None)),
        max_pending_ms: 0,
        downgrade: true,
    };
    s.upsert_tenant("t_a", &uncapped).await.unwrap();
    // One request each way; the scheduler splits them into bounded script calls.
    let got = s.claim(MJ, 10_000, NOW).await.unwrap();
    assert_eq!(got.len(), 10_000);
    let mut ids: Vec<_> = got.iter().map(|c| c.lease.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "a task was claimed twice");
    let leases: Vec<_> = got
        .into_iter()
        .map(|c| (c.lease, "{}".to_string()))
        .collect();
    let out = s.complete_many(&leases).await.unwrap();
    assert!(out.iter().all(|o| *o == CompleteOutcome::Completed));
    let bal = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((bal.captured, bal.held), (70_000, 0));
    for acc in s.list_accounts(MJ, &Owner::Pool).await.unwrap() {
        assert_eq!(acc.in_flight, [0, 0, 0], "{}", acc.id);
    }
}

#[tokio::test]
async fn a_retry_due_soon_is_not_held_back_by_a_cooldown_due_later() {
    let s = scheduler("duesoon").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "resting", [0, 5, 0]).await;
    account(&s, MJ, &Owner::Pool, "working", [0, 5, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    // First something due in an hour...
    let hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    s.set_account_state(
        MJ,
        &Owner::Pool,
        "resting",
        Some(&AccountState::CoolingDown {
            until_ms: hour,
            reason: "rest".into(),
        }),
    )
    .await
    .unwrap();
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    // ...claims look at the timers and find nothing due...
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(c.account, "working");
    // ...then a retry due in milliseconds: it runs now, not in an hour.
    assert_eq!(
        s.fail(&c.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    let again = s.claim(MJ, 1, Duration::from_secs(3)).await.unwrap();
    assert_eq!(again.len(), 1, "the retry was held back");
    assert_eq!(again[0].attempt, 2);
}

/// A task's first attempt on a1 (the most free capacity), its transient failure, and the
/// account its retry is claimed on.
async fn retried_on(s: &switchyard_scheduler::Scheduler) -> String {
    s.submit(&task("t_p", MJ, BYOA, FAST, 14)).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    assert_eq!(c.account, "a1");
    assert_eq!(
        s.fail(&c.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    let again = s.claim(MJ, 1, Duration::from_secs(3)).await.unwrap();
    assert_eq!(again.len(), 1, "the retry was claimed");
    again[0].account.clone()
}

#[tokio::test]
async fn a_retry_prefers_another_primary_then_its_own_account() {
    let s = scheduler("avoid").await;
    let owner = Owner::Tenant("t_p".into());
    tenant(&s, "t_p", Plan::Premium).await;
    account(&s, MJ, &owner, "a1", [0, 9, 0]).await;
    account(&s, MJ, &owner, "a2", [0, 5, 0]).await;
    account_with(&s, MJ, &owner, "bk", [0, 9, 0], 1, true).await;
    assert_eq!(retried_on(&s).await, "a2");
    let off = AccountState::Disabled {
        reason: "test".into(),
    };
    s.set_account_state(MJ, &owner, "a2", Some(&off))
        .await
        .unwrap();
    // a1 still serves: the backup stays idle, the retry goes back to a1.
    assert_eq!(retried_on(&s).await, "a1", "no other primary is free");
}

/// GoAPI's backups: idle while a primary is active and serves the mode — even a busy one;
/// promoted, all at once and with an event, when none does (disabled, or out of fast
/// hours for fast work); demoted when one can serve again.
#[tokio::test]
async fn backups_idle_while_a_primary_serves_then_promoted_and_demoted() {
    let s = scheduler("backups").await;
    let owner = Owner::Tenant("t_p".into());
    tenant(&s, "t_p", Plan::Premium).await;
    account(&s, MJ, &owner, "p1", [1, 2, 0]).await;
    account_with(&s, MJ, &owner, "bk", [5, 5, 0], 1, true).await;
    let events = |s: &switchyard_scheduler::Scheduler| {
        let s = s.clone();
        async move {
            s.recent_events(MJ, 0, 1000)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == "account")
                .filter_map(|e| {
                    let state = e.fields.get("state")?.clone();
                    state
                        .starts_with("backups_")
                        .then(|| (state, e.fields.get("mode").cloned().unwrap_or_default()))
                })
                .collect::<Vec<_>>()
        }
    };
    for _ in 0..3 {
        s.submit(&task("t_p", MJ, BYOA, RELAX, 6)).await.unwrap();
    }
    // p1 takes one; the others wait for it, the backup idle.
    let first = s.claim(MJ, 3, NOW).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].account, "p1");
    assert!(s.claim(MJ, 3, NOW).await.unwrap().is_empty());
    assert!(events(&s).await.is_empty());
    // p1 disabled: the backups are promoted, in every mode p1 served, and take the work.
    let off = AccountState::Disabled {
        reason: "test".into(),
    };
    s.set_account_state(MJ, &owner, "p1", Some(&off))
        .await
        .unwrap();
    let ev = events(&s).await;
    assert!(
        ev.contains(&("backups_promoted".into(), "relax".into())),
        "{ev:?}"
    );
    assert!(
        ev.contains(&("backups_promoted".into(), "fast".into())),
        "{ev:?}"
    );
    let c = s.claim(MJ, 3, NOW).await.unwrap();
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|t| t.account == "bk"));
    // p1 back: demoted; new work goes to p1 again.
    s.set_account_state(MJ, &owner, "p1", Some(&AccountState::Active))
        .await
        .unwrap();
    let ev = events(&s).await;
    assert!(
        ev.contains(&("backups_demoted".into(), "relax".into())),
        "{ev:?}"
    );
    s.submit(&task("t_p", MJ, BYOA, FAST, 14)).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap();
    assert_eq!(c[0].account, "p1");
    // p1 out of fast hours: fast work goes to the backup, relax stays on p1.
    assert_eq!(
        s.fail(
            &c[0].lease,
            &FailKind::NoFastHours {
                retry_after_ms: 60_000
            },
            "no fast",
            ""
        )
        .await
        .unwrap(),
        FailOutcome::Requeued
    );
    let ev = events(&s).await;
    let promoted_fast = ev
        .iter()
        .filter(|e| **e == ("backups_promoted".to_string(), "fast".to_string()))
        .count();
    assert_eq!(promoted_fast, 2, "promoted again for fast: {ev:?}");
    let c = s.claim(MJ, 1, NOW).await.unwrap();
    assert_eq!(c[0].account, "bk", "the fast task on the backup");
    // Relax stays with the primary: p1 is busy with the first task, so a new relax task
    // waits for it rather than go to the backup.
    s.submit(&task("t_p", MJ, BYOA, RELAX, 6)).await.unwrap();
    assert!(s.claim(MJ, 1, NOW).await.unwrap().is_empty());
    s.complete(&first[0].lease, "{}").await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap();
    assert_eq!(c[0].account, "p1", "relax stays on the primary");
}

#[tokio::test]
async fn a_batch_submit_counts_every_accepted_task_once_and_nothing_refused() {
    let s = scheduler("batchsub").await;
    tenant(&s, "t_a", Plan::Premium).await;
    tenant(&s, "t_b", Plan::Premium).await;
    account(&s, MJ, &Owner::Pool, "p", [0, 100, 0]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 14 * 100).await;
    // t_b can pay for 10 of its 50: the other 40 are refused and change nothing.
    fund(&s, "t_b", QuotaKind::MjQuota, 14 * 10).await;
    let mut batch = Vec::new();
    for i in 0..150 {
        let t = if i % 3 == 2 { "t_b" } else { "t_a" };
        batch.push(task(t, MJ, PPU, FAST, 14));
    }
    let res = s.submit_batch(&batch).await.unwrap();
    let accepted = res.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 110);
    for (t, want) in [("t_a", 100), ("t_b", 10)] {
        let l = s.tenant_load(t).await.unwrap();
        let mj = l.iter().find(|l| l.provider == MJ).unwrap();
        assert_eq!(mj.queued, want, "{t}");
    }
    assert_eq!(s.provider_load(MJ).await.unwrap().queued, 110);
    // Every accepted task is claimable once (Premium's cap is 30 in flight).
    let mut claimed = 0;
    while claimed < 110 {
        let got = s.claim(MJ, 30, NOW).await.unwrap();
        assert!(!got.is_empty(), "{claimed} of 110 claimed");
        claimed += got.len();
        let acks: Vec<_> = got
            .into_iter()
            .map(|c| (c.lease, "{}".to_string()))
            .collect();
        s.complete_many(&acks).await.unwrap();
    }
    assert!(s.claim(MJ, 30, NOW).await.unwrap().is_empty());
    assert_eq!(s.provider_load(MJ).await.unwrap().queued, 0);
    let b = s.balances("t_b").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((b.available, b.held, b.captured), (0, 0, 140));
}

/// Lease terms written by the version before the webhook mark (a rolling upgrade: a task
/// claimed by an old worker, completed by a new one) still fence and settle, and the
/// task's events are written as for a task with a webhook.
#[tokio::test]
async fn lease_terms_without_the_webhook_mark_still_heartbeat_and_complete() {
    let s = scheduler("oldterms").await;
    tenant(&s, "t_a", Plan::Developer).await;
    account(&s, MJ, &Owner::Pool, "p", [5, 5, 5]).await;
    fund(&s, "t_a", QuotaKind::MjQuota, 100).await;
    let t = task("t_a", MJ, PPU, FAST, 14);
    s.submit(&t).await.unwrap();
    let c = s.claim(MJ, 1, NOW).await.unwrap().remove(0);
    let port = switchyard_test_support::redis().ports[0];
    let key = switchyard_scheduler::keys::running(&c.lease.base);
    let new = switchyard_test_support::redis_cli(port, &["HGET", &key, &t.id]);
    let new = new.trim();
    let old = new
        .strip_prefix('#')
        .expect("a task without a webhook: '#' first");
    assert_eq!(
        switchyard_test_support::redis_cli(port, &["HSET", &key, &t.id, old]).trim(),
        "0"
    );
    assert_eq!(
        s.heartbeat(std::slice::from_ref(&c.lease)).await.unwrap(),
        [true]
    );
    assert_eq!(
        s.complete(&c.lease, "{}").await.unwrap(),
        CompleteOutcome::Completed
    );
    let b = s.balances("t_a").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!((b.captured, b.held), (14, 0));
    let events = s.read_events(&c.lease.base, "0", 100, 0).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "completed"
            && e.fields.get("task").map(String::as_str) == Some(t.id.as_str())),
        "{events:?}"
    );
}
