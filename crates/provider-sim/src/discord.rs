//! Discord as Midjourney is reached through it: REST interactions (type 2 slash commands,
//! type 3 buttons), attachment upload, channel history and single messages, and the
//! gateway websocket that carries the interaction events and the Midjourney bot's messages.
//!
//! As strict as the real service where resuming a job depends on it:
//! - message ids are snowflakes (time-ordered); the history answers `limit` (at most 100),
//!   `before`, `after` and `around`, newest first, and keeps every message, so a busy
//!   channel has far more than one page;
//! - only the gateway's MESSAGE_CREATE of an interaction's first reply carries the
//!   client's nonce; the history never does. That reply names the interaction
//!   (`interaction_metadata.id`), whose id the gateway's INTERACTION_CREATE /
//!   INTERACTION_SUCCESS pair with the nonce;
//! - progress edits the job message in place (MESSAGE_UPDATE, same id) with a preview whose
//!   file name carries the Midjourney job id (`<job>_grid_0.webp`);
//! - the result is a new message with no nonce; it names the job only through its image
//!   file name and its buttons' `custom_id`s (and, for a button's job, replies to the message
//!   the button was on); the job message is then deleted, and a fetch of it answers
//!   404 Unknown Message;
//! - a job that fails after it started gets an error embed replying to the job message.

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::media;
use std::sync::atomic::Ordering;

use crate::{Admission, Behaviour, Directives, JobState, Refusal, Shared, SimAccount, err};

const MJ_BOT: &str = "936929561302675456";
const ERROR_RED: u64 = 16_711_680;
const WARN_YELLOW: u64 = 16_776_960;
/// Jobs Midjourney queues per account beyond its concurrency before "Queue full".
const MJ_QUEUE: u64 = 10;
/// Discord's epoch (2015-01-01) in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// The user every simulated account is (mentioned in the bot's messages).
const USER_ID: &str = "1";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v9/interactions", post(interaction))
        .route("/api/v9/channels/{channel}/attachments", post(attachments))
        .route("/api/v9/channels/{channel}/messages", get(messages))
        .route("/api/v9/channels/{channel}/messages/{id}", get(message))
        .route("/_upload/{id}", put(upload))
        .route("/gateway", get(gateway))
}

fn token(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn unauthorized() -> Response {
    err(
        StatusCode::UNAUTHORIZED,
        json!({"message": "401: Unauthorized", "code": 0}),
    )
}

/// A Discord snowflake: milliseconds since Discord's epoch, then a sequence.
fn snowflake(s: &Shared) -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        .saturating_sub(DISCORD_EPOCH_MS);
    (ms << 22) | (s.seq.fetch_add(1, Ordering::Relaxed) & 0x3F_FFFF)
}

fn id_of(m: &Value) -> u64 {
    m["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0)
}

/// Push a gateway dispatch to every connection of this token, and keep the channel's
/// history as Discord does (no nonce there; edits in place; deletions gone).
fn dispatch(s: &Shared, token: &str, t: &str, d: Value) {
    let channel = d["channel_id"].as_str().unwrap_or("").to_string();
    {
        let mut inner = s.lock();
        let hist = inner.messages.entry(channel).or_default();
        let id = id_of(&d);
        match t {
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" => {
                let mut kept = d.clone();
                if let Some(m) = kept.as_object_mut() {
                    m.remove("nonce");
                }
                if t == "MESSAGE_CREATE" || hist.contains_key(&id) {
                    hist.insert(id, kept);
                }
            }
            "MESSAGE_DELETE" => {
                hist.remove(&id);
            }
            _ => {}
        }
    }
    let _ = s
        .gateway
        .send((token.to_string(), json!({"op": 0, "t": t, "d": d})));
}

