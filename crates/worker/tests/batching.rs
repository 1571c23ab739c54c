//! A busy worker talks to Redis in batches: runs that end together are completed in one
//! script call, and claims take the slots that freed together, so a backlog of quick
//! tasks costs far fewer script calls than tasks — while each task is still completed
//! once, with its own output. (Its own test binary: the count of script calls is read
//! from the private Redis that only this test uses.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use switchyard_scheduler::Scheduler;
use switchyard_worker::Worker;
use tokio::sync::watch;

fn script_calls(port_url: &str) -> u64 {
    let port: u16 = port_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let info = switchyard_test_support::redis_cli(port, &["INFO", "commandstats"]);
    info.lines()
        .filter_map(|l| {
            l.strip_prefix("cmdstat_evalsha:calls=")
                .or_else(|| l.strip_prefix("cmdstat_eval:calls="))
        })
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_claimed_and_completed_in_batches() {
    let r = switchyard_test_support::redis();
    let mut c = config(&r.url, "batching");
    c.scheduler.lease_ms = 30_000;
    c.worker.concurrency = 50;
    // The reaper's calls are not what this test counts.
    c.worker.reap_interval_ms = 60_000;
    c.validate().unwrap();
    let sched = Scheduler::connect(&c).await.unwrap();
    setup(&sched, "tenant", 4, 50).await;
    let n = 2000;
    let tasks: Vec<_> = (0..n)
        .map(|i| task(&c, "tenant", &format!("p{i}")))
        .collect();
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    for r in sched.submit_batch(&tasks).await.unwrap() {
        r.unwrap();
    }
    let upstream = Arc::new(Quick::default());
    let worker = Worker::new(sched.clone(), upstream.clone(), &c, secrets());
    let calls_before = script_calls(&r.url);
    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(worker.clone().run(rx));
    wait_all_completed(&sched, "tenant", &ids, Duration::from_secs(60)).await;
    let calls = script_calls(&r.url) - calls_before;
    stop.send(true).unwrap();
    running.await.unwrap();

    // Each task ran once and kept its own output.
    assert_eq!(upstream.runs.load(Ordering::SeqCst), n as u32);
    for (id, rec) in ids
        .iter()
        .zip(sched.get_tasks("tenant", &ids).await.unwrap())
    {
        let rec = rec.unwrap();
        assert_eq!(rec.output, out(id), "{rec:?}");
        assert_eq!(rec.attempts, 1, "{rec:?}");
    }
    // One claim call per task and one complete call per task would be 2 per task; a
    // claim of 16 and a complete per task, 1.06. Batched, both sides take many tasks per
    // call.
    let per_task = calls as f64 / n as f64;
    assert!(
        per_task < 0.5,
        "{calls} script calls for {n} tasks ({per_task:.2} per task): not batched"
    );
}
