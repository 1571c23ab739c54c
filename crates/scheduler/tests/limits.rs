//! What keeps a hosted account alive, enforced by the claim script on real Redis: pacing
//! (a gap drawn per submission, held across claims and at submission), daily caps and
//! active windows (with the scheduler's clock set just before a day's end).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use switchyard_core::config::Pacing;
use switchyard_core::{
    ActiveWindow, DailyCap, Plan, ProcessMode, Provider, QuotaKind, ServiceMode,
};
use switchyard_scheduler::{AccountInfo, AccountSpec, ClaimedTask, Owner, Scheduler};

const SUNO: Provider = Provider::Suno;
const DAY_MS: i64 = 86_400_000;

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A clock offset that puts the scheduler `before_ms` ahead of the next UTC midnight.
fn offset_to_midnight(before_ms: i64) -> i64 {
    let now = wall_ms();
    let midnight = (now / DAY_MS + 1) * DAY_MS;
    midnight - before_ms - now
}

/// A PPU tenant with quota and one pool account of capacity 10 with `spec`'s limits.
async fn setup(s: &Scheduler, spec: AccountSpec) {
    tenant(s, "t_p", Plan::Premium).await;
    fund(s, "t_p", QuotaKind::SunoQuota, 10_000).await;
    s.add_account(
        SUNO,
        &Owner::Pool,
        "acc1",
        &AccountSpec {
            name: Some("acc1".into()),
            capacity: Some([10, 0, 0]),
            weight: Some(1),
            backup: Some(false),
            secret: Some("s".into()),
            ..spec
        },
    )
    .await
    .unwrap();
}

async fn submit(s: &Scheduler, n: usize) {
    for _ in 0..n {
        let t = task("t_p", SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10);
        s.submit(&t).await.unwrap();
    }
}

async fn acc1(s: &Scheduler) -> AccountInfo {
    s.get_account(SUNO, &Owner::Pool, "acc1")
        .await
        .unwrap()
        .unwrap()
}

/// Claim until `n` tasks were claimed (or `within` passes), with the time of each.
async fn claim_until(s: &Scheduler, n: usize, within: Duration) -> Vec<(Instant, ClaimedTask)> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        for c in s.try_claim(SUNO, 10).await.unwrap() {
            got.push((Instant::now(), c));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    got
}

fn pacing(lo: f64, hi: f64) -> Option<Option<Pacing>> {
    Some(Some(Pacing {
        min_gap_s: lo,
        max_gap_s: hi,
    }))
}

#[tokio::test]
async fn a_paced_account_is_not_claimed_again_before_its_gap() {
    let s = scheduler("limits_pace").await;
    setup(
        &s,
        AccountSpec {
            pacing: pacing(0.3, 0.3),
            ..AccountSpec::default()
        },
    )
    .await;
    submit(&s, 3).await;
    // Capacity 10, yet one task per gap.
    let first = s.try_claim(SUNO, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].gap, Duration::from_millis(300));
    assert!(s.try_claim(SUNO, 10).await.unwrap().is_empty(), "paced");
    let a = acc1(&s).await;
    assert!(a.next_allowed_ms.is_some(), "{a:?}");
    assert!(a.pacing_own);
    let t0 = Instant::now();
    let rest = claim_until(&s, 2, Duration::from_secs(5)).await;
    assert_eq!(rest.len(), 2);
    assert!(
        rest[0].0 - t0 >= Duration::from_millis(250),
        "{:?}",
        rest[0].0 - t0
    );
    assert!(
        rest[1].0 - rest[0].0 >= Duration::from_millis(290),
        "{:?}",
        rest[1].0 - rest[0].0
    );
}

/// An idle claimer is told when a paced account's gap ends, so that it looks again then;
/// only one is told (the same one again when it asks again), so a timer wakes one
/// claimer of all, not every one.
#[tokio::test]
async fn one_idle_claimer_is_told_when_the_timers_fall_due() {
    let s = scheduler("limits_watch").await;
    setup(
        &s,
        AccountSpec {
            pacing: pacing(0.4, 0.4),
            ..AccountSpec::default()
        },
    )
    .await;
    submit(&s, 2).await;
    assert_eq!(s.try_claim_due(SUNO, 10, "a").await.unwrap().tasks.len(), 1);
    let a = s.try_claim_due(SUNO, 10, "a").await.unwrap();
    assert!(a.tasks.is_empty(), "paced");
    let wait = a.next_due.expect("claimer a is told when the gap ends");
    assert!(
        wait > Duration::from_millis(100) && wait <= Duration::from_millis(400),
        "{wait:?}"
    );
    let b = s.try_claim_due(SUNO, 10, "b").await.unwrap();
    assert!(b.tasks.is_empty());
    assert_eq!(b.next_due, None, "only one claimer watches");
    assert!(
        s.try_claim_due(SUNO, 10, "a")
            .await
            .unwrap()
            .next_due
            .is_some()
    );
    // Once the gap ended, whoever asks first claims (and the watch is free again).
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(s.try_claim_due(SUNO, 10, "b").await.unwrap().tasks.len(), 1);
}

