//! The prompt checker: a banned word is refused naming it, with nothing held or queued;
//! `skip_prompt_check` skips it only on a plan that has "Skip GoAPI's Prompt Checker",
//! and is otherwise ignored with a note in the task's logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Api;
use reqwest::Method;
use serde_json::{Value, json};

async fn me(api: &Api, key: &str) -> Value {
    let (s, _, v) = api.raw(Some(key), Method::GET, "/api/v1/me", None).await;
    assert_eq!(s, 200, "{v}");
    v["data"].clone()
}

fn imagine(prompt: &str, skip: bool) -> String {
    json!({"model": "midjourney", "task_type": "imagine",
           "input": {"prompt": prompt, "skip_prompt_check": skip, "process_mode": "fast"}})
    .to_string()
}

#[tokio::test]
async fn banned_words_are_refused_unless_the_plan_may_skip_the_checker() {
    let mut api = Api::start_with("prompt-check", |c| {
        c.prompt_check.extra_words = vec!["forbidden fruit".into()];
    })
    .await;
    api.run_workers();
    api.pool().await;
    let (hobby, hobby_key) = api.tenant("hobbyist").await;
    let (premium, premium_key) = api.tenant("premium").await;
    for t in [&hobby, &premium] {
        api.credit(t, "mj_quota", 10_000).await;
    }

    // Refused, naming the word, and nothing held or queued.
    let before = me(&api, &hobby_key).await;
    for (prompt, word) in [
        ("a NUDE statue", "nude"),
        ("the Forbidden  fruit!", "forbidden fruit"),
    ] {
        for skip in [false, true] {
            let (s, _, v) = api
                .raw(
                    Some(&hobby_key),
                    Method::POST,
                    "/api/v1/task",
                    Some(&imagine(prompt, skip)),
                )
                .await;
            assert_eq!(s, 400, "{v}");
            assert_eq!(v["data"]["error"]["reason"], "prompt_rejected", "{v}");
            assert_eq!(v["data"]["error"]["field"], "/input/prompt", "{v}");
            assert!(v["message"].as_str().unwrap().contains(word), "{v}");
        }
    }
    assert_eq!(
        me(&api, &hobby_key).await,
        before,
        "a refused prompt changed the tenant"
    );

    // Suno and Luma prompts are checked too.
    let (s, _, v) = api
        .raw(
            Some(&premium_key),
            Method::POST,
            "/api/v1/task",
            Some(&json!({"model": "luma", "task_type": "video_generation", "input": {"prompt": "gore everywhere"}}).to_string()),
        )
        .await;
    assert_eq!(
        (s, v["data"]["error"]["reason"].as_str()),
        (400, Some("prompt_rejected")),
        "{v}"
    );

    // Premium may skip the checker: accepted and run.
    let (s, _, v) = api
        .raw(
            Some(&premium_key),
            Method::POST,
            "/api/v1/task",
            Some(&imagine("a nude statue", true)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["data"]["task_id"].as_str().unwrap().to_string();
    let t = api
        .client(&premium_key)
        .wait_task(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(t["status"], "completed", "{t}");

    // A Hobbyist's skip is ignored: a clean prompt runs, and the log says the skip was ignored.
    let (s, _, v) = api
        .raw(
            Some(&hobby_key),
            Method::POST,
            "/api/v1/task",
            Some(&imagine("a red fox", true)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let logs = v["data"]["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("skip_prompt_check ignored"))),
        "{logs:?}"
    );
    api.stop().await;
}
