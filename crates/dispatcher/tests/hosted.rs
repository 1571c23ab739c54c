//! Hosted results (API.md, "Results are hosted"): a task's result URLs point at copies
//! Switchyard stored — on a local directory and on an S3-protocol server — served without
//! an API key at signed links, and deleted (objects and links) when the retention ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Api;
use serde_json::{Value, json};
use switchyard_core::Plan;
use switchyard_core::config::StorageKind;
use switchyard_files::Files;
use switchyard_scheduler::TenantSettings;

/// Retention of the test tenant's tasks, in seconds.
const RETENTION_S: u64 = 4;

async fn get_bytes(url: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("a PNG");
    (img.width(), img.height())
}

/// A Premium tenant on the pool whose tasks are kept `RETENTION_S`.
async fn short_lived_tenant(api: &Api) -> (String, String) {
    let (tenant, key) = api.tenant("premium").await;
    let plans = &api.h.config.plans;
    let settings = TenantSettings {
        retention_s: RETENTION_S,
        ..TenantSettings::from_plan("premium", plans.get(Plan::Premium), 0)
    };
    api.h.sched.upsert_tenant(&tenant, &settings).await.unwrap();
    api.credit(&tenant, "mj_quota", 10_000).await;
    api.credit(&tenant, "luma_quota", 10_000).await;
    api.credit(&tenant, "suno_quota", 10_000).await;
    (tenant, key)
}

fn is_hosted_link(api: &Api, url: &Value, task: &str) -> bool {
    url.as_str()
        .is_some_and(|u| u.starts_with(&format!("{}/files/{task}/", api.url)) && u.contains("sig="))
}

