//! Suno: Clerk (cookie → session → JWT), `generate/v2` (two clips), feed polling, lyrics,
//! audio upload, the captcha check.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Behaviour, Directives, JobState, Shared, SimAccount, err, refusal_reply};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/client", get(clerk_client))
        .route("/v1/client/sessions/{sid}/tokens", post(clerk_token))
        .route("/api/c/check", post(captcha_check))
        .route("/api/generate/v2/", post(generate))
        .route("/api/feed/v2", get(feed))
        .route("/api/generate/lyrics/", post(lyrics))
        .route("/api/generate/lyrics/{id}", get(lyrics_get))
        .route("/api/uploads/audio/", post(upload))
        .route("/api/uploads/audio/{id}", get(upload_get))
}

fn cookie_account(headers: &HeaderMap) -> Option<(String, SimAccount)> {
    let cookie = headers.get("cookie")?.to_str().ok()?;
    let value = cookie
        .split(';')
        .find_map(|kv| kv.trim().strip_prefix("__client="))?;
    SimAccount::parse(value).map(|a| (value.to_string(), a))
}

fn jwt_account(headers: &HeaderMap) -> Option<SimAccount> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    SimAccount::parse(auth.strip_prefix("Bearer simjwt.")?)
}

fn unauthorized() -> Response {
    err(StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
}

async fn clerk_client(headers: HeaderMap) -> Response {
    match cookie_account(&headers) {
        Some((_, a)) if a.behaviour != Behaviour::Banned => Json(json!({
            "response": {"last_active_session_id": format!("sess_{}", a.name),
                          "sessions": [{"id": format!("sess_{}", a.name), "status": "active"}]}
        }))
        .into_response(),
        _ => err(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "authentication_invalid"}]}),
        ),
    }
}

async fn clerk_token(headers: HeaderMap, Path(_sid): Path<String>) -> Response {
    match cookie_account(&headers) {
        Some((cookie, a)) if a.behaviour != Behaviour::Banned => {
            Json(json!({"object": "token", "jwt": format!("simjwt.{cookie}")})).into_response()
        }
        _ => err(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "authentication_invalid"}]}),
        ),
    }
}

async fn captcha_check(headers: HeaderMap) -> Response {
    match jwt_account(&headers) {
        Some(a) => Json(json!({"required": a.behaviour == Behaviour::Captcha})).into_response(),
        None => unauthorized(),
    }
}

fn clip(s: &Shared, id: &str, job: &str) -> Value {
    let j = s.job(job);
    let base = s.base();
    let (status, error) = match j.as_ref().map(|j| &j.state) {
        Some(JobState::Done) => ("complete", None),
        Some(JobState::Running(p)) if *p >= 75 => ("streaming", None),
        Some(JobState::Running(p)) if *p >= 25 => ("queued", None),
        Some(JobState::Running(_)) => ("submitted", None),
        Some(JobState::Failed(r)) => ("error", Some(r.clone())),
        None => ("error", Some("unknown clip".to_string())),
    };
    let data = j.map(|j| j.data).unwrap_or(Value::Null);
    let streaming = status == "streaming" || status == "complete";
    json!({
        "id": id, "status": status,
        "title": data["title"].as_str().unwrap_or("Simulated Song"),
        "audio_url": if streaming { json!(format!("{base}/_cdn/{id}.mp3")) } else { json!("") },
        "video_url": if status == "complete" { json!(format!("{base}/_cdn/{id}.mp4")) } else { json!("") },
        "image_url": format!("{base}/_cdn/{id}.jpeg"),
        "model_name": data["mv"].as_str().unwrap_or("chirp-v3-5"),
        "metadata": {"prompt": data["prompt"], "gpt_description_prompt": data["gpt_description_prompt"],
                     "tags": data["tags"], "duration": if status == "complete" { json!(120.5) } else { Value::Null },
                     "type": if data["continue_clip_id"].is_string() { "extend" } else { "gen" },
                     "error_message": error},
    })
}

async fn generate(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(a) = jwt_account(&headers) else {
        return unauthorized();
    };
    let text = body["gpt_description_prompt"]
        .as_str()
        .filter(|t| !t.is_empty())
        .or(body["prompt"].as_str())
        .unwrap_or("");
    let d = Directives::parse(text);
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let job = s.next_id("sjob");
    let c1 = format!("{job}-a");
    let c2 = format!("{job}-b");
    // Both clips follow the one job (clip id = `<job>-a|b`).
    s.start_job(&job, &a, &d, body.clone(), |_, _, _| {});
    Json(
        json!({"id": job, "clips": [clip(&s, &c1, &job), clip(&s, &c2, &job)],
                "status": "complete", "batch_size": 2}),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct Ids {
    ids: String,
}

async fn feed(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Ids>) -> Response {
    if jwt_account(&headers).is_none() {
        return unauthorized();
    }
    let clips: Vec<Value> = q
        .ids
        .split(',')
        .filter(|i| !i.is_empty())
        .map(|id| {
            let job = id.rsplit_once('-').map_or(id, |(j, _)| j);
            clip(&s, id, job)
        })
        .collect();
    Json(json!({"clips": clips})).into_response()
}

async fn lyrics(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Some(a) = jwt_account(&headers) else {
        return unauthorized();
    };
    let d = Directives::parse(body["prompt"].as_str().unwrap_or(""));
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let job = s.next_id("lyr");
    s.start_job(&job, &a, &d, body, |_, _, _| {});
    Json(json!({"id": job})).into_response()
}

async fn lyrics_get(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if jwt_account(&headers).is_none() {
        return unauthorized();
    }
    let Some(j) = s.job(&id) else {
        return err(StatusCode::NOT_FOUND, json!({"detail": "Not found"}));
    };
    let (status, text) = match &j.state {
        JobState::Done => (
            "complete",
            format!(
                "[Verse]\nA simulated song about {}\n[Chorus]\nLa la la",
                j.data["prompt"].as_str().unwrap_or("")
            ),
        ),
        JobState::Failed(r) => ("error", r.clone()),
        JobState::Running(_) => ("running", String::new()),
    };
    Json(
        json!({"id": id, "status": status, "text": text, "title": "Simulated Lyrics",
                "error_message": if status == "error" { json!(text) } else { Value::Null }}),
    )
    .into_response()
}

async fn upload(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Some(a) = jwt_account(&headers) else {
        return unauthorized();
    };
    // The audio URL is the task's only text: directives ride in it (e.g. in its query),
    // and an upload takes 100 ms unless it says otherwise.
    let url = body["url"].as_str().unwrap_or("");
    let mut d = Directives::parse(url);
    if !url.contains("[sim:ms=") {
        d.ms = 100;
    }
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let job = s.next_id("upl");
    s.start_job(&job, &a, &d, body, |_, _, _| {});
    Json(json!({"id": job})).into_response()
}

async fn upload_get(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if jwt_account(&headers).is_none() {
        return unauthorized();
    }
    let Some(j) = s.job(&id) else {
        return err(StatusCode::NOT_FOUND, json!({"detail": "Not found"}));
    };
    let status = match j.state {
        JobState::Done => "complete",
        JobState::Failed(_) => "error",
        JobState::Running(_) => "processing",
    };
    Json(
        json!({"id": id, "status": status, "clip_id": format!("{id}-clip"),
                "title": "Uploaded audio", "audio_url": j.data["url"]}),
    )
    .into_response()
}
