//! `Idempotency-Key` on task creation, over real HTTP: only a request that created a task
//! keeps its key (a refused one can be retried with it, for any provider), and requests
//! racing with one key create one task and hold its price once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Api;
use serde_json::{Value, json};

/// POST /api/v1/task with an Idempotency-Key: (status, replayed, body).
async fn create(api: &Api, key: &str, idem: &str, body: &Value) -> (u16, bool, Value) {
    post(api.http.clone(), api.url.clone(), key, idem, body).await
}

async fn post(
    http: reqwest::Client,
    url: String,
    key: &str,
    idem: &str,
    body: &Value,
) -> (u16, bool, Value) {
    let r = http
        .post(format!("{url}/api/v1/task"))
        .header("x-api-key", key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    (status, replayed, r.json().await.unwrap())
}

async fn balance(api: &Api, key: &str, kind: &str) -> (i64, i64) {
    let me = api.client(key).me().await.unwrap();
    (
        me["balances"][kind].as_i64().unwrap_or(0),
        me["held"][kind].as_i64().unwrap_or(0),
    )
}

fn imagine(prompt: &str) -> Value {
    json!({"model": "midjourney", "task_type": "imagine",
           "input": {"prompt": format!("{prompt} --v 6"), "process_mode": "fast"}})
}

/// Send every body at once (after a barrier), with the same key; the replies in order.
async fn race(api: &Api, key: &str, idem: &str, bodies: Vec<Value>) -> Vec<(u16, bool, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (http, url, key, idem) = (
                api.http.clone(),
                api.url.clone(),
                key.to_string(),
                idem.to_string(),
            );
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                post(http, url, &key, &idem, &body).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn music(prompt: &str) -> Value {
    json!({"model": "suno", "task_type": "generate_music",
           "input": {"gpt_description_prompt": prompt}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_want_of_balance_leaves_its_key_free() {
    // No pool accounts and no workers: created tasks wait, so balances only move by holds.
    let api = Api::start("idem_refused").await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;

    // 402, then a corrected request with the same key (another provider): created.
    let (s, _, v) = create(&api, &key, "order-1", &imagine("a fox")).await;
    assert_eq!((s, v["code"].as_u64()), (402, Some(402)), "{v}");
    let (s, replayed, v) = create(&api, &key, "order-1", &music("a song")).await;
    assert_eq!((s, replayed), (200, false), "the retry after a 402: {v}");
    let song = v["data"]["task_id"].as_str().unwrap().to_string();
    // Now the key is the suno task's: the same request replays it, another provider is 409.
    let (s, replayed, v) = create(&api, &key, "order-1", &music("a song")).await;
    assert_eq!(
        (s, replayed, v["data"]["task_id"].as_str()),
        (200, true, Some(song.as_str()))
    );
    let (s, _, v) = create(&api, &key, "order-1", &imagine("a fox")).await;
    assert_eq!((s, v["code"].as_u64()), (409, Some(409)), "{v}");

    // 402, top-up, the same request with the same key: created, held once.
    let (s, _, v) = create(&api, &key, "order-2", &imagine("a hare")).await;
    assert_eq!(s, 402, "{v}");
    api.credit(&tenant, "mj_quota", 100).await;
    let (s, replayed, v) = create(&api, &key, "order-2", &imagine("a hare")).await;
    assert_eq!((s, replayed), (200, false), "the retry after a top-up: {v}");
    let hare = v["data"]["task_id"].as_str().unwrap().to_string();
    let (s, replayed, v) = create(&api, &key, "order-2", &imagine("a hare")).await;
    assert_eq!(
        (s, replayed, v["data"]["task_id"].as_str()),
        (200, true, Some(hare.as_str()))
    );
    assert_eq!(balance(&api, &key, "mj_quota").await, (86, 14));

    // A key first refused for one provider, then refused for another, then created with
    // the first: nothing of the refusals stays behind.
    let chat = json!({"model": "gpts", "task_type": "create_conversation",
                      "input": {"message": "hello"}});
    let (s, _, v) = create(&api, &key, "order-3", &chat).await;
    assert_eq!(s, 402, "{v}");
    let (s, replayed, v) = create(&api, &key, "order-3", &imagine("an owl")).await;
    assert_eq!((s, replayed), (200, false), "{v}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_with_one_key_create_one_task_and_hold_once() {
    let api = Api::start("idem_race").await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "mj_quota", 100).await;
    api.credit(&tenant, "suno_quota", 100).await;

    // The same request 16 times at once: one task, every answer is it, one hold.
    let replies = race(&api, &key, "race-1", vec![imagine("a race"); 16]).await;
    let ids: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|(s, _, v)| {
            assert_eq!(*s, 200, "{v}");
            v["data"]["task_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        replies.iter().filter(|(_, r, _)| !r).count(),
        1,
        "one creation"
    );
    assert_eq!(balance(&api, &key, "mj_quota").await, (86, 14));

    // One key for two providers at once: one task; the others get 409 or that task.
    let bodies = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                imagine("a duel")
            } else {
                music("a duel")
            }
        })
        .collect();
    let replies = race(&api, &key, "race-2", bodies).await;
    let created: std::collections::BTreeSet<&str> = replies
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, _, v)| v["data"]["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    assert!(
        replies.iter().all(|(s, _, _)| *s == 200 || *s == 409),
        "{replies:?}"
    );
    let held = balance(&api, &key, "mj_quota").await.1 + balance(&api, &key, "suno_quota").await.1;
    assert!(
        held == 28 || held == 24,
        "one more hold (mj 14 or suno 10): {held}"
    );
    api.stop().await;
}
