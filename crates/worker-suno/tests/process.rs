//! Real worker processes killed with real signals: crash and resume (SIGKILL), graceful
//! shutdown (SIGTERM), and caps checked by the simulator's witness with four processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_core::config::Pacing;
use switchyard_core::{AccountState, Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, WorkerProcess, output};
use switchyard_scheduler::{AccountSpec, Owner, StoredStatus, TaskRecord};

/// The task holds the upstream's ids (not only the intent stored before submitting).
fn accepted(r: &TaskRecord) -> bool {
    r.upstream
        .as_deref()
        .is_some_and(|u| !u.contains("submitting"))
}

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
        )
        .await;
    let mut a = spawn_worker(&h, &[]);
    h.wait_task(
        "t_d",
        &id,
        "an upstream reference",
        Duration::from_secs(15),
        |r| r.status == StoredStatus::Processing && accepted(r),
    )
    .await;
    a.kill(); // SIGKILL: no hand-back, no goodbye
    let b = spawn_worker(&h, &[]);
    let r = h.wait_terminal("t_d", &id, Duration::from_secs(20)).await;
    b.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2, "claimed again after the crash");
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
            |r| r.status == StoredStatus::Processing && accepted(r),
        )
        .await;
    }
    let status = w.terminate(Duration::from_secs(10));
    assert!(status.success(), "worker exit: {status:?}");
    // Handed back at once: queued again, the attempt not counted, nothing lost.
    let recs = h.sched.get_tasks("t_p", &ids).await.unwrap();
    for r in &recs {
        let r = r.as_ref().expect("task lost");
        assert_eq!(r.status, StoredStatus::Queued, "{:?}", r);
        assert_eq!(r.attempts, 0);
    }
    // Another worker resumes them from their references: no second submission.
    let w2 = spawn_worker(&h, &[]);
    for id in &ids {
        assert_eq!(
            h.wait_terminal("t_p", id, Duration::from_secs(30))
                .await
                .status,
            StoredStatus::Completed
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
            )
            .await,
        ));
    }
    let workers: Vec<WorkerProcess> = (0..4).map(|_| spawn_worker(&h, &[])).collect();
    for (t, id) in &ids {
        let r = h.wait_terminal(t, id, Duration::from_secs(120)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
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
        h.submit("t_d", ServiceMode::Ppu, "suno", task_type, input)
    };
    let mut a = spawn_worker(&h, &[]);
    // The clip to continue: one this account made (Suno lets no other continue it).
    let song = submit(
        "generate_music",
        json!({"gpt_description_prompt": "a sea song [sim:ms=50]"}),
    )
    .await;
    let song = h.wait_terminal("t_d", &song, Duration::from_secs(20)).await;
    assert_eq!(song.status, StoredStatus::Completed, "{song:?}");
    let clip = song.output["clips"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .expect("a clip");
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
               "continue_clip_id": clip, "continue_at": 30.5}),
    )
    .await;
    let mut refs = Vec::new();
    for id in [&lyrics, &upload, &cont] {
        refs.push(
            h.wait_task(
                "t_d",
                id,
                "an upstream reference",
                Duration::from_secs(15),
                |r| r.status == StoredStatus::Processing && accepted(r),
            )
            .await
            .upstream
            .unwrap_or_default(),
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
        assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
        assert_eq!(r.attempts, 2, "claimed again after the crash");
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
    let clips = output(&c)["clips"]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect::<Vec<_>>();
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

/// SIGKILL while Suno has made the clips but its answer has not come back (the simulator
/// holds the reply 5 s): the task holds only the intent. The second process finds the
/// generation in the account's feed by what the intent says Suno shows of it, adopts its
/// two clips and never generates again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_suno_answers_adopts_the_generation_from_the_feed() {
    let h = Harness::with("suno_window", |c| c.scheduler.lease_ms = 1500).await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::SunoQuota, 1000).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        "sim:ok:window1",
        [5, 0, 0],
    )
    .await;
    let submit = |task_type: &'static str, input: serde_json::Value| {
        h.submit("t_d", ServiceMode::Ppu, "suno", task_type, input)
    };
    let described = submit(
        "generate_music",
        json!({"gpt_description_prompt": "a night train [sim:ms=1500] [sim:reply_ms=5000] [sim:task=w1]"}),
    )
    .await;
    let custom = submit(
        "generate_music_custom",
        json!({"prompt": "[Verse] rails hum [sim:ms=1500] [sim:reply_ms=5000] [sim:task=w2]",
               "tags": "folk", "title": "Rails"}),
    )
    .await;
    let mut a = spawn_worker(&h, &[]);
    h.wait_upstream_jobs("w1", 1, Duration::from_secs(15)).await;
    h.wait_upstream_jobs("w2", 1, Duration::from_secs(15)).await;
    for id in [&described, &custom] {
        let r = h
            .sched
            .get_tasks("t_d", std::slice::from_ref(id))
            .await
            .unwrap()[0]
            .clone()
            .unwrap();
        assert!(
            r.upstream
                .as_deref()
                .is_some_and(|u| u.contains("submitting")),
            "only the intent is stored: {:?}",
            r
        );
    }
    a.kill(); // inside the window: Suno made the clips, their ids were never stored
    let b = spawn_worker(&h, &[]);
    let d = h
        .wait_terminal("t_d", &described, Duration::from_secs(30))
        .await;
    let c = h
        .wait_terminal("t_d", &custom, Duration::from_secs(30))
        .await;
    b.terminate(Duration::from_secs(10));
    for (r, text) in [(&d, "a night train"), (&c, "rails hum")] {
        assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
        assert_eq!(r.attempts, 2, "claimed again after the crash");
        let clips = output(r)["clips"]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(clips.len(), 2, "both clips of the generation");
        assert_ne!(clips[0]["id"], clips[1]["id"]);
        let job = |c: &serde_json::Value| {
            c["id"]
                .as_str()
                .unwrap()
                .rsplit_once('-')
                .unwrap()
                .0
                .to_string()
        };
        assert_eq!(job(&clips[0]), job(&clips[1]), "of one generation");
        for clip in &clips {
            let shown = clip["metadata"].to_string();
            assert!(shown.contains(text), "{shown}");
            assert!(
                r.upstream
                    .as_deref()
                    .is_some_and(|u| u.contains(clip["id"].as_str().unwrap()))
            );
        }
    }
    assert_eq!(
        output(&c)["clips"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["title"],
        "Rails"
    );
    let stats = h.sim.stats();
    assert_eq!(stats.tasks["w1"], 1, "adopted, not generated again");
    assert_eq!(stats.tasks["w2"], 1, "adopted, not generated again");
}

