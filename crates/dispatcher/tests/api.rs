//! The HTTP API against a running dispatcher, real workers and the simulator on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Api, Receiver};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const T: Duration = Duration::from_secs(30);

/// (key, body, status, error code, field).
type BadCase<'a> = (Option<&'a str>, String, u16, &'a str, Option<&'a str>);

fn verify(secret: &str, headers: &axum::http::HeaderMap) -> bool {
    let sig = headers["x-switchyard-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t = t.trim_start_matches("t=");
    let body = headers["x-raw-body"].as_bytes();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_task_type_round_trips_with_signed_webhooks() {
    let mut api = Api::start("api_round").await;
    api.pool().await;
    api.run_workers();
    let (tenant, key) = api.tenant("premium").await;
    for kind in ["mj_quota", "suno_quota", "luma_quota", "gpts_quota"] {
        api.credit(&tenant, kind, 100_000).await;
    }
    let hook = Receiver::start(0).await;
    let secret = "whsec-round-trip-secret";
    let cfg = json!({"service_mode": "public", "webhook_config": {"endpoint": hook.url, "secret": secret}});
    let c = api.client(&key);
    let cdn = format!("{}/_cdn/x.png", api.h.sim.url());
    let run = |model: &'static str, tt: &'static str, input: Value| {
        let (c, cfg) = (c.clone(), cfg.clone());
        async move {
            let t = c
                .create_task(model, tt, input, Some(cfg))
                .await
                .unwrap_or_else(|e| panic!("{model}/{tt}: {e}"));
            // A fast task may already be done when the create reply is rendered.
            assert!(
                matches!(
                    t["status"].as_str(),
                    Some("pending" | "staged" | "processing" | "completed")
                ),
                "{t}"
            );
            let id = t["task_id"].as_str().unwrap().to_string();
            let done = c.wait_task(&id, T).await.unwrap();
            assert_eq!(done["status"], "completed", "{model}/{tt}: {done}");
            done
        }
    };
    let grid = run(
        "midjourney",
        "imagine",
        json!({"prompt": "a red fox --v 6 [sim:ms=300]", "process_mode": "fast"}),
    )
    .await;
    let gid = grid["task_id"].as_str().unwrap();
    assert_eq!(grid["output"]["image_urls"].as_array().unwrap().len(), 4);
    assert_eq!(
        grid["meta"]["usage"],
        json!({"type": "mj_quota", "frozen": 14, "consume": 14})
    );
    assert_eq!(grid["meta"]["is_using_private_pool"], false);
    let up = run(
        "midjourney",
        "upscale",
        json!({"origin_task_id": gid, "index": 1}),
    )
    .await;
    assert_eq!(
        up["meta"]["usage"]["consume"], 2,
        "turbo/fast/relax U1 = 2 quotas, inherited fast"
    );
    let uid = up["task_id"].as_str().unwrap();
    for (tt, input) in [
        ("variation", json!({"origin_task_id": gid, "index": 2})),
        ("reroll", json!({"origin_task_id": gid})),
        ("seed", json!({"origin_task_id": gid})),
        ("pan", json!({"origin_task_id": uid, "direction": "up"})),
        (
            "outpaint",
            json!({"origin_task_id": uid, "zoom_ratio": 1.5}),
        ),
        (
            "inpaint",
            // A 1×1 PNG: the region editor takes images only.
            json!({"origin_task_id": uid, "mask": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "prompt": "a hat"}),
        ),
        ("describe", json!({"image_url": cdn})),
        ("blend", json!({"image_urls": [cdn, cdn]})),
    ] {
        run("midjourney", tt, input).await;
    }
    let song = run(
        "suno",
        "generate_music",
        json!({"gpt_description_prompt": "sea shanty [sim:ms=100]"}),
    )
    .await;
    assert_eq!(song["output"]["clips"].as_object().unwrap().len(), 2);
    let clip = song["output"]["clips"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["id"]
        .clone();
    run(
        "suno",
        "generate_music_custom",
        json!({"prompt": "la [sim:ms=50]", "continue_clip_id": clip, "continue_at": 10}),
    )
    .await;
    assert!(
        run("suno", "lyrics", json!({"prompt": "the sea"})).await["output"]["text"].is_string()
    );
    run("suno", "upload", json!({"audio_url": cdn})).await;
    let video = run(
        "luma",
        "video_generation",
        json!({"prompt": "surfing cat [sim:ms=100]"}),
    )
    .await;
    assert!(video["output"]["video"]["url"].is_string());
    let vid = video["task_id"].as_str().unwrap();
    run(
        "luma",
        "extend_video",
        json!({"origin_task_id": vid, "prompt": "more [sim:ms=50]"}),
    )
    .await;
    run("luma", "remove_watermark", json!({"origin_task_id": vid})).await;
    let conv = run(
        "gpts",
        "create_conversation",
        json!({"gizmo_id": "g-abc", "message": "hi [sim:ms=50]"}),
    )
    .await;
    assert!(
        conv["output"]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hi")
    );
    let cid = conv["output"]["conversation_id"].clone();
    run(
        "gpts",
        "continue_conversation",
        json!({"conversation_id": cid, "message": "more"}),
    )
    .await;
    // A file and a GPT are seen only by the account that made them: download and modify
    // what this tenant's tasks made.
    let up = run("gpts", "upload_file", json!({"file_url": cdn})).await;
    let file_id = up["output"]["file_id"].clone();
    run("gpts", "download_file", json!({"file_id": file_id})).await;
    let made = run("gpts", "create_gpts", json!({"name": "Helper"})).await;
    let gizmo = made["output"]["gizmo_id"].clone();
    for (tt, input) in [
        (
            "modify_gpts",
            json!({"gizmo_id": gizmo, "name": "Helper 2"}),
        ),
        ("models", json!({})),
        ("gizmos", json!({})),
    ] {
        run("gpts", tt, input).await;
    }
    // Webhooks: created and completed for the grid, signed, secret echoed for GoAPI clients.
    hook.wait_for(gid, "task.completed", T).await;
    let got = hook.got.lock().unwrap().clone();
    let mine: Vec<_> = got
        .iter()
        .filter(|(_, v, _)| v["data"]["task_id"] == gid)
        .collect();
    let events: Vec<&str> = mine
        .iter()
        .filter_map(|(_, v, _)| v["event"].as_str())
        .collect();
    assert_eq!(events.first(), Some(&"task.created"));
    assert_eq!(events.last(), Some(&"task.completed"));
    for (h, v, _) in &mine {
        assert_eq!(h["x-webhook-secret"], secret);
        assert!(verify(secret, h), "bad signature");
        assert!(v["timestamp"].is_u64());
        assert!(
            v["data"]["config"]["webhook_config"]["secret"] == "",
            "secret echoed"
        );
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_stable_codes_and_change_nothing() {
    let api = Api::start_with("api_bad", |c| c.dispatcher.body_limit_bytes = 8192).await;
    let (tenant, key) = api.tenant("hobbyist").await;
    api.credit(&tenant, "mj_quota", 5).await;
    let before = api.client(&key).me().await.unwrap();
    let long = "x".repeat(6001);
    let big = format!(
        "{{\"model\":\"midjourney\",\"task_type\":\"imagine\",\"input\":{{\"prompt\":\"{}\"}}}}",
        "y".repeat(9000)
    );
    let imagine = |input: Value| {
        json!({"model": "midjourney", "task_type": "imagine", "input": input}).to_string()
    };
    let cases: Vec<BadCase> = vec![
        (None, imagine(json!({"prompt": "x"})), 401, "unauthorized", None),
        (Some("sy_wrong"), imagine(json!({"prompt": "x"})), 401, "unauthorized", None),
        (Some(&key), big, 413, "payload_too_large", None),
        (Some(&key), "{not json".into(), 400, "invalid_request", Some("/body")),
        (Some(&key), "[1,2]".into(), 400, "invalid_request", Some("")),
        (Some(&key), json!({"model": "kling", "task_type": "video", "input": {}}).to_string(), 400, "unknown_model", Some("/model")),
        (Some(&key), json!({"model": "suno", "task_type": "imagine", "input": {}}).to_string(), 400, "unknown_task_type", Some("/task_type")),
        (Some(&key), json!({"task_type": "imagine", "input": {}}).to_string(), 400, "invalid_request", Some("/model")),
        (Some(&key), json!({"model": 5, "task_type": "imagine"}).to_string(), 400, "invalid_request", Some("/model")),
        (Some(&key), json!({"model": "midjourney", "input": {}}).to_string(), 400, "invalid_request", Some("/task_type")),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}, "extra": 1}).to_string(), 400, "invalid_request", Some("/extra")),
        (Some(&key), imagine(json!({})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": ""})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": "   "})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": long})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": 7})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": "x", "colour": "red"})), 400, "invalid_request", Some("/input/colour")),
        (Some(&key), imagine(json!({"prompt": "x", "process_mode": "warp"})), 400, "invalid_request", Some("/input/process_mode")),
        (Some(&key), imagine(json!({"prompt": "x --fast", "process_mode": "relax"})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": "x --v"})), 400, "invalid_request", Some("/input/prompt")),
        (Some(&key), imagine(json!({"prompt": "x", "aspect_ratio": "wide"})), 400, "invalid_request", Some("/input/aspect_ratio")),
        (Some(&key), json!({"model": "midjourney", "task_type": "upscale", "input": {"origin_task_id": "t", "index": 5}}).to_string(), 400, "invalid_request", Some("/input/index")),
        (Some(&key), json!({"model": "midjourney", "task_type": "upscale", "input": {"origin_task_id": "t", "index": "7"}}).to_string(), 400, "invalid_request", Some("/input/index")),
        (Some(&key), json!({"model": "midjourney", "task_type": "variation", "input": {"origin_task_id": "t", "index": 0}}).to_string(), 400, "invalid_request", Some("/input/index")),
        (Some(&key), json!({"model": "midjourney", "task_type": "blend", "input": {"image_urls": ["https://a.com/1"]}}).to_string(), 400, "invalid_request", Some("/input/image_urls")),
        (Some(&key), json!({"model": "midjourney", "task_type": "blend", "input": {"image_urls": ["https://a.com/1","https://a.com/2","https://a.com/3","https://a.com/4","https://a.com/5","https://a.com/6"]}}).to_string(), 400, "invalid_request", Some("/input/image_urls")),
        (Some(&key), json!({"model": "midjourney", "task_type": "describe", "input": {"image_url": "javascript:alert(1)"}}).to_string(), 400, "invalid_request", Some("/input/image_url")),
        (Some(&key), json!({"model": "midjourney", "task_type": "pan", "input": {"origin_task_id": "t", "direction": "north"}}).to_string(), 400, "invalid_request", Some("/input/direction")),
        (Some(&key), json!({"model": "midjourney", "task_type": "outpaint", "input": {"origin_task_id": "t", "zoom_ratio": 9}}).to_string(), 400, "invalid_request", Some("/input/zoom_ratio")),
        (Some(&key), json!({"model": "suno", "task_type": "upload", "input": {"audio_url": "file:///etc/passwd"}}).to_string(), 400, "invalid_request", Some("/input/audio_url")),
        (Some(&key), json!({"model": "suno", "task_type": "generate_music", "input": {}}).to_string(), 400, "invalid_request", Some("/input/gpt_description_prompt")),
        (Some(&key), json!({"model": "luma", "task_type": "extend_video", "input": {}}).to_string(), 400, "invalid_request", Some("/input/origin_task_id")),
        (Some(&key), json!({"model": "gpts", "task_type": "create_conversation", "input": {"message": "x", "gizmo_id": "abc"}}).to_string(), 400, "invalid_request", Some("/input/gizmo_id")),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}, "config": {"service_mode": "shared"}}).to_string(), 400, "invalid_request", Some("/config/service_mode")),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}, "config": {"webhook_config": {"endpoint": "ftp://x.com/h"}}}).to_string(), 400, "invalid_request", Some("/config/webhook_config/endpoint")),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}, "config": {"webhook_config": {"endpoint": "https://x.com", "retries": 3}}}).to_string(), 400, "invalid_request", Some("/config/webhook_config/retries")),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}, "config": {"priority": 1}}).to_string(), 400, "invalid_request", Some("/config/priority")),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x", "bot_id": "acc_1"}, "config": {"service_mode": "public"}}).to_string(), 400, "invalid_request", Some("/input/bot_id")),
        (Some(&key), json!({"model": "suno", "task_type": "lyrics", "input": {"prompt": "x"}}).to_string(), 403, "not_entitled", None),
        (Some(&key), json!({"model": "gpts", "task_type": "create_conversation", "input": {"message": "hi"}}).to_string(), 403, "not_entitled", None),
        (Some(&key), json!({"model": "luma", "task_type": "video_generation", "input": {"prompt": "p", "key_frames": {"frame0": {"type": "image", "url": "https://x.com/a.png"}}}}).to_string(), 403, "not_entitled", None),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a nude statue", "skip_prompt_check": true}}).to_string(), 400, "prompt_rejected", Some("/input/prompt")),
        (Some(&key), json!({"model": "midjourney", "task_type": "upscale", "input": {"origin_task_id": "01234567-no-such-task", "index": 1}}).to_string(), 404, "task_not_found", None),
        (Some(&key), imagine(json!({"prompt": "x", "process_mode": "turbo"})), 402, "insufficient_quota", None),
        (Some(&key), json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}, "config": {"service_mode": "private"}}).to_string(), 422, "no_account", None),
    ];
    assert!(cases.len() >= 40);
    for (k, body, status, code, field) in &cases {
        let (s, _, v) = api.raw(*k, Method::POST, "/api/v1/task", Some(body)).await;
        let short: String = body.chars().take(120).collect();
        assert_eq!(s, *status, "{short} → {v}");
        assert_eq!(v["code"], *status, "{short}");
        assert_eq!(v["data"]["error"]["reason"], *code, "{short} → {v}");
        assert_eq!(v["message"], v["data"]["error"]["message"]);
        assert!(!v["message"].as_str().unwrap().is_empty());
        if let Some(f) = field {
            assert_eq!(v["data"]["error"]["field"], *f, "{short} → {v}");
        }
    }
    // Other routes' bad input.
    let (s, _, v) = api
        .raw(Some(&key), Method::GET, "/api/v1/task/x?wait=soon", None)
        .await;
    assert_eq!(
        (s, v["data"]["error"]["field"].as_str()),
        (400, Some("/wait"))
    );
    let ids: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::POST,
            "/api/v1/task/fetch",
            Some(&json!({"task_ids": ids}).to_string()),
        )
        .await;
    assert_eq!(
        (s, v["data"]["error"]["field"].as_str()),
        (400, Some("/task_ids"))
    );
    let (s, _, v) = api.raw(Some(&key), Method::POST, "/api/v1/accounts", Some(&json!({"provider": "suno", "credentials": {"cookie": "c", "pwd": "x"}, "concurrency": 1}).to_string())).await;
    assert_eq!(
        (s, v["data"]["error"]["field"].as_str()),
        (400, Some("/credentials/pwd"))
    );
    assert!(!v.to_string().contains("\"x\""));
    let (s, _) = api
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/credits"),
            Some(json!({"kind": "mj_quota", "amount": 5})),
            None,
        )
        .await;
    assert_eq!(s, 400, "a top-up without Idempotency-Key");
    let (s, v) = api
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/credits"),
            Some(json!({"kind": "luma_quota", "amount": 5})),
            Some("k1"),
        )
        .await;
    assert_eq!(
        (s, v["data"]["error"]["reason"].as_str()),
        (403, Some("not_entitled")),
        "hobbyist: no Luma beyond the trial"
    );
    // Nothing was created, held or charged.
    let after = api.client(&key).me().await.unwrap();
    assert_eq!(before["balances"], after["balances"]);
    assert_eq!(before["queued"], after["queued"]);
    assert_eq!(after["held"]["mj_quota"], 0);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_tasks_and_accounts() {
    let api = Api::start("api_iso").await;
    let (a_id, a) = api.tenant("developer").await;
    let (_, b) = api.tenant("developer").await;
    api.credit(&a_id, "suno_quota", 100).await;
    let t = api
        .client(&a)
        .create_task(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "x"}),
            None,
        )
        .await
        .unwrap();
    let id = t["task_id"].as_str().unwrap();
    let (s, _, v) = api
        .raw(Some(&b), Method::GET, &format!("/api/v1/task/{id}"), None)
        .await;
    assert_eq!(
        (s, v["data"]["error"]["reason"].as_str()),
        (404, Some("task_not_found"))
    );
    let (s, _, _) = api
        .raw(
            Some(&b),
            Method::DELETE,
            &format!("/api/v1/task/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert!(
        api.client(&b)
            .fetch(&[id.to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    let (s, _, acc) = api.raw(Some(&a), Method::POST, "/api/v1/accounts", Some(&json!({"provider": "suno", "name": "mine", "credentials": {"cookie": "sim:ok:a-private-cookie-xyz"}, "concurrency": 2}).to_string())).await;
    assert_eq!(s, 201, "{acc}");
    let acc_id = acc["data"]["account_id"].as_str().unwrap();
    let (_, _, list_b) = api
        .raw(Some(&b), Method::GET, "/api/v1/accounts", None)
        .await;
    assert_eq!(list_b["data"], json!([]));
    let (s, _, _) = api
        .raw(
            Some(&b),
            Method::PATCH,
            &format!("/api/v1/accounts/{acc_id}"),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = api
        .raw(
            Some(&b),
            Method::DELETE,
            &format!("/api/v1/accounts/{acc_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // The owner sees it, masked; disabling it by hand says so.
    let (_, _, list_a) = api
        .raw(Some(&a), Method::GET, "/api/v1/accounts", None)
        .await;
    assert_eq!(list_a["data"][0]["credentials"]["cookie"], "••••-xyz");
    let (_, _, off) = api
        .raw(
            Some(&a),
            Method::PATCH,
            &format!("/api/v1/accounts/{acc_id}"),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!(
        (
            off["data"]["state"].as_str(),
            off["data"]["state_reason"].as_str()
        ),
        (Some("disabled"), Some("by_tenant"))
    );
    assert_eq!(off["data"]["state_message"], "disabled by tenant");
    api.stop().await;
}

#[tokio::test]
async fn accounts_take_limits_and_are_checked_on_demand() {
    let mut api = Api::start("api_acc_limits").await;
    api.run_workers();
    let (_, key) = api.tenant("premium").await;
    let post = |body: Value, query: &'static str| {
        let api = &api;
        let key = key.clone();
        async move {
            api.raw(
                Some(&key),
                Method::POST,
                &format!("/api/v1/accounts{query}"),
                Some(&body.to_string()),
            )
            .await
        }
    };
    let base = json!({"provider": "midjourney", "name": "m", "credentials": {"token": "sim:ok:limits-mj-0001"},
                      "capacity": {"relax": 2, "fast": 2}});
    // Bad limits: 400 naming the field, nothing created.
    for (patch, field) in [
        (
            json!({"pacing": {"min_gap_s": 5, "max_gap_s": 2}}),
            "/pacing",
        ),
        (json!({"pacing": {"min_gap_s": 1}}), "/pacing"),
        (json!({"daily_cap": 0}), "/daily_cap"),
        (json!({"daily_cap": {"slow": 3}}), "/daily_cap/slow"),
        (
            json!({"active_window": {"start": "9:00", "end": "17:00"}}),
            "/active_window/start",
        ),
        (
            json!({"active_window": {"start": "09:00", "end": "09:00"}}),
            "/active_window/end",
        ),
        (
            json!({"active_window": {"start": "09:00", "end": "17:00", "tz": "Mars/Olympus"}}),
            "/active_window/tz",
        ),
        (json!({"modes": ["warp"]}), "/modes"),
    ] {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, _, v) = post(body, "").await;
        assert_eq!(
            (s, v["data"]["error"]["field"].as_str()),
            (400, Some(field)),
            "{v}"
        );
    }
    let (_, _, list) = api
        .raw(Some(&key), Method::GET, "/api/v1/accounts", None)
        .await;
    assert_eq!(list["data"], json!([]), "nothing was created");
    // Good limits are kept and shown; `modes` keeps capacity in the modes listed.
    let mut body = base.clone();
    body["pacing"] = json!({"min_gap_s": 2, "max_gap_s": 5.5});
    body["daily_cap"] = json!({"fast": 40});
    body["active_window"] = json!({"start": "22:00", "end": "06:00", "tz": "Asia/Tokyo"});
    body["modes"] = json!(["relax"]);
    let (s, _, v) = post(body, "?check=sync").await;
    assert_eq!(s, 201, "{v}");
    let a = &v["data"];
    assert_eq!(
        a["state"].as_str().map(|s| s == "active" || s == "resting"),
        Some(true),
        "checked: {a}"
    );
    assert_eq!(
        a["pacing"],
        json!({"min_gap_s": 2.0, "max_gap_s": 5.5, "default": false})
    );
    assert_eq!(a["daily_cap"], json!({"fast": 40}));
    assert_eq!(
        a["active_window"],
        json!({"start": "22:00", "end": "06:00", "tz": "Asia/Tokyo"})
    );
    assert_eq!(a["capacity"], json!({"relax": 2, "fast": 0, "turbo": 0}));
    assert_eq!(
        a["today"],
        json!({"relax": 0, "fast": 0, "turbo": 0, "total": 0})
    );
    let id = a["account_id"].as_str().unwrap().to_string();
    // Limits are patched and cleared.
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::PATCH,
            &format!("/api/v1/accounts/{id}"),
            Some(r#"{"pacing": null, "daily_cap": null, "active_window": null}"#),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["pacing"]["default"], true);
    assert_eq!(
        (
            &v["data"]["daily_cap"],
            &v["data"]["active_window"],
            &v["data"]["state"]
        ),
        (&Value::Null, &Value::Null, &json!("active"))
    );
    // A check answers the state after the probe.
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::POST,
            &format!("/api/v1/accounts/{id}/check"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["data"]["state"].as_str()),
        (200, Some("active")),
        "{v}"
    );
    // Bad credentials with ?check=sync: 422, and the account is not kept.
    let mut bad = base.clone();
    bad["credentials"] = json!({"token": "sim:banned:limits-mj-0002"});
    let (s, _, v) = post(bad, "?check=sync").await;
    assert_eq!(
        (s, v["data"]["error"]["reason"].as_str()),
        (422, Some("invalid_credentials")),
        "{v}"
    );
    let (_, _, list) = api
        .raw(Some(&key), Method::GET, "/api/v1/accounts", None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    // A disabled account is not checked until its owner enables it.
    api.raw(
        Some(&key),
        Method::PATCH,
        &format!("/api/v1/accounts/{id}"),
        Some(r#"{"enabled": false}"#),
    )
    .await;
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::POST,
            &format!("/api/v1/accounts/{id}/check"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["data"]["error"]["reason"].as_str()),
        (409, Some("account_disabled")),
        "{v}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_idempotency_and_retention() {
    let mut api = Api::start("api_cancel").await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;
    let c = api.client(&key);
    // No pool account yet: tasks wait (pending), so they can be cancelled.
    let t = c
        .create_task(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "x"}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(t["status"], "pending");
    assert_eq!(t["meta"]["usage"]["frozen"], 10);
    let id = t["task_id"].as_str().unwrap();
    let cancelled = c.cancel(id).await.unwrap();
    assert_eq!(
        (
            cancelled["status"].as_str(),
            cancelled["meta"]["usage"]["consume"].as_u64()
        ),
        (Some("cancelled"), Some(0))
    );
    assert_eq!(
        c.cancel(id).await.unwrap()["status"],
        "cancelled",
        "cancel again: same answer"
    );
    assert_eq!(
        c.me().await.unwrap()["balances"]["suno_quota"],
        100,
        "refunded"
    );
    // Idempotency-Key: one task, one hold; the replay is marked.
    let body = json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": "y [sim:ms=2000]"}});
    let (one, r1) = c.create_task_idempotent("idem-1", &body).await.unwrap();
    let (two, r2) = c.create_task_idempotent("idem-1", &body).await.unwrap();
    assert_eq!(
        (one["task_id"].clone(), r1, r2),
        (two["task_id"].clone(), false, true)
    );
    let other = json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": "z"}});
    let e = c
        .create_task_idempotent("idem-1", &other)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.reason.as_str()),
        (409, "idempotency_key_reused")
    );
    let luma = json!({"model": "luma", "task_type": "video_generation", "input": {"prompt": "p"}});
    let e = c.create_task_idempotent("idem-1", &luma).await.unwrap_err();
    assert_eq!(
        (e.status, e.reason.as_str()),
        (409, "idempotency_key_reused"),
        "same key, another provider"
    );
    let me = c.me().await.unwrap();
    assert_eq!(
        (
            me["balances"]["suno_quota"].as_i64(),
            me["held"]["suno_quota"].as_i64()
        ),
        (Some(90), Some(10))
    );
    // Processing cannot be cancelled.
    api.pool().await;
    api.run_workers();
    let id = one["task_id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + T;
    while c.get_task(id, 0).await.unwrap()["status"] != "processing" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = c.cancel(id).await.unwrap_err();
    assert_eq!((e.status, e.reason.as_str()), (409, "not_cancellable"));
    // Retention: with the tenant's retention shortened, a finished task is gone after it.
    let mut s = switchyard_dispatcher::tenants::settings(
        &switchyard_dispatcher::tenants::get(&api.h.sched, &tenant)
            .await
            .unwrap()
            .unwrap(),
        &api.h.config,
    );
    s.retention_s = 1;
    api.h.sched.upsert_tenant(&tenant, &s).await.unwrap();
    let short = c
        .create_task(
            "suno",
            "lyrics",
            json!({"prompt": "brief [sim:ms=10]"}),
            None,
        )
        .await
        .unwrap();
    let sid = short["task_id"].as_str().unwrap();
    assert_eq!(c.wait_task(sid, T).await.unwrap()["status"], "completed");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match c.get_task(sid, 0).await {
            Err(e) if e.status == 404 => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "still there after its retention"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_retried_until_accepted_in_order() {
    let mut api = Api::start("api_hooks").await;
    api.pool().await;
    api.run_workers();
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;
    let hook = Receiver::start(3).await;
    let t = api
        .client(&key)
        .create_task(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "x [sim:ms=300]"}),
            Some(json!({"webhook_config": {"endpoint": hook.url, "secret": "hook-secret-42"}})),
        )
        .await
        .unwrap();
    let id = t["task_id"].as_str().unwrap();
    hook.wait_for(id, "task.completed", T).await;
    let accepted = hook.accepted();
    let events: Vec<&str> = accepted
        .iter()
        .filter(|(_, t, _)| t == id)
        .map(|(e, _, _)| e.as_str())
        .collect();
    assert_eq!(events.first(), Some(&"task.created"));
    assert_eq!(events.last(), Some(&"task.completed"));
    assert_eq!(
        events.iter().filter(|e| **e == "task.created").count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == "task.completed").count(),
        1,
        "{events:?}"
    );
    let refused = hook
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, s)| *s == 500)
        .count();
    assert_eq!(refused, 3);
    // Each attempt is logged on the task.
    let task = api.client(&key).get_task(id, 0).await.unwrap();
    let logs = task["logs"].as_array().unwrap();
    let failed = logs.iter().filter(|l| l["error"] == "HTTP 500").count();
    assert_eq!(failed, 3, "{logs:?}");
    assert!(
        logs.iter()
            .any(|l| l["event"] == "task.completed" && l["status"] == 200)
    );
    api.stop().await;
}
