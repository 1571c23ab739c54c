//! An idle claimer wakes promptly for work on any shard, not only the first, and for
//! work that falls due by time (a paced account's next allowed submission).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use serde_json::Value;
use switchyard_core::Provider;
use switchyard_scheduler::{Scheduler, keys};
use switchyard_worker::{Control, Job, Upstream, UpstreamError, Worker};
use tokio::sync::watch;

/// How many clients the Redis nodes on `ports` have blocked (claimers waiting for a
/// wake-up).
fn blocked_clients(ports: &[u16]) -> u64 {
    ports
        .iter()
        .map(|p| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &p.to_string(), "info", "clients"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("blocked_clients:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_claimer_wakes_promptly_for_work_on_any_shard() {
    let r = switchyard_test_support::redis();
    wakes_promptly(&r.url, &r.ports, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_claimer_wakes_promptly_for_work_on_any_shard_of_a_cluster() {
    let Some(r) = switchyard_test_support::cluster() else {
        eprintln!("no Redis Cluster here; skipped");
        return;
    };
    wakes_promptly(&r.url, &r.ports, true).await;
}

async fn wakes_promptly(url: &str, ports: &[u16], cluster: bool) {
    let mut c = config(url, "wake");
    c.redis.cluster = cluster;
    c.scheduler.shards = 4;
    c.validate().unwrap();
    let sched = Scheduler::connect(&c).await.unwrap();
    // A tenant on each shard but the first.
    let tenants: Vec<String> = (0..)
        .map(|i| format!("tenant{i}"))
        .filter(|t| keys::shard_of(t, 4) != 0)
        .take(3)
        .collect();
    for t in &tenants {
        tenant_only(&sched, t).await;
    }
    pool_accounts(&sched, 1, 8).await;
    // Several rounds, each submitting at a different point of the claimer's wait, so a
    // claimer that only watched one shard's list (and noticed other shards' work at the
    // end of its 400 ms slice) would miss the bound in some round.
    let offsets_ms = [20u64, 110, 190, 270, 350];
    for (round, offset) in offsets_ms.iter().enumerate() {
        let tenant = &tenants[round % tenants.len()];
        let claimer = {
            let s = sched.clone();
            tokio::spawn(async move {
                let got = s.claim(PROVIDER, 1, Duration::from_secs(10)).await.unwrap();
                (Instant::now(), got)
            })
        };
        wait_for("the claimer to block", Duration::from_secs(5), || {
            let n = blocked_clients(ports);
            async move { n >= 1 }
        })
        .await;
        // A stimulus at a chosen point of the wait (not waiting for an outcome).
        tokio::time::sleep(Duration::from_millis(*offset)).await;
        let submitted = Instant::now();
        let id = submit(&sched, &c, tenant, "wake").await;
        let (claimed, got) = claimer.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].lease.id, id);
        let took = claimed.duration_since(submitted);
        assert!(
            took < Duration::from_millis(150),
            "round {round} (shard {}): the claim returned {took:?} after the submit",
            keys::shard_of(tenant, 4)
        );
    }
}

/// Answers at once, after the account's pacing, noting when each account submitted.
struct Paced {
    submitted: std::sync::Mutex<std::collections::BTreeMap<String, Vec<Instant>>>,
}

#[async_trait]
impl Upstream for Paced {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        ctl.pace().await?;
        let now = Instant::now();
        self.submitted
            .lock()
            .unwrap()
            .entry(job.account_id.clone())
            .or_default()
            .push(now);
        Ok(out(&prompt(job)))
    }

    async fn probe(&self, _: &str, _: &Value) -> Result<(), UpstreamError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_account_takes_its_next_task_as_soon_as_its_gap_ends() {
    let r = switchyard_test_support::redis();
    let mut c = config(&r.url, "paced_busy");
    let gap = switchyard_core::config::Pacing {
        min_gap_s: 0.3,
        max_gap_s: 0.3,
    };
    c.scheduler.pacing = switchyard_core::config::PacingDefaults::all(gap);
    // Only the claimers look at the timers (the reaper, which also does, sleeps).
    c.worker.reap_interval_ms = 60_000;
    c.validate().unwrap();
    let sched = Scheduler::connect(&c).await.unwrap();
    setup(&sched, "tenant", 1, 10).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| task(&c, "tenant", &format!("p{i}")))
        .collect();
    for r in sched.submit_batch(&tasks).await.unwrap() {
        r.unwrap();
    }
    let upstream = Arc::new(Paced {
        submitted: Default::default(),
    });
    let worker = Worker::new(sched.clone(), upstream.clone(), &c, secrets());
    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(worker.clone().run(rx));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    // Under a backlog each account submits every 300 ms, not at the claimers' next
    // wake-up slice (up to 400 ms later: about 200 ms at the median). A loaded machine
    // may add some tens of ms.
    let mut late: Vec<u128> = Vec::new();
    for times in upstream.submitted.lock().unwrap().values() {
        for w in times.windows(2) {
            let d = w[1].duration_since(w[0]).as_millis();
            // (Stamped here after each pace returned: a late first stamp shortens a gap.)
            assert!(d >= 250, "two submissions {d} ms apart: {times:?}");
            late.push(d - 300.min(d));
        }
    }
    late.sort_unstable();
    assert!(late.len() >= 4, "too few submissions: {late:?}");
    let median = late[late.len() / 2];
    assert!(
        median < 100,
        "the next submission came {median} ms (median) after the gap ended: {late:?}"
    );
}
