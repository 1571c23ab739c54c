//! Midjourney end to end: scheduler + worker + simulated Discord (REST and gateway
//! websocket) on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_core::{AccountState, Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, output};
use switchyard_scheduler::{Owner, StoredStatus};
use switchyard_worker_midjourney::Midjourney;

const T: Duration = Duration::from_secs(20);
const MJ: Provider = Provider::Midjourney;
/// A 1×1 PNG, base64.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_midjourney_task_type_completes() {
    let h = Harness::new("mj_all").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 10_000).await;
    h.account(MJ, &Owner::Pool, "pool1", "sim:ok:mj1", [10, 10, 10])
        .await;
    let w = h.start_worker(Arc::new(Midjourney::new(&h.config)));
    let ppu = ServiceMode::Ppu;
    let img = format!("{}/_cdn/in.png", h.sim.url());

    let imagine = h
        .submit("t_p", ppu, "midjourney", "imagine",
            json!({"prompt": "a red fox --v 6 [sim:ms=200]", "process_mode": "fast", "aspect_ratio": "16:9"}))
        .await;
    let grid = h.wait_terminal("t_p", &imagine, T).await;
    assert_eq!(grid.status, StoredStatus::Completed, "{:?}", grid);
    let out = output(&grid);
    assert!(out["image_url"].as_str().unwrap().starts_with("http"));
    // The four images of the grid, each where Midjourney's CDN keeps it under the job id.
    let split = out["image_urls"].as_array().unwrap();
    assert_eq!(split.len(), 4);
    assert_eq!(out["temporary_image_urls"], out["image_urls"]);
    let http = reqwest::Client::new();
    for (i, u) in split.iter().enumerate() {
        let u = u.as_str().unwrap();
        assert!(u.starts_with(&format!("{}/_mjcdn/", h.sim.url())), "{u}");
        assert!(u.ends_with(&format!("/0_{i}.png")), "{u}");
        assert_eq!(http.get(u).send().await.unwrap().status(), 200, "{u}");
    }
    let wrong = format!(
        "{}/_mjcdn/00000000-0000-4000-a000-000000000000/0_0.png",
        h.sim.url()
    );
    assert_eq!(http.get(&wrong).send().await.unwrap().status(), 404);
    let actions: Vec<&str> = out["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    for a in ["upscale1", "upscale4", "variation1", "reroll"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert_eq!(grid.progress, 100);

    // Follow-ups on the grid.
    let mut follow = Vec::new();
    for (tt, input) in [
        ("upscale", json!({"origin_task_id": imagine, "index": 1})),
        ("variation", json!({"origin_task_id": imagine, "index": 2})),
        ("reroll", json!({"origin_task_id": imagine})),
        ("seed", json!({"origin_task_id": imagine})),
    ] {
        follow.push((tt, h.submit("t_p", ppu, "midjourney", tt, input).await));
    }
    let mut upscaled = None;
    for (tt, id) in &follow {
        let r = h.wait_terminal("t_p", id, T).await;
        assert_eq!(r.status, StoredStatus::Completed, "{tt}: {:?}", r);
        assert_eq!(
            r.account.as_deref(),
            Some("pool1"),
            "follow-ups run on the origin's account"
        );
        if *tt == "seed" {
            assert!(output(&r)["seed"].is_u64(), "{}", r.output);
            assert!(output(&r).get("image_urls").is_none(), "{}", r.output);
        }
        if *tt == "upscale" {
            // One image, not four derived from it.
            let out = output(&r);
            assert_eq!(
                out["image_urls"],
                json!([out["image_url"].clone()]),
                "{out}"
            );
        }
        if *tt == "upscale" && upscaled.is_none() {
            upscaled = Some(r);
        }
    }
    // Actions on the upscaled image.
    let up = upscaled.unwrap();
    let up_actions = output(&up)["actions"].clone();
    assert!(
        up_actions
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "pan_left"),
        "{up_actions}"
    );
    let up_id = up.id.clone();
    for (tt, input) in [
        ("pan", json!({"origin_task_id": up_id, "direction": "left"})),
        (
            "outpaint",
            json!({"origin_task_id": up_id, "zoom_ratio": 2.0}),
        ),
        (
            "inpaint",
            json!({"origin_task_id": up_id, "mask": PNG_1X1, "prompt": "a hat"}),
        ),
        (
            "upscale",
            json!({"origin_task_id": up_id, "upscaler": "subtle"}),
        ),
    ] {
        let id = h.submit("t_p", ppu, "midjourney", tt, input).await;
        let r = h.wait_terminal("t_p", &id, T).await;
        assert_eq!(r.status, StoredStatus::Completed, "{tt}: {:?}", r);
    }
    // Fresh tasks that upload images.
    let describe = h
        .submit(
            "t_p",
            ppu,
            "midjourney",
            "describe",
            json!({"image_url": img}),
        )
        .await;
    let blend = h
        .submit(
            "t_p",
            ppu,
            "midjourney",
            "blend",
            json!({"image_urls": [img, img], "dimension": "square"}),
        )
        .await;
    // The image as a data: URL (what a client without a public host sends).
    let describe_data = h
        .submit(
            "t_p",
            ppu,
            "midjourney",
            "describe",
            json!({"image_url": format!("data:image/png;base64,{PNG_1X1}")}),
        )
        .await;
    let dd = h.wait_terminal("t_p", &describe_data, T).await;
    assert_eq!(dd.status, StoredStatus::Completed, "{:?}", dd);
    let d = h.wait_terminal("t_p", &describe, T).await;
    assert_eq!(d.status, StoredStatus::Completed, "{:?}", d);
    assert!(output(&d)["description"].as_str().unwrap().contains("1️⃣"));
    for f in ["image_url", "image_urls", "discord_image_url"] {
        assert!(
            output(&d).get(f).is_none(),
            "describe has no {f}: {}",
            d.output
        );
    }
    assert_eq!(
        h.wait_terminal("t_p", &blend, T).await.status,
        StoredStatus::Completed
    );
    let b = h.sched.balances("t_p").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!(b.held, 0);
    assert!(b.captured > 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_embeds_and_bad_tokens_drive_outcomes() {
    let h = Harness::new("mj_fail").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 10_000).await;
    let pool = Owner::Pool;
    h.account(MJ, &pool, "captcha", "sim:captcha:cap", [5, 5, 5])
        .await;
    h.account(MJ, &pool, "nofast", "sim:no_fast:nf", [0, 5, 0])
        .await;
    h.account(MJ, &pool, "banned", "sim:banned:ban", [5, 5, 5])
        .await;
    h.account(MJ, &pool, "good", "sim:ok:good", [5, 5, 5]).await;
    let w = h.start_worker(Arc::new(Midjourney::new(&h.config)));
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            h.submit(
                "t_p",
                ServiceMode::Ppu,
                "midjourney",
                "imagine",
                json!({"prompt": format!("fox {i} [sim:ms=100]"), "process_mode": "fast"}),
            )
            .await,
        );
    }
    let rejected = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "midjourney",
            "imagine",
            json!({"prompt": "forbidden [sim:fail] [sim:ms=40]", "process_mode": "fast"}),
        )
        .await;
    for id in &ids {
        let r = h.wait_terminal("t_p", id, T).await;
        assert_eq!(
            (r.status, r.account.as_deref()),
            (StoredStatus::Completed, Some("good")),
            "{:?}",
            r
        );
    }
    let r = h.wait_terminal("t_p", &rejected, T).await;
    assert_eq!(
        (r.status, r.error.as_ref().map(|e| e.code.as_str())),
        (StoredStatus::Failed, Some("upstream_rejected")),
        "{:?}",
        r
    );
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.raw.contains("Banned prompt"))
    );
    let accounts = h.sched.list_accounts(MJ, &pool).await.unwrap();
    let state = |id: &str| accounts.iter().find(|a| a.id == id).unwrap().state.clone();
    match state("captcha") {
        AccountState::Disabled { reason } => assert!(reason.contains("captcha"), "{reason}"),
        other => panic!("captcha account: {other:?}"),
    }
    match state("banned") {
        AccountState::Disabled { reason } => assert!(
            reason.contains("token") || reason.contains("unauthorized"),
            "{reason}"
        ),
        other => panic!("banned account: {other:?}"),
    }
    // Out of fast hours: still active (relax would go on), fast and turbo paused.
    let nofast = accounts.iter().find(|a| a.id == "nofast").unwrap();
    assert_eq!(nofast.state, AccountState::Active);
    assert!(nofast.fast_off_until_ms.is_some());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_discord_refused_is_sent_again_at_once_on_retry() {
    let h = Harness::new("mj_refused").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 10_000).await;
    // Every second command gets a 502: the first attempt is refused outright.
    h.account(MJ, &Owner::Pool, "flaky", "sim:flaky:fl", [5, 5, 5])
        .await;
    let w = h.start_worker(Arc::new(Midjourney::new(&h.config)));
    let id = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "midjourney",
            "imagine",
            json!({"prompt": "a moth [sim:ms=100] [sim:task=moth]", "process_mode": "fast"}),
        )
        .await;
    // Well inside the REPLY_WINDOW a resumed run waits for a reply to a command Discord
    // may have taken: this one it refused, so the retry sends at once.
    assert!(switchyard_worker_midjourney::REPLY_WINDOW >= Duration::from_secs(15));
    let r = h.wait_terminal("t_p", &id, Duration::from_secs(8)).await;
    w.stop().await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2);
    assert_eq!(h.sim.stats().tasks["moth"], 1);
}

