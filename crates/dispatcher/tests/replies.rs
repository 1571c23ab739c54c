//! GoAPI's reply shapes: the error object on refused requests and on tasks, `detail`,
//! 404 and 405 in the envelope, cancel (reply, alias, bulk), the rate limit on every
//! route, and the statuses a webhook shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Api, Receiver};
use reqwest::Method;
use serde_json::{Value, json};

fn suno(prompt: &str) -> String {
    json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": prompt}}).to_string()
}

/// `POST /api/v1/task` with `body`: (status, headers, reply).
async fn post_task(api: &Api, key: &str, body: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    api.raw(Some(key), Method::POST, "/api/v1/task", Some(body))
        .await
}

/// The error object of a refused request: GoAPI's fields, plus `reason` and `field`.
fn assert_refusal(v: &Value, status: u16, reason: &str) {
    assert_eq!(v["code"], status, "{v}");
    let e = &v["data"]["error"];
    assert_eq!(e["code"], status, "error.code is the HTTP status: {v}");
    assert_eq!(e["reason"], reason, "{v}");
    assert_eq!(e["raw_message"], "", "{v}");
    assert!(e["detail"].is_null() && e.get("detail").is_some(), "{v}");
    assert!(!e["message"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(v["message"], e["message"], "{v}");
    assert!(v["data"].get("detail").is_some_and(Value::is_null), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_envelope_with_goapis_error_object() {
    let api = Api::start("replies_errors").await;
    let (_, key) = api.tenant("developer").await;
    let (s, _, v) = post_task(&api, &key, "{\"model\": ").await;
    assert_eq!(s, 400);
    assert_refusal(&v, 400, "invalid_request");
    assert_eq!(v["data"]["error"]["field"], "/body");

    let (s, _, v) = api
        .raw(Some(&key), Method::GET, "/api/v1/no/such/path", None)
        .await;
    assert_eq!(s, 404);
    assert_refusal(&v, 404, "not_found");

    // A wrong method on a known path: 405 in the envelope, not an empty body.
    for (method, path) in [
        (Method::GET, "/api/v1/task"),
        (Method::PUT, "/api/v1/task/abc"),
        (Method::GET, "/api/v1/task/fetch"),
    ] {
        let (s, _, v) = api.raw(Some(&key), method.clone(), path, None).await;
        assert_eq!(s, 405, "{method} {path}");
        assert_refusal(&v, 405, "method_not_allowed");
        assert!(v["message"].as_str().unwrap().contains(path), "{v}");
    }

    let (s, _, v) = api.raw(None, Method::GET, "/api/v1/me", None).await;
    assert_eq!(s, 401);
    assert_refusal(&v, 401, "unauthorized");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_shows_an_empty_error_object_detail_and_its_process_mode() {
    let api = Api::start("replies_task").await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "mj_quota", 1000).await;
    let body = json!({"model": "midjourney", "task_type": "imagine",
        "input": {"prompt": "a fox", "process_mode": "fast"},
        "config": {"service_mode": "", "webhook_config": {"endpoint": "", "secret": ""}}});
    let (s, _, v) = post_task(&api, &key, &body.to_string()).await;
    assert_eq!(s, 200, "{v}");
    let t = &v["data"];
    assert_eq!(
        t["error"],
        json!({"code": 0, "message": "", "raw_message": "", "detail": null})
    );
    assert!(t.get("detail").is_some_and(Value::is_null), "{t}");
    assert_eq!(t["meta"]["process_mode"], "fast");
    assert_eq!(
        t["config"]["webhook_config"],
        json!({"endpoint": "", "secret": ""})
    );
    // Other providers have no process mode.
    api.credit(&tenant, "suno_quota", 100).await;
    let (_, _, v) = post_task(&api, &key, &suno("x")).await;
    assert!(v["data"]["meta"]["process_mode"].is_null(), "{v}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_answers_goapis_reply_by_delete_and_by_post() {
    let api = Api::start("replies_cancel").await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, _, v) = post_task(&api, &key, &suno("x")).await;
        assert_eq!(s, 200, "{v}");
        ids.push(v["data"]["task_id"].as_str().unwrap().to_string());
    }
    // GoAPI's DELETE, and the POST …/cancel its command-line client uses.
    for (method, path, id) in [
        (Method::DELETE, format!("/api/v1/task/{}", ids[0]), &ids[0]),
        (
            Method::POST,
            format!("/api/v1/task/{}/cancel", ids[1]),
            &ids[1],
        ),
    ] {
        let (s, _, v) = api.raw(Some(&key), method, &path, None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["message"], format!("task {id} canceled"));
        assert_eq!(v["data"]["status"], "cancelled");
        let e = &v["data"]["error"];
        assert_eq!(
            (&e["code"], &e["reason"], &e["message"]),
            (
                &json!(10005),
                &json!("cancelled"),
                &json!("cancelled by the client")
            )
        );
        assert_eq!(v["data"]["meta"]["usage"]["consume"], 0);
    }
    let me = api.client(&key).me().await.unwrap();
    assert_eq!(me["held"]["suno_quota"], 0, "{me}");
    assert_eq!(me["balances"]["suno_quota"], 100, "{me}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_cancel_takes_the_callers_matching_queued_tasks_only() {
    let api = Api::start("replies_bulk").await;
    let (tenant, key) = api.tenant("developer").await;
    let (other_id, other) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    api.credit(&tenant, "mj_quota", 1000).await;
    api.credit(&other_id, "suno_quota", 1000).await;
    let create = |key: String, body: String| {
        let api = &api;
        async move {
            let (s, _, v) = post_task(api, &key, &body).await;
            assert_eq!(s, 200, "{v}");
            v["data"]["task_id"].as_str().unwrap().to_string()
        }
    };
    let mut old_suno = Vec::new();
    for _ in 0..3 {
        old_suno.push(create(key.clone(), suno("old")).await);
    }
    let imagine = json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a fox", "process_mode": "fast"}}).to_string();
    let old_mj = create(key.clone(), imagine.clone()).await;
    let foreign = create(other.clone(), suno("theirs")).await;
    // created_before is whole seconds: the next second's tasks are newer.
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    tokio::time::sleep(Duration::from_millis(
        1000 - (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis() as u64)
            + 50,
    ))
    .await;
    let new_suno = create(key.clone(), suno("new")).await;
    let del = |path: &str| {
        let (api, key, path) = (&api, key.clone(), path.to_string());
        async move { api.raw(Some(&key), Method::DELETE, &path, None).await }
    };

    let (s, _, v) = del("/api/v1/tasks?created_before=1&model=kling").await;
    assert_eq!(s, 400);
    assert_refusal(&v, 400, "unknown_model");
    let (s, _, v) = del("/api/v1/tasks?created_before=soon").await;
    assert_eq!(s, 400);
    assert_refusal(&v, 400, "invalid_request");

    let (s, _, v) = del(&format!("/api/v1/tasks?created_before={cut}&model=music-s")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["message"], "3 tasks canceled", "{v}");
    assert_eq!(v["data"]["cancelled"], 3);
    let mut got: Vec<String> = v["data"]["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    got.sort();
    old_suno.sort();
    assert_eq!(got, old_suno);
    let status = |key: String, id: String| {
        let api = &api;
        async move {
            let (_, _, v) = api
                .raw(Some(&key), Method::GET, &format!("/api/v1/task/{id}"), None)
                .await;
            v["data"]["status"].as_str().unwrap_or("").to_string()
        }
    };
    assert_eq!(status(key.clone(), new_suno.clone()).await, "pending");
    assert_eq!(status(key.clone(), old_mj.clone()).await, "pending");
    assert_eq!(status(other.clone(), foreign.clone()).await, "pending");

    // model=all, no time bound: everything of the caller's left (through the Rust client).
    let v = api.client(&key).cancel_tasks(None, None).await.unwrap();
    assert_eq!(v["cancelled"], 2, "{v}");
    assert_eq!(status(key.clone(), new_suno).await, "cancelled");
    assert_eq!(status(key.clone(), old_mj).await, "cancelled");
    assert_eq!(status(other, foreign).await, "pending");
    let me = api.client(&key).me().await.unwrap();
    assert_eq!(me["held"]["suno_quota"], 0, "{me}");
    assert_eq!(me["held"]["mj_quota"], 0, "{me}");
    assert_eq!(me["queued"]["suno"], 0, "{me}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_route_is_rate_limited_and_a_long_poll_counts_once() {
    let api = Api::start_with("replies_rate", |c| {
        c.dispatcher.rate_limit_per_s = 1;
        c.dispatcher.rate_limit_burst = 3;
    })
    .await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;
    let (s, _, v) = post_task(&api, &key, &suno("x")).await;
    assert_eq!(s, 200, "{v}");
    let id = v["data"]["task_id"].as_str().unwrap().to_string();
    // A 2 s long poll is one request (budget 3: create, this, one more).
    let (s, _, _) = api
        .raw(
            Some(&key),
            Method::GET,
            &format!("/api/v1/task/{id}?wait=2"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let mut statuses = Vec::new();
    let mut retry = None;
    for (m, p) in [
        (Method::GET, "/api/v1/me".to_string()),
        (Method::GET, format!("/api/v1/task/{id}")),
        (Method::GET, "/api/v1/accounts".to_string()),
        (Method::GET, "/api/v1/me".to_string()),
        (Method::GET, "/api/v1/me".to_string()),
    ] {
        let (s, h, v) = api.raw(Some(&key), m, &p, None).await;
        if s == 429 {
            assert_refusal(&v, 429, "rate_limited");
            retry = h
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
        statuses.push(s);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    // Still over the rate (a token comes back each second): a create it can pay is
    // answered 429, one right after that its balance cannot pay 402, as the validation
    // order puts 402 before 429.
    let (s, _, v) = post_task(&api, &key, &suno("x")).await;
    assert_eq!(s, 429, "{v}");
    assert_refusal(&v, 429, "rate_limited");
    let mj = json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a fox"}});
    let (s, _, v) = post_task(&api, &key, &mj.to_string()).await;
    assert_eq!(s, 402, "{v}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_the_task_type_gets_403_before_the_origin_is_looked_up() {
    let api = Api::start("replies_order").await;
    let (_, key) = api.tenant("developer").await;
    let body = json!({"model": "luma", "task_type": "remove_watermark",
        "input": {"origin_task_id": "0190aaaa-no-such-task"}})
    .to_string();
    let (s, _, v) = post_task(&api, &key, &body).await;
    assert_eq!(s, 403, "{v}");
    assert_refusal(&v, 403, "not_entitled");
    // On a plan that has it, the unknown origin is the answer.
    let (_, premium) = api.tenant("premium").await;
    let (s, _, v) = post_task(&api, &premium, &body).await;
    assert_eq!(s, 404, "{v}");
    assert_refusal(&v, 404, "task_not_found");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_tasks_created_webhook_says_staged_as_the_create_reply_does() {
    let mut api = Api::start("replies_staged").await;
    api.pool().await;
    api.run_workers();
    let hook = Receiver::start(0).await;
    let (tenant, key) = api.tenant("hobbyist").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    // Hobbyist: 2 Suno tasks in flight; the third waits staged.
    let body = |p: &str| {
        json!({"model": "suno", "task_type": "generate_music",
            "input": {"gpt_description_prompt": p},
            "config": {"webhook_config": {"endpoint": hook.url, "secret": "s3cr3t-of-test"}}})
        .to_string()
    };
    let mut running = Vec::new();
    for _ in 0..2 {
        let (s, _, v) = post_task(&api, &key, &body("[sim:ms=6000] slow")).await;
        assert_eq!(s, 200, "{v}");
        running.push(v["data"]["task_id"].as_str().unwrap().to_string());
    }
    // Wait until both hold their slots.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let me = api.client(&key).me().await.unwrap();
        if me["in_flight"]["suno"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{me}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _, v) = post_task(&api, &key, &body("[sim:ms=10] quick")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["status"], "staged", "{v}");
    let id = v["data"]["task_id"].as_str().unwrap().to_string();
    hook.wait_for(&id, "task.created", Duration::from_secs(5))
        .await;
    let created = hook
        .accepted()
        .into_iter()
        .find(|(e, t, _)| e == "task.created" && *t == id)
        .unwrap()
        .2;
    assert_eq!(created["data"]["status"], "staged", "{created}");
    assert_eq!(created["data"]["config"]["webhook_config"]["secret"], "");
    assert!(!created.to_string().contains("s3cr3t-of-test"));
    hook.wait_for(&id, "task.completed", Duration::from_secs(30))
        .await;
    api.stop().await;
}

/// The optional Midjourney output fields of one completed imagine, per plan and pool.
async fn imagine_output(api: &Api, key: &str, private: bool) -> (String, Value) {
    let mode = if private { "private" } else { "public" };
    let t = api
        .client(key)
        .create_task(
            "midjourney",
            "imagine",
            json!({"prompt": "a red fox [sim:ms=2500]", "process_mode": "fast"}),
            Some(json!({"service_mode": mode})),
        )
        .await
        .unwrap();
    let id = t["task_id"].as_str().unwrap().to_string();
    let done = api
        .client(key)
        .wait_task(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    (id, done)
}

fn present(t: &Value) -> Vec<&'static str> {
    [
        "image_url",
        "image_urls",
        "task_progress",
        "progress",
        "discord_image_url",
        "temporary_image_urls",
        "intermediate_image_urls",
    ]
    .into_iter()
    .filter(|f| t["output"].get(*f).is_some())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn midjourneys_optional_output_fields_follow_the_plan_and_pool() {
    let mut api = Api::start("replies_gating").await;
    api.pool().await;
    api.run_workers();
    let (hobby, hobby_key) = api.tenant("hobbyist").await;
    let (prem, prem_key) = api.tenant("premium").await;
    let (_, dev_key) = api.tenant("developer").await;
    api.credit(&hobby, "mj_quota", 1000).await;
    api.credit(&prem, "mj_quota", 1000).await;
    for (i, key) in [&hobby_key, &dev_key].into_iter().enumerate() {
        api.client(key)
            .add_account(&json!({"provider": "midjourney", "name": "mine",
                "credentials": {"token": format!("sim:ok:gating-account-{i}-0001")},
                "capacity": {"relax": 2, "fast": 2, "turbo": 0}}))
            .await
            .unwrap();
    }
    let all = [
        "image_url",
        "image_urls",
        "task_progress",
        "progress",
        "discord_image_url",
        "temporary_image_urls",
        "intermediate_image_urls",
    ];
    // GoAPI's table: Free PPU — nothing optional.
    let (_, t) = imagine_output(&api, &hobby_key, false).await;
    assert_eq!(present(&t), ["image_url", "image_urls"], "{t}");
    assert_eq!(t["meta"]["progress"], 100);
    // Free BYOA — the upstream's links, no progress.
    let (_, t) = imagine_output(&api, &hobby_key, true).await;
    assert_eq!(
        present(&t),
        [
            "image_url",
            "image_urls",
            "discord_image_url",
            "temporary_image_urls"
        ],
        "{t}"
    );
    // Creator BYOA — everything, with the previews the job showed.
    let (_, t) = imagine_output(&api, &dev_key, true).await;
    assert_eq!(present(&t), all, "{t}");
    assert!(
        !t["output"]["intermediate_image_urls"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{t}"
    );
    assert_eq!(t["output"]["task_progress"], 100);
    // Pro PPU — all but the previews, which come upon the operator's approval.
    let (id, t) = imagine_output(&api, &prem_key, false).await;
    assert_eq!(present(&t), all[..6], "{t}");
    let (s, v) = api
        .admin(
            Method::PATCH,
            &format!("/admin/v1/tenants/{prem}"),
            Some(json!({"approved_extras": true})),
            None,
        )
        .await;
    assert_eq!(
        (s, &v["data"]["approved_extras"]),
        (200, &json!(true)),
        "{v}"
    );
    let t = api.client(&prem_key).get_task(&id, 0).await.unwrap();
    assert_eq!(present(&t), all, "{t}");
    let (s, v) = api
        .admin(
            Method::PATCH,
            &format!("/admin/v1/tenants/{prem}"),
            Some(json!({"approved_extras": "yes"})),
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["data"]["error"]["field"], "/approved_extras");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suno_music_reads_as_goapis_current_task_type_and_outputs_clips_by_id() {
    let mut api = Api::start("replies_music").await;
    api.pool().await;
    api.run_workers();
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    let c = api.client(&key);
    let run = |input: Value| {
        let c = c.clone();
        async move {
            let t = c.create_task("suno", "music", input, None).await.unwrap();
            assert_eq!(t["task_type"], "music", "{t}");
            let id = t["task_id"].as_str().unwrap().to_string();
            let done = c.wait_task(&id, Duration::from_secs(30)).await.unwrap();
            assert_eq!(done["status"], "completed", "{done}");
            (id, done)
        }
    };
    // GoAPI's webhook example's input: title and tags make it a custom generation.
    let (first, t) = run(json!({"make_instrumental": false, "mv": "chirp-v3-5",
        "prompt": "[Verse]\nrails hum [sim:ms=50]", "tags": "folk", "task_id": "", "title": "Rails"}))
    .await;
    let clips = t["output"]["clips"].as_object().unwrap();
    assert_eq!(clips.len(), 2, "{t}");
    for (id, clip) in clips {
        assert_eq!(clip["id"], *id);
        assert_eq!(clip["title"], "Rails");
        for f in ["audio_url", "video_url", "image_url", "image_large_url"] {
            assert!(clip[f].as_str().unwrap().starts_with("http"), "{f}: {clip}");
        }
        assert!(clip["duration"].is_number(), "{clip}");
        assert_eq!(clip["metadata"]["type"], "gen");
    }
    // No title or tags: a description generation.
    let (_, t) =
        run(json!({"prompt": "a sea shanty [sim:ms=50]", "task_id": "", "title": ""})).await;
    let clip = t["output"]["clips"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert!(
        clip["metadata"]["gpt_description_prompt"]
            .as_str()
            .unwrap()
            .contains("sea shanty"),
        "{clip}"
    );
    // A task_id continues that task's first clip.
    let (_, t) =
        run(json!({"prompt": "[Verse]\nmore [sim:ms=50]", "task_id": first, "title": "Rails II"}))
            .await;
    let clip = t["output"]["clips"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(clip["metadata"]["type"], "extend", "{clip}");
    // Bad input names its field; nothing is created.
    for (input, field) in [
        (json!({"prompt": "x", "colour": "red"}), "/input/colour"),
        (
            json!({"prompt": "x", "negative_tags": "pop"}),
            "/input/negative_tags",
        ),
        (
            json!({"prompt": "x", "title": "T", "task_id": "0190-no-such-task"}),
            "",
        ),
    ] {
        let (s, _, v) = post_task(
            &api,
            &key,
            &json!({"model": "suno", "task_type": "music", "input": input}).to_string(),
        )
        .await;
        if field.is_empty() {
            assert_eq!(s, 404, "{v}");
        } else {
            assert_eq!(
                (s, v["data"]["error"]["field"].as_str()),
                (400, Some(field)),
                "{v}"
            );
        }
    }
    // Lyrics: GoAPI's shape.
    let t = c
        .create_task(
            "suno",
            "lyrics",
            json!({"prompt": "trains [sim:ms=20]"}),
            None,
        )
        .await
        .unwrap();
    let done = c
        .wait_task(t["task_id"].as_str().unwrap(), Duration::from_secs(30))
        .await
        .unwrap();
    let out = &done["output"];
    assert!(
        out["text"].is_string() && out["title"].is_string(),
        "{done}"
    );
    assert_eq!(out["lyrics_pairs"][0]["text"], out["text"], "{done}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_report_counts_each_ended_task_once_per_day_and_provider() {
    let mut api = Api::start("replies_usage").await;
    api.pool().await;
    // Suno runs; Midjourney has no worker, so its task waits to be cancelled.
    let suno = Arc::new(switchyard_worker_suno::Suno::new(&api.h.config));
    api.workers.push(api.h.start_worker(suno));
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    api.credit(&tenant, "mj_quota", 1000).await;
    let c = api.client(&key);
    let mut spent = 0;
    for prompt in ["one [sim:ms=300]", "two [sim:ms=300]", "bad [sim:fail]"] {
        let t = c
            .create_task(
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": prompt}),
                None,
            )
            .await
            .unwrap();
        let done = c
            .wait_task(t["task_id"].as_str().unwrap(), Duration::from_secs(30))
            .await
            .unwrap();
        spent += done["meta"]["usage"]["consume"].as_u64().unwrap();
    }
    assert!(spent > 0);
    let mj = c
        .create_task("midjourney", "imagine", json!({"prompt": "a fox"}), None)
        .await
        .unwrap();
    c.cancel(mj["task_id"].as_str().unwrap()).await.unwrap();

    // Through the Rust client: the plan's whole period.
    let d = &c.usage(None).await.unwrap();
    assert_eq!(d["days"], 1);
    assert_eq!(d["from"], d["to"]);
    let row = |p: &str| {
        d["report"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider"] == p)
            .cloned()
            .unwrap()
    };
    let s_row = row("suno");
    assert_eq!(
        (
            &s_row["tasks"],
            &s_row["successes"],
            &s_row["failures"],
            &s_row["quota_spent"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(spent)),
        "{d}"
    );
    assert_eq!(s_row["quota_kind"], "suno_quota");
    let p50 = s_row["p50_ms"].as_u64().unwrap();
    assert!((300..60_000).contains(&p50), "{s_row}");
    assert!(s_row["p95_ms"].as_u64().unwrap() >= p50);
    let m_row = row("midjourney");
    assert_eq!(
        (&m_row["tasks"], &m_row["cancelled"]),
        (&json!(1), &json!(1)),
        "{d}"
    );
    assert!(m_row["p50_ms"].is_null());
    assert_eq!(row("luma")["tasks"], 0);
    assert_eq!(d["totals"]["suno"]["successes"], 2);

    // The plan's period: Developer has the 1-day report, Premium the 7-day one.
    let (s, _, v) = api
        .raw(Some(&key), Method::GET, "/api/v1/usage?days=7", None)
        .await;
    assert_eq!(s, 403, "{v}");
    assert_refusal(&v, 403, "not_entitled");
    assert!(v["message"].as_str().unwrap().contains("premium"), "{v}");
    let (s, _, v) = api
        .raw(Some(&key), Method::GET, "/api/v1/usage?days=week", None)
        .await;
    assert_eq!(
        (s, v["data"]["error"]["field"].as_str()),
        (400, Some("/days"))
    );
    let (_, hobby) = api.tenant("hobbyist").await;
    let (s, _, v) = api
        .raw(Some(&hobby), Method::GET, "/api/v1/usage", None)
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("developer"), "{v}");
    let (_, prem) = api.tenant("premium").await;
    let (s, _, v) = api
        .raw(Some(&prem), Method::GET, "/api/v1/usage?days=7", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["report"].as_array().unwrap().len(), 7 * 4);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_queue_full_and_max_queued_lowers_it() {
    let api = Api::start("replies_queue").await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    let me = api.client(&key).me().await.unwrap();
    // Developer: Suno cap 10 → 100 waiting; Midjourney cap 9 → 100; Luma has no cap.
    assert_eq!(me["max_queued"]["suno"], 100, "{me}");
    assert!(me["max_queued"]["luma"].is_null(), "{me}");
    let settings = |v: Value| {
        let api = &api;
        let key = key.clone();
        async move {
            api.raw(
                Some(&key),
                Method::PATCH,
                "/api/v1/me/settings",
                Some(&v.to_string()),
            )
            .await
        }
    };
    let (s, _, v) = settings(json!({"max_queued": 0})).await;
    assert_eq!(
        (s, v["data"]["error"]["field"].as_str()),
        (400, Some("/max_queued"))
    );
    let (s, _, v) = settings(json!({"max_queued": 2})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["max_queued"]["suno"], 2, "{v}");
    // No worker runs: tasks wait.
    for _ in 0..2 {
        let (s, _, v) = post_task(&api, &key, &suno("x")).await;
        assert_eq!(s, 200, "{v}");
    }
    let before = api.client(&key).me().await.unwrap();
    let (s, _, v) = post_task(&api, &key, &suno("x")).await;
    assert_eq!(s, 429, "{v}");
    assert_refusal(&v, 429, "queue_full");
    let after = api.client(&key).me().await.unwrap();
    assert_eq!(before["balances"], after["balances"], "nothing held");
    assert_eq!(after["queued"]["suno"], 2);
    // Back to the plan's limit.
    let (s, _, _) = settings(json!({"max_queued": null})).await;
    assert_eq!(s, 200);
    let (s, _, v) = post_task(&api, &key, &suno("x")).await;
    assert_eq!(s, 200, "{v}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waiting_past_max_pending_s_fails_expired_in_queue() {
    let mut api = Api::start("replies_expiry").await;
    // A Suno worker claims (and so runs the due work), but no account serves Suno.
    let worker = Arc::new(switchyard_worker_suno::Suno::new(&api.h.config));
    api.workers.push(api.h.start_worker(worker));
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::PATCH,
            "/api/v1/me/settings",
            Some(&json!({"max_pending_s": -1}).to_string()),
        )
        .await;
    assert_eq!(
        (s, v["data"]["error"]["field"].as_str()),
        (400, Some("/max_pending_s"))
    );
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::PATCH,
            "/api/v1/me/settings",
            Some(&json!({"max_pending_s": 1}).to_string()),
        )
        .await;
    assert_eq!((s, &v["data"]["max_pending_s"]), (200, &json!(1)), "{v}");
    let (_, _, v) = post_task(&api, &key, &suno("x")).await;
    let id = v["data"]["task_id"].as_str().unwrap().to_string();
    let t = api
        .client(&key)
        .wait_task(&id, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(
        (&t["error"]["code"], &t["error"]["reason"]),
        (&json!(10006), &json!("expired_in_queue")),
        "{t}"
    );
    assert_eq!(t["meta"]["usage"]["consume"], 0);
    let me = api.client(&key).me().await.unwrap();
    assert_eq!(
        (&me["held"]["suno_quota"], &me["balances"]["suno_quota"]),
        (&json!(0), &json!(100))
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_credit_exchange_notifies_the_tenant() {
    let api = Api::start("replies_exchange").await;
    let (tenant, key) = api.tenant("developer").await;
    let hook = api.notifications(&key).await;
    // 100 credits: below the smallest exchange step (700), and no Midjourney quota.
    api.credit(&tenant, "credits", 100).await;
    let body = json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a fox"}});
    let (s, _, v) = post_task(&api, &key, &body.to_string()).await;
    assert_eq!(s, 402, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = hook.got.lock().unwrap().clone();
        if let Some((_, n, _)) = got
            .iter()
            .find(|(_, n, _)| n["type"] == "go_api_quota_exchange_failed")
        {
            assert_eq!(n["detail"]["credits"], 100, "{n}");
            assert!(n["detail"]["needed"].as_u64().unwrap() > 0, "{n}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notification: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn luma_and_gpts_outputs_carry_goapis_field_names() {
    let mut api = Api::start("replies_outputs").await;
    api.pool().await;
    api.run_workers();
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "luma_quota", 1000).await;
    api.credit(&tenant, "gpts_quota", 1000).await;
    let c = api.client(&key);
    let run = |model: &'static str, tt: &'static str, input: Value| {
        let c = c.clone();
        async move {
            let t = c.create_task(model, tt, input, None).await.unwrap();
            let done = c
                .wait_task(t["task_id"].as_str().unwrap(), Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(done["status"], "completed", "{done}");
            assert_eq!(done["error"]["code"], 0, "{done}");
            done["output"].clone()
        }
    };
    let v = run(
        "luma",
        "video_generation",
        json!({"prompt": "waves [sim:ms=50]"}),
    )
    .await;
    assert!(v["generation_id"].is_string(), "{v}");
    for f in ["video", "video_raw", "thumbnail", "last_frame"] {
        assert!(
            v[f]["url"].as_str().unwrap().starts_with("http"),
            "{f}: {v}"
        );
    }
    assert!(
        v["video"]["width"].is_number() && v["video"]["height"].is_number(),
        "{v}"
    );
    let g = run(
        "gpts",
        "create_conversation",
        json!({"message": "hello [sim:ms=20]"}),
    )
    .await;
    assert!(g["conversation_id"].is_string(), "{g}");
    assert_eq!(g["message"]["role"], "assistant", "{g}");
    assert!(g["message"]["content"].is_string(), "{g}");
    api.stop().await;
}
