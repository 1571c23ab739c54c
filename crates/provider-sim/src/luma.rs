//! Luma Dream Machine's web API: generations (create, extend, poll), image upload
//! (presigned URL), watermark-free download.
//!
//! `GET /api/photon/v1/user/generations/?offset=&limit=` lists the account's own
//! generations, newest first (at most 100 a page), as Luma's web client reads them: each
//! with its `prompt` (the `user_prompt` sent), `created_at` (ISO 8601, UTC), `state`, and
//! for an extension `parent_generation_id` (the generation it extends; null otherwise).
//! `[sim:reply_ms=N]` in the prompt delays the answer of a creation by N ms: the generation
//! exists (and the witness counts it) at once, as when a reply is slow to come back.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::suno::{iso, now_ms, own_jobs, reply_delay};
use crate::{Directives, JobState, Shared, SimAccount, err, refusal_reply};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/users/v1/me", get(me))
        .route("/api/photon/v1/generations/", post(create))
        .route("/api/photon/v1/generations/{id}", get(poll))
        .route("/api/photon/v1/user/generations/", get(list))
        .route("/api/photon/v1/generations/{id}/extend", post(extend))
        .route(
            "/api/photon/v1/generations/{id}/download_video_url",
            get(download),
        )
        .route("/api/photon/v1/generations/file_upload", post(file_upload))
        .route("/_luma_upload/{id}", put(|| async { StatusCode::OK }))
}

fn account(headers: &HeaderMap) -> Option<SimAccount> {
    let cookie = headers.get("cookie")?.to_str().ok()?;
    let v = cookie
        .split(';')
        .find_map(|kv| kv.trim().strip_prefix("access_token="))?;
    SimAccount::parse(v)
}

fn unauthorized() -> Response {
    err(StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
}

fn generation(s: &Shared, id: &str) -> Value {
    let base = s.base();
    let j = s.job(id);
    let (state, failure) = match j.as_ref().map(|j| &j.state) {
        Some(JobState::Done) => ("completed", Value::Null),
        Some(JobState::Running(p)) if *p > 0 => ("processing", Value::Null),
        Some(JobState::Running(_)) => ("pending", Value::Null),
        Some(JobState::Failed(r)) => ("failed", json!(r)),
        None => ("failed", json!("unknown generation")),
    };
    let data = j.map(|j| j.data).unwrap_or(Value::Null);
    let done = state == "completed";
    let media = |name: &str, w: u32, h: u32| {
        if done {
            json!({"url": format!("{base}/_cdn/{id}{name}"), "width": w, "height": h})
        } else {
            Value::Null
        }
    };
    json!({"id": id, "prompt": data["user_prompt"], "state": state,
           "created_at": data["created_ms"].as_u64().map(iso), "parent_generation_id": data["extends"],
           "video": media(".mp4", 1360, 752), "video_raw": media("_raw.mp4", 1360, 752),
           "thumbnail": media(".jpg", 1360, 752), "last_frame": media("_last.jpg", 1360, 752),
           "failure_reason": failure, "estimate_wait_seconds": 0})
}

/// The signed-in user (what a probe reads): 401 for a banned account.
async fn me(headers: HeaderMap) -> Response {
    match account(&headers) {
        Some(a) if !a.banned_now() => Json(
            json!({"id": format!("user_{}", a.name), "email": format!("{}@sim", a.name),
            "subscription": {"active": a.behaviour != crate::Behaviour::Expired}}),
        )
        .into_response(),
        _ => unauthorized(),
    }
}

async fn start(s: &Shared, headers: &HeaderMap, body: Value) -> Response {
    let Some(a) = account(headers) else {
        return unauthorized();
    };
    // Luma answers 422 to a model or a duration it does not have.
    if let Some(m) = body.get("model").filter(|m| !m.is_null())
        && !matches!(m.as_str(), Some("ray-1-6" | "ray-2"))
    {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": format!("unknown model {m}")}),
        );
    }
    if let Some(d) = body.get("duration").filter(|d| !d.is_null())
        && !matches!(d.as_str(), Some("5s" | "10s"))
    {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": format!("invalid duration {d}")}),
        );
    }
    let text = body["user_prompt"].as_str().unwrap_or("");
    let d = Directives::parse(text);
    let delay = reply_delay(text);
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let id = s.next_id("gen");
    let mut data = body;
    data["created_ms"] = json!(now_ms());
    s.start_job(&id, &a, &d, data, |_, _, _| {});
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    Json(json!([generation(s, &id)])).into_response()
}

#[derive(serde::Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn list(State(s): State<Shared>, headers: HeaderMap, Query(p): Query<Page>) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    let page: Vec<Value> = own_jobs(&s, &a.name, "gen")
        .iter()
        .skip(p.offset.unwrap_or(0))
        .take(p.limit.unwrap_or(20).min(100))
        .map(|(id, _)| generation(&s, id))
        .collect();
    Json(json!(page)).into_response()
}

async fn create(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    start(&s, &headers, body).await
}

async fn extend(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(mut body): Json<Value>,
) -> Response {
    // Only the account that made a generation sees it, or can extend it.
    let mine = account(&headers).is_some_and(|a| s.job(&id).is_some_and(|j| j.account == a.name));
    if !mine {
        return err(
            StatusCode::NOT_FOUND,
            json!({"detail": "generation not found"}),
        );
    }
    body["extends"] = json!(id);
    start(&s, &headers, body).await
}

async fn poll(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    if s.job(&id).is_none_or(|j| j.account != a.name) {
        return err(
            StatusCode::NOT_FOUND,
            json!({"detail": "generation not found"}),
        );
    }
    Json(generation(&s, &id)).into_response()
}

async fn download(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(a) = account(&headers) else {
        return unauthorized();
    };
    match s.job(&id).filter(|j| j.account == a.name).map(|j| j.state) {
        None => err(
            StatusCode::NOT_FOUND,
            json!({"detail": "generation not found"}),
        ),
        Some(JobState::Done) => {
            Json(json!({"url": format!("{}/_cdn/{id}_nowatermark.mp4", s.base())})).into_response()
        }
        _ => err(
            StatusCode::BAD_REQUEST,
            json!({"detail": "generation is not completed"}),
        ),
    }
}

async fn file_upload(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if account(&headers).is_none() {
        return unauthorized();
    }
    let n = s.next_id("img");
    let base = s.base();
    Json(json!({"presigned_url": format!("{base}/_luma_upload/{n}"),
                "public_url": format!("{base}/_cdn/{n}.jpg")}))
    .into_response()
}