/// Messages from another user, straight into a channel's history.
pub(crate) fn chatter(s: &Shared, channel: &str, n: usize) {
    for i in 0..n {
        let id = snowflake(s);
        s.lock().messages.entry(channel.to_string()).or_default().insert(
            id,
            json!({"id": id.to_string(), "channel_id": channel, "author": {"id": "42", "username": "someone"},
                   "content": format!("chatter {i}"), "attachments": [], "components": [], "embeds": []}),
        );
    }
}

/// `GET /_mjcdn/{job id}/{file}`: Midjourney's CDN, which holds each image of a finished
/// job's grid (`0_0.png` … `0_3.png`) and the grid (`grid_0.webp`) under the job id; any
/// other job or file is 404, as the real CDN answers.
pub(crate) async fn mj_cdn(
    State(s): State<Shared>,
    Path((uuid, file)): Path<(String, String)>,
) -> Response {
    let grid = s.lock().mj_grids.get(&uuid).copied();
    let part = ["0_0.png", "0_1.png", "0_2.png", "0_3.png"]
        .iter()
        .position(|f| *f == file);
    match (grid, part) {
        (Some((w, h, seed)), Some(i)) => (
            [("content-type", "image/png")],
            media::png(media::MjImage {
                width: w / 2,
                height: h / 2,
                seed,
                part: Some(i as u8),
            }),
        )
            .into_response(),
        (Some((w, h, seed)), None) if file == "grid_0.webp" => (
            [("content-type", "image/png")],
            media::png(media::MjImage {
                width: w,
                height: h,
                seed,
                part: None,
            }),
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

/// `GET /_cdn/{file}`: the media "CDN" every simulated upstream's results point at. A
/// Midjourney result is its PNG, while its link lasts (`ex`, as Discord's CDN signs its
/// links; an expired or altered link answers 404 as Discord's does); any other file is
/// deterministic bytes of its name.
pub(crate) async fn cdn(
    State(s): State<Shared>,
    Path(file): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let image = s.lock().media.get(&file).copied();
    let gone = || {
        (
            StatusCode::NOT_FOUND,
            "This content is no longer available.",
        )
            .into_response()
    };
    if let Some(image) = image {
        let (Some(ex), Some(hm)) = (q.get("ex"), q.get("hm")) else {
            return gone();
        };
        let live = u64::from_str_radix(ex, 16).is_ok_and(|ex| ex > now_s());
        if !live || *hm != cdn_hmac(&file, ex) {
            return gone();
        }
        return ([("content-type", "image/png")], media::png(image)).into_response();
    }
    (
        [("content-type", media::content_type(&file))],
        media::bytes_of(&file),
    )
        .into_response()
}

/// The signature part (`hm`) of a simulated Discord CDN link.
fn cdn_hmac(file: &str, ex: &str) -> String {
    format!("{:016x}", seed_of(&format!("{file}|{ex}")))
}

/// A number from a text (FNV-1a), for colours and signatures.
fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Midjourney job id the simulator gives a job (a UUID, as Midjourney's are).
fn job_uuid(job: &str) -> String {
    let n: u64 = job
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h >> 4) & 0xfff,
        n & 0xfff,
        n
    )
}

/// An error embed from the bot: for an interaction (with its nonce and interaction), or
/// replying to a job message that failed after it started.
fn error_embed(
    s: &Shared,
    token: &str,
    channel: &str,
    about: ErrorAbout<'_>,
    title: &str,
    color: u64,
) {
    let id = snowflake(s).to_string();
    let mut m = json!({"id": id, "channel_id": channel, "author": {"id": MJ_BOT},
           "content": "", "embeds": [{"title": title, "description": format!("{title}. (simulated)"), "color": color}],
           "attachments": [], "components": []});
    match about {
        ErrorAbout::Interaction { nonce, interaction } => {
            m["nonce"] = json!(nonce);
            m["interaction_metadata"] =
                json!({"id": interaction, "type": 2, "user": {"id": USER_ID}});
        }
        ErrorAbout::Job { message } => {
            m["message_reference"] = json!({"message_id": message, "channel_id": channel});
        }
    }
    dispatch(s, token, "MESSAGE_CREATE", m);
}

enum ErrorAbout<'a> {
    Interaction {
        nonce: &'a str,
        interaction: &'a str,
    },
    Job {
        message: &'a str,
    },
}

async fn interaction(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let token = token(&headers);
    let Some(account) = SimAccount::parse(&token) else {
        return unauthorized();
    };
    let nonce = body["nonce"].as_str().unwrap_or("").to_string();
    let channel = body["channel_id"]
        .as_str()
        .unwrap_or(&format!("c-{}", account.name))
        .to_string();
    // What is asked: a slash command, or a button on an earlier message.
    let (kind, prompt, reply_to) = match body["type"].as_u64() {
        Some(2) => {
            let name = body["data"]["name"].as_str().unwrap_or("").to_string();
            let prompt = body["data"]["options"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["name"] == "prompt"))
                .and_then(|o| o["value"].as_str())
                .unwrap_or("")
                .to_string();
            (name, prompt, None)
        }
        Some(3) => {
            let custom = body["data"]["custom_id"].as_str().unwrap_or("").to_string();
            let origin = body["message_id"].as_str().unwrap_or("").to_string();
            let prompt = {
                let inner = s.lock();
                let exists = inner
                    .messages
                    .get(&channel)
                    .is_some_and(|h| h.contains_key(&origin.parse().unwrap_or(0)));
                inner.prompts.get(&origin).filter(|_| exists).cloned()
            };
            let Some(prompt) = prompt else {
                return err(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Unknown Message", "code": 10008}),
                );
            };
            (custom, prompt, Some(origin))
        }
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid Form Body", "code": 50035}),
            );
        }
    };
    let d = Directives::parse(&prompt);
    let interaction = snowflake(&s).to_string();
    let refused = |title: &str, color: u64| {
        dispatch(
            &s,
            &token,
            "INTERACTION_CREATE",
            json!({"id": interaction, "nonce": nonce}),
        );
        let about = ErrorAbout::Interaction {
            nonce: &nonce,
            interaction: &interaction,
        };
        error_embed(&s, &token, &channel, about, title, color);
        StatusCode::NO_CONTENT.into_response()
    };
    let queued = match s.admit_or_queue(&account, &d, false, MJ_QUEUE) {
        Err(Refusal::Unauthorized) => return unauthorized(),
        Err(Refusal::RateLimited) => {
            let mut r = err(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"message": "You are being rate limited.", "retry_after": 30.0, "global": false}),
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("30"));
            return r;
        }
        Err(Refusal::Flaky) => {
            return err(
                StatusCode::BAD_GATEWAY,
                json!({"message": "502: Bad Gateway", "code": 0}),
            );
        }
        Err(Refusal::Full) => return refused("Queue full", WARN_YELLOW),
        // Discord itself never refuses for a captcha; the bot answers with an embed.
        Err(Refusal::Captcha) => None,
        Ok(Admission::Now) => None,
        Ok(Admission::Queued(ahead)) => Some(ahead),
    };
    let fast = prompt.contains("--fast") || prompt.contains("--turbo");
    let refusal = match account.behaviour {
        Behaviour::Captcha => Some("Action needed to continue"),
        Behaviour::NoFast if fast => Some("Credits exhausted"),
        _ => None,
    };
    if let Some(title) = refusal {
        match queued {
            Some(_) => s.unqueue(&account),
            None => s.end(&account.name, d.tag.as_deref()),
        }
        return refused(title, ERROR_RED);
    }
    let job = s.next_id("job");
    let start_id = snowflake(&s).to_string();
    let data = json!({"kind": kind, "prompt": prompt, "nonce": nonce, "channel": channel,
                      "start_id": start_id, "token": token, "interaction": interaction,
                      "reply_to": reply_to, "user": account.name, "job_uuid": job_uuid(&job)});
    dispatch(
        &s,
        &token,
        "INTERACTION_CREATE",
        json!({"id": interaction, "nonce": nonce}),
    );
    match queued {
        None => s.start_job(&job, &account, &d, data, on_step),
        Some(ahead) => {
            // Over the account's concurrency: Midjourney answers "Job queued" and starts
            // the job itself once a running one ends.
            let id = snowflake(&s).to_string();
            dispatch(
                &s,
                &token,
                "MESSAGE_CREATE",
                json!({"id": id, "channel_id": channel, "author": {"id": MJ_BOT}, "nonce": nonce,
                       "interaction_metadata": {"id": interaction, "type": 2, "user": {"id": USER_ID}},
                       "content": "", "attachments": [], "components": [],
                       "embeds": [{"title": "Job queued", "color": WARN_YELLOW,
                                   "description": format!("Your job is queued and will start when one of your running jobs finishes ({ahead} ahead of it).")}]}),
            );
            let s = s.clone();
            tokio::spawn(async move {
                s.take_slot(&account, &d).await;
                s.start_job(&job, &account, &d, data, on_step);
            });
        }
    }
    dispatch(
        &s,
        &token,
        "INTERACTION_SUCCESS",
        json!({"id": interaction, "nonce": nonce}),
    );
    StatusCode::NO_CONTENT.into_response()
}

