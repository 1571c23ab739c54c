//! ChatGPT's web backend as GPTs are reached through it: the conversation endpoint
//! (server-sent events), conversation read-back with its mapping of messages and the
//! account's conversation list (for resume), files, gizmos, models.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::{Directives, Refusal, Shared, SimAccount, err, refusal_reply};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/backend-api/conversation", post(conversation))
        .route("/backend-api/conversation/{id}", get(read_conversation))
        .route("/backend-api/conversations", get(list_conversations))
        .route("/backend-api/files", post(file_create))
        .route("/backend-api/files/{id}/uploaded", post(file_uploaded))
        .route("/backend-api/files/{id}/download", get(file_download))
        .route("/_gpt_upload/{id}", put(|| async { StatusCode::OK }))
        .route("/backend-api/gizmos/snorlax/upsert", post(gizmo_upsert))
        .route("/backend-api/gizmos/bootstrap", get(gizmos))
        .route("/backend-api/models", get(models))
}

fn account(headers: &HeaderMap) -> Option<SimAccount> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    SimAccount::parse(auth.strip_prefix("Bearer ")?)
}

fn unauthorized() -> Response {
    err(
        StatusCode::UNAUTHORIZED,
        json!({"detail": {"code": "token_expired", "message": "Your authentication token has expired."}}),
    )
}

fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::RateLimited | Refusal::Full => {
            let mut resp = err(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"detail": {"code": "usage_limit", "message": "You've reached the current usage cap.", "clears_in": 30}}),
            );
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("30"));
            resp
        }
        other => refusal_reply(other),
    }
}

/// Run a short job for calls that do not stream (files, gizmos): admission and witness.
fn quick(s: &Shared, a: &SimAccount) -> Result<(), Box<Response>> {
    let d = Directives {
        ms: 0,
        ..Directives::default()
    };
    s.admit(a, &d, true).map_err(|r| Box::new(refusal(r)))?;
    s.end(&a.name, None);
    Ok(())
}

