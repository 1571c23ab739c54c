//! Real worker processes killed with real signals: crash and resume (SIGKILL), graceful
//! shutdown (SIGTERM), and caps checked by the simulator's witness with four processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, WorkerProcess, output};
use switchyard_scheduler::Owner;

fn spawn_worker(h: &Harness, extra: &[(&str, &str)]) -> WorkerProcess {
    h.spawn_worker_binary(env!("CARGO_BIN_EXE_switchyard-worker-suno"), extra)
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
    a.kill(); // SIGKILL: no hand-back, no goodbye
    let b = spawn_worker(&h, &[]);
    let r = h.wait_terminal("t_d", &id, Duration::from_secs(20)).await;
    b.terminate(Duration::from_secs(10));
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
    let w = spawn_worker(&h, &[]);
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
    let status = w.terminate(Duration::from_secs(10));
    assert!(status.success(), "worker exit: {status:?}");
    // Handed back at once: queued again, the attempt not counted, nothing lost.
    let recs = h.sched.get_tasks("t_p", &ids).await.unwrap();
    for r in &recs {
        let r = r.as_ref().expect("task lost");
        assert_eq!(r.status(), "queued", "{:?}", r.fields);
        assert_eq!(r.num("attempts"), 0);
    }
    // Another worker resumes them from their references: no second submission.
    let w2 = spawn_worker(&h, &[]);
    for id in &ids {
        assert_eq!(
            h.wait_terminal("t_p", id, Duration::from_secs(30))
                .await
                .status(),
            "completed"
        );
    }
    w2.terminate(Duration::from_secs(10));
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
    let workers: Vec<WorkerProcess> = (0..4).map(|_| spawn_worker(&h, &[])).collect();
    for (t, id) in &ids {
        let r = h.wait_terminal(t, id, Duration::from_secs(120)).await;
        assert_eq!(r.status(), "completed", "{:?}", r.fields);
    }
    for w in &workers {
        w.signal("-TERM");
    }
    for mut w in workers {
        w.wait_exit(Duration::from_secs(10));
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

/// Lyrics and an upload still running upstream, and a continue that finished upstream
/// while no worker was alive: a second process resumes all three from their references
/// (the lyrics id, the upload id, the clip ids) and submits none of them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lyrics_upload_and_continue_are_resumed_by_their_ids_after_a_kill() {
    let h = Harness::with("suno_crash_kinds", |c| c.scheduler.lease_ms = 1500).await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::SunoQuota, 1000).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        "sim:ok:kinds1",
        [5, 0, 0],
    )
    .await;
    let submit = |task_type: &'static str, input: serde_json::Value| {
        h.submit("t_d", ServiceMode::Ppu, "suno", task_type, input, None)
    };
    let lyrics = submit(
        "lyrics",
        json!({"prompt": "a lighthouse keeper [sim:ms=4000] [sim:task=l1]"}),
    )
    .await;
    let upload = submit(
        "upload",
        json!({"audio_url": format!("{}/_cdn/demo.mp3?x=[sim:ms=4000][sim:task=u1]", h.sim.url())}),
    )
    .await;
    let cont = submit(
        "generate_music_custom",
        json!({"prompt": "[Verse] and the sea goes on [sim:ms=1200] [sim:task=k1]",
               "continue_clip_id": "sjob0-a", "continue_at": 30.5}),
    )
    .await;
    let mut a = spawn_worker(&h, &[]);
    let mut refs = Vec::new();
    for id in [&lyrics, &upload, &cont] {
        refs.push(
            h.wait_task(
                "t_d",
                id,
                "an upstream reference",
                Duration::from_secs(15),
                |r| r.status() == "processing" && !r.get("upstream").is_empty(),
            )
            .await
            .get("upstream")
            .to_string(),
        );
    }
    a.kill(); // SIGKILL: no hand-back, no goodbye
    // The continue's clips complete upstream while nothing runs it; the lyrics and the
    // upload are still being made when the next process resumes them.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ended = h.sim.stats().accounts["kinds1"].current == 2;
        if ended {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the continue never ended upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = spawn_worker(&h, &[]);
    let l = h
        .wait_terminal("t_d", &lyrics, Duration::from_secs(20))
        .await;
    let u = h
        .wait_terminal("t_d", &upload, Duration::from_secs(20))
        .await;
    let c = h.wait_terminal("t_d", &cont, Duration::from_secs(20)).await;
    b.terminate(Duration::from_secs(10));
    for r in [&l, &u, &c] {
        assert_eq!(r.status(), "completed", "{:?}", r.fields);
        assert_eq!(r.num("attempts"), 2, "claimed again after the crash");
    }
    assert!(refs[0].contains("lyr"), "{}", refs[0]);
    assert!(
        output(&l)["text"]
            .as_str()
            .unwrap()
            .contains("a lighthouse keeper")
    );
    assert!(refs[1].contains("upl"), "{}", refs[1]);
    assert!(
        output(&u)["audio_url"]
            .as_str()
            .unwrap()
            .contains("demo.mp3")
    );
    let clips = output(&c)["clips"].as_array().unwrap().clone();
    assert_eq!(clips.len(), 2);
    for clip in &clips {
        assert!(
            refs[2].contains(clip["id"].as_str().unwrap()),
            "{}",
            refs[2]
        );
        assert_eq!(clip["metadata"]["type"], "extend");
    }
    let stats = h.sim.stats();
    for marker in ["l1", "u1", "k1"] {
        assert_eq!(stats.tasks[marker], 1, "{marker}: resumed, not resubmitted");
    }
}
