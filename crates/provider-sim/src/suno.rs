//! Suno: Clerk (cookie → session → JWT), `generate/v2` (two clips), feed polling, lyrics,
//! audio upload, the captcha check.
//!
//! The feed without `ids` (`GET /api/feed/v2?page=N`) lists the account's own clips, newest
//! first, 20 a page, as Suno's web client reads it: each clip with `created_at` (ISO 8601,
//! UTC, milliseconds), `model_name`, `batch_index` (0 or 1: the two clips of one generation
//! share their `created_at` and `metadata`) and the `metadata` Suno shows — for description
//! mode `gpt_description_prompt`, with the lyrics and tags Suno wrote in `prompt` and `tags`
//! and a title of its own; for custom mode the `prompt` (lyrics), `tags` and `title` sent.
//! `[sim:reply_ms=N]` in the text delays the answer of a generation by N ms: the job exists
//! (and the witness counts it) at once, as when a reply is slow to come back.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Behaviour, Directives, Job, JobState, Shared, SimAccount, err, refusal_reply};

/// Clips a feed page holds.
const FEED_PAGE: usize = 20;

/// Unix time in ms on the simulator's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix ms as the ISO 8601 UTC string the real APIs show (`2026-01-07T01:36:08.845Z`).
pub(crate) fn iso(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// `[sim:reply_ms=N]` in a task's text: how long the answer to its submission is held back
/// after the job was made.
pub(crate) fn reply_delay(text: &str) -> Option<Duration> {
    let at = text.find("[sim:reply_ms=")? + "[sim:reply_ms=".len();
    let end = text[at..].find(']')?;
    text[at..at + end].parse().ok().map(Duration::from_millis)
}

/// The jobs of `account` whose id starts with `prefix`, newest first (ids count up).
pub(crate) fn own_jobs(s: &Shared, account: &str, prefix: &str) -> Vec<(String, Job)> {
    let mut jobs: Vec<(u64, String, Job)> = s
        .lock()
        .jobs
        .iter()
        .filter(|(id, j)| j.account == account && id.starts_with(prefix))
        .filter_map(|(id, j)| {
            let n = id[prefix.len()..].parse().ok()?;
            Some((n, id.clone(), j.clone()))
        })
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.0));
    jobs.into_iter().map(|(_, id, j)| (id, j)).collect()
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/client", get(clerk_client))
        .route("/v1/client/sessions/{sid}/tokens", post(clerk_token))
        .route("/api/c/check", post(captcha_check))
        .route("/api/billing/info/", get(billing_info))
        .route("/api/generate/v2/", post(generate))
        .route("/api/feed/v2", get(feed))
        .route("/api/generate/lyrics/", post(lyrics))
        .route("/api/generate/lyrics/{id}", get(lyrics_get))
        .route("/api/generate/concat/v2/", post(concat))
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
        Some((_, a)) if !a.banned_now() => Json(json!({
            "response": {"last_active_session_id": format!("sess_{}", a.name),
                          "sessions": [{"id": format!("sess_{}", a.name), "status": "active"}]}
        }))
        .into_response(),
        // A temporary suspension says when it ends.
        Some((_, a)) if let Behaviour::BannedUntil(until) = a.behaviour => err(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "account_suspended", "meta": {"suspended_until": until}}]}),
        ),
        _ => err(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "authentication_invalid"}]}),
        ),
    }
}

async fn clerk_token(headers: HeaderMap, Path(_sid): Path<String>) -> Response {
    match cookie_account(&headers) {
        Some((cookie, a)) if !a.banned_now() => {
            Json(json!({"object": "token", "jwt": format!("simjwt.{cookie}")})).into_response()
        }
        _ => err(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "authentication_invalid"}]}),
        ),
    }
}

async fn captcha_check(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match jwt_account(&headers) {
        Some(a) if !a.banned_now() => {
            Json(json!({"required": s.captcha_required(&a)})).into_response()
        }
        _ => unauthorized(),
    }
}

