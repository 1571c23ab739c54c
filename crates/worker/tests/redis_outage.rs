//! A Redis outage in the middle of running tasks: the server is SIGKILLed, stays down for
//! 5 s and restarts on the same port from its append-only file. Every run in progress
//! finishes in place — no re-run, one upstream submission each — and the worker claims
//! new work afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use serde_json::Value;
use switchyard_core::Provider;
use switchyard_scheduler::{Scheduler, StoredStatus};
use switchyard_test_support::DurableRedis;
use switchyard_worker::{Control, Job, Upstream, UpstreamError, Worker};
use tokio::sync::watch;

/// What each run did, and when.
#[derive(Default)]
struct Seen {
    /// Upstream submissions per prompt.
    submissions: HashMap<String, u32>,
    /// Named instants ("A:ref_call", "A:ref_done", …).
    at: HashMap<String, Instant>,
    /// Runs that saw their lease lost.
    lost: Vec<String>,
}

/// Runs by prompt:
/// - `A`: submits, waits for the outage, then stores its reference (during the outage);
/// - `B`: submits and stores its reference, waits for the outage, reports progress (during
///   the outage), returns;
/// - `C`: submits and stores its reference, waits for the outage, returns at once (its
///   completion is recorded during the outage);
/// - anything else: submits, stores its reference, returns.
struct Staged {
    seen: Arc<Mutex<Seen>>,
    /// 0 before the outage, 1 once Redis is down.
    phase: watch::Receiver<u32>,
    /// Runs that reached the point where they wait for the outage.
    ready: Arc<AtomicU32>,
}

impl Staged {
    fn mark(&self, what: String) {
        self.seen.lock().unwrap().at.insert(what, Instant::now());
    }

    async fn outage(&self) {
        self.ready.fetch_add(1, Ordering::SeqCst);
        let mut phase = self.phase.clone();
        phase.wait_for(|p| *p >= 1).await.unwrap();
    }

    fn lost(&self, p: &str) -> UpstreamError {
        self.seen.lock().unwrap().lost.push(p.to_string());
        UpstreamError::LeaseLost
    }
}

#[async_trait]
impl Upstream for Staged {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        let p = prompt(job);
        assert!(
            job.upstream_ref.is_none(),
            "{p} was re-run (it has a reference)"
        );
        *self
            .seen
            .lock()
            .unwrap()
            .submissions
            .entry(p.clone())
            .or_default() += 1;
        if p == "A" {
            self.outage().await;
            self.mark("A:ref_call".into());
            ctl.reference("ref-A").await.map_err(|_| self.lost(&p))?;
            self.mark("A:ref_done".into());
            return Ok(out(&p));
        }
        ctl.reference(&format!("ref-{p}"))
            .await
            .map_err(|_| self.lost(&p))?;
        match p.as_str() {
            "B" => {
                self.outage().await;
                self.mark("B:progress_call".into());
                ctl.progress(50, None).await.map_err(|_| self.lost(&p))?;
                self.mark("B:progress_done".into());
            }
            "C" => {
                self.outage().await;
                self.mark("C:return".into());
            }
            _ => {}
        }
        Ok(out(&p))
    }

    async fn probe(&self, _: &str, _: &Value) -> Result<(), UpstreamError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_mid_run_finishes_every_run_in_place() {
    let redis = DurableRedis::new("outage");
    redis.start();
    let mut c = config(&redis.url(), "outage");
    // Heartbeats every 4 s, so at least one falls in the 5 s outage; the lease outlives
    // the outage by a margin (the default, 30 s, more so).
    c.scheduler.lease_ms = 12_000;
    c.worker.concurrency = 8;
    c.validate().unwrap();
    let sched = Scheduler::connect(&c).await.unwrap();
    setup(&sched, "tenant", 1, 8).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let (phase_tx, phase) = watch::channel(0u32);
    let ready = Arc::new(AtomicU32::new(0));
    let upstream = Arc::new(Staged {
        seen: seen.clone(),
        phase,
        ready: ready.clone(),
    });
    let worker = Worker::new(sched.clone(), upstream, &c, secrets());
    let (stop, stop_rx) = watch::channel(false);
    let running = tokio::spawn(worker.clone().run(stop_rx));

    let mut ids = HashMap::new();
    for p in ["A", "B", "C"] {
        ids.insert(p, submit(&sched, &c, "tenant", p).await);
    }
    wait_for(
        "the three runs to reach the outage",
        Duration::from_secs(10),
        || {
            let n = ready.load(Ordering::SeqCst);
            async move { n == 3 }
        },
    )
    .await;
    for p in ["B", "C"] {
        let f = record(&sched, "tenant", &ids[p]).await;
        assert_eq!(f.upstream, Some(format!("ref-{p}")));
    }

    // The outage: SIGKILL, 5 s down, restart on the same port from the AOF.
    redis.kill();
    let killed = Instant::now();
    phase_tx.send(1).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restarted = Instant::now();
    redis.start();

    for p in ["A", "B", "C"] {
        let id = &ids[p];
        wait_for(
            &format!("task {p} to complete"),
            Duration::from_secs(20),
            || async {
                sched
                    .get_task("tenant", id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.status == StoredStatus::Completed)
            },
        )
        .await;
        let f = record(&sched, "tenant", id).await;
        assert_eq!(f.attempts, 1, "{p} ran once: {f:?}");
        assert_eq!(f.upstream, Some(format!("ref-{p}")), "{p}: {f:?}");
        assert_eq!(f.output, out(p), "{p}: {f:?}");
    }
    {
        let s = seen.lock().unwrap();
        assert!(s.lost.is_empty(), "runs lost their lease: {:?}", s.lost);
        for p in ["A", "B", "C"] {
            assert_eq!(s.submissions[p], 1, "{p} submitted upstream once");
        }
        // The calls really met the outage: they started while Redis was down and ended
        // after it came back.
        for call in ["A:ref_call", "B:progress_call", "C:return"] {
            assert!(s.at[call] >= killed && s.at[call] < restarted, "{call}");
        }
        for done in ["A:ref_done", "B:progress_done"] {
            assert!(s.at[done] > restarted, "{done}");
        }
    }

    // The claim loop came through it: new work is claimed and run.
    let d = submit(&sched, &c, "tenant", "D").await;
    wait_for(
        "a task submitted after the outage",
        Duration::from_secs(20),
        || async {
            sched
                .get_task("tenant", &d)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.status == StoredStatus::Completed)
        },
    )
    .await;
    wait_for("no run left in flight", Duration::from_secs(5), || {
        let n = worker.in_flight();
        async move { n == 0 }
    })
    .await;
    stop.send(true).unwrap();
    running.await.unwrap();
}
