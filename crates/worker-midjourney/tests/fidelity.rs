//! Midjourney as it really is, against a simulator as strict as Discord: buttons exist
//! only as the result shows them (per model version), Custom Zoom and Vary (Region) go
//! through their modals, the seed comes by ✉️ reaction and direct message, commands are
//! read from the command index and read again when Midjourney publishes new versions,
//! interactions name the gateway session from READY.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, output};
use switchyard_scheduler::{Owner, StoredStatus, TaskRecord};
use switchyard_worker_midjourney::Midjourney;

const T: Duration = Duration::from_secs(20);
const PPU: ServiceMode = ServiceMode::Ppu;

async fn setup(name: &str) -> (Harness, switchyard_harness::RunningWorker) {
    let h = Harness::new(name).await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 100_000).await;
    h.account(
        Provider::Midjourney,
        &Owner::Pool,
        "pool1",
        "sim:ok:mjf",
        [10, 10, 10],
    )
    .await;
    let w = h.start_worker(Arc::new(Midjourney::new(&h.config)));
    (h, w)
}

async fn run(h: &Harness, task_type: &str, input: Value) -> TaskRecord {
    let id = h.submit("t_p", PPU, "midjourney", task_type, input).await;
    h.wait_terminal("t_p", &id, T).await
}

async fn done(h: &Harness, task_type: &str, input: Value) -> TaskRecord {
    let r = run(h, task_type, input.clone()).await;
    assert_eq!(
        r.status,
        StoredStatus::Completed,
        "{task_type} {input}: {r:?}"
    );
    r
}

