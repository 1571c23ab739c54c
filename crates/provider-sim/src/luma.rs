//! Luma Dream Machine's web API: generations (create, extend, poll), image upload
//! (presigned URL), watermark-free download.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::{Directives, JobState, Shared, SimAccount, err, refusal_reply};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/photon/v1/generations/", post(create))
        .route("/api/photon/v1/generations/{id}", get(poll))
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
    json!({"id": id, "prompt": data["user_prompt"], "state": state, "created_at": "2026-01-01T00:00:00Z",
           "video": media(".mp4", 1360, 752), "video_raw": media("_raw.mp4", 1360, 752),
           "thumbnail": media(".jpg", 1360, 752), "last_frame": media("_last.jpg", 1360, 752),
           "failure_reason": failure, "estimate_wait_seconds": 0})
}

async fn start(s: &Shared, headers: &HeaderMap, body: Value) -> Response {
    let Some(a) = account(headers) else {
        return unauthorized();
    };
    let d = Directives::parse(body["user_prompt"].as_str().unwrap_or(""));
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let id = s.next_id("gen");
    s.start_job(&id, &a, &d, body, |_, _, _| {});
    Json(json!([generation(s, &id)])).into_response()
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
    if s.job(&id).is_none() && !id.starts_with("ext-") {
        return err(
            StatusCode::NOT_FOUND,
            json!({"detail": "generation not found"}),
        );
    }
    body["extends"] = json!(id);
    start(&s, &headers, body).await
}

async fn poll(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if account(&headers).is_none() {
        return unauthorized();
    }
    if s.job(&id).is_none() {
        return err(
            StatusCode::NOT_FOUND,
            json!({"detail": "generation not found"}),
        );
    }
    Json(generation(&s, &id)).into_response()
}

async fn download(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if account(&headers).is_none() {
        return unauthorized();
    }
    match s.job(&id).map(|j| j.state) {
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
