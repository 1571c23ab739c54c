//! `Worker::in_flight` counts the runs in progress, not runs that ended: however a run
//! ends (returns, panics), it leaves the count at once, not at the next heartbeat. A
//! panicking adapter fails its run like a transient error instead of stranding the task.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use switchyard_scheduler::{Scheduler, StoredStatus};
use switchyard_worker::Worker;
use tokio::sync::watch;

/// A worker over [`Quick`], running, with its scheduler and config.
struct Running {
    sched: Scheduler,
    c: switchyard_core::Config,
    upstream: Arc<Quick>,
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    running: tokio::task::JoinHandle<()>,
}

async fn start(name: &str) -> Running {
    let r = switchyard_test_support::redis();
    let mut c = config(&r.url, name);
    // Heartbeats every 10 s: well after the bounds below.
    c.scheduler.lease_ms = 30_000;
    c.worker.concurrency = 64;
    c.validate().unwrap();
    let sched = Scheduler::connect(&c).await.unwrap();
    setup(&sched, "tenant", 4, 200).await;
    let upstream = Arc::new(Quick {
        runs: AtomicU32::new(0),
    });
    let worker = Worker::new(sched.clone(), upstream.clone(), &c, secrets());
    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(worker.clone().run(rx));
    Running {
        sched,
        c,
        upstream,
        worker,
        stop,
        running,
    }
}

impl Running {
    /// Wait (2 s, before any heartbeat) until no run is counted in flight, then stop.
    async fn expect_no_run_in_flight(self, what: &str) {
        let worker = self.worker;
        wait_for(what, Duration::from_secs(2), || {
            let n = worker.in_flight();
            async move { n == 0 }
        })
        .await;
        self.stop.send(true).unwrap();
        self.running.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_adapter_fails_its_runs_and_leaves_no_trace() {
    let w = start("panic").await;
    let (sched, c) = (&w.sched, &w.c);
    let id = submit(sched, c, "tenant", "panic").await;
    // Each panic is a transient failure of that run: retried at once (not after the
    // 30 s lease), until the attempt budget is spent.
    wait_for(
        "the task to fail after its attempts (well before a lease expires)",
        Duration::from_secs(10),
        || async {
            sched
                .get_task("tenant", &id)
                .await
                .unwrap()
                .is_some_and(|r| r.status == StoredStatus::Failed)
        },
    )
    .await;
    let f = record(sched, "tenant", &id).await;
    let budget = c.scheduler.max_attempts;
    assert_eq!(f.attempts, budget, "{f:?}");
    assert_eq!(w.upstream.runs.load(Ordering::SeqCst), budget);
    w.expect_no_run_in_flight("the panicked runs to leave the count (before any heartbeat)")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_never_linger_in_the_in_flight_count() {
    let w = start("linger").await;
    let sched = &w.sched;
    let tasks: Vec<_> = (0..1500)
        .map(|i| task(&w.c, "tenant", &format!("p{i}")))
        .collect();
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    for r in sched.submit_batch(&tasks).await.unwrap() {
        r.unwrap();
    }
    wait_all_completed(sched, "tenant", &ids, Duration::from_secs(60)).await;
    w.expect_no_run_in_flight("the count to drop to zero (before any heartbeat)")
        .await;
}
