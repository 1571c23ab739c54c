//! The scheduler under load on real Redis: caps under 64 concurrent claimers with lease
//! drops (checked by the test's own tracker, not the scheduler's counters), crash safety,
//! fairness, deep backlogs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use switchyard_core::{Plan, ProcessMode, Provider, QuotaKind, ServiceMode};
use switchyard_scheduler::{
    CancelOutcome, ClaimedTask, CompleteOutcome, Owner, Scheduler, StoredStatus, TenantSettings,
};

const MJ: Provider = Provider::Midjourney;
const SUNO: Provider = Provider::Suno;
const NOW: Duration = Duration::ZERO;

/// Concurrency as the workers see it: incremented after a claim returns, decremented
/// before the slot is handed back, so it never counts more than really runs.
#[derive(Default)]
struct Tracker {
    cur: HashMap<String, i64>,
    max: HashMap<String, i64>,
}

impl Tracker {
    fn start(&mut self, keys: &[String]) {
        for k in keys {
            let c = self.cur.entry(k.clone()).or_default();
            *c += 1;
            let m = self.max.entry(k.clone()).or_default();
            *m = (*m).max(*c);
        }
    }
    fn end(&mut self, keys: &[String]) {
        for k in keys {
            *self.cur.entry(k.clone()).or_default() -= 1;
        }
    }
    fn max(&self, k: &str) -> i64 {
        self.max.get(k).copied().unwrap_or(0)
    }
}

fn tenant_of(c: &ClaimedTask) -> String {
    let v: serde_json::Value = serde_json::from_str(&c.body).unwrap();
    v["tenant"].as_str().unwrap().to_string()
}