/// A generation Suno never took (the flaky account answers the first submission 502)
/// leaves an intent; the retry finds nothing of its own in the feed — not the identical
/// generation another account made just before — and generates once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_suno_never_took_generates_once() {
    let h = Harness::new("suno_intent_new").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::SunoQuota, 1000).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        "sim:flaky:fresh1",
        [5, 0, 0],
    )
    .await;
    let text = "a harbour bell [sim:ms=200] [sim:task=n1]";
    // The same input, sent by another account of the upstream a moment before.
    let other: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/generate/v2/", h.sim.url()))
        .header("authorization", "Bearer simjwt.sim:ok:someone")
        .json(
            &json!({"prompt": "", "gpt_description_prompt": text, "make_instrumental": false,
                       "mv": "chirp-v3-5", "generation_type": "TEXT", "token": null}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = h
        .submit(
            "t_d",
            ServiceMode::Ppu,
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": text}),
        )
        .await;
    let w = spawn_worker(&h, &[]);
    let r = h.wait_terminal("t_d", &id, Duration::from_secs(20)).await;
    w.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2, "the 502, then the generation");
    let stats = h.sim.stats();
    assert_eq!(stats.accounts["fresh1"].refused, 1);
    assert_eq!(stats.accounts["fresh1"].submissions, 1, "generated once");
    assert_eq!(stats.tasks["n1"], 2, "the other account's and ours");
    for clip in output(&r)["clips"].as_object().unwrap().values() {
        assert!(
            !other.to_string().contains(clip["id"].as_str().unwrap()),
            "adopted another account's clip {clip}"
        );
    }
}