/// An upscaled image of a fresh grid of `prompt`.
async fn upscaled(h: &Harness, prompt: &str) -> TaskRecord {
    let grid = done(
        h,
        "imagine",
        json!({"prompt": prompt, "process_mode": "fast"}),
    )
    .await;
    done(h, "upscale", json!({"origin_task_id": grid.id, "index": 2})).await
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::GrayImage::from_fn(w, h, |x, _| image::Luma([if x < w / 2 { 255 } else { 0 }]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_zoom_and_vary_region_go_through_their_modals() {
    let (h, w) = setup("mj_modals").await;
    let up = upscaled(&h, "a lighthouse [sim:ms=100]").await;
    // Zoom Out 2x is a button: no modal.
    done(
        &h,
        "outpaint",
        json!({"origin_task_id": up.id, "zoom_ratio": 2}),
    )
    .await;
    assert!(h.sim.modal_submissions().is_empty());
    assert!(
        h.sim
            .pressed_buttons()
            .iter()
            .any(|b| b.starts_with("MJ::Outpaint::50::"))
    );
    // 1.7 is Custom Zoom: its modal, submitted with the prompt and the ratio.
    done(
        &h,
        "outpaint",
        json!({"origin_task_id": up.id, "zoom_ratio": "1.7"}),
    )
    .await;
    // A new prompt at 2x goes through the modal too.
    done(
        &h,
        "outpaint",
        json!({"origin_task_id": up.id, "zoom_ratio": 2, "prompt": "a wider sea"}),
    )
    .await;
    let subs = h.sim.modal_submissions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(
        (subs[0].kind.as_str(), subs[0].zoom),
        ("custom_zoom", Some(1.7))
    );
    assert!(subs[0].prompt.starts_with("a lighthouse"), "{:?}", subs[0]);
    assert_eq!(subs[0].prompt.matches("--zoom").count(), 1, "{:?}", subs[0]);
    assert_eq!(
        (subs[1].zoom, subs[1].prompt.starts_with("a wider sea")),
        (Some(2.0), true)
    );

    // Vary (Region): the mask and the prompt reach the editor.
    let mask = png(16, 8);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&mask);
    let r = done(
        &h,
        "inpaint",
        json!({"origin_task_id": up.id, "mask": b64, "prompt": "a red boat"}),
    )
    .await;
    assert_eq!(
        output(&r)["image_urls"].as_array().map(Vec::len),
        Some(4),
        "a grid"
    );
    // As a data: URL too, and as a link to the file.
    done(
        &h,
        "inpaint",
        json!({"origin_task_id": up.id,
        "mask": format!("data:image/png;base64,{b64}"), "prompt": "a gull"}),
    )
    .await;
    let subs: Vec<_> = h
        .sim
        .modal_submissions()
        .into_iter()
        .filter(|s| s.kind == "vary_region")
        .collect();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].prompt, "a red boat");
    assert!(subs[0].mask == mask, "the mask as sent");
    assert!(subs[1].mask == mask && subs[1].prompt == "a gull");
    // A mask that is no image is refused by the editor: the task fails, nothing runs.
    let bad = run(
        &h,
        "inpaint",
        json!({"origin_task_id": up.id, "mask": "bm90IGFuIGltYWdl", "prompt": "x"}),
    )
    .await;
    assert_eq!(bad.status, StoredStatus::Failed, "{bad:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upscaler_presses_its_versions_button() {
    let (h, w) = setup("mj_upscalers").await;
    for (prompt, good, bad) in [
        (
            "a fox --v 4 [sim:ms=50]",
            [("light", "upsample_light"), ("beta", "upsample_beta")],
            ["2x", "subtle"],
        ),
        (
            "a fox --v 5.2 [sim:ms=50]",
            [("2x", "upsample_v5_2x"), ("4x", "upsample_v5_4x")],
            ["subtle", "creative"],
        ),
        (
            "a fox --niji 5 [sim:ms=50]",
            [("2x", "upsample_v5_2x"), ("4x", "upsample_v5_4x")],
            ["subtle", "creative"],
        ),
        (
            "a fox --v 6 [sim:ms=50]",
            [
                ("subtle", "upsample_v6_2x_subtle"),
                ("creative", "upsample_v6_2x_creative"),
            ],
            ["2x", "4x"],
        ),
        (
            "a fox --v 6.1 [sim:ms=50]",
            [
                ("subtle", "upsample_v6r1_2x_subtle"),
                ("creative", "upsample_v6r1_2x_creative"),
            ],
            ["2x", "4x"],
        ),
        (
            "a fox [sim:ms=50]",
            [
                ("subtle", "upsample_v6_2x_subtle"),
                ("creative", "upsample_v6_2x_creative"),
            ],
            ["2x", "light"],
        ),
    ] {
        let up = upscaled(&h, prompt).await;
        for (upscaler, button) in good {
            let before = h.sim.pressed_buttons().len();
            let r = done(
                &h,
                "upscale",
                json!({"origin_task_id": up.id, "upscaler": upscaler}),
            )
            .await;
            let pressed = h.sim.pressed_buttons();
            assert_eq!(pressed.len(), before + 1);
            assert!(
                pressed[before].starts_with(&format!("MJ::JOB::{button}::1::")),
                "{prompt} {upscaler}: pressed {}",
                pressed[before]
            );
            assert_eq!(output(&r)["image_urls"].as_array().map(Vec::len), Some(1));
        }
        for upscaler in bad {
            let before = h.sim.pressed_buttons().len();
            let r = run(
                &h,
                "upscale",
                json!({"origin_task_id": up.id, "upscaler": upscaler}),
            )
            .await;
            assert_eq!(r.status, StoredStatus::Failed, "{prompt} {upscaler}: {r:?}");
            let e = r.error.unwrap();
            assert_eq!(e.code, "upstream_rejected");
            assert!(e.message.contains("has no Upscale"), "{}", e.message);
            assert_eq!(h.sim.pressed_buttons().len(), before, "nothing pressed");
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_comes_by_reaction_and_direct_message() {
    let (h, w) = setup("mj_seed").await;
    let grid = done(
        &h,
        "imagine",
        json!({"prompt": "a kite [sim:ms=50]", "process_mode": "fast"}),
    )
    .await;
    let a = done(&h, "seed", json!({"origin_task_id": grid.id})).await;
    let seed = output(&a)["seed"].as_u64().expect("a seed");
    assert_eq!(output(&a)["job_id"], output(&grid)["job_id"]);
    assert!(output(&a).get("image_url").is_none());
    // Asked again: the reaction is taken off and put back, and the same seed comes.
    let b = done(&h, "seed", json!({"origin_task_id": grid.id})).await;
    assert_eq!(output(&b)["seed"].as_u64(), Some(seed));
    // No button was pressed for it: Midjourney has none.
    assert!(h.sim.pressed_buttons().iter().all(|b| !b.contains("seed")));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outdated_command_is_read_again_and_sent_once() {
    let (h, w) = setup("mj_commands").await;
    done(
        &h,
        "imagine",
        json!({"prompt": "a cat [sim:ms=50] [sim:task=c1]", "process_mode": "fast"}),
    )
    .await;
    h.sim.bump_command_versions();
    done(
        &h,
        "imagine",
        json!({"prompt": "a dog [sim:ms=50] [sim:task=c2]", "process_mode": "fast"}),
    )
    .await;
    let stats = h.sim.stats();
    assert_eq!((stats.tasks["c1"], stats.tasks["c2"]), (1, 1));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remix_prompts_go_through_the_remix_modal() {
    let h = Harness::new("mj_remix").await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 100_000).await;
    // An account in Remix mode: variations, rerolls and pans open a prompt modal.
    h.account(
        Provider::Midjourney,
        &Owner::Pool,
        "remix1",
        "sim:remix:mjr",
        [10, 10, 10],
    )
    .await;
    let w = h.start_worker(Arc::new(Midjourney::new(&h.config)));
    let grid = done(
        &h,
        "imagine",
        json!({"prompt": "a cat [sim:ms=50]", "process_mode": "fast"}),
    )
    .await;
    done(
        &h,
        "variation",
        json!({"origin_task_id": grid.id, "index": "1",
        "prompt": "angry cat wearing a hat", "aspect_ratio": "16:9"}),
    )
    .await;
    // No prompt: the modal's own (the origin's) is submitted.
    done(&h, "reroll", json!({"origin_task_id": grid.id})).await;
    let up = done(
        &h,
        "upscale",
        json!({"origin_task_id": grid.id, "index": 1}),
    )
    .await;
    done(
        &h,
        "pan",
        json!({"origin_task_id": up.id, "direction": "left", "prompt": "a cat by the sea"}),
    )
    .await;
    let subs: Vec<_> = h
        .sim
        .modal_submissions()
        .into_iter()
        .filter(|s| s.kind == "remix")
        .collect();
    let prompts: Vec<&str> = subs.iter().map(|s| s.prompt.as_str()).collect();
    assert_eq!(prompts.len(), 3, "{prompts:?}");
    assert_eq!(prompts[0], "angry cat wearing a hat --ar 16:9");
    assert!(prompts[1].starts_with("a cat"), "{prompts:?}");
    assert_eq!(prompts[2], "a cat by the sea");
    w.stop().await;
}