/// The key a conversation is kept under in the simulator's job table. Its `data` is the
/// conversation as `GET /backend-api/conversation/{id}` shows it (title, times,
/// `current_node`, `mapping` of message nodes with parent and children); its `account` is
/// the account that created it, the only one that can see or continue it.
fn conv_key(id: &str) -> String {
    format!("conv:{id}")
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Unix seconds as the conversation list writes them: `2023-04-06T19:55:21.620368`
/// (`micros`) or `2023-04-06T19:55:21` (truncated), UTC, no offset.
fn iso_utc(unix_s: f64, micros: bool) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos((unix_s * 1e9) as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let whole = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if micros {
        format!("{whole}.{:06}", at.microsecond())
    } else {
        whole
    }
}

fn not_found() -> Response {
    err(
        StatusCode::NOT_FOUND,
        json!({"detail": "conversation not found"}),
    )
}

/// A message node of a conversation's mapping.
fn node(id: &str, message: Value, parent: Option<&str>) -> Value {
    json!({"id": id, "message": message, "parent": parent, "children": []})
}

fn message(id: &str, role: &str, text: &str, status: &str) -> Value {
    json!({"id": id, "author": {"role": role}, "create_time": now_s(),
           "content": {"content_type": "text", "parts": [text]},
           "status": status, "end_turn": if role == "assistant" { Value::Null } else { json!(true) },
           "metadata": {}, "recipient": "all"})
}

/// Put `child` under `parent` in a conversation's mapping and make it the current node.
fn attach(conv: &mut Value, child: Value, parent: &str) {
    let id = child["id"].as_str().unwrap_or("").to_string();
    if let Some(children) = conv["mapping"][parent]["children"].as_array_mut() {
        children.push(json!(id));
    }
    conv["mapping"][id.as_str()] = child;
    conv["current_node"] = json!(id);
    conv["update_time"] = json!(now_s());
}

/// `POST /backend-api/conversation`: the user message (`messages[0]`, with the id the
/// client chose) goes under `parent_message_id` — for a new conversation, the client's
/// root; for a continue, a message of that conversation (the account's own, else 404).
/// Once accepted, the conversation and the user message are readable at once; the answer
/// appears under the user message with the first event and is written on to its end
/// whether or not the client still listens, as the web backend does.
async fn conversation(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    // A GPT made by another account is private to it.
    if let Some(g) = body["conversation_mode"]["gizmo_id"].as_str()
        && s.lock().owned.get(g).is_some_and(|owner| *owner != a.name)
    {
        return err(StatusCode::NOT_FOUND, json!({"detail": "Gizmo not found"}));
    }
    let text = body["messages"][0]["content"]["parts"][0]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (Some(user_id), Some(parent)) = (
        body["messages"][0]["id"].as_str().map(str::to_string),
        body["parent_message_id"].as_str().map(str::to_string),
    ) else {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"detail": "messages[0].id and parent_message_id are required"}),
        );
    };
    let existing = body["conversation_id"].as_str().map(str::to_string);
    if let Some(c) = &existing {
        match s.job(&conv_key(c)) {
            Some(j) if j.account == a.name => {
                if j.data["mapping"].get(&parent).is_none() {
                    return err(
                        StatusCode::NOT_FOUND,
                        json!({"detail": "parent message not found"}),
                    );
                }
                if j.data["mapping"].get(&user_id).is_some() {
                    return err(
                        StatusCode::CONFLICT,
                        json!({"detail": "a message with this id already exists"}),
                    );
                }
            }
            _ => return not_found(),
        }
    }
    let d = Directives::parse(&text);
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal(r);
    }
    let conv = existing.unwrap_or_else(|| s.next_id("conv-"));
    let answer_id = s.next_id("msg-");
    {
        let mut inner = s.lock();
        let entry = inner
            .jobs
            .entry(conv_key(&conv))
            .or_insert_with(|| crate::Job {
                account: a.name.clone(),
                tag: None,
                state: crate::JobState::Done,
                data: json!({"conversation_id": conv, "title": "New chat",
                    "create_time": now_s(), "update_time": now_s(), "current_node": parent,
                    "mapping": {parent.as_str(): node(&parent, Value::Null, None)}}),
            });
        attach(
            &mut entry.data,
            node(
                &user_id,
                message(&user_id, "user", &text, "finished_successfully"),
                Some(&parent),
            ),
            &parent,
        );
    }
    let reply = format!(
        "Simulated answer to: {}",
        text.chars().take(200).collect::<String>()
    );
    // `[sim:cut]` (ChatGPT only): the stream breaks off after the second event, without
    // `[DONE]`, as a dropped connection does; the answer is still written to its end.
    let cut = text.contains("[sim:cut]");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    let mut tx = Some(tx);
    let state = s.clone();
    tokio::spawn(async move {
        let steps = 4u64;
        for i in 1..=steps {
            if d.hang && i > 1 {
                // Never finishes: the answer stays in progress, the witness counts it.
                return;
            }
            tokio::time::sleep(Duration::from_millis(d.ms / steps)).await;
            let partial: String = reply
                .chars()
                .take(reply.len() * i as usize / steps as usize)
                .collect();
            let failed = d.fail && i == steps;
            let status = if failed {
                "finished_with_error"
            } else if i == steps {
                "finished_successfully"
            } else {
                "in_progress"
            };
            let mut msg = message(&answer_id, "assistant", &partial, status);
            msg["end_turn"] = json!(i == steps);
            if failed {
                msg["content"]["parts"] = json!([]);
                msg["metadata"]["error"] = json!("This content may violate our content policy.");
            }
            {
                let mut inner = state.lock();
                if let Some(j) = inner.jobs.get_mut(&conv_key(&conv)) {
                    if i == 1 {
                        attach(
                            &mut j.data,
                            node(&answer_id, msg.clone(), Some(&user_id)),
                            &user_id,
                        );
                    } else {
                        j.data["mapping"][answer_id.as_str()]["message"] = msg.clone();
                        j.data["update_time"] = json!(now_s());
                    }
                }
            }
            let ev = if failed {
                json!({"message": null, "conversation_id": conv, "error": "This content may violate our content policy."})
            } else {
                json!({"message": msg, "conversation_id": conv, "error": null})
            };
            // The client may be gone: the answer is written on regardless.
            if let Some(t) = &tx {
                let _ = t.send(Ok(Event::default().data(ev.to_string()))).await;
            }
            if cut && i == 2 {
                tx = None;
            }
        }
        state.end(&a.name, d.tag.as_deref());
        if let Some(t) = &tx {
            let _ = t.send(Ok(Event::default().data("[DONE]"))).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Sse::new(stream).into_response()
}

/// `GET /backend-api/conversation/{id}`: the conversation as it is now — every message
/// node with its parent, children and status (an answer being written is `in_progress`).
/// Only the account that created it sees it; any other gets 404.
async fn read_conversation(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    s.lock()
        .stats
        .accounts
        .entry(a.name.clone())
        .or_default()
        .conversation_reads += 1;
    match s.job(&conv_key(&id)) {
        Some(j) if j.account == a.name => Json(j.data).into_response(),
        _ => not_found(),
    }
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    28
}

/// `GET /backend-api/conversations?offset=&limit=`: the account's conversations, most
/// recently updated first (id, title, times; no messages).
async fn list_conversations(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    let mut items: Vec<Value> = s
        .lock()
        .jobs
        .iter()
        .filter(|(k, j)| k.starts_with("conv:") && j.account == a.name)
        .map(|(_, j)| j.data.clone())
        .collect();
    items.sort_by(|x, y| {
        let t = |v: &Value| v["update_time"].as_f64().unwrap_or(0.0);
        t(y).total_cmp(&t(x))
    });
    let total = items.len();
    let limit = page.limit.min(100);
    // As ChatGPT lists them: times as ISO 8601 strings in UTC without an offset (the
    // creation to the microsecond, the last update to the second), where a conversation
    // itself gives Unix seconds.
    let items: Vec<Value> = items
        .into_iter()
        .skip(page.offset)
        .take(limit)
        .map(|c| {
            json!({"id": c["conversation_id"], "title": c["title"],
                   "create_time": iso_utc(c["create_time"].as_f64().unwrap_or(0.0), true),
                   "update_time": iso_utc(c["update_time"].as_f64().unwrap_or(0.0), false)})
        })
        .collect();
    Json(json!({"items": items, "total": total, "limit": limit, "offset": page.offset}))
        .into_response()
}

async fn file_create(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    if let Err(r) = quick(&s, &a) {
        return *r;
    }
    let id = s.next_id("file-");
    s.lock().owned.insert(id.clone(), a.name.clone());
    Json(
        json!({"status": "success", "file_id": id, "file_name": body["file_name"],
                "upload_url": format!("{}/_gpt_upload/{id}", s.base())}),
    )
    .into_response()
}

async fn file_uploaded(headers: HeaderMap, Path(id): Path<String>) -> Response {
    if account(&headers).is_none() {
        return unauthorized();
    }
    Json(json!({"status": "success", "file_id": id})).into_response()
}

async fn file_download(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    // Only the account that uploaded a file sees it.
    if s.lock().owned.get(&id) != Some(&a.name) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "File not found"})),
        )
            .into_response();
    }
    if let Err(r) = quick(&s, &a) {
        return *r;
    }
    Json(json!({"status": "success", "download_url": format!("{}/_cdn/{id}", s.base()), "file_name": "file.bin"}))
        .into_response()
}