/// A file-name-safe stem of a prompt, as Midjourney names its images.
fn slug(prompt: &str) -> String {
    prompt
        .split_whitespace()
        .filter(|w| !w.starts_with("--") && !w.starts_with('['))
        .take(6)
        .map(|w| {
            w.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn on_step(s: &Shared, job_id: &str, state: &JobState) {
    let Some(job) = s.job(job_id) else { return };
    let d = &job.data;
    let token = d["token"].as_str().unwrap_or("");
    let channel = d["channel"].as_str().unwrap_or("");
    let prompt = d["prompt"].as_str().unwrap_or("");
    let start_id = d["start_id"].as_str().unwrap_or("");
    let nonce = d["nonce"].as_str().unwrap_or("");
    let uuid = d["job_uuid"].as_str().unwrap_or("");
    let speed = if prompt.contains("--turbo") {
        "turbo"
    } else if prompt.contains("--fast") {
        "fast"
    } else {
        "relaxed"
    };
    let base = s.base();
    match state {
        JobState::Running(0) => dispatch(
            s,
            token,
            "MESSAGE_CREATE",
            json!({"id": start_id, "channel_id": channel, "nonce": nonce, "author": {"id": MJ_BOT},
                   "interaction_metadata": {"id": d["interaction"], "type": 2, "user": {"id": USER_ID}},
                   "content": format!("**{prompt}** - <@{USER_ID}> (Waiting to start)"),
                   "attachments": [], "components": [], "embeds": []}),
        ),
        JobState::Running(p) => dispatch(
            s,
            token,
            "MESSAGE_UPDATE",
            json!({"id": start_id, "channel_id": channel, "author": {"id": MJ_BOT},
                   "interaction_metadata": {"id": d["interaction"], "type": 2, "user": {"id": USER_ID}},
                   "content": format!("**{prompt}** - <@{USER_ID}> ({p}%) ({speed})"),
                   "attachments": [{"url": format!("{base}/_cdn/{uuid}_grid_0.webp"), "filename": format!("{uuid}_grid_0.webp"), "width": 512, "height": 512}],
                   "components": [], "embeds": []}),
        ),
        JobState::Failed(reason) => {
            error_embed(
                s,
                token,
                channel,
                ErrorAbout::Job { message: start_id },
                reason,
                ERROR_RED,
            );
            dispatch(
                s,
                token,
                "MESSAGE_DELETE",
                json!({"id": start_id, "channel_id": channel}),
            );
        }
        JobState::Done => {
            let kind = d["kind"].as_str().unwrap_or("");
            let upscaled = kind.contains("upsample") || kind.contains("upscale");
            let components = if upscaled {
                json!([{"type": 1, "components": [
                    {"type": 2, "custom_id": format!("MJ::JOB::high_variation::1::{uuid}"), "label": "Vary (Strong)"},
                    {"type": 2, "custom_id": format!("MJ::JOB::low_variation::1::{uuid}"), "label": "Vary (Subtle)"},
                    {"type": 2, "custom_id": format!("MJ::Outpaint::50::1::{uuid}::SOLO"), "label": "Zoom Out 2x"},
                    {"type": 2, "custom_id": format!("MJ::JOB::pan_left::1::{uuid}::SOLO"), "label": "⬅️"},
                    {"type": 2, "custom_id": format!("MJ::Inpaint::1::{uuid}::SOLO"), "label": "Vary (Region)"}]}])
            } else {
                let mut row1: Vec<Value> = (1..=4)
                    .map(|i| json!({"type": 2, "custom_id": format!("MJ::JOB::upsample::{i}::{uuid}"), "label": format!("U{i}")}))
                    .collect();
                row1.push(json!({"type": 2, "custom_id": format!("MJ::JOB::reroll::0::{uuid}::SOLO"), "label": "🔄"}));
                let row2: Vec<Value> = (1..=4)
                    .map(|i| json!({"type": 2, "custom_id": format!("MJ::JOB::variation::{i}::{uuid}"), "label": format!("V{i}")}))
                    .collect();
                json!([{"type": 1, "components": row1}, {"type": 1, "components": row2}])
            };
            let final_id = snowflake(s).to_string();
            let embeds = if kind.contains("describe") {
                json!([{"description": "1️⃣ a simulated description --ar 1:1\n\n2️⃣ another reading --ar 1:1\n\n3️⃣ a third --ar 1:1\n\n4️⃣ a fourth --ar 1:1", "color": 0}])
            } else {
                json!([])
            };
            let content = if kind.contains("seed") {
                format!("**{prompt}** - <@{USER_ID}> seed 1234567890")
            } else {
                format!("**{prompt}** - <@{USER_ID}> ({speed})")
            };
            let file = format!(
                "{}_{}_{uuid}.png",
                d["user"].as_str().unwrap_or("user"),
                slug(prompt)
            );
            // The image: a grid of four, or an upscale (the origin grid's image, alone).
            let (gw, gh) = media::grid_size(prompt);
            let image = if upscaled {
                let mut parts = kind.split("::");
                let index = parts.nth(3).and_then(|i| i.parse::<u8>().ok()).unwrap_or(1);
                let origin = kind.rsplit("::").next().unwrap_or(uuid);
                media::MjImage {
                    width: gw / 2,
                    height: gh / 2,
                    seed: seed_of(origin),
                    part: Some(index.clamp(1, 4) - 1),
                }
            } else {
                media::MjImage {
                    width: gw,
                    height: gh,
                    seed: seed_of(uuid),
                    part: None,
                }
            };
            {
                let mut inner = s.lock();
                inner.media.insert(file.clone(), image);
                inner
                    .mj_grids
                    .insert(uuid.to_string(), (gw, gh, seed_of(uuid)));
            }
            // Discord's CDN links are signed and expire (`ex`: the end, hex Unix seconds).
            let ex = format!("{:x}", now_s() + s.cdn_link_ttl_s());
            let mut m = json!({"id": final_id, "channel_id": channel, "author": {"id": MJ_BOT},
                   "content": content,
                   "attachments": [{"url": format!("{base}/_cdn/{file}?ex={ex}&is={:x}&hm={}", now_s(), cdn_hmac(&file, &ex)), "filename": file, "width": image.width, "height": image.height}],
                   "components": components, "embeds": embeds});
            // A button's job replies to the message the button was on; a command's does not.
            if let Some(origin) = d["reply_to"].as_str() {
                m["message_reference"] = json!({"message_id": origin, "channel_id": channel});
            }
            s.lock()
                .prompts
                .insert(final_id.clone(), prompt.to_string());
            dispatch(s, token, "MESSAGE_CREATE", m);
            dispatch(
                s,
                token,
                "MESSAGE_DELETE",
                json!({"id": start_id, "channel_id": channel}),
            );
        }
    }
}

async fn attachments(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(_channel): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if SimAccount::parse(&token(&headers)).is_none() {
        return unauthorized();
    }
    let files = body["files"].as_array().cloned().unwrap_or_default();
    let base = s.base();
    let out: Vec<Value> = files
        .iter()
        .map(|f| {
            let n = s.next_id("u");
            json!({"id": f["id"], "upload_url": format!("{base}/_upload/{n}"),
                   "upload_filename": format!("{n}/{}", f["filename"].as_str().unwrap_or("file.png"))})
        })
        .collect();
    Json(json!({"attachments": out})).into_response()
}

async fn upload(Path(_id): Path<String>) -> StatusCode {
    StatusCode::OK
}

/// The history query Discord takes.
#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    before: Option<u64>,
    after: Option<u64>,
    around: Option<u64>,
}

/// A page of a channel's history, newest first, at most 100 messages.
async fn messages(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    if SimAccount::parse(&token(&headers)).is_none() {
        return unauthorized();
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let inner = s.lock();
    let Some(h) = inner.messages.get(&channel) else {
        return Json(json!([])).into_response();
    };
    let mut page: Vec<Value> = if let Some(after) = q.after {
        let mut v: Vec<Value> = h
            .range(after + 1..)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect();
        v.reverse();
        v
    } else if let Some(around) = q.around {
        let half = limit / 2;
        let mut newer: Vec<Value> = h
            .range(around..)
            .take(limit - half)
            .map(|(_, m)| m.clone())
            .collect();
        newer.reverse();
        newer.extend(h.range(..around).rev().take(half).map(|(_, m)| m.clone()));
        newer
    } else {
        let before = q.before.unwrap_or(u64::MAX);
        h.range(..before)
            .rev()
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect()
    };
    page.truncate(limit);
    Json(Value::Array(page)).into_response()
}

/// One message by id; a deleted or unknown one is 404 Unknown Message.
async fn message(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((channel, id)): Path<(String, String)>,
) -> Response {
    if SimAccount::parse(&token(&headers)).is_none() {
        return unauthorized();
    }
    let found = s
        .lock()
        .messages
        .get(&channel)
        .and_then(|h| h.get(&id.parse().unwrap_or(0)).cloned());
    match found {
        Some(m) => Json(m).into_response(),
        None => err(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Message", "code": 10008}),
        ),
    }
}

async fn gateway(State(s): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(s, socket))
}

async fn session(s: Shared, mut socket: WebSocket) {
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 41250}});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut rx = s.gateway.subscribe();
    let mut token: Option<String> = None;
    let mut seq = 0u64;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { return };
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["op"].as_u64() {
                    Some(1) => {
                        let _ = socket.send(Message::Text(json!({"op": 11}).to_string().into())).await;
                    }
                    Some(2) | Some(6) => {
                        let t = v["d"]["token"].as_str().unwrap_or("").to_string();
                        match SimAccount::parse(&t) {
                            Some(a) if a.behaviour != Behaviour::Banned => {
                                seq += 1;
                                let ready = json!({"op": 0, "t": "READY", "s": seq,
                                    "d": {"session_id": s.next_id("sess"), "user": {"id": "1", "username": a.name}}});
                                let _ = socket.send(Message::Text(ready.to_string().into())).await;
                                token = Some(t);
                            }
                            _ => {
                                let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                                    code: 4004, reason: "Authentication failed.".into() }))).await;
                                return;
                            }
                        }
                    }
                    _ => {}
                }
            }
            ev = rx.recv() => {
                match ev {
                    Ok((t, mut event)) => {
                        if token.as_deref() == Some(t.as_str()) {
                            seq += 1;
                            event["s"] = json!(seq);
                            if socket.send(Message::Text(event.to_string().into())).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        }
    }
}
