//! GoAPI's and PiAPI's documented request bodies (`testdata/goapi-examples/`), posted as
//! they are: placeholder ids are replaced by real tasks of the right type made here,
//! nothing else is changed. Bodies for a served model are accepted and run; `music-u`
//! (a model Switchyard does not serve) is refused with `unknown_model`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Api;
use reqwest::Method;
use serde_json::{Value, json};

/// Whether the worker must download something from the internet to run this body (an
/// image to describe, a key frame): out of reach here, so such bodies are checked up to
/// their acceptance.
fn fetches_from_the_internet(body: &Value) -> bool {
    let input = &body["input"];
    input.get("image_url").is_some()
        || input.get("start_image").is_some()
        || input["key_frames"]["frame0"]["url"].is_string()
}

#[tokio::test]
async fn every_documented_body_is_accepted_as_it_is_and_runs() {
    let mut api = Api::start("goapi-examples").await;
    api.run_workers();
    api.pool().await;
    let (tenant, key) = api.tenant("premium").await;
    for kind in ["mj_quota", "suno_quota", "luma_quota"] {
        api.credit(&tenant, kind, 1_000_000).await;
    }
    // The Luma create-task example asks for the tenant's own accounts ("private").
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::POST,
            "/api/v1/accounts",
            Some(
                &json!({"provider": "luma", "name": "mine",
                        "credentials": {"cookie": "sim:ok:own-luma-cookie-0001"}, "concurrency": 2})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let client = api.client(&key);
    // The task the follow-up examples act on: a finished Midjourney grid.
    let grid = client
        .create_task("midjourney", "imagine", json!({"prompt": "a grid"}), None)
        .await
        .unwrap();
    let grid_id = grid["task_id"].as_str().unwrap().to_string();
    let done = client
        .wait_task(&grid_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");

    let mut runs = Vec::new();
    for (name, mut body) in switchyard_test_support::goapi_create_bodies() {
        if body["input"].get("origin_task_id").is_some() {
            body["input"]["origin_task_id"] = json!(grid_id);
        }
        let (s, _, v) = api
            .raw(
                Some(&key),
                Method::POST,
                "/api/v1/task",
                Some(&body.to_string()),
            )
            .await;
        if body["model"] == "music-u" {
            assert_eq!(s, 400, "{name}: {v}");
            assert_eq!(v["data"]["error"]["reason"], "unknown_model", "{name}: {v}");
            assert!(
                v["message"].as_str().unwrap().contains("suno"),
                "{name}: {v}"
            );
            continue;
        }
        assert_eq!(s, 200, "{name}: {v}");
        let task = &v["data"];
        assert_eq!(
            task["model"], body["model"],
            "{name}: the model is shown as sent"
        );
        assert_eq!(task["task_type"], body["task_type"], "{name}");
        assert_eq!(
            task["input"], body["input"],
            "{name}: the input is shown as sent"
        );
        runs.push((name, body, task["task_id"].as_str().unwrap().to_string()));
    }
    assert!(runs.len() >= 13, "{}", runs.len());
    for (name, body, id) in runs {
        if fetches_from_the_internet(&body) {
            continue;
        }
        let t = client
            .wait_task(&id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(t["status"], "completed", "{name}: {t}");
    }
    api.stop().await;
}