fn track_keys(p: Provider, c: &ClaimedTask) -> Vec<String> {
    let pool = match c.pool {
        ServiceMode::Ppu => "ppu",
        ServiceMode::Byoa => "byoa",
    };
    vec![
        format!("tenant:{}:{p}:{pool}", tenant_of(c)),
        format!("account:{p}:{}", c.account),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caps_hold_under_64_claimers_with_lease_drops() {
    let s = scheduler_with("caps", |c| c.scheduler.max_attempts = 20).await;
    let plans = [
        ("t_h", Plan::Hobbyist),
        ("t_d", Plan::Developer),
        ("t_p", Plan::Premium),
    ];
    for (t, plan) in plans {
        tenant(&s, t, plan).await;
        fund(&s, t, QuotaKind::MjQuota, 1_000_000).await;
        fund(&s, t, QuotaKind::SunoQuota, 1_000_000).await;
    }
    // Pools larger than the sum of the caps (42 and 42), so the caps bind.
    account(&s, MJ, &Owner::Pool, "mj_pool_1", [0, 30, 0]).await;
    account(&s, MJ, &Owner::Pool, "mj_pool_2", [0, 30, 0]).await;
    account(&s, SUNO, &Owner::Pool, "suno_pool_1", [30, 0, 0]).await;
    account(&s, SUNO, &Owner::Pool, "suno_pool_2", [30, 0, 0]).await;
    // Premium also brings two Midjourney accounts of its own.
    let prem = Owner::Tenant("t_p".into());
    account(&s, MJ, &prem, "byoa_1", [0, 2, 0]).await;
    account(&s, MJ, &prem, "byoa_2", [0, 3, 0]).await;

    let mut batch = Vec::new();
    for (t, _) in plans {
        for _ in 0..250 {
            batch.push(task(t, MJ, ServiceMode::Ppu, ProcessMode::Fast, 14));
            batch.push(task(t, SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10));
        }
    }
    for _ in 0..150 {
        batch.push(task("t_p", MJ, ServiceMode::Byoa, ProcessMode::Fast, 14));
    }
    let total = batch.len();
    for r in s.submit_batch(&batch).await.unwrap() {
        r.unwrap();
    }

    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let done = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reaper = {
        let s = s.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.reap(MJ, 500).await.unwrap();
                s.reap(SUNO, 500).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut claimers = Vec::new();
    for i in 0..64 {
        let (s, tracker, done, stop) = (s.clone(), tracker.clone(), done.clone(), stop.clone());
        claimers.push(tokio::spawn(async move {
            let provider = if i % 2 == 0 { MJ } else { SUNO };
            let mut drops = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = 1 + i % 3;
                let got = s
                    .claim(provider, n, Duration::from_millis(200))
                    .await
                    .unwrap();
                for c in &got {
                    tracker.lock().unwrap().start(&track_keys(provider, c));
                }
                let work = rand::rng().random_range(5..20);
                tokio::time::sleep(Duration::from_millis(work)).await;
                for c in got {
                    let keys = track_keys(provider, &c);
                    tracker.lock().unwrap().end(&keys);
                    if rand::rng().random_bool(0.02) {
                        drops += 1; // the holder vanishes; the reaper must recover it
                        continue;
                    }
                    if s.complete(&c.lease, "{}").await.unwrap() == CompleteOutcome::Completed {
                        done.lock().unwrap().insert(c.lease.id.clone());
                    }
                }
            }
            drops
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while done.lock().unwrap().len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} completed",
            done.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut drops = 0;
    for c in claimers {
        drops += c.await.unwrap();
    }
    reaper.await.unwrap();
    assert!(drops > 0, "the test must drop some leases");

    let tr = std::mem::take(&mut *tracker.lock().unwrap());
    let caps = [("t_h", 3, 2), ("t_d", 9, 10), ("t_p", 30, 30)];
    for (t, mj_cap, suno_cap) in caps {
        let mj = tr.max(&format!("tenant:{t}:midjourney:ppu"));
        let suno = tr.max(&format!("tenant:{t}:suno:ppu"));
        assert!(mj <= mj_cap, "{t} midjourney reached {mj} > {mj_cap}");
        assert!(suno <= suno_cap, "{t} suno reached {suno} > {suno_cap}");
    }
    // The caps were really contended: the small ones are reached (timing decides which).
    let reached = [
        tr.max("tenant:t_h:midjourney:ppu") == 3,
        tr.max("tenant:t_h:suno:ppu") == 2,
        tr.max("tenant:t_d:midjourney:ppu") == 9,
        tr.max("tenant:t_d:suno:ppu") == 10,
    ];
    let maxima = [
        tr.max("tenant:t_h:midjourney:ppu"),
        tr.max("tenant:t_h:suno:ppu"),
        tr.max("tenant:t_d:midjourney:ppu"),
        tr.max("tenant:t_d:suno:ppu"),
    ];
    eprintln!("in flight at most (t_h mj, t_h suno, t_d mj, t_d suno): {maxima:?}");
    assert!(
        reached.iter().filter(|r| **r).count() >= 2,
        "caps not contended: {reached:?}, maxima {maxima:?}"
    );
    for (acc, cap) in [
        ("account:midjourney:mj_pool_1", 30),
        ("account:midjourney:mj_pool_2", 30),
        ("account:suno:suno_pool_1", 30),
        ("account:suno:suno_pool_2", 30),
        ("account:midjourney:byoa_1", 2),
        ("account:midjourney:byoa_2", 3),
    ] {
        let m = tr.max(acc);
        assert!(m <= cap, "{acc} reached {m} > {cap}");
        assert!(m > 0, "{acc} was never used");
    }
    // Everything settled: nothing held, every task charged once.
    for (t, _) in plans {
        let b = s.balances(t).await.unwrap();
        for kind in [QuotaKind::MjQuota, QuotaKind::SunoQuota] {
            assert_eq!(b[&kind].held, 0, "{t} {kind}");
        }
        assert_eq!(b[&QuotaKind::SunoQuota].captured, 250 * 10);
        assert_eq!(b[&QuotaKind::MjQuota].captured, 250 * 14);
    }
    assert!(s.claim(MJ, 10, NOW).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_vanished_holders_lose_nothing() {
    let s = scheduler_with("crash", |c| c.scheduler.max_attempts = 2).await;
    tenant(&s, "t_e", Plan::Enterprise).await;
    s.upsert_tenant("t_e", &no_caps("enterprise"))
        .await
        .unwrap();
    fund(&s, "t_e", QuotaKind::SunoQuota, 100_000).await;
    account(&s, SUNO, &Owner::Pool, "p1", [600, 0, 0]).await;
    account(&s, SUNO, &Owner::Pool, "p2", [600, 0, 0]).await;
    let batch: Vec<_> = (0..1000)
        .map(|_| task("t_e", SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10))
        .collect();
    let ids: HashSet<String> = batch.iter().map(|t| t.id.clone()).collect();
    for r in s.submit_batch(&batch).await.unwrap() {
        r.unwrap();
    }
    // Round 1: every holder vanishes.
    let first = claim_all(&s, 1000).await;
    assert_eq!(first.len(), 1000);
    assert_eq!(
        first
            .iter()
            .map(|c| &c.lease.id)
            .collect::<HashSet<_>>()
            .len(),
        1000
    );
    reap_all(&s, 1000).await;
    // Round 2: half complete, half vanish again and run out of attempts.
    let second = claim_all(&s, 1000).await;
    assert_eq!(second.len(), 1000);
    assert!(second.iter().all(|c| c.attempt == 2));
    let mut completed = 0;
    for c in second.iter().step_by(2) {
        assert_eq!(
            s.complete(&c.lease, "{}").await.unwrap(),
            CompleteOutcome::Completed
        );
        completed += 1;
    }
    reap_all(&s, 500).await;

    let recs = s
        .get_tasks("t_e", &ids.iter().cloned().collect::<Vec<_>>())
        .await
        .unwrap();
    let mut by_status: HashMap<StoredStatus, usize> = HashMap::new();
    for r in recs {
        let r = r.expect("no task lost");
        *by_status.entry(r.status).or_default() += 1;
    }
    assert_eq!(by_status.get(&StoredStatus::Completed), Some(&completed));
    assert_eq!(
        by_status.get(&StoredStatus::Failed),
        Some(&(1000 - completed))
    );
    let b = s.balances("t_e").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!(b.held, 0);
    assert_eq!(b.captured, 10 * completed as i64);
    assert_eq!(b.refunded, 10 * (1000 - completed) as i64);
    assert_eq!(b.available, 100_000 - b.captured);
    for acc in s.list_accounts(SUNO, &Owner::Pool).await.unwrap() {
        assert_eq!(acc.in_flight, [0, 0, 0], "{} leaked a slot", acc.id);
    }
    assert!(s.claim(SUNO, 10, NOW).await.unwrap().is_empty());
    // Nothing is left running: no lease, no lease terms.
    let leases = s.provider_load(SUNO).await.unwrap().in_flight;
    let running = s.lease_terms_held(SUNO).await.unwrap();
    assert_eq!((leases, running), (0, 0), "leases still held");
}

fn no_caps(plan: &str) -> TenantSettings {
    TenantSettings {
        plan: plan.to_string(),
        caps: Provider::ALL.map(|p| (p, None)),
        failover: false,
        failover_max_wait_ms: 0,
        retention_s: 3600,
        max_queued: Provider::ALL.map(|p| (p, None)),
        max_pending_ms: 0,
        downgrade: true,
    }
}

async fn claim_all(s: &Scheduler, n: usize) -> Vec<ClaimedTask> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        out.extend(
            s.claim(SUNO, 100, Duration::from_millis(200))
                .await
                .unwrap(),
        );
        assert!(Instant::now() < deadline, "claimed {} of {n}", out.len());
    }
    out
}

async fn reap_all(s: &Scheduler, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    while got < n {
        got += s.reap(SUNO, 1000).await.unwrap();
        assert!(Instant::now() < deadline, "reaped {got} of {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ten_equal_tenants_share_claims_evenly() {
    let s = scheduler("fair").await;
    account(&s, SUNO, &Owner::Pool, "big", [5000, 0, 0]).await;
    let mut batch = Vec::new();
    for i in 0..10 {
        let t = format!("t_{i}");
        s.upsert_tenant(&t, &no_caps("enterprise")).await.unwrap();
        fund(&s, &t, QuotaKind::SunoQuota, 1_000_000).await;
        for _ in 0..200 {
            batch.push(task(&t, SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10));
        }
    }
    // Interleave nothing: each tenant's backlog is submitted in one block.
    for r in s.submit_batch(&batch).await.unwrap() {
        r.unwrap();
    }
    let mut per: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    while n < 1000 {
        for c in s.claim(SUNO, 10, NOW).await.unwrap() {
            *per.entry(tenant_of(&c)).or_default() += 1;
            n += 1;
        }
    }
    assert_eq!(per.len(), 10);
    for (t, k) in &per {
        assert!((90..=110).contains(k), "{t} got {k} of the first 1000");
    }
}

/// The round goes on task by task, within one claim and from one claim to the next; a
/// lane whose head was cancelled keeps its turn (its next task is taken in it).
#[tokio::test]
async fn the_round_continues_across_claims() {
    let s = scheduler("round").await;
    account(&s, SUNO, &Owner::Pool, "big", [1000, 0, 0]).await;
    let names = ["t_a", "t_b", "t_c"];
    let mut mine: HashMap<&str, Vec<String>> = HashMap::new();
    for t in names {
        s.upsert_tenant(t, &no_caps("enterprise")).await.unwrap();
        fund(&s, t, QuotaKind::SunoQuota, 1_000_000).await;
    }
    // Submitted in turn, so the round is a, b, c.
    for _ in 0..10 {
        for t in names {
            let nt = task(t, SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10);
            mine.entry(t).or_default().push(nt.id.clone());
            s.submit(&nt).await.unwrap();
        }
    }
    let order = |got: Vec<ClaimedTask>| -> String {
        got.iter()
            .map(|c| c.tenant.trim_start_matches("t_").to_string())
            .collect()
    };
    assert_eq!(order(s.claim(SUNO, 7, NOW).await.unwrap()), "abcabca");
    assert_eq!(order(s.claim(SUNO, 5, NOW).await.unwrap()), "bcabc");
    // b's next two tasks are cancelled: b still takes its turn, with its seventh task.
    for id in &mine["t_b"][4..6] {
        assert_eq!(s.cancel("t_b", id).await.unwrap(), CancelOutcome::Cancelled);
    }
    let got = s.claim(SUNO, 4, NOW).await.unwrap();
    assert_eq!(got[1].lease.id, mine["t_b"][6]);
    assert_eq!(order(got), "abca");
    assert_eq!(order(s.claim(SUNO, 2, NOW).await.unwrap()), "bc");
}

/// A batch's new lanes join the round in the order their tenants first appear in it; a
/// lane already in the round keeps its place.
#[tokio::test]
async fn a_batch_joins_the_round_in_order() {
    let s = scheduler("roundbatch").await;
    account(&s, SUNO, &Owner::Pool, "big", [1000, 0, 0]).await;
    for t in ["t_d", "t_e", "t_f"] {
        s.upsert_tenant(t, &no_caps("enterprise")).await.unwrap();
        fund(&s, t, QuotaKind::SunoQuota, 1_000_000).await;
    }
    let new = |t: &str| task(t, SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10);
    s.submit(&new("t_f")).await.unwrap();
    let batch: Vec<_> = ["t_e", "t_d", "t_f", "t_e", "t_d", "t_f", "t_e", "t_d"]
        .iter()
        .map(|t| new(t))
        .collect();
    for r in s.submit_batch(&batch).await.unwrap() {
        r.unwrap();
    }
    let got: String = s
        .claim(SUNO, 9, NOW)
        .await
        .unwrap()
        .iter()
        .map(|c| c.tenant.trim_start_matches("t_").to_string())
        .collect();
    assert_eq!(got, "fedfedfed");
}

#[tokio::test]
async fn a_deep_backlog_does_not_delay_another_tenant() {
    let s = scheduler("deep").await;
    account(&s, SUNO, &Owner::Pool, "big", [100_000, 0, 0]).await;
    for t in ["t_big", "t_small"] {
        s.upsert_tenant(t, &no_caps("enterprise")).await.unwrap();
        fund(&s, t, QuotaKind::SunoQuota, 10_000_000).await;
    }
    let batch: Vec<_> = (0..10_000)
        .map(|_| task("t_big", SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10))
        .collect();
    for chunk in batch.chunks(2000) {
        for r in s.submit_batch(chunk).await.unwrap() {
            r.unwrap();
        }
    }
    // Let the big tenant run a while, then the small one submits a single task.
    for _ in 0..5 {
        assert_eq!(s.claim(SUNO, 1, NOW).await.unwrap().len(), 1);
    }
    let single = task("t_small", SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10);
    s.submit(&single).await.unwrap();
    // One rotation has two lanes: the single task is among the next two claims.
    let mut claimed = Vec::new();
    for _ in 0..2 {
        claimed.extend(s.claim(SUNO, 1, NOW).await.unwrap());
    }
    assert!(
        claimed.iter().any(|c| c.lease.id == single.id),
        "the single task waited more than one rotation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_keep_working_with_200k_queued_and_1000_tenants() {
    let s = scheduler("backlog").await;
    account(&s, SUNO, &Owner::Pool, "big", [1_000_000, 0, 0]).await;
    s.upsert_tenant("t_big", &no_caps("enterprise"))
        .await
        .unwrap();
    fund(&s, "t_big", QuotaKind::SunoQuota, 100_000_000).await;
    let mut first_ids = Vec::new();
    for chunk in 0..40 {
        let batch: Vec<_> = (0..5000)
            .map(|_| task("t_big", SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10))
            .collect();
        if chunk == 0 {
            first_ids = batch.iter().take(3).map(|t| t.id.clone()).collect();
        }
        for r in s.submit_batch(&batch).await.unwrap() {
            r.unwrap();
        }
    }
    let mut others = Vec::new();
    for i in 0..1000 {
        let t = format!("t_o{i}");
        s.upsert_tenant(&t, &no_caps("enterprise")).await.unwrap();
        fund(&s, &t, QuotaKind::SunoQuota, 100).await;
        others.push(task(&t, SUNO, ServiceMode::Ppu, ProcessMode::Relax, 10));
    }
    for r in s.submit_batch(&others).await.unwrap() {
        r.unwrap();
    }
    // Claims succeed, the big tenant's queue stays FIFO, and every other tenant gets
    // its turn within one rotation of 1001 lanes.
    let mut big_seen = Vec::new();
    let mut other_tenants = HashSet::new();
    let mut claimed = 0;
    while claimed < 2002 {
        let got = s.claim(SUNO, 64, NOW).await.unwrap();
        assert!(!got.is_empty(), "claims stopped after {claimed}");
        for c in got {
            claimed += 1;
            let t = tenant_of(&c);
            if t == "t_big" {
                big_seen.push(c.lease.id.clone());
            } else {
                other_tenants.insert(t);
            }
        }
    }
    assert_eq!(
        other_tenants.len(),
        1000,
        "every tenant served in two rotations"
    );
    assert_eq!(&big_seen[..3], &first_ids[..]);
}
