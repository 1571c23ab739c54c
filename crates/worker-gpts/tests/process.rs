//! Real worker processes killed with SIGKILL mid-conversation: the second process finds
//! the turn by the reference the first stored (our message id, the conversation id) and
//! completes the task with the answer to our message, without sending it again (the
//! simulator's witness counts one upstream job per task marker).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, WorkerProcess, output};
use switchyard_scheduler::{Owner, StoredStatus, TaskRecord};

const T: Duration = Duration::from_secs(20);

fn spawn_worker(h: &Harness) -> WorkerProcess {
    h.spawn_worker_binary(env!("CARGO_BIN_EXE_switchyard-worker-gpts"), &[])
}

fn reference(r: &TaskRecord) -> Value {
    serde_json::from_str(r.upstream.as_deref().unwrap_or_default()).unwrap_or(Value::Null)
}

async fn setup(name: &str) -> Harness {
    setup_with(name, |_| {}).await
}

async fn setup_with(name: &str, f: impl FnOnce(&mut switchyard_core::Config)) -> Harness {
    let h = Harness::with(name, |c| {
        c.scheduler.lease_ms = 1500;
        f(c);
    })
    .await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::GptsQuota, 1000).await;
    h.account(
        Provider::Gpts,
        &Owner::Pool,
        "pool1",
        "sim:ok:gpt1",
        [5, 0, 0],
    )
    .await;
    h
}

async fn create(h: &Harness, message: &str) -> String {
    h.submit(
        "t_d",
        ServiceMode::Ppu,
        "gpts",
        "create_conversation",
        json!({"message": message}),
    )
    .await
}

/// Kill the first process, start a second and wait for the task's end; the second is
/// stopped (SIGTERM) before returning.
async fn kill_and_resume(h: &Harness, first: WorkerProcess, id: &str) -> TaskRecord {
    let mut first = first;
    first.kill(); // SIGKILL: no hand-back, no goodbye
    let second = spawn_worker(h);
    let r = h.wait_terminal("t_d", id, T).await;
    second.terminate(Duration::from_secs(10));
    r
}