async fn gizmo_upsert(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    if let Err(r) = quick(&s, &a) {
        return *r;
    }
    // A GPT is modified only by the account that made it.
    let id = match body["gizmo_id"].as_str() {
        Some(g) => {
            if s.lock().owned.get(g) != Some(&a.name) {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"detail": "Gizmo not found"})),
                )
                    .into_response();
            }
            g.to_string()
        }
        None => {
            let g = s.next_id("g-sim");
            s.lock().owned.insert(g.clone(), a.name.clone());
            g
        }
    };
    Json(json!({"gizmo": {"id": id, "display": body["display"], "instructions": body["instructions"]}}))
        .into_response()
}

async fn gizmos(headers: HeaderMap) -> Response {
    if account(&headers).is_none() {
        return unauthorized();
    }
    Json(json!({"gizmos": [{"id": "g-sim1", "display": {"name": "Sim GPT", "description": "A simulated GPT"}}]}))
        .into_response()
}

async fn models(headers: HeaderMap) -> Response {
    if account(&headers).is_none_or(|a| a.banned_now()) {
        return unauthorized();
    }
    Json(json!({"models": [{"slug": "gpt-4o", "title": "GPT-4o"}, {"slug": "gpt-4", "title": "GPT-4"}]}))
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use crate::Sim;

    async fn get(url: &str, token: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The answer node under our message, once there.
    fn answer(conv: &Value) -> Option<Value> {
        let child = conv["mapping"]["u-1"]["children"][0].as_str()?;
        Some(conv["mapping"][child]["message"].clone())
    }

    #[tokio::test]
    async fn a_conversation_reads_back_as_it_is_and_only_to_its_account() {
        let sim = Sim::start("127.0.0.1:0").await.unwrap();
        let url = sim.url();
        let resp = reqwest::Client::new()
            .post(format!("{url}/backend-api/conversation"))
            .bearer_auth("sim:ok:a")
            .json(&json!({"action": "next", "parent_message_id": "root-1",
                "messages": [{"id": "u-1", "author": {"role": "user"},
                              "content": {"content_type": "text", "parts": ["hi [sim:ms=800]"]}}]}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        drop(resp); // the client goes away: the answer is written on regardless
        let (_, list) = get(
            &format!("{url}/backend-api/conversations?limit=5"),
            "sim:ok:a",
        )
        .await;
        let conv = list["items"][0]["id"].as_str().unwrap().to_string();
        let (_, other) = get(&format!("{url}/backend-api/conversations"), "sim:ok:b").await;
        assert_eq!(other["items"], json!([]), "another account's list");
        let read = format!("{url}/backend-api/conversation/{conv}");
        let (status, c) = get(&read, "sim:ok:b").await;
        assert_eq!(
            (status, c["detail"].as_str()),
            (404, Some("conversation not found"))
        );
        let (status, c) = get(&read, "sim:ok:a").await;
        assert_eq!(status, 200);
        assert_eq!(c["mapping"]["u-1"]["parent"], "root-1");
        assert_eq!(c["mapping"]["root-1"]["children"], json!(["u-1"]));
        // The answer shows as in progress while it is written, then finished.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen_in_progress = false;
        let done = loop {
            let (_, c) = get(&read, "sim:ok:a").await;
            match answer(&c) {
                Some(m) if m["status"] == "in_progress" => {
                    seen_in_progress = true;
                    assert_eq!(c["current_node"], m["id"]);
                }
                Some(m) if m["status"] == "finished_successfully" => break m,
                Some(m) => panic!("unexpected answer {m}"),
                None => assert_eq!(c["current_node"], "u-1"),
            }
            assert!(Instant::now() < deadline, "no answer: {c}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(seen_in_progress, "an answer being written is not finished");
        assert!(done["content"]["parts"][0].as_str().unwrap().contains("hi"));
        // Another account cannot continue it either.
        let resp = reqwest::Client::new()
            .post(format!("{url}/backend-api/conversation"))
            .bearer_auth("sim:ok:b")
            .json(
                &json!({"action": "next", "conversation_id": conv, "parent_message_id": done["id"],
                "messages": [{"id": "u-2", "author": {"role": "user"},
                              "content": {"content_type": "text", "parts": ["more"]}}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404);
    }
}