/// A harness whose scheduler clock (every process's: the offset is configuration)
/// stands `before_ms` before the next UTC midnight; that midnight (ms, on that clock).
async fn before_midnight(name: &str, before_ms: i64) -> (Harness, i64) {
    const DAY_MS: i64 = 86_400_000;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let midnight = (wall / DAY_MS + 1) * DAY_MS;
    let h = Harness::with(name, |c| {
        c.scheduler.clock_offset_ms = midnight - before_ms - wall;
    })
    .await;
    (h, midnight)
}

/// A PPU tenant `t_p` with quota, one pool account `pool1` (simulator name `sim_name`,
/// capacity 10) with `limits`, and six short songs queued for it.
async fn limited_pool(h: &Harness, sim_name: &str, limits: AccountSpec) -> Vec<String> {
    h.tenant("t_p", Plan::Premium).await;
    h.upsert_uncapped("t_p").await;
    h.fund("t_p", QuotaKind::SunoQuota, 10_000).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        &format!("sim:ok:{sim_name}"),
        [10, 0, 0],
    )
    .await;
    h.sched
        .update_account(Provider::Suno, &Owner::Pool, "pool1", &limits)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            h.submit(
                "t_p",
                ServiceMode::Ppu,
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("song {i} [sim:ms=100]")}),
            )
            .await,
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_keep_one_accounts_pacing() {
    let h = Harness::new("suno_pacing").await;
    // The gap is kept right before the request that makes the job leaves (the adapter
    // calls `Control::pace` there); 50 ms above 1 s covers its way to the simulator.
    let pacing = AccountSpec {
        pacing: Some(Some(Pacing {
            min_gap_s: 1.05,
            max_gap_s: 2.0,
        })),
        ..AccountSpec::default()
    };
    let ids = limited_pool(&h, "paced1", pacing).await;
    let a = spawn_worker(&h, &[]);
    let b = spawn_worker(&h, &[]);
    for id in &ids {
        let r = h.wait_terminal("t_p", id, Duration::from_secs(40)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    }
    a.terminate(Duration::from_secs(10));
    b.terminate(Duration::from_secs(10));
    let times = h.sim.stats().submitted_ms["paced1"].clone();
    assert_eq!(times.len(), 6, "{times:?}");
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= 1000), "gaps {gaps:?}");
    assert!(
        gaps.iter().any(|g| g.abs_diff(gaps[0]) > 50),
        "irregular gaps {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_holds_the_sixth_task_until_the_next_day() {
    // The scheduler's clock (every process's: the offset is configuration) 8 s before a
    // UTC midnight.
    let (h, midnight) = before_midnight("suno_daily_cap", 8000).await;
    let cap = AccountSpec {
        daily_cap: Some(Some(switchyard_core::DailyCap {
            all: Some(5),
            ..Default::default()
        })),
        ..AccountSpec::default()
    };
    let ids = limited_pool(&h, "capped1", cap).await;
    let w = spawn_worker(&h, &[]);
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while done < 5 && Instant::now() < deadline {
        done = 0;
        for id in &ids {
            let r = h.sched.get_task("t_p", id).await.unwrap().unwrap();
            done += usize::from(r.status == StoredStatus::Completed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done, 5, "five run today");
    let a = h
        .sched
        .get_account(Provider::Suno, &Owner::Pool, "pool1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        h.sched.now_ms() < midnight as u64,
        "the test ran too slowly"
    );
    assert_eq!(
        a.resting,
        Some((midnight as u64, "daily_cap".to_string())),
        "{a:?}"
    );
    assert_eq!(h.sim.stats().accounts["capped1"].submissions, 5);
    for id in &ids {
        let r = h.wait_terminal("t_p", id, Duration::from_secs(20)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    }
    assert!(
        h.sched.now_ms() >= midnight as u64,
        "the sixth ran the next day"
    );
    assert_eq!(h.sim.stats().accounts["capped1"].submissions, 6);
    w.terminate(Duration::from_secs(10));
}

/// A hosted account of `t_b` added as the API adds one: `check` probes it first.
async fn hosted(h: &Harness, id: &str, cred: &str, check: bool) {
    let sealed = h
        .secrets
        .seal(&switchyard_harness::credentials(Provider::Suno, cred).to_string());
    h.sched
        .add_account(
            Provider::Suno,
            &Owner::Tenant("t_b".into()),
            id,
            &AccountSpec {
                name: Some(id.into()),
                capacity: Some([2, 0, 0]),
                secret: Some(sealed),
                check,
                ..AccountSpec::default()
            },
        )
        .await
        .unwrap();
}

async fn state_of(h: &Harness, id: &str) -> AccountState {
    h.sched
        .get_account(Provider::Suno, &Owner::Tenant("t_b".into()), id)
        .await
        .unwrap()
        .unwrap()
        .state
}

/// Wait until the account's state passes `ok`.
async fn wait_state(
    h: &Harness,
    id: &str,
    what: &str,
    ok: impl Fn(&AccountState) -> bool,
) -> AccountState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = state_of(h, id).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{id}: not {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn disabled_as(s: &AccountState) -> Option<&'static str> {
    match s {
        AccountState::Disabled { reason } => Some(switchyard_core::account::disabled_code(reason)),
        _ => None,
    }
}

async fn byoa_tenant(h: &Harness) {
    h.tenant("t_b", Plan::Premium).await;
    h.upsert_uncapped("t_b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_credentials_are_probed_before_any_task_reaches_them() {
    let h = Harness::new("suno_probe_new").await;
    byoa_tenant(&h).await;
    hosted(&h, "bad", "sim:banned:probe-bad", true).await;
    hosted(&h, "lapsed", "sim:expired:probe-lapsed", true).await;
    assert_eq!(state_of(&h, "bad").await, AccountState::Checking);
    // A task waits for a checked account: none is usable yet.
    let id = h
        .submit(
            "t_b",
            ServiceMode::Byoa,
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "probe me [sim:ms=100]"}),
        )
        .await;
    let w = spawn_worker(&h, &[]);
    let bad = wait_state(&h, "bad", "disabled", |s| disabled_as(s).is_some()).await;
    assert_eq!(disabled_as(&bad), Some("invalid_credentials"), "{bad:?}");
    let lapsed = wait_state(&h, "lapsed", "disabled", |s| disabled_as(s).is_some()).await;
    assert_eq!(
        disabled_as(&lapsed),
        Some("subscription_expired"),
        "{lapsed:?}"
    );
    // A good one added now is checked, then takes the waiting task.
    hosted(&h, "good", "sim:ok:probe-good", true).await;
    let r = h.wait_terminal("t_b", &id, Duration::from_secs(20)).await;
    assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    assert_eq!(r.account.as_deref(), Some("good"));
    let stats = h.sim.stats();
    for name in ["probe-bad", "probe-lapsed"] {
        assert_eq!(
            stats.accounts.get(name).map_or(0, |c| c.submissions),
            0,
            "{name}"
        );
    }
    // Probed again on their backoff, they stay disabled.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        disabled_as(&state_of(&h, "lapsed").await),
        Some("subscription_expired")
    );
    w.terminate(Duration::from_secs(10));
}

/// Queue `n` songs of `t_b`'s, run one worker process until all completed; the worker.
async fn run_songs(h: &Harness, n: usize) -> WorkerProcess {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            h.submit(
                "t_b",
                ServiceMode::Byoa,
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("back {i} [sim:ms=100]")}),
            )
            .await,
        );
    }
    let w = spawn_worker(h, &[]);
    for id in &ids {
        let r = h.wait_terminal("t_b", id, Duration::from_secs(30)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    }
    w
}