fn answer(r: &TaskRecord) -> String {
    output(r)["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Other traffic on the account: `text` sent as the web client sends it, in the
/// conversation `conv` (under its latest message) or in a new one. Returns the
/// conversation's id.
async fn chatter(h: &Harness, conv: Option<&str>, text: &str) -> String {
    let http = reqwest::Client::new();
    let auth = "Bearer sim:ok:gpt1";
    let mut body = json!({"action": "next", "parent_message_id": uuid::Uuid::new_v4().to_string(),
        "model": "gpt-4o",
        "messages": [{"id": uuid::Uuid::new_v4().to_string(), "author": {"role": "user"},
                      "content": {"content_type": "text", "parts": [text]}}]});
    if let Some(c) = conv {
        let read: Value = http
            .get(format!("{}/backend-api/conversation/{c}", h.sim.url()))
            .header("authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["conversation_id"] = json!(c);
        body["parent_message_id"] = read["current_node"].clone();
    }
    let r = http
        .post(format!("{}/backend-api/conversation", h.sim.url()))
        .header("authorization", auth)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.text()
        .await
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find_map(|ev| ev["conversation_id"].as_str().map(str::to_string))
        .expect("a conversation id in the stream")
}

/// A new conversation whose run is killed after ChatGPT accepted the message and before
/// the stream named the conversation (the reference holds only our message id); its
/// answer is then written to its end. Returns the task id.
async fn lose_the_conversation(h: &Harness, message: &str, marker: &str) -> String {
    let id = create(h, message).await;
    let mut a = spawn_worker(h);
    h.wait_upstream_jobs(marker, 1, T).await;
    let rec = h.sched.get_task("t_d", &id).await.unwrap().unwrap();
    assert!(reference(&rec)["conversation_id"].is_null(), "{:?}", rec);
    a.kill();
    h.wait_upstream_idle("gpt1", T).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_conversation_is_resumed_by_its_conversation_and_answer_ids() {
    let h = setup("gpts_kill_create").await;
    let id = create(&h, "tell me about otters [sim:ms=3000] [sim:task=c1]").await;
    let a = spawn_worker(&h);
    let seen = h
        .wait_task(
            "t_d",
            &id,
            "the conversation and answer in the reference",
            T,
            |r| {
                r.status == StoredStatus::Processing
                    && reference(r)["conversation_id"].is_string()
                    && reference(r)["answer_id"].is_string()
            },
        )
        .await;
    let r = kill_and_resume(&h, a, &id).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2, "claimed again after the crash");
    assert_eq!(
        output(&r)["conversation_id"],
        reference(&seen)["conversation_id"]
    );
    assert!(answer(&r).contains("tell me about otters"), "{}", r.output);
    assert_eq!(h.sim.stats().tasks["c1"], 1, "resumed, not sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_before_the_first_event_finds_its_conversation_by_our_message_id() {
    let h = setup("gpts_kill_window").await;
    let id = create(&h, "what do herons eat [sim:ms=4000] [sim:task=w1]").await;
    let a = spawn_worker(&h);
    // ChatGPT has accepted the message; its first event (the conversation id) comes a
    // second later, so the reference holds only our message id.
    h.wait_upstream_jobs("w1", 1, T).await;
    let rec = h.sched.get_task("t_d", &id).await.unwrap().unwrap();
    let stored = reference(&rec);
    assert!(stored["message_id"].is_string(), "{:?}", rec);
    assert!(stored["conversation_id"].is_null(), "{:?}", rec);
    let r = kill_and_resume(&h, a, &id).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2);
    assert!(answer(&r).contains("what do herons eat"), "{}", r.output);
    assert!(output(&r)["conversation_id"].is_string());
    assert_eq!(h.sim.stats().tasks["w1"], 1, "found, not sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_conversation_resumes_with_the_answer_to_our_message() {
    let h = setup("gpts_kill_continue").await;
    let first = create(&h, "first question [sim:ms=100] [sim:task=q1]").await;
    let a = spawn_worker(&h);
    let done = h.wait_terminal("t_d", &first, T).await;
    assert_eq!(done.status, StoredStatus::Completed, "{:?}", done);
    let conv = output(&done)["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = h
        .submit(
            "t_d",
            ServiceMode::Ppu,
            "gpts",
            "continue_conversation",
            json!({"conversation_id": conv, "message": "second question [sim:ms=3000] [sim:task=q2]"}),
        )
        .await;
    // Killed as soon as ChatGPT accepted our message, before any of its answer exists:
    // the conversation's latest answer is still the first question's.
    h.wait_upstream_jobs("q2", 1, T).await;
    let rec = h.sched.get_task("t_d", &id).await.unwrap().unwrap();
    assert_eq!(reference(&rec)["conversation_id"], json!(conv));
    assert!(reference(&rec)["message_id"].is_string());
    let r = kill_and_resume(&h, a, &id).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2);
    assert_eq!(output(&r)["conversation_id"], json!(conv));
    assert!(
        answer(&r).contains("second question"),
        "the answer to our message, not the previous one: {}",
        r.output
    );
    assert_eq!(h.sim.stats().tasks["q2"], 1, "resumed, not sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_conversation_is_found_past_a_page_of_newer_ones() {
    let h = setup("gpts_kill_busy").await;
    let id = lose_the_conversation(&h, "how do owls sleep [sim:ms=4000] [sim:task=o1]", "o1").await;
    // ...then other traffic on the account: more conversations than a page of the list.
    for i in 0..40 {
        chatter(&h, None, &format!("chatter {i} [sim:ms=10]")).await;
    }
    let b = spawn_worker(&h);
    let r = h.wait_terminal("t_d", &id, T).await;
    b.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert!(answer(&r).contains("how do owls sleep"), "{}", r.output);
    assert_eq!(h.sim.stats().tasks["o1"], 1, "found, not sent again");
}

/// Another submission on the account just now, with a long gap: the next run waits for
/// pacing before it may send (the account's `sub_ms` / `sub_gap`, as `pace.lua` keeps them).
fn hold_pacing(h: &Harness, account: &str, gap_ms: u64) {
    use switchyard_scheduler::keys;
    let c = &h.config;
    let base = keys::shard_base(
        &c.redis.key_prefix,
        Provider::Gpts,
        keys::shard_of(account, c.scheduler.shards),
    );
    let port = switchyard_test_support::redis().ports[0];
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let out = switchyard_test_support::redis_cli(
        port,
        &[
            "HSET",
            &keys::account(&base, account),
            "sub_ms",
            &now_ms,
            "sub_gap",
            &gap_ms.to_string(),
        ],
    );
    assert_eq!(out.trim(), "2", "the account's pacing fields written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_it_waits_for_pacing_leaves_nothing_to_look_for() {
    let h = setup_with("gpts_kill_paced", |c| {
        c.scheduler.pacing.gpts = switchyard_core::config::Pacing {
            min_gap_s: 0.01,
            max_gap_s: 0.02,
        }
    })
    .await;
    hold_pacing(&h, "pool1", 4000);
    let id = create(&h, "why do cats purr [sim:ms=100] [sim:task=p1]").await;
    let a = spawn_worker(&h);
    // Claimed, and waiting for the account's gap: nothing is stored before the wait ends,
    // so a crash there leaves no message to look for upstream.
    let rec = h
        .wait_task("t_d", &id, "claimed", T, |r| {
            r.status == StoredStatus::Processing
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rec = h.sched.get_task("t_d", &id).await.unwrap().unwrap_or(rec);
    assert_eq!(rec.status, StoredStatus::Processing, "{:?}", rec);
    assert!(
        rec.upstream.as_deref().unwrap_or_default().is_empty(),
        "no reference while the run waits for pacing: {:?}",
        rec.upstream
    );
    assert_eq!(h.sim.stats().tasks.get("p1"), None, "not sent yet");
    let r = kill_and_resume(&h, a, &id).await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert!(answer(&r).contains("why do cats purr"), "{}", r.output);
    assert_eq!(h.sim.stats().tasks["p1"], 1, "sent once");
    assert_eq!(
        h.sim.stats().accounts["gpt1"].conversation_reads,
        0,
        "the retry started afresh: it read no conversation looking for the message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_conversation_is_found_without_reading_the_older_ones_others_continue() {
    let h = setup("gpts_kill_old_busy").await;
    // The account's conversations from before.
    let mut older = Vec::new();
    for i in 0..30 {
        older.push(chatter(&h, None, &format!("old {i} [sim:ms=10]")).await);
    }
    // Past the few seconds a resume allows for clocks (ChatGPT's `Date` and list times
    // are whole seconds): those conversations were made before ours.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let id = lose_the_conversation(&h, "how do owls sleep [sim:ms=4000] [sim:task=o2]", "o2").await;
    // Other traffic continues every older conversation: all are updated after ours.
    for conv in &older {
        chatter(&h, Some(conv), "more [sim:ms=10]").await;
    }
    let reads_before = h.sim.stats().accounts["gpt1"].conversation_reads;
    let b = spawn_worker(&h);
    let r = h.wait_terminal("t_d", &id, T).await;
    b.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert!(answer(&r).contains("how do owls sleep"), "{}", r.output);
    assert_eq!(h.sim.stats().tasks["o2"], 1, "found, not sent again");
    let reads = h.sim.stats().accounts["gpt1"].conversation_reads - reads_before;
    assert!(
        reads <= 3,
        "{reads} conversations read: the 30 created before our message are not ours to look in"
    );
}
