//! Real worker processes killed with SIGKILL while Luma renders: the second process
//! resumes by the generation id the first stored (a generation and an extend) and never
//! submits again (the simulator's witness counts one upstream job per task marker) — also
//! when killed after Luma made the generation but before its id was stored (adopted from
//! the account's list by the intent), while an intent Luma never took submits once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, WorkerProcess, output};
use switchyard_scheduler::{Owner, StoredStatus, TaskRecord};

const T: Duration = Duration::from_secs(20);

/// The task holds the upstream's ids (not only the intent stored before submitting).
fn accepted(r: &TaskRecord) -> bool {
    r.upstream
        .as_deref()
        .is_some_and(|u| !u.contains("submitting"))
}

fn spawn_worker(h: &Harness) -> WorkerProcess {
    h.spawn_worker_binary(env!("CARGO_BIN_EXE_switchyard-worker-luma"), &[])
}

async fn setup(name: &str) -> Harness {
    let h = Harness::with(name, |c| c.scheduler.lease_ms = 1500).await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::LumaQuota, 1000).await;
    h.account(
        Provider::Luma,
        &Owner::Pool,
        "pool1",
        "sim:ok:luma1",
        [5, 0, 0],
    )
    .await;
    h
}

/// Wait until the task runs with a generation id stored, SIGKILL `first`, start a second
/// process and wait for the task's end.
async fn kill_and_resume(h: &Harness, mut first: WorkerProcess, id: &str) -> (String, TaskRecord) {
    let seen = h
        .wait_task("t_p", id, "a generation id", T, |r| {
            r.status == StoredStatus::Processing && accepted(r)
        })
        .await;
    first.kill(); // SIGKILL: no hand-back, no goodbye
    let second = spawn_worker(h);
    let r = h.wait_terminal("t_p", id, T).await;
    second.terminate(Duration::from_secs(10));
    (seen.upstream.clone().unwrap_or_default(), r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_generation_is_resumed_by_its_generation_id() {
    let h = setup("luma_kill_gen").await;
    let id = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "video_generation",
            json!({"prompt": "a slow tide [sim:ms=3000] [sim:task=g1]"}),
        )
        .await;
    let a = spawn_worker(&h);
    let (generation, r) = kill_and_resume(&h, a, &id).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2, "claimed again after the crash");
    let out = output(&r);
    assert_eq!(out["generation_id"], json!(generation));
    assert!(out["video"]["url"].as_str().unwrap().contains(&generation));
    assert_eq!(h.sim.stats().tasks["g1"], 1, "resumed, not resubmitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_extend_is_resumed_by_its_generation_id() {
    let h = setup("luma_kill_ext").await;
    let origin = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "video_generation",
            json!({"prompt": "a harbour [sim:ms=100]"}),
        )
        .await;
    let a = spawn_worker(&h);
    let o = h.wait_terminal("t_p", &origin, T).await;
    assert_eq!(o.status, StoredStatus::Completed, "{:?}", o);
    let id = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "extend_video",
            json!({"origin_task_id": origin, "prompt": "boats leave [sim:ms=3000] [sim:task=e1]"}),
        )
        .await;
    let (generation, r) = kill_and_resume(&h, a, &id).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2);
    let out = output(&r);
    assert_eq!(out["generation_id"], json!(generation));
    assert_ne!(
        out["generation_id"],
        output(&o)["generation_id"],
        "the extension, not its origin"
    );
    assert!(out["prompt"].as_str().unwrap().contains("boats leave"));
    assert_eq!(h.sim.stats().tasks["e1"], 1, "resumed, not resubmitted");
}

/// SIGKILL while Luma has made the generation but its answer has not come back (the
/// simulator holds the reply 5 s): the task holds only the intent. The second process
/// finds the generation in the account's list by its prompt (and, for an extend, its
/// origin), adopts it and never submits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_luma_answers_adopts_the_generation_from_the_list() {
    let h = setup("luma_window").await;
    let a = spawn_worker(&h);
    let origin = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "video_generation",
            json!({"prompt": "a quay [sim:ms=100]"}),
        )
        .await;
    let o = h.wait_terminal("t_p", &origin, T).await;
    assert_eq!(o.status, StoredStatus::Completed, "{:?}", o);
    let window = "[sim:ms=1500] [sim:reply_ms=5000]";
    let created = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "video_generation",
            json!({"prompt": format!("gulls rise {window} [sim:task=wg]")}),
        )
        .await;
    let extended = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "extend_video",
            json!({"origin_task_id": origin, "prompt": format!("ferries turn {window} [sim:task=we]")}),
        )
        .await;
    h.wait_upstream_jobs("wg", 1, T).await;
    h.wait_upstream_jobs("we", 1, T).await;
    let recs = h
        .sched
        .get_tasks("t_p", &[created.clone(), extended.clone()])
        .await
        .unwrap();
    for r in recs {
        let r = r.unwrap();
        assert!(
            r.upstream
                .as_deref()
                .is_some_and(|u| u.contains("submitting")),
            "only the intent is stored: {:?}",
            r
        );
    }
    let mut a = a;
    a.kill(); // inside the window: Luma made them, their ids were never stored
    let b = spawn_worker(&h);
    let g = h.wait_terminal("t_p", &created, T).await;
    let e = h.wait_terminal("t_p", &extended, T).await;
    b.terminate(Duration::from_secs(10));
    for (r, text) in [(&g, "gulls rise"), (&e, "ferries turn")] {
        assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
        assert_eq!(r.attempts, 2, "claimed again after the crash");
        let out = output(r);
        assert_eq!(out["generation_id"].as_str(), r.upstream.as_deref());
        assert!(out["prompt"].as_str().unwrap().contains(text));
    }
    assert_ne!(output(&e)["generation_id"], output(&o)["generation_id"]);
    let stats = h.sim.stats();
    assert_eq!(stats.tasks["wg"], 1, "adopted, not submitted again");
    assert_eq!(stats.tasks["we"], 1, "adopted, not submitted again");
}

/// A creation Luma never took (the flaky account answers the first one 502) leaves an
/// intent; the retry finds nothing of its own in the list — not the generation with the
/// same prompt another account made just before — and submits once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_luma_never_took_submits_once() {
    let h = Harness::new("luma_intent_new").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::LumaQuota, 1000).await;
    h.account(
        Provider::Luma,
        &Owner::Pool,
        "pool1",
        "sim:flaky:fresh1",
        [5, 0, 0],
    )
    .await;
    let prompt = "a lantern [sim:ms=200] [sim:task=n1]";
    let other: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/photon/v1/generations/", h.sim.url()))
        .header("cookie", "access_token=sim:ok:someone")
        .json(&json!({"user_prompt": prompt, "aspect_ratio": "16:9", "expand_prompt": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "luma",
            "video_generation",
            json!({"prompt": prompt}),
        )
        .await;
    let w = spawn_worker(&h);
    let r = h.wait_terminal("t_p", &id, T).await;
    w.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2, "the 502, then the creation");
    let stats = h.sim.stats();
    assert_eq!(stats.accounts["fresh1"].refused, 1);
    assert_eq!(stats.accounts["fresh1"].submissions, 1, "submitted once");
    assert_eq!(stats.tasks["n1"], 2, "the other account's and ours");
    assert_ne!(output(&r)["generation_id"], other[0]["id"]);
}
