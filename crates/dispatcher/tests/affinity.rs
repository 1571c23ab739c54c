//! Follow-ups stay on their account (API.md): a task that names an upstream object by its
//! id alone — a GPTs conversation or file, a Suno clip (of a generation or an upload), a
//! Luma generation — runs on the account whose task produced the object, among three;
//! with that account disabled it fails `account_error` instead of landing elsewhere. The
//! simulator shows each object only to the account that made it, as the upstreams do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Api;
use serde_json::{Value, json};

const EACH: usize = 20;

async fn finish_all(api: &Api, key: &str, ids: &[String]) -> Vec<Value> {
    let client = api.client(key);
    let mut out = Vec::new();
    for id in ids {
        out.push(
            client
                .wait_task(id, Duration::from_secs(120))
                .await
                .unwrap(),
        );
    }
    out
}

fn account_of(t: &Value) -> String {
    t["meta"]["account_id"].as_str().unwrap().to_string()
}

/// Each follow-up (object id → the task it is) ran on the account that produced the
/// object, and completed.
fn assert_on_owners(kind: &str, followups: &[Value], owner_of: &[String]) {
    for (t, owner) in followups.iter().zip(owner_of) {
        assert_eq!(t["status"], "completed", "{kind}: {t}");
        assert_eq!(&account_of(t), owner, "{kind} ran off its owner: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_naming_an_object_run_on_its_account() {
    let mut api = Api::start_with("affinity", |c| {
        c.dispatcher.rate_limit_per_s = 10_000;
        c.dispatcher.rate_limit_burst = 10_000;
    })
    .await;
    api.run_workers();
    let (_, key) = api.tenant("premium").await;
    let client = api.client(&key);
    let mut accounts: HashMap<&str, Vec<String>> = HashMap::new();
    for (provider, cred) in [
        ("suno", "cookie"),
        ("luma", "cookie"),
        ("gpts", "access_token"),
    ] {
        for i in 0..3 {
            let a = client
                .add_account(
                    &json!({"provider": provider, "name": format!("{provider} {i}"),
                    "credentials": {cred: format!("sim:ok:{provider}-affinity-{i}-0001")},
                    "concurrency": 10}),
                )
                .await
                .unwrap();
            accounts
                .entry(provider)
                .or_default()
                .push(a["account_id"].as_str().unwrap().to_string());
        }
    }
    let byoa = json!({"service_mode": "private"});
    let file_url = format!("{}/_cdn/notes.txt", api.h.sim.url());
    let audio_url = format!("{}/_cdn/song.mp3", api.h.sim.url());

    // The originals, spread over the three accounts of each provider.
    let mut originals: HashMap<&str, Vec<String>> = HashMap::new();
    for i in 0..EACH {
        let jobs = [
            (
                "conversation",
                json!({"model": "gpts", "task_type": "create_conversation",
                "input": {"message": format!("hello {i} [sim:ms=20]")}, "config": byoa}),
            ),
            (
                "file",
                json!({"model": "gpts", "task_type": "upload_file",
                "input": {"file_url": file_url}, "config": byoa}),
            ),
            (
                "clip",
                json!({"model": "suno", "task_type": "generate_music",
                "input": {"gpt_description_prompt": format!("a song {i} [sim:ms=20]")}, "config": byoa}),
            ),
            (
                "upload",
                json!({"model": "suno", "task_type": "upload",
                "input": {"audio_url": format!("{audio_url}?n={i}&d=[sim:ms=20]")}, "config": byoa}),
            ),
            (
                "generation",
                json!({"model": "luma", "task_type": "video_generation",
                "input": {"prompt": format!("a harbour {i} [sim:ms=20]")}, "config": byoa}),
            ),
        ];
        for (kind, body) in jobs {
            let id = api.create_ok(&key, body).await;
            originals.entry(kind).or_default().push(id);
        }
    }
    let mut done: HashMap<&str, Vec<Value>> = HashMap::new();
    for (kind, ids) in &originals {
        let ts = finish_all(&api, &key, ids).await;
        for t in &ts {
            assert_eq!(t["status"], "completed", "{kind}: {t}");
        }
        let used: std::collections::HashSet<String> = ts.iter().map(account_of).collect();
        assert!(
            used.len() > 1,
            "{kind}: the originals should spread over the accounts"
        );
        done.insert(kind, ts);
    }

    // The follow-ups name the object alone.
    let object = |kind: &str, t: &Value| -> String {
        let o = &t["output"];
        match kind {
            "conversation" => o["conversation_id"].as_str().unwrap().to_string(),
            "file" => o["file_id"].as_str().unwrap().to_string(),
            "clip" => o["clips"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone(),
            "upload" => o["clip_id"].as_str().unwrap().to_string(),
            "generation" => o["generation_id"].as_str().unwrap().to_string(),
            _ => unreachable!(),
        }
    };
    let follow_up = |kind: &str, obj: &str| -> Value {
        let mut body = match kind {
            "conversation" => json!({"model": "gpts", "task_type": "continue_conversation",
                "input": {"conversation_id": obj, "message": "and then? [sim:ms=20]"}}),
            "file" => json!({"model": "gpts", "task_type": "download_file",
                "input": {"file_id": obj}}),
            "clip" | "upload" => json!({"model": "suno", "task_type": "generate_music_custom",
                "input": {"prompt": "[Verse] on and on [sim:ms=20]", "continue_clip_id": obj,
                          "continue_at": 30}}),
            "generation" => json!({"model": "luma", "task_type": "extend_video",
                "input": {"generation_id": obj, "prompt": "further [sim:ms=20]"}}),
            _ => unreachable!(),
        };
        body["config"] = byoa.clone();
        body
    };
    for kind in ["conversation", "file", "clip", "upload", "generation"] {
        let origin = &done[kind];
        let mut ids = Vec::new();
        for t in origin {
            ids.push(api.create_ok(&key, follow_up(kind, &object(kind, t))).await);
        }
        let owners: Vec<String> = origin.iter().map(account_of).collect();
        assert_on_owners(kind, &finish_all(&api, &key, &ids).await, &owners);
    }

    // The owner disabled: the follow-up fails account_error, saying which object.
    let t = &done["conversation"][0];
    let owner = account_of(t);
    client
        .update_account(&owner, &json!({"enabled": false}))
        .await
        .unwrap();
    let conv = object("conversation", t);
    let id = api.create_ok(&key, follow_up("conversation", &conv)).await;
    let failed = client
        .wait_task(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["reason"], "account_error", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&conv) && message.contains("disabled"),
        "{message}"
    );
    // An object no task of this tenant made runs where the scheduler puts it.
    let other = api
        .create_ok(&key, follow_up("generation", "gen-unknown-to-switchyard"))
        .await;
    let t = client
        .wait_task(&other, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(
        t["error"]["reason"], "upstream_rejected",
        "the upstream does not know it: {t}"
    );
    api.stop().await;
}
