//! Luma end to end: scheduler + worker + simulator on loopback, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, output};
use switchyard_scheduler::{Owner, StoredStatus};
use switchyard_worker_luma::Luma;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_luma_task_type_completes() {
    let h = Harness::new("luma_all").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::LumaQuota, 1000).await;
    h.account(
        Provider::Luma,
        &Owner::Pool,
        "pool1",
        "sim:ok:luma1",
        [10, 0, 0],
    )
    .await;
    let w = h.start_worker(Arc::new(Luma::new(&h.config)));
    let ppu = ServiceMode::Ppu;
    let img = format!("{}/_cdn/frame.jpg", h.sim.url());
    let text = h
        .submit(
            "t_p",
            ppu,
            "luma",
            "video_generation",
            json!({"prompt": "a cat surfing [sim:ms=200]"}),
        )
        .await;
    let frames = h
        .submit(
            "t_p",
            ppu,
            "luma",
            "video_generation",
            json!({"prompt": "from frames [sim:ms=100]", "key_frames": {
                "frame0": {"type": "image", "url": img}, "frame1": {"type": "image", "url": img}}}),
        )
        .await;
    let t = h.wait_terminal("t_p", &text, T).await;
    assert_eq!(t.status, StoredStatus::Completed, "{:?}", t);
    let out = output(&t);
    assert!(out["video"]["url"].as_str().unwrap().starts_with("http"));
    assert!(out["video_raw"]["url"].is_string() && out["thumbnail"]["url"].is_string());
    assert!(out["generation_id"].is_string());
    assert_eq!(
        h.wait_terminal("t_p", &frames, T).await.status,
        StoredStatus::Completed
    );
    // Extend and remove the watermark of the first video (follow-ups on its account).
    let ext = h
        .submit(
            "t_p",
            ppu,
            "luma",
            "extend_video",
            json!({"origin_task_id": text, "prompt": "and then [sim:ms=100]"}),
        )
        .await;
    let wm = h
        .submit(
            "t_p",
            ppu,
            "luma",
            "remove_watermark",
            json!({"origin_task_id": text}),
        )
        .await;
    let e = h.wait_terminal("t_p", &ext, T).await;
    assert_eq!(e.status, StoredStatus::Completed, "{:?}", e);
    assert_ne!(output(&e)["generation_id"], out["generation_id"]);
    let r = h.wait_terminal("t_p", &wm, T).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert!(
        output(&r)["video"]["url"]
            .as_str()
            .unwrap()
            .contains("nowatermark")
    );
    // 30 per video (three videos), remove watermark 0.
    let b = h.sched.balances("t_p").await.unwrap()[&QuotaKind::LumaQuota];
    assert_eq!((b.captured, b.held), (90, 0));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_video_is_failed_and_refunded() {
    let h = Harness::new("luma_fail").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::LumaQuota, 100).await;
    h.account(
        Provider::Luma,
        &Owner::Pool,
        "pool1",
        "sim:ok:luma2",
        [10, 0, 0],
    )
    .await;
    let w = h.start_worker(Arc::new(Luma::new(&h.config)));
    let id = h
        .submit(
            "t_d",
            ServiceMode::Ppu,
            "luma",
            "video_generation",
            json!({"prompt": "no [sim:fail] [sim:ms=50]"}),
        )
        .await;
    let r = h.wait_terminal("t_d", &id, T).await;
    assert_eq!(
        (r.status, r.error.as_ref().map(|e| e.code.as_str())),
        (StoredStatus::Failed, Some("upstream_rejected"))
    );
    assert!(r.error.as_ref().is_some_and(|e| !e.raw.is_empty()));
    let b = h.sched.balances("t_d").await.unwrap()[&QuotaKind::LumaQuota];
    assert_eq!(
        (b.available, b.held, b.captured),
        (250, 0, 0),
        "150 trial + 100, refunded"
    );
    w.stop().await;
}
