//! Real worker processes killed with real signals: crash and resume (SIGKILL), graceful
//! shutdown (SIGTERM), and caps checked by the simulator's witness with four processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::Harness;
use switchyard_scheduler::Owner;

fn spawn_worker(h: &Harness, extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-worker-suno"));
    cmd.envs(h.worker_env())
        .env_remove("SWITCHYARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start switchyard-worker-suno")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "worker did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_resumed_without_a_second_submission() {
    let h = Harness::with("suno_crash", |c| c.scheduler.lease_ms = 1500).await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::SunoQuota, 100).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        "sim:ok:crash1",
        [5, 0, 0],
    )
    .await;
    let id = h
        .submit(
            "t_d",
            ServiceMode::Ppu,
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "long song [sim:ms=4000]"}),
            None,
        )
        .await;
    let mut a = spawn_worker(&h, &[]);
    h.wait_task(
        "t_d",
        &id,
        "an upstream reference",
        Duration::from_secs(15),
        |r| r.status() == "processing" && !r.get("upstream").is_empty(),
    )
    .await;
    a.kill().unwrap(); // SIGKILL: no hand-back, no goodbye
    a.wait().unwrap();
    let mut b = spawn_worker(&h, &[]);
    let r = h.wait_terminal("t_d", &id, Duration::from_secs(20)).await;
    signal(&b, "-TERM");
    wait_exit(&mut b, Duration::from_secs(10));
    assert_eq!(r.status(), "completed", "{:?}", r.fields);
    assert_eq!(r.num("attempts"), 2, "claimed again after the crash");
    assert_eq!(
        h.sim.stats().accounts["crash1"].submissions,
        1,
        "resumed, not resubmitted"
    );
    let bal = h.sched.balances("t_d").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((bal.captured, bal.held), (10, 0), "charged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_running_tasks_at_once() {
    // A long lease: only the hand-back (not the reaper) can requeue within the test.
    let h = Harness::with("suno_term", |c| {
        c.scheduler.lease_ms = 60_000;
        c.worker.shutdown_grace_s = 1;
    })
    .await;
    h.tenant("t_p", Plan::Premium).await;
    h.upsert_uncapped("t_p").await;
    h.fund("t_p", QuotaKind::SunoQuota, 10_000).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        "sim:ok:term1",
        [100, 0, 0],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            h.submit(
                "t_p",
                ServiceMode::Ppu,
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("song {i} [sim:ms=6000]")}),
                None,
            )
            .await,
        );
    }
    let mut w = spawn_worker(&h, &[]);
    for id in &ids {
        h.wait_task(
            "t_p",
            id,
            "processing with a reference",
            Duration::from_secs(20),
            |r| r.status() == "processing" && !r.get("upstream").is_empty(),
        )
        .await;
    }
    signal(&w, "-TERM");
    let status = wait_exit(&mut w, Duration::from_secs(10));
    assert!(status.success(), "worker exit: {status:?}");
    // Handed back at once: queued again, the attempt not counted, nothing lost.
    let recs = h.sched.get_tasks("t_p", &ids).await.unwrap();
    for r in &recs {
        let r = r.as_ref().expect("task lost");
        assert_eq!(r.status(), "queued", "{:?}", r.fields);
        assert_eq!(r.num("attempts"), 0);
    }
    // Another worker resumes them from their references: no second submission.
    let mut w2 = spawn_worker(&h, &[]);
    for id in &ids {
        assert_eq!(
            h.wait_terminal("t_p", id, Duration::from_secs(30))
                .await
                .status(),
            "completed"
        );
    }
    signal(&w2, "-TERM");
    wait_exit(&mut w2, Duration::from_secs(10));
    assert_eq!(h.sim.stats().accounts["term1"].submissions, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_never_exceed_caps_by_the_witness() {
    let h = Harness::new("suno_caps").await;
    let tenants = [
        ("t_h", Plan::Hobbyist, 2u64),
        ("t_d", Plan::Developer, 10),
        ("t_p", Plan::Premium, 30),
    ];
    for (t, plan, _) in tenants {
        h.tenant(t, plan).await;
        h.fund(t, QuotaKind::SunoQuota, 100_000).await;
    }
    for i in 0..6 {
        // The simulated account also refuses beyond 10, as the real service would.
        h.account(
            Provider::Suno,
            &Owner::Pool,
            &format!("p{i}"),
            &format!("sim:ok:cap{i}:10"),
            [10, 0, 0],
        )
        .await;
    }
    let mut ids = Vec::new();
    for i in 0..500 {
        let (t, _, _) = tenants[i % 3];
        ids.push((
            t,
            h.submit(
                t,
                ServiceMode::Ppu,
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("song {i} [sim:ms=120] [sim:tag={t}]")}),
                None,
            )
            .await,
        ));
    }
    let mut workers: Vec<Child> = (0..4).map(|_| spawn_worker(&h, &[])).collect();
    for (t, id) in &ids {
        let r = h.wait_terminal(t, id, Duration::from_secs(120)).await;
        assert_eq!(r.status(), "completed", "{:?}", r.fields);
    }
    for w in &mut workers {
        signal(w, "-TERM");
    }
    for w in &mut workers {
        wait_exit(w, Duration::from_secs(10));
    }
    let stats = h.sim.stats();
    for (t, _, cap) in tenants {
        let seen = stats.tags[t];
        assert!(
            seen.max <= cap,
            "{t}: {} at once upstream, cap {cap}",
            seen.max
        );
        assert_eq!(seen.current, 0);
    }
    assert_eq!(stats.tags["t_h"].max, 2, "the small cap was contended");
    for i in 0..6 {
        let a = stats.accounts[&format!("cap{i}")];
        assert!(a.max <= 10, "cap{i}: {} at once", a.max);
        assert_eq!(a.refused, 0, "cap{i} was sent more than it takes");
    }
    let total: u64 = stats.accounts.values().map(|c| c.submissions).sum();
    assert_eq!(total, 500);
}
