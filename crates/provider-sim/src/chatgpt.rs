//! ChatGPT's web backend as GPTs are reached through it: the conversation endpoint
//! (server-sent events), conversation read-back (for resume), files, gizmos, models.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
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

async fn conversation(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    let text = body["messages"][0]["content"]["parts"][0]
        .as_str()
        .unwrap_or("")
        .to_string();
    let d = Directives::parse(&text);
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal(r);
    }
    let conv = body["conversation_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| s.next_id("conv-"));
    let msg_id = s.next_id("msg-");
    let reply = format!(
        "Simulated answer to: {}",
        text.chars().take(200).collect::<String>()
    );
    s.lock().jobs.insert(
        format!("conv:{conv}"),
        crate::Job {
            account: a.name.clone(),
            tag: None,
            state: crate::JobState::Running(0),
            data: json!({"last": {"id": msg_id, "role": "assistant", "content": reply}}),
        },
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    let state = s.clone();
    tokio::spawn(async move {
        let steps = 4u64;
        for i in 1..=steps {
            if d.hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            tokio::time::sleep(Duration::from_millis(d.ms / steps)).await;
            let partial: String = reply
                .chars()
                .take(reply.len() * i as usize / steps as usize)
                .collect();
            let status = if i == steps {
                "finished_successfully"
            } else {
                "in_progress"
            };
            let ev = if d.fail && i == steps {
                json!({"message": null, "conversation_id": conv, "error": "This content may violate our content policy."})
            } else {
                json!({"message": {"id": msg_id, "author": {"role": "assistant"},
                                   "content": {"content_type": "text", "parts": [partial]},
                                   "status": status, "end_turn": i == steps, "metadata": {}, "recipient": "all"},
                       "conversation_id": conv, "error": null})
            };
            if tx
                .send(Ok(Event::default().data(ev.to_string())))
                .await
                .is_err()
            {
                break;
            }
        }
        state.set_job(&format!("conv:{conv}"), crate::JobState::Done);
        state.end(&a.name, d.tag.as_deref());
        let _ = tx.send(Ok(Event::default().data("[DONE]"))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Sse::new(stream).into_response()
}

async fn read_conversation(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if account(&headers).is_none() {
        return unauthorized();
    }
    match s.job(&format!("conv:{id}")) {
        Some(j) => Json(json!({"conversation_id": id,
            "status": if j.state == crate::JobState::Done { "finished" } else { "in_progress" },
            "last_message": j.data["last"]}))
        .into_response(),
        None => err(
            StatusCode::NOT_FOUND,
            json!({"detail": "conversation not found"}),
        ),
    }
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
    let id = body["gizmo_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| s.next_id("g-sim"));
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
    if account(&headers).is_none() {
        return unauthorized();
    }
    Json(json!({"models": [{"slug": "gpt-4o", "title": "GPT-4o"}, {"slug": "gpt-4", "title": "GPT-4"}]}))
        .into_response()
}