async fn hosted_results_outlive_the_upstream_and_go_with_the_retention(mut api: Api) {
    api.run_workers();
    api.pool().await;
    // Discord's CDN links die before the task's results do.
    api.h.sim.set_cdn_link_ttl(2);
    let (_, key) = short_lived_tenant(&api).await;
    let client = api.client(&key);
    let mj = api
        .create_ok(
            &key,
            json!({"model": "midjourney", "task_type": "imagine",
        "input": {"prompt": "a red fox --ar 16:9", "process_mode": "fast"}}),
        )
        .await;
    let luma = api
        .create_ok(
            &key,
            json!({"model": "luma", "task_type": "video_generation",
        "input": {"prompt": "a slow pan over a harbour"}}),
        )
        .await;
    let suno = api
        .create_ok(
            &key,
            json!({"model": "suno", "task_type": "generate_music",
        "input": {"gpt_description_prompt": "a sea shanty"}}),
        )
        .await;
    let mut done = Vec::new();
    for id in [&mj, &luma, &suno] {
        let t = client.wait_task(id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(t["status"], "completed", "{t}");
        done.push(t);
    }
    let out = &done[0]["output"];
    assert!(
        out.get("hosted_files").is_none(),
        "internal field shown: {out}"
    );

    // The grid: a PNG of the grid's size, fetched with no key, the bytes the upstream
    // served.
    assert!(is_hosted_link(&api, &out["image_url"], &mj), "{out}");
    let (s, ct, grid) = get_bytes(out["image_url"].as_str().unwrap()).await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));
    assert_eq!(png_size(&grid), (512, 288), "16:9 grid");
    let (s, _, upstream) = get_bytes(out["discord_image_url"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    assert!(grid == upstream, "the hosted grid is the upstream's file");
    // Its four images: quadrants cut from it, in U1–U4 order.
    let grid_img = image::load_from_memory(&grid).unwrap().to_rgb8();
    let urls = out["image_urls"].as_array().unwrap();
    assert_eq!(urls.len(), 4, "{out}");
    for (i, u) in urls.iter().enumerate() {
        assert!(is_hosted_link(&api, u, &mj), "{u}");
        let (s, ct, bytes) = get_bytes(u.as_str().unwrap()).await;
        assert_eq!((s, ct.as_str()), (200, "image/png"));
        let part = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(part.dimensions(), (256, 144));
        let (x0, y0) = ((i as u32 % 2) * 256, (i as u32 / 2) * 144);
        assert!(
            part.enumerate_pixels()
                .all(|(x, y, p)| grid_img.get_pixel(x0 + x, y0 + y) == p),
            "image {i} is the grid's quadrant {i}"
        );
    }
    // The upstream's own links stay in temporary_image_urls.
    assert!(
        out["temporary_image_urls"][0]
            .as_str()
            .unwrap()
            .starts_with(&api.h.sim.url())
    );

    // Luma: the video is the bytes the upstream served; video_raw keeps Luma's link.
    let lo = &done[1]["output"];
    assert!(is_hosted_link(&api, &lo["video"]["url"], &luma), "{lo}");
    let (s, _, hosted_video) = get_bytes(lo["video"]["url"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    // The simulator serves Luma's video beside its raw one (`<id>.mp4`, `<id>_raw.mp4`).
    let raw = lo["video_raw"]["url"].as_str().unwrap();
    assert!(raw.starts_with(&api.h.sim.url()), "{lo}");
    let (s, _, served) = get_bytes(&raw.replace("_raw.mp4", ".mp4")).await;
    assert_eq!(s, 200);
    assert!(!served.is_empty());
    assert!(
        hosted_video == served,
        "the hosted video is the bytes the upstream served"
    );
    assert!(is_hosted_link(&api, &lo["thumbnail"]["url"], &luma), "{lo}");

    // Suno: each clip's audio and cover.
    let clips = done[2]["output"]["clips"].as_object().unwrap();
    assert!(!clips.is_empty());
    for c in clips.values() {
        assert!(is_hosted_link(&api, &c["audio_url"], &suno), "{c}");
        let (s, ct, _) = get_bytes(c["audio_url"].as_str().unwrap()).await;
        assert_eq!((s, ct.as_str()), (200, "audio/mpeg"));
        assert!(is_hosted_link(&api, &c["image_url"], &suno), "{c}");
    }

    // A link altered or unsigned is refused; the API key is not what opens it.
    let link = out["image_url"].as_str().unwrap().to_string();
    let forged = link.replace("image.png", "image_0.png");
    assert_eq!(get_bytes(&forged).await.0, 403);
    let unsigned = link.split('?').next().unwrap().to_string();
    assert_eq!(get_bytes(&unsigned).await.0, 403);

    // Discord's own link has expired by now; the hosted one has not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get_bytes(out["discord_image_url"].as_str().unwrap())
            .await
            .0,
        404
    );
    assert_eq!(get_bytes(&link).await.0, 200);

    // At the end of the retention: the links answer 404 and the objects are gone.
    let files = Files::open(&api.h.config.storage).unwrap().unwrap();
    assert!(!files.names(&mj).await.unwrap().is_empty());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut left = 0;
        for id in [&mj, &luma, &suno] {
            left += files.names(id).await.unwrap().len();
        }
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} hosted files still stored 20 s after the retention"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for u in [
        &link,
        urls[3].as_str().unwrap(),
        lo["video"]["url"].as_str().unwrap(),
    ] {
        let (s, _, body) = get_bytes(u).await;
        assert_eq!(s, 404, "{}", String::from_utf8_lossy(&body));
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_local_directory() {
    let api = Api::start("hosted_local").await;
    assert_eq!(api.h.config.storage.kind, StorageKind::Local);
    hosted_results_outlive_the_upstream_and_go_with_the_retention(api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_s3_server() {
    let s3 = switchyard_test_support::s3();
    let api = Api::start_with("hosted_s3", |c| {
        c.storage.kind = StorageKind::S3;
        c.storage.s3_endpoint = s3.endpoint.clone();
        c.storage.s3_bucket = s3.bucket.clone();
        c.storage.s3_prefix = c.redis.key_prefix.clone();
        c.storage.s3_region = "us-east-1".into();
        c.storage.s3_access_key_id = "test-key-id".into();
        c.storage.s3_secret_access_key = "test-secret-key".into();
        c.storage.s3_allow_http = true;
    })
    .await;
    hosted_results_outlive_the_upstream_and_go_with_the_retention(api).await;
}

/// With storage off, results keep the upstream's URLs (and no internal field shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_storage_off_results_keep_the_upstreams_links() {
    let mut api = Api::start_with("hosted_off", |c| c.storage.kind = StorageKind::Off).await;
    api.run_workers();
    api.pool().await;
    let (_, key) = short_lived_tenant(&api).await;
    let id = api
        .create_ok(
            &key,
            json!({"model": "luma", "task_type": "video_generation",
        "input": {"prompt": "a harbour"}}),
        )
        .await;
    let t = api
        .client(&key)
        .wait_task(&id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(t["status"], "completed", "{t}");
    let out = &t["output"];
    assert!(
        out["video"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&api.h.sim.url()),
        "{out}"
    );
    assert!(out.get("hosted_files").is_none());
    api.stop().await;
}

/// A result that cannot be downloaded (its upstream link already dead) never completes
/// the task with a dead link: each retry resumes the one upstream job (no second job is
/// made) and fails to host again, until the attempts are spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_cannot_be_hosted_fails_the_task_without_a_second_job() {
    let mut api = Api::start("hosted_dead_link").await;
    api.run_workers();
    api.pool().await;
    api.h.sim.set_cdn_link_ttl(0);
    let (_, key) = short_lived_tenant(&api).await;
    let id = api
        .create_ok(
            &key,
            json!({"model": "midjourney", "task_type": "imagine",
        "input": {"prompt": "a fox [sim:task=deadlink] [sim:ms=50]", "process_mode": "fast"}}),
        )
        .await;
    let t = api
        .client(&key)
        .wait_task(&id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["reason"], "retries_exhausted", "{t}");
    assert!(
        t["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not download the result"),
        "{t}"
    );
    assert_eq!(
        api.h.sim.stats().tasks.get("deadlink"),
        Some(&1),
        "one upstream job"
    );
    api.stop().await;
}