/// The account's plan: an expired subscription signs in but is not active.
async fn billing_info(headers: HeaderMap) -> Response {
    match jwt_account(&headers) {
        Some(a) if !a.banned_now() => {
            let active = a.behaviour != Behaviour::Expired;
            Json(json!({"is_active": active, "plan": {"name": if active { "Pro Plan" } else { "Free Plan" }},
                        "total_credits_left": if active { 2500 } else { 0 }}))
            .into_response()
        }
        _ => unauthorized(),
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
    // Description mode: Suno shows the description, and writes the lyrics, tags and title
    // itself; custom mode shows what was sent.
    let (prompt, tags, title) = match data["gpt_description_prompt"].as_str() {
        Some(d) if !d.is_empty() => (
            json!(if status == "submitted" {
                String::new()
            } else {
                format!("[Verse]\nA simulated song about {d}\n[Chorus]\nLa la la")
            }),
            json!("simulated pop"),
            "Simulated Song",
        ),
        _ => (
            data["prompt"].clone(),
            data["tags"].clone(),
            data["title"].as_str().unwrap_or(""),
        ),
    };
    json!({
        "id": id, "status": status,
        "title": title,
        "audio_url": if streaming { json!(format!("{base}/_cdn/{id}.mp3")) } else { json!("") },
        "video_url": if status == "complete" { json!(format!("{base}/_cdn/{id}.mp4")) } else { json!("") },
        "image_url": format!("{base}/_cdn/{id}.jpeg"),
        "image_large_url": format!("{base}/_cdn/image_large_{id}.jpeg"),
        "model_name": data["mv"].as_str().unwrap_or("chirp-v3-5"),
        "created_at": data["created_ms"].as_u64().map(iso),
        "batch_index": u8::from(id.ends_with("-b")),
        "metadata": {"prompt": prompt, "gpt_description_prompt": data["gpt_description_prompt"],
                     "tags": tags, "duration": if status == "complete" { json!(120.5) } else { Value::Null },
                     "type": if data["concat_of"].is_string() { "concat" } else if data["continue_clip_id"].is_string() { "extend" } else { "gen" },
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
    // A continue names a clip: as Suno does, only the account that made it may continue
    // it (any other is told it does not exist).
    if let Some(clip_id) = body["continue_clip_id"].as_str()
        && !owns_clip(&s, &a, clip_id)
    {
        return err(StatusCode::NOT_FOUND, json!({"detail": "Clip not found"}));
    }
    let d = Directives::parse(text);
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let delay = reply_delay(text);
    let job = s.next_id("sjob");
    let c1 = format!("{job}-a");
    let c2 = format!("{job}-b");
    let mut data = body;
    data["created_ms"] = json!(now_ms());
    // Both clips follow the one job (clip id = `<job>-a|b`).
    s.start_job(&job, &a, &d, data, |_, _, _| {});
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    Json(
        json!({"id": job, "clips": [clip(&s, &c1, &job), clip(&s, &c2, &job)],
                "status": "complete", "batch_size": 2}),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct FeedQuery {
    ids: Option<String>,
    page: Option<usize>,
}

async fn feed(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<FeedQuery>) -> Response {
    let Some(a) = jwt_account(&headers) else {
        return unauthorized();
    };
    let Some(ids) = q.ids else {
        // The account's own clips, newest first, a page at a time.
        let jobs = own_jobs(&s, &a.name, "sjob");
        let page = q.page.unwrap_or(0);
        let clips: Vec<Value> = jobs
            .iter()
            .flat_map(|(job, _)| [format!("{job}-b"), format!("{job}-a")].map(|c| (c, job.clone())))
            .skip(page.saturating_mul(FEED_PAGE))
            .take(FEED_PAGE)
            .map(|(c, job)| clip(&s, &c, &job))
            .collect();
        return Json(
            json!({"clips": clips, "num_total_results": jobs.len() * 2, "current_page": page}),
        )
        .into_response();
    };
    let clips: Vec<Value> = ids
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

/// `POST /api/generate/concat/v2/ {clip_id}`: the whole song of a continued clip, as one
/// new clip. As Suno does, only the account that made the clip may concat it, and only a
/// complete clip.
/// The job a clip id belongs to (`<job>-a`, `<job>-b`, an upload's `<job>-clip`).
fn clip_job(clip_id: &str) -> &str {
    clip_id.rsplit_once('-').map_or(clip_id, |(j, _)| j)
}

/// Whether `a` made the clip (a generation's or an upload's).
fn owns_clip(s: &Shared, a: &SimAccount, clip_id: &str) -> bool {
    s.job(clip_job(clip_id))
        .is_some_and(|j| j.account == a.name)
}

async fn concat(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Some(a) = jwt_account(&headers) else {
        return unauthorized();
    };
    let clip_id = body["clip_id"].as_str().unwrap_or("");
    let Some(src) = s.job(clip_job(clip_id)).filter(|j| j.account == a.name) else {
        return err(StatusCode::NOT_FOUND, json!({"detail": "Clip not found"}));
    };
    if !matches!(src.state, JobState::Done) {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"detail": "Clip is not complete"}),
        );
    }
    let mut d = Directives::parse(src.data["prompt"].as_str().unwrap_or(""));
    d.ms = d.ms.min(200);
    d.fail = false;
    if let Err(r) = s.admit(&a, &d, true) {
        return refusal_reply(r);
    }
    let job = s.next_id("sjob");
    let mut data = src.data.clone();
    data["concat_of"] = json!(clip_id);
    data["created_ms"] = json!(now_ms());
    s.start_job(&job, &a, &d, data, |_, _, _| {});
    Json(clip(&s, &format!("{job}-a"), &job)).into_response()
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
    let Some(a) = jwt_account(&headers) else {
        return unauthorized();
    };
    // Another account's upload does not exist for this one.
    let Some(j) = s.job(&id).filter(|j| j.account == a.name) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso_utc_with_milliseconds_and_replies_can_be_held() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_767_749_768_845), "2026-01-07T01:36:08.845Z");
        assert_eq!(iso(1_709_208_000_500), "2024-02-29T12:00:00.500Z");
        assert_eq!(
            reply_delay("a song [sim:ms=10] [sim:reply_ms=2500]"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(reply_delay("a song [sim:ms=10]"), None);
    }
}
