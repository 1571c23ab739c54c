//! Shutdown never strands a claimed task: whenever the worker is told to stop, every task
//! it claimed is, once `run` returns, completed or queued again — none is left
//! `processing` with no worker to finish it (until its lease expired).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use serde_json::Value;
use switchyard_core::Provider;
use switchyard_scheduler::{Scheduler, StoredStatus};
use switchyard_worker::{Control, Job, Upstream, UpstreamError, Worker};
use tokio::sync::watch;

/// Answers at once.
struct Instant;

#[async_trait]
impl Upstream for Instant {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    async fn run(&self, job: &Job, _: &dyn Control) -> Result<Value, UpstreamError> {
        Ok(out(&job.task_id))
    }

    async fn probe(&self, _: &str, _: &Value) -> Result<(), UpstreamError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_at_any_point_leaves_no_task_leased_to_nobody() {
    let r = switchyard_test_support::redis();
    let mut c = config(&r.url, "shutdown");
    // Long leases: a stranded task would stay `processing` for the whole test.
    c.scheduler.lease_ms = 60_000;
    c.worker.concurrency = 64;
    c.worker.claim_batch = 4;
    c.worker.shutdown_grace_s = 0;
    c.validate().unwrap();
    let sched = Scheduler::connect(&c).await.unwrap();
    setup(&sched, "tenant", 8, 200).await;
    let tasks: Vec<_> = (0..2500)
        .map(|i| task(&c, "tenant", &format!("p{i}")))
        .collect();
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    for r in sched.submit_batch(&tasks).await.unwrap() {
        r.unwrap();
    }
    // Stop after different lengths of work, so the stop lands at many points of the
    // claim loop (mostly while a claim is in flight: the upstream answers at once).
    for round in 0..20u64 {
        let worker = Worker::new(sched.clone(), Arc::new(Instant), &c, secrets());
        let (stop, rx) = watch::channel(false);
        let running = tokio::spawn(worker.clone().run(rx));
        // A stimulus after a chosen amount of work (not waiting for an outcome).
        tokio::time::sleep(Duration::from_millis(3 + (round * 7) % 40)).await;
        stop.send(true).unwrap();
        running.await.unwrap();
        assert_eq!(worker.in_flight(), 0, "round {round}");
        let recs = sched.get_tasks("tenant", &ids).await.unwrap();
        let stranded: Vec<&str> = recs
            .iter()
            .flatten()
            .filter(|r| r.status == StoredStatus::Processing)
            .map(|r| r.id.as_str())
            .collect();
        assert!(
            stranded.is_empty(),
            "round {round}: {} task(s) left processing after shutdown: {stranded:?}",
            stranded.len()
        );
        for r in recs.iter().flatten() {
            assert!(
                matches!(r.status, StoredStatus::Queued | StoredStatus::Completed),
                "round {round}: {:?}",
                r
            );
        }
    }
    let done = sched
        .get_tasks("tenant", &ids)
        .await
        .unwrap()
        .iter()
        .flatten()
        .filter(|r| r.status == StoredStatus::Completed)
        .count();
    assert!(
        done > 0 && done < ids.len(),
        "the rounds stopped mid-work ({done} done)"
    );
}
