//! Suno end to end: scheduler + worker + simulator on loopback, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_core::{AccountState, Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, output};
use switchyard_scheduler::{Owner, StoredStatus};
use switchyard_worker_suno::Suno;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suno_task_type_completes() {
    let h = Harness::new("suno_all").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::SunoQuota, 1000).await;
    h.account(
        Provider::Suno,
        &Owner::Pool,
        "pool1",
        "sim:ok:suno1",
        [10, 0, 0],
    )
    .await;
    let w = h.start_worker(Arc::new(Suno::new(&h.config)));
    let ppu = ServiceMode::Ppu;

    let generated = h
        .submit(
            "t_d",
            ppu,
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "a sea shanty [sim:ms=200]"}),
        )
        .await;
    let custom = h
        .submit(
            "t_d",
            ppu,
            "suno",
            "generate_music_custom",
            json!({"prompt": "[Verse] la la [sim:ms=100]", "title": "La", "tags": "pop"}),
        )
        .await;
    let lyrics = h
        .submit("t_d", ppu, "suno", "lyrics", json!({"prompt": "the sea"}))
        .await;
    let upload = h
        .submit(
            "t_d",
            ppu,
            "suno",
            "upload",
            json!({"audio_url": format!("{}/_cdn/a.mp3", h.sim.url())}),
        )
        .await;
    for id in [&generated, &custom] {
        let r = h.wait_terminal("t_d", id, T).await;
        assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
        let out = output(&r);
        let clips = out["clips"].as_object().unwrap().values();
        assert_eq!(clips.len(), 2, "two clips per generation");
        for c in clips {
            assert!(c["audio_url"].as_str().unwrap().starts_with("http"));
            assert!(c["video_url"].as_str().unwrap().starts_with("http"));
            assert!(c["id"].is_string() && c["title"].is_string());
        }
    }
    // A continue of the first clip.
    let first = output(&h.wait_terminal("t_d", &generated, T).await)["clips"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["id"]
        .clone();
    let cont = h
        .submit(
            "t_d",
            ppu,
            "suno",
            "generate_music_custom",
            json!({"prompt": "more [sim:ms=100]", "continue_clip_id": first, "continue_at": 30}),
        )
        .await;
    let continued = h.wait_terminal("t_d", &cont, T).await;
    assert_eq!(continued.status, StoredStatus::Completed);
    // The whole song of the continued clip: one new clip.
    let last = output(&continued)["clips"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let concat = h
        .submit("t_d", ppu, "suno", "concat", json!({"clip_id": last}))
        .await;
    let c = h.wait_terminal("t_d", &concat, T).await;
    assert_eq!(c.status, StoredStatus::Completed, "{c:?}");
    let clips = output(&c)["clips"].as_object().unwrap().clone();
    assert_eq!(clips.len(), 1, "{clips:?}");
    let whole = clips.values().next().unwrap();
    assert_eq!(whole["metadata"]["type"], "concat");
    assert!(whole["audio_url"].as_str().unwrap().starts_with("http"));
    // A clip Suno does not know for this account is refused upstream.
    let unknown = h
        .submit(
            "t_d",
            ppu,
            "suno",
            "concat",
            json!({"clip_id": "sjob999999-a"}),
        )
        .await;
    let r = h.wait_terminal("t_d", &unknown, T).await;
    assert_eq!(
        (r.status, r.error.as_ref().map(|e| e.code.as_str())),
        (StoredStatus::Failed, Some("upstream_rejected")),
        "{r:?}"
    );
    let l = h.wait_terminal("t_d", &lyrics, T).await;
    assert!(output(&l)["text"].as_str().unwrap().contains("the sea"));
    let u = h.wait_terminal("t_d", &upload, T).await;
    assert!(output(&u)["clip_id"].is_string());
    // Charged once each: 10 + 10 + 10 (continue) + 0 (lyrics) + 1 (upload) + 0 (concat).
    let b = h.sched.balances("t_d").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((b.captured, b.held), (31, 0));
    // The witness saw one submission per task (the refused concat is not one).
    assert_eq!(h.sim.stats().accounts["suno1"].submissions, 6);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_kinds_cool_disable_retry_and_reject() {
    let h = Harness::new("suno_fail").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::SunoQuota, 1000).await;
    let pool = Owner::Pool;
    h.account(
        Provider::Suno,
        &pool,
        "limited",
        "sim:ratelimited:lim",
        [5, 0, 0],
    )
    .await;
    h.account(Provider::Suno, &pool, "banned", "sim:banned:ban", [5, 0, 0])
        .await;
    h.account(Provider::Suno, &pool, "flaky", "sim:flaky:flk", [5, 0, 0])
        .await;
    h.account(Provider::Suno, &pool, "good", "sim:ok:good", [5, 0, 0])
        .await;
    let w = h.start_worker(Arc::new(Suno::new(&h.config)));
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            h.submit(
                "t_d",
                ServiceMode::Ppu,
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("song {i} [sim:ms=100]")}),
            )
            .await,
        );
    }
    let rejected = h
        .submit(
            "t_d",
            ServiceMode::Ppu,
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "bad [sim:fail] [sim:ms=50]"}),
        )
        .await;
    for id in &ids {
        let r = h.wait_terminal("t_d", id, T).await;
        assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
        assert!(
            matches!(r.account.as_deref(), Some("flaky" | "good")),
            "ran on {:?}",
            r.account
        );
    }
    let r = h.wait_terminal("t_d", &rejected, T).await;
    assert_eq!(
        (r.status, r.error.as_ref().map(|e| e.code.as_str())),
        (StoredStatus::Failed, Some("upstream_rejected"))
    );
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.raw.contains("Banned prompt")),
        "{:?}",
        r
    );
    assert_eq!(r.consume, 0);
    let accounts = h.sched.list_accounts(Provider::Suno, &pool).await.unwrap();
    let state = |id: &str| accounts.iter().find(|a| a.id == id).unwrap().state.clone();
    assert!(matches!(state("limited"), AccountState::CoolingDown { .. }));
    match state("banned") {
        AccountState::Disabled { reason } => assert!(reason.contains("unauthorized"), "{reason}"),
        other => panic!("banned account is {other:?}"),
    }
    assert_eq!(state("flaky"), AccountState::Active);
    // The flaky account's 5xx was retried: it refused some and ran some.
    let stats = h.sim.stats();
    assert!(stats.accounts["flk"].refused > 0);
    // An account event names the ban.
    let base = h.sched.bases(Provider::Suno).remove(0);
    let events = h.sched.read_events(&base, "0", 1000, 0).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "account"
        && e.fields["account"] == "banned"
        && e.fields["state"] == "disabled"));
    let b = h.sched.balances("t_d").await.unwrap()[&QuotaKind::SunoQuota];
    assert_eq!((b.captured, b.held, b.refunded), (60, 0, 10));
    w.stop().await;
}