/// `account_reenabled` events (an account active again after being disabled).
async fn reenabled(h: &Harness) -> usize {
    let base = h.sched.bases(Provider::Suno).remove(0);
    let events = h.sched.read_events(&base, "0", 5000, 0).await.unwrap();
    events
        .iter()
        .filter(|e| {
            e.kind == "account"
                && e.fields.get("state").map(String::as_str) == Some("active")
                && e.fields.get("prev").map(String::as_str) == Some("disabled")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_ban_ends_when_the_upstream_said_and_the_account_comes_back_then() {
    // Probes on the backoff come a minute apart: only the one at the ban's end (which
    // Suno's answer names) can bring the account back within the test.
    let h = Harness::with("suno_probe_ban", |c| {
        c.scheduler.probe_backoff_ms = 60_000;
        c.scheduler.probe_backoff_max_ms = 120_000;
    })
    .await;
    byoa_tenant(&h).await;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let until = wall + 3000;
    hosted(
        &h,
        "banned",
        &format!("sim:banned_until_{until}:probe-ban"),
        false,
    )
    .await;
    let w = run_songs(&h, 2).await;
    wait_state(&h, "banned", "active again", |s| *s == AccountState::Active).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now >= until,
        "active again {} ms before its ban ended",
        until - now
    );
    assert!(
        now < until + 2500,
        "back {} ms after its ban ended",
        now - until
    );
    let stats = h.sim.stats();
    assert!(
        stats.submitted_ms["probe-ban"].iter().all(|t| *t >= until),
        "nothing ran on the banned account before its ban ended"
    );
    assert_eq!(reenabled(&h).await, 1, "account_reenabled");
    w.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captcha_solved_brings_its_account_back_after_its_probe() {
    let h = Harness::new("suno_probe_captcha").await;
    byoa_tenant(&h).await;
    hosted(&h, "captcha", "sim:captcha_once:probe-captcha", false).await;
    let w = run_songs(&h, 3).await;
    wait_state(&h, "captcha", "active again", |s| {
        *s == AccountState::Active
    })
    .await;
    let stats = h.sim.stats();
    assert_eq!(
        stats.accounts["probe-captcha"].submissions, 3,
        "the account ran the songs once its probe passed"
    );
    assert_eq!(reenabled(&h).await, 1, "account_reenabled");
    w.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_its_tenant_disabled_is_never_probed_back() {
    let h = Harness::new("suno_probe_tenant").await;
    byoa_tenant(&h).await;
    hosted(&h, "mine", "sim:ok:probe-mine", false).await;
    h.sched
        .update_account(
            Provider::Suno,
            &Owner::Tenant("t_b".into()),
            "mine",
            &AccountSpec {
                enabled: Some(false),
                ..AccountSpec::default()
            },
        )
        .await
        .unwrap();
    assert!(
        !h.sched
            .request_probe(Provider::Suno, &Owner::Tenant("t_b".into()), "mine")
            .await
            .unwrap(),
        "no probe for an account its tenant disabled"
    );
    let w = spawn_worker(&h, &[]);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(disabled_as(&state_of(&h, "mine").await), Some("by_tenant"));
    assert_eq!(
        h.sched
            .last_probe_ms(Provider::Suno, &Owner::Tenant("t_b".into()), "mine")
            .await
            .unwrap(),
        None
    );
    w.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_an_account_takes_nothing_and_its_queue_drains_at_the_start() {
    // UTC midnight is 09:00 in Tokyo: the scheduler's clock (every process's) stands 4 s
    // before it, and the window opens then.
    let (h, opens) = before_midnight("suno_window", 4000).await;
    let window = AccountSpec {
        window: Some(Some(switchyard_core::ActiveWindow {
            start: 9 * 60,
            end: 17 * 60,
            tz: Some("Asia/Tokyo".into()),
        })),
        ..AccountSpec::default()
    };
    let ids = limited_pool(&h, "windowed1", window).await;
    let w = spawn_worker(&h, &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(h.sched.now_ms() < opens as u64, "the test ran too slowly");
    assert!(
        !h.sim.stats().accounts.contains_key("windowed1"),
        "nothing submitted outside the window"
    );
    let a = h
        .sched
        .get_account(Provider::Suno, &Owner::Pool, "pool1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.resting,
        Some((opens as u64, "outside_active_window".to_string()))
    );
    for id in &ids {
        let r = h.wait_terminal("t_p", id, Duration::from_secs(20)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    }
    let wall_opens = opens - h.config.scheduler.clock_offset_ms;
    let first = h.sim.stats().submitted_ms["windowed1"][0] as i64;
    assert!(
        first >= wall_opens,
        "the first job went {} ms early",
        wall_opens - first
    );
    w.terminate(Duration::from_secs(10));
}