/// Midjourney runs one job of this account at a time (its own limit, below what the
/// account is set to here): the second job is answered "Job queued" and starts by
/// itself when the first ends. The task waits for it on the same account: one upstream
/// job each, both completed there, Midjourney's limit never exceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_midjourney_queues_is_waited_for_on_its_account() {
    let h = Harness::new("mj_job_queued").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 10_000).await;
    // Midjourney allows this account 1 concurrent job; it is set to 2 here.
    h.account(MJ, &Owner::Pool, "solo", "sim:ok:solo:1", [0, 2, 0])
        .await;
    let w = h.start_worker(Arc::new(Midjourney::new(&h.config)));
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(
            h.submit(
                "t_p",
                ServiceMode::Ppu,
                "midjourney",
                "imagine",
                json!({"prompt": format!("a queued fox {i} [sim:ms=800] [sim:task=q{i}]"),
                       "process_mode": "fast"}),
            )
            .await,
        );
    }
    for id in &ids {
        let r = h.wait_terminal("t_p", id, T).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
        assert_eq!(r.account.as_deref(), Some("solo"), "{r:?}");
        assert_eq!(r.attempts, 1, "never retried: {r:?}");
    }
    let stats = h.sim.stats();
    assert_eq!(
        (stats.tasks["q0"], stats.tasks["q1"]),
        (1, 1),
        "one upstream job each"
    );
    assert_eq!(stats.accounts["solo"].max, 1, "Midjourney's limit held");
    assert_eq!(stats.accounts["solo"].refused, 0);
    assert_eq!(
        stats.accounts["solo"].queued, 1,
        "Midjourney queued the second job"
    );
    w.stop().await;
}