#[tokio::test]
async fn gaps_are_drawn_from_the_range_and_vary() {
    let s = scheduler("limits_draw").await;
    setup(
        &s,
        AccountSpec {
            pacing: pacing(0.05, 0.25),
            ..AccountSpec::default()
        },
    )
    .await;
    submit(&s, 8).await;
    let got = claim_until(&s, 8, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 8);
    let gaps: Vec<u128> = got.iter().map(|(_, c)| c.gap.as_millis()).collect();
    assert!(gaps.iter().all(|g| (50..=250).contains(g)), "{gaps:?}");
    assert!(
        gaps.iter().any(|g| *g != gaps[0]),
        "not all equal: {gaps:?}"
    );
    for (w, gap) in got.windows(2).zip(&gaps) {
        let apart = (w[1].0 - w[0].0).as_millis();
        assert!(apart + 5 >= *gap, "claimed {apart} ms apart, gap {gap}");
    }
}

#[tokio::test]
async fn pace_holds_submissions_apart_however_late_the_first_was_sent() {
    let s = scheduler("limits_submit").await;
    setup(
        &s,
        AccountSpec {
            pacing: pacing(0.2, 0.2),
            ..AccountSpec::default()
        },
    )
    .await;
    submit(&s, 2).await;
    let a = s.try_claim(SUNO, 1).await.unwrap().remove(0);
    // The first worker is slow to send its job: 150 ms after its claim.
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.pace(&a.lease, &a.account, a.gap).await.unwrap();
    let sent_a = Instant::now();
    let b = claim_until(&s, 1, Duration::from_secs(5)).await.remove(0).1;
    s.pace(&b.lease, &b.account, b.gap).await.unwrap();
    let apart = sent_a.elapsed();
    assert!(apart >= Duration::from_millis(195), "{apart:?}");
}

#[tokio::test]
async fn a_daily_cap_rests_the_account_until_the_next_day() {
    let s = scheduler_with("limits_cap", |c| {
        c.scheduler.clock_offset_ms = offset_to_midnight(4000);
    })
    .await;
    setup(
        &s,
        AccountSpec {
            daily_cap: Some(Some(DailyCap {
                all: Some(2),
                ..DailyCap::default()
            })),
            ..AccountSpec::default()
        },
    )
    .await;
    submit(&s, 3).await;
    // One claim call asks for ten: the cap stops it at two.
    assert_eq!(s.try_claim(SUNO, 10).await.unwrap().len(), 2);
    assert!(
        s.try_claim(SUNO, 10).await.unwrap().is_empty(),
        "at its cap"
    );
    let a = acc1(&s).await;
    let midnight = ((s.now_ms() as i64 / DAY_MS + 1) * DAY_MS) as u64;
    assert_eq!(
        a.resting,
        Some((midnight, "daily_cap".to_string())),
        "{a:?}"
    );
    assert_eq!(a.today_total(), 2);
    // The next day it takes the third.
    let got = claim_until(&s, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "claimed after midnight");
    assert!(s.now_ms() >= midnight);
    let a = acc1(&s).await;
    assert_eq!(a.resting, None);
    assert_eq!(a.today_total(), 1, "the new day counts afresh");
}

#[tokio::test]
async fn outside_its_window_an_account_takes_nothing_and_drains_at_its_start() {
    // UTC midnight is 09:00 in Tokyo: the window opens 3 s from the scheduler's now.
    let s = scheduler_with("limits_window", |c| {
        c.scheduler.clock_offset_ms = offset_to_midnight(3000);
    })
    .await;
    setup(
        &s,
        AccountSpec {
            window: Some(Some(ActiveWindow {
                start: 9 * 60,
                end: 17 * 60,
                tz: Some("Asia/Tokyo".into()),
            })),
            ..AccountSpec::default()
        },
    )
    .await;
    submit(&s, 4).await;
    assert!(s.try_claim(SUNO, 10).await.unwrap().is_empty(), "closed");
    let a = acc1(&s).await;
    let opens = ((s.now_ms() as i64 / DAY_MS + 1) * DAY_MS) as u64;
    assert_eq!(
        a.resting,
        Some((opens, "outside_active_window".to_string())),
        "{a:?}"
    );
    let got = claim_until(&s, 4, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4, "the queue drains when the window opens");
    assert!(s.now_ms() >= opens);
    assert_eq!(acc1(&s).await.resting, None);
}

#[tokio::test]
async fn fast_work_waits_for_fast_hours_when_its_tenant_turns_relax_off() {
    use switchyard_scheduler::FailKind;
    const MJ: Provider = Provider::Midjourney;
    let s = scheduler("limits_no_relax").await;
    for (tenant, downgrade) in [("t_on", true), ("t_off", false)] {
        let table = switchyard_core::PlanTable::seed();
        let settings =
            switchyard_scheduler::TenantSettings::from_plan("premium", table.get(Plan::Premium), 0)
                .with_downgrade(downgrade);
        s.upsert_tenant(tenant, &settings).await.unwrap();
        account(
            &s,
            MJ,
            &Owner::Tenant(tenant.into()),
            &format!("acc_{tenant}"),
            [1, 1, 0],
        )
        .await;
        let t = task(tenant, MJ, ServiceMode::Byoa, ProcessMode::Fast, 0);
        s.submit(&t).await.unwrap();
    }
    // Both accounts answer "Credits exhausted".
    for c in s.try_claim(MJ, 10).await.unwrap() {
        assert_eq!(c.mode, ProcessMode::Fast);
        s.fail(
            &c.lease,
            &FailKind::NoFastHours {
                retry_after_ms: 60_000,
            },
            "Credits exhausted",
            "",
        )
        .await
        .unwrap();
    }
    let again = s.try_claim(MJ, 10).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].tenant.as_str(), again[0].mode),
        ("t_on", ProcessMode::Relax)
    );
    let rec = s
        .get_task("t_on", &again[0].lease.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.process_mode, ProcessMode::Relax);
}
