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

use crate::{
    Admission, Behaviour, Directives, JobState, ModalSubmission, Refusal, Shared, SimAccount, err,
};

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
        .route(
            "/api/v9/channels/{channel}/messages/{id}/reactions/{emoji}/{who}",
            put(react).delete(unreact),
        )
        .route("/api/v9/users/@me", get(me))
        .route("/api/v9/users/@me/channels", get(dm_channels))
        .route(
            "/api/v9/channels/{channel}/application-command-index",
            get(command_index),
        )
        .route("/inpaint/api/submit-job", post(inpaint_submit))
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

/// What kind of modal a button opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModalKind {
    /// Custom Zoom: a text modal with the prompt and its `--zoom`.
    Zoom,
    /// Vary (Region): the editor in an iframe, submitted with a mask and a prompt.
    Region,
    /// Remix mode: a variation's, reroll's or pan's new prompt.
    Remix,
}

/// A modal shown to a user and not yet submitted.
#[derive(Debug, Clone)]
pub(crate) struct Modal {
    pub kind: ModalKind,
    pub token: String,
    pub custom_id: String,
    /// The text input's `custom_id` (text modals).
    pub input: String,
    /// The button that opened it.
    pub button: String,
    pub channel: String,
    /// The button's interaction and nonce (Vary (Region)'s job goes on with them).
    pub nonce: String,
    pub interaction: String,
    /// The message whose button opened it, and its job id.
    pub origin: String,
    pub origin_uuid: String,
    pub prompt: String,
}

/// The `custom_id`s of a message's buttons.
fn buttons_of(m: &Value) -> Vec<String> {
    m["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["custom_id"].as_str().map(str::to_string))
        .collect()
}

/// Discord's answer to a component the message does not have.
fn component_refused() -> Response {
    err(
        StatusCode::BAD_REQUEST,
        json!({"message": "Invalid Form Body", "code": 50035,
               "errors": {"data": {"custom_id": {"_errors": [{"code": "COMPONENT_VALIDATION_FAILED",
                   "message": "Component validation failed"}]}}}}),
    )
}

/// The prompt modal a button opens in Remix mode — its `custom_id` and its text input's
/// — or `None` for a button that opens none.
fn remix_modal(custom: &str, origin_message: &str) -> Option<(String, &'static str)> {
    let parts: Vec<&str> = custom.split("::").collect();
    let (kind, index, uuid) = (*parts.get(2)?, *parts.get(3)?, *parts.get(4)?);
    let remix = "MJ::RemixModal::new_prompt";
    Some(match kind {
        "variation" | "high_variation" => (format!("MJ::RemixModal::{uuid}::{index}::1"), remix),
        "low_variation" => (format!("MJ::RemixModal::{uuid}::{index}::0"), remix),
        "reroll" => (
            format!("MJ::ImagineModal::{origin_message}"),
            "MJ::ImagineModal::new_prompt",
        ),
        k if k.starts_with("pan_") => (
            format!("MJ::PanModal::{}::{uuid}::{index}", &k[4..]),
            "MJ::PanModal::prompt",
        ),
        _ => return None,
    })
}

/// The `--zoom` of a prompt.
fn zoom_of(prompt: &str) -> Option<f64> {
    let mut words = prompt.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--zoom" {
            return words.next().and_then(|z| z.parse().ok());
        }
    }
    None
}

/// A button that opens a modal: Custom Zoom shows a text modal holding the prompt with
/// `--zoom 2` (INTERACTION_MODAL_CREATE); Vary (Region) the region editor in an iframe
/// (INTERACTION_IFRAME_MODAL_CREATE), which submits to `/inpaint/api/submit-job`.
fn open_modal(
    s: &Shared,
    token: &str,
    channel: &str,
    nonce: &str,
    custom: &str,
    prompt: &str,
    origin: &str,
) -> Response {
    let interaction = snowflake(s).to_string();
    let origin_uuid = custom
        .split("::")
        .find(|p| p.len() == 36 && p.matches('-').count() == 4)
        .unwrap_or("")
        .to_string();
    dispatch(
        s,
        token,
        "INTERACTION_CREATE",
        json!({"id": interaction, "nonce": nonce}),
    );
    let text_modal = |custom_id: &str, input: &str, title: &str, value: String| {
        json!({"id": interaction, "nonce": nonce, "channel_id": channel,
            "application": {"id": MJ_BOT}, "custom_id": custom_id, "title": title,
            "components": [{"type": 1, "components": [{"type": 4, "custom_id": input,
                "label": "Prompt", "style": 2, "value": value}]}]})
    };
    let (kind, modal_id, custom_id, input, event) = if custom.starts_with("MJ::CustomZoom::") {
        let custom_id = format!("MJ::OutpaintCustomZoomModal::{origin_uuid}");
        let input = "MJ::OutpaintCustomZoomModal::prompt";
        let event = text_modal(&custom_id, input, "Zoom Out", format!("{prompt} --zoom 2"));
        let t = ("INTERACTION_MODAL_CREATE", event);
        (ModalKind::Zoom, interaction.clone(), custom_id, input, t)
    } else if let Some((custom_id, input)) = remix_modal(custom, origin) {
        let event = text_modal(&custom_id, input, "Remix Prompt", prompt.to_string());
        let t = ("INTERACTION_MODAL_CREATE", event);
        (ModalKind::Remix, interaction.clone(), custom_id, input, t)
    } else {
        let custom_id = format!("MJ::iframe::{}", snowflake(s));
        let event = json!({"id": interaction, "nonce": nonce, "channel_id": channel,
            "application": {"id": MJ_BOT}, "custom_id": custom_id, "title": "Vary Region",
            "modal_size": 2, "iframe_path": format!("/inpaint/index.html?custom_id={custom_id}")});
        let t = ("INTERACTION_IFRAME_MODAL_CREATE", event);
        (ModalKind::Region, custom_id.clone(), custom_id, "", t)
    };
    s.lock().modals.insert(
        modal_id,
        Modal {
            kind,
            token: token.to_string(),
            custom_id,
            input: input.to_string(),
            button: custom.to_string(),
            channel: channel.to_string(),
            nonce: nonce.to_string(),
            interaction: interaction.clone(),
            origin: origin.to_string(),
            origin_uuid,
            prompt: prompt.to_string(),
        },
    );
    dispatch(s, token, event.0, event.1);
    dispatch(
        s,
        token,
        "INTERACTION_SUCCESS",
        json!({"id": interaction, "nonce": nonce}),
    );
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /inpaint/api/submit-job`: the Vary (Region) editor's submission — the iframe's
/// `customId`, the mask (a PNG, as a `data:` URL or base64), the prompt. The job goes on
/// under the button's interaction.
async fn inpaint_submit(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let custom = body["customId"].as_str().unwrap_or("").to_string();
    let modal = s.lock().modals.remove(&custom);
    let Some(modal) = modal.filter(|m| m.kind == ModalKind::Region) else {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "message": "unknown customId"}),
        );
    };
    let mask = body["maskedImage"].as_str().unwrap_or("");
    let b64 = mask.split_once("base64,").map_or(mask, |(_, b)| b);
    let png = base64_decode(b64).filter(|b| b.starts_with(b"\x89PNG"));
    let prompt = body["prompt"].as_str().unwrap_or("").trim().to_string();
    let Some(png) = png else {
        // The editor stays open: the same customId may submit again.
        s.lock().modals.insert(custom, modal);
        return err(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "message": "maskedImage must be a PNG"}),
        );
    };
    s.lock().modal_log.push(ModalSubmission {
        kind: "vary_region".into(),
        prompt: prompt.clone(),
        zoom: None,
        mask: png,
    });
    let Some(account) = SimAccount::parse(&modal.token) else {
        return unauthorized();
    };
    let prompt = if prompt.is_empty() {
        modal.prompt.clone()
    } else {
        prompt
    };
    let response = run_command(
        &s,
        Command {
            account,
            token: modal.token.clone(),
            channel: modal.channel.clone(),
            nonce: modal.nonce.clone(),
            interaction: modal.interaction.clone(),
            kind: format!("MJ::Inpaint::{}", modal.origin_uuid),
            prompt,
            reply_to: Some(modal.origin.clone()),
        },
    );
    if response.status().is_success() {
        return Json(json!({"success": true})).into_response();
    }
    response
}

/// Standard base64, or `None`.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `GET /api/v9/channels/{channel}/application-command-index`: the commands usable in the
/// channel, Midjourney's with their ids and current versions.
async fn command_index(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if SimAccount::parse(&token(&headers)).is_none() {
        return unauthorized();
    }
    let commands: Vec<Value> = s
        .lock()
        .commands
        .iter()
        .map(|(name, (id, version))| {
            json!({"id": id, "application_id": MJ_BOT, "version": version, "name": name,
                   "type": 1, "description": format!("The {name} command")})
        })
        .collect();
    Json(
        json!({"applications": [{"id": MJ_BOT, "name": "Midjourney Bot"}],
                "application_commands": commands}),
    )
    .into_response()
}

/// The DM channel of an account with the Midjourney bot.
fn dm_channel(account: &SimAccount) -> String {
    format!("dm-{}", account.name)
}

/// `GET /api/v9/users/@me/channels`: the account's DM channels (the one with the bot).
/// The signed-in user: 401 for a token Discord does not take (unknown, banned).
async fn me(headers: HeaderMap) -> Response {
    match SimAccount::parse(&token(&headers)) {
        Some(a) if !a.banned_now() => {
            Json(json!({"id": "1", "username": a.name, "discriminator": "0"})).into_response()
        }
        _ => unauthorized(),
    }
}

async fn dm_channels(headers: HeaderMap) -> Response {
    let Some(account) = SimAccount::parse(&token(&headers)) else {
        return unauthorized();
    };
    Json(json!([{"id": dm_channel(&account), "type": 1,
                 "recipients": [{"id": MJ_BOT, "username": "Midjourney Bot", "bot": true}]}]))
    .into_response()
}

/// `PUT …/messages/{id}/reactions/{emoji}/@me`: a reaction. ✉️ on one of the bot's results
/// makes the bot send the job's seed in a direct message, once per user and message (a
/// reaction already there changes nothing).
async fn react(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((channel, id, emoji, who)): Path<(String, String, String, String)>,
) -> Response {
    let token = token(&headers);
    let Some(account) = SimAccount::parse(&token) else {
        return unauthorized();
    };
    let found = {
        let inner = s.lock();
        inner
            .messages
            .get(&channel)
            .and_then(|h| h.get(&id.parse().unwrap_or(0)))
            .cloned()
            .map(|m| (m, inner.prompts.get(&id).cloned()))
    };
    let Some((message, prompt)) = found else {
        return err(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Message", "code": 10008}),
        );
    };
    if who != "@me" {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"message": "Invalid Form Body", "code": 50035}),
        );
    }
    let fresh = s.lock().reacted.insert((id.clone(), account.name.clone()));
    if emoji == "\u{2709}\u{fe0f}"
        && fresh
        && let Some(prompt) = prompt
    {
        let uuid = job_id_in(&message).unwrap_or_default();
        let dm = dm_channel(&account);
        let seed = seed_of(&uuid) % 4_294_967_295;
        let m = json!({"id": snowflake(&s).to_string(), "channel_id": dm, "author": {"id": MJ_BOT, "bot": true},
            "content": "", "attachments": message["attachments"], "components": [],
            "embeds": [{"title": "Job details", "color": 0,
                        "description": format!("**Job ID**: {uuid}\n**seed** {seed}\n**prompt** {prompt}")}]});
        dispatch(&s, &token, "MESSAGE_CREATE", m);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE …/reactions/{emoji}/@me`: take one's reaction off (404 when there is none).
async fn unreact(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((_channel, id, _emoji, _who)): Path<(String, String, String, String)>,
) -> Response {
    let Some(account) = SimAccount::parse(&token(&headers)) else {
        return unauthorized();
    };
    if s.lock().reacted.remove(&(id, account.name)) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        err(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Emoji", "code": 10014}),
        )
    }
}

/// The job id (UUID) a result message's buttons or file name carry.
fn job_id_in(m: &Value) -> Option<String> {
    let file = m["attachments"][0]["filename"].as_str().map(str::to_string);
    buttons_of(m)
        .into_iter()
        .chain(file)
        .flat_map(|t| {
            t.split(['_', ':', '.'])
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|p| p.len() == 36 && p.matches('-').count() == 4)
}

/// The buttons of an upscaled image, as Midjourney shows them for the prompt's model
/// version: its upscalers (V4: Light and Beta redo, with Make Variations and nothing
/// else; V5.x and Niji 5: 2x and 4x; V6, 6.1 and 7: Subtle and
/// Creative, each named for its version), Vary (Subtle / Strong / Region), Zoom Out 2x
/// and 1.5x, Custom Zoom, the four pans. No seed button: the seed comes by ✉️ reaction.
fn upscaled_buttons(prompt: &str, uuid: &str) -> Value {
    let version = {
        let mut words = prompt.split_whitespace();
        let mut v = String::from("6");
        while let Some(w) = words.next() {
            if matches!(w, "--v" | "--version" | "--niji") {
                v = words.next().unwrap_or("6").to_string();
                if w == "--niji" {
                    v = format!("niji{v}");
                }
            }
        }
        v
    };
    if matches!(version.as_str(), "4" | "4.0" | "niji4") {
        // V4's upscales: its variations and its redo upscalers.
        let b = |label: &str, id: String| json!({"type": 2, "custom_id": id, "label": label});
        return json!([{"type": 1, "components": [
            b("Make Variations", format!("MJ::JOB::variation::1::{uuid}::SOLO")),
            b("Light Upscale Redo", format!("MJ::JOB::upsample_light::1::{uuid}::SOLO")),
            b("Beta Upscale Redo", format!("MJ::JOB::upsample_beta::1::{uuid}::SOLO"))]}]);
    }
    let ups: Vec<(&str, String)> = match version.as_str() {
        "5" | "5.0" | "5.1" | "5.2" | "niji5" => vec![
            ("Upscale (2x)", "upsample_v5_2x".into()),
            ("Upscale (4x)", "upsample_v5_4x".into()),
        ],
        v => {
            let tag = match v {
                "6.1" => "v6r1",
                "7" | "7.0" => "v7",
                _ => "v6",
            };
            vec![
                ("Upscale (Subtle)", format!("upsample_{tag}_2x_subtle")),
                ("Upscale (Creative)", format!("upsample_{tag}_2x_creative")),
            ]
        }
    };
    let b = |label: &str, id: String| json!({"type": 2, "custom_id": id, "label": label});
    let row1: Vec<Value> = ups
        .into_iter()
        .map(|(label, name)| b(label, format!("MJ::JOB::{name}::1::{uuid}::SOLO")))
        .collect();
    json!([
        {"type": 1, "components": row1},
        {"type": 1, "components": [
            b("Vary (Subtle)", format!("MJ::JOB::low_variation::1::{uuid}::SOLO")),
            b("Vary (Strong)", format!("MJ::JOB::high_variation::1::{uuid}::SOLO")),
            b("Vary (Region)", format!("MJ::Inpaint::1::{uuid}::SOLO"))]},
        {"type": 1, "components": [
            b("Zoom Out 2x", format!("MJ::Outpaint::50::1::{uuid}::SOLO")),
            b("Zoom Out 1.5x", format!("MJ::Outpaint::75::1::{uuid}::SOLO")),
            b("Custom Zoom", format!("MJ::CustomZoom::{uuid}"))]},
        {"type": 1, "components": [
            b("⬅️", format!("MJ::JOB::pan_left::1::{uuid}::SOLO")),
            b("➡️", format!("MJ::JOB::pan_right::1::{uuid}::SOLO")),
            b("⬆️", format!("MJ::JOB::pan_up::1::{uuid}::SOLO")),
            b("⬇️", format!("MJ::JOB::pan_down::1::{uuid}::SOLO"))]}
    ])
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
/// replying to a job message that failed after it started. Its footer names the command
/// and prompt, as Midjourney's do (`/imagine <prompt>`; a button's job: its prompt).
fn error_embed(
    s: &Shared,
    token: &str,
    channel: &str,
    about: ErrorAbout<'_>,
    (title, footer): (&str, &str),
    color: u64,
) {
    let id = snowflake(s).to_string();
    let mut m = json!({"id": id, "channel_id": channel, "author": {"id": MJ_BOT},
           "content": "", "embeds": [{"title": title, "description": format!("{title}. (simulated)"),
                                      "color": color, "footer": {"text": footer}}],
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

/// The footer of an error embed about a job: `/<command> <prompt>` for a slash command,
/// the prompt for a button's job.
fn footer_of(kind: &str, prompt: &str) -> String {
    if kind.starts_with("MJ::") {
        prompt.to_string()
    } else {
        format!("/{kind} {prompt}")
    }
}

/// Midjourney refuses an interaction: Discord acknowledges it, the bot answers with an
/// error embed naming the nonce.
fn refuse_interaction(
    s: &Shared,
    (token, channel): (&str, &str),
    (nonce, interaction): (&str, &str),
    (title, footer): (&str, &str),
    color: u64,
) -> Response {
    dispatch(
        s,
        token,
        "INTERACTION_CREATE",
        json!({"id": interaction, "nonce": nonce}),
    );
    let about = ErrorAbout::Interaction { nonce, interaction };
    error_embed(s, token, channel, about, (title, footer), color);
    StatusCode::NO_CONTENT.into_response()
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

/// `/info`: the bot answers only the user who asked (an ephemeral message, on the
/// gateway and never in the channel's history) with the account's plan and how much fast
/// time is left; no job.
fn info_reply(
    s: &Shared,
    token: &str,
    account: &SimAccount,
    channel: &str,
    nonce: &str,
) -> Response {
    let interaction = s.next_id("9");
    dispatch(
        s,
        token,
        "INTERACTION_CREATE",
        json!({"id": interaction, "nonce": nonce}),
    );
    let fast = if s.fast_exhausted(account, false)
        || (account.behaviour == Behaviour::NoFastOnce
            && !s.lock().fast_refused.contains(&account.name))
    {
        "0.00/15.0 hours (0.00%)"
    } else {
        "12.50/15.0 hours (83.33%)"
    };
    let description = format!(
        "**Subscription**: Standard (Active monthly, renews next on <t:1790000000>)\n\
         **Job Mode**: Fast\n**Visibility Mode**: Public\n**Fast Time Remaining**: {fast}\n\
         **Lifetime Usage**: 1024 images (42.50 hours)\n**Relaxed Usage**: 512 images"
    );
    let id = snowflake(s).to_string();
    let msg = json!({"op": 0, "t": "MESSAGE_CREATE", "d": {"id": id, "channel_id": channel,
        "nonce": nonce, "flags": 64, "author": {"id": MJ_BOT, "bot": true},
        "interaction_metadata": {"id": interaction}, "content": "",
        "embeds": [{"title": format!("Your info - {}", account.name), "description": description,
                    "color": 0}]}});
    let _ = s.gateway.send((token.to_string(), msg));
    StatusCode::NO_CONTENT.into_response()
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
    // The session must be one of this token's gateway sessions (from its READY).
    let session = body["session_id"].as_str().unwrap_or("");
    if s.lock().sessions.get(session) != Some(&token) {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"message": "Invalid Form Body", "code": 50035,
                   "errors": {"session_id": {"_errors": [{"code": "BASE_TYPE_INVALID",
                       "message": "Unknown session"}]}}}),
        );
    }
    let nonce = body["nonce"].as_str().unwrap_or("").to_string();
    let channel = body["channel_id"]
        .as_str()
        .unwrap_or(&format!("c-{}", account.name))
        .to_string();
    // What is asked: a slash command, or a button on an earlier message.
    let (kind, prompt, reply_to) = match body["type"].as_u64() {
        Some(2) => {
            let name = body["data"]["name"].as_str().unwrap_or("").to_string();
            // The command must be Midjourney's, at its current version.
            let current = s.lock().commands.get(&name).cloned();
            let (id, version) = (
                body["data"]["id"].as_str(),
                body["data"]["version"].as_str(),
            );
            if current
                .as_ref()
                .map(|(i, v)| (Some(i.as_str()), Some(v.as_str())))
                != Some((id, version))
            {
                return err(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Invalid Form Body", "code": 50035,
                           "errors": {"data": {"_errors": [{"code": "APPLICATION_COMMAND_INVALID_VERSION",
                               "message": "This command is outdated, please try again in a few minutes"}]}}}),
                );
            }
            if name == "info" {
                // The bot wants its captcha solved before it answers anything.
                if s.captcha_required(&account) {
                    let interaction = s.next_id("9");
                    return refuse_interaction(
                        &s,
                        (&token, &channel),
                        (&nonce, &interaction),
                        ("Action needed to continue", "/info"),
                        ERROR_RED,
                    );
                }
                return info_reply(&s, &token, &account, &channel, &nonce);
            }
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
            // The message must be in the channel, and the button on it: Discord refuses a
            // component the message does not have.
            let found = {
                let inner = s.lock();
                inner
                    .messages
                    .get(&channel)
                    .and_then(|h| h.get(&origin.parse().unwrap_or(0)))
                    .map(|m| (inner.prompts.get(&origin).cloned(), buttons_of(m)))
            };
            let Some((Some(prompt), buttons)) = found else {
                return err(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Unknown Message", "code": 10008}),
                );
            };
            if !buttons.contains(&custom) {
                return component_refused();
            }
            s.lock().pressed.push(custom.clone());
            // Custom Zoom and Vary (Region) open a modal, and in Remix mode so do the
            // variations, the reroll and the pans; the job starts when it is submitted.
            let remix = account.behaviour == Behaviour::Remix;
            if custom.starts_with("MJ::CustomZoom::")
                || custom.starts_with("MJ::Inpaint::")
                || (remix && remix_modal(&custom, &origin).is_some())
            {
                return open_modal(&s, &token, &channel, &nonce, &custom, &prompt, &origin);
            }
            (custom, prompt, Some(origin))
        }
        Some(5) => {
            // A modal submitted: one this token was shown, with its own custom_id.
            let modal_id = body["data"]["id"].as_str().unwrap_or("").to_string();
            let custom = body["data"]["custom_id"].as_str().unwrap_or("");
            let modal = s.lock().modals.remove(&modal_id);
            let Some(modal) = modal.filter(|m| {
                m.token == token && m.custom_id == custom && m.kind != ModalKind::Region
            }) else {
                return err(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Unknown interaction", "code": 10062}),
                );
            };
            let value = body["data"]["components"][0]["components"][0].clone();
            if value["custom_id"] != modal.input.as_str() {
                return component_refused();
            }
            let prompt = value["value"].as_str().unwrap_or("").to_string();
            if modal.kind == ModalKind::Remix {
                s.lock().modal_log.push(ModalSubmission {
                    kind: "remix".into(),
                    prompt: prompt.clone(),
                    zoom: None,
                    mask: Vec::new(),
                });
                let job = Command {
                    account,
                    token,
                    channel,
                    nonce,
                    interaction: snowflake(&s).to_string(),
                    kind: modal.button,
                    prompt,
                    reply_to: Some(modal.origin),
                };
                return run_command(&s, job);
            }
            let zoom = zoom_of(&prompt);
            s.lock().modal_log.push(ModalSubmission {
                kind: "custom_zoom".into(),
                prompt: prompt.clone(),
                zoom,
                mask: Vec::new(),
            });
            if !zoom.is_some_and(|z| z > 1.0 && z <= 2.0) {
                let interaction = snowflake(&s).to_string();
                return refuse_interaction(
                    &s,
                    (&token, &channel),
                    (&nonce, &interaction),
                    ("Invalid parameter", &prompt),
                    ERROR_RED,
                );
            }
            (
                format!("MJ::CustomZoom::{}", modal.origin_uuid),
                prompt,
                Some(modal.origin),
            )
        }
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid Form Body", "code": 50035}),
            );
        }
    };
    let interaction = snowflake(&s).to_string();
    let job = Command {
        account,
        token,
        channel,
        nonce,
        interaction,
        kind,
        prompt,
        reply_to,
    };
    run_command(&s, job)
}

/// A command or button that makes a job, as Midjourney takes it.
struct Command {
    account: SimAccount,
    token: String,
    channel: String,
    nonce: String,
    interaction: String,
    kind: String,
    prompt: String,
    reply_to: Option<String>,
}

/// Admit the job (or queue it, or refuse it with Midjourney's embed) and run it.
fn run_command(s: &Shared, c: Command) -> Response {
    let Command {
        account,
        token,
        channel,
        nonce,
        interaction,
        kind,
        prompt,
        reply_to,
    } = c;
    let s = s.clone();
    let d = Directives::parse(&prompt);
    let refused = |title: &str, color: u64| {
        let footer = footer_of(&kind, &prompt);
        refuse_interaction(
            &s,
            (&token, &channel),
            (&nonce, &interaction),
            (title, &footer),
            color,
        )
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
        // Discord itself never refuses for a captcha or a lapsed plan; the bot answers
        // with an embed.
        Err(Refusal::Captcha) => None,
        Err(Refusal::Expired) => return refused("Subscription required", ERROR_RED),
        Ok(Admission::Now) => None,
        Ok(Admission::Queued(ahead)) => Some(ahead),
    };
    let fast = prompt.contains("--fast") || prompt.contains("--turbo");
    let refusal = match account.behaviour {
        Behaviour::Captcha | Behaviour::CaptchaOnce if s.captcha_required(&account) => {
            Some("Action needed to continue")
        }
        Behaviour::NoFast | Behaviour::NoFastOnce if fast && s.fast_exhausted(&account, true) => {
            Some("Credits exhausted")
        }
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
            let footer = footer_of(d["kind"].as_str().unwrap_or(""), prompt);
            error_embed(
                s,
                token,
                channel,
                ErrorAbout::Job { message: start_id },
                (reason, &footer),
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
                upscaled_buttons(prompt, uuid)
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
            let content = format!("**{prompt}** - <@{USER_ID}> ({speed})");
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

/// A gateway session counted open in the witness until dropped.
struct OpenSession {
    s: Shared,
    /// The account's name and the session id.
    held: Option<(String, String)>,
}

impl OpenSession {
    fn opened(&mut self, account: &str, session: &str) {
        self.close();
        let mut inner = self.s.lock();
        let c = inner
            .stats
            .gateway_sessions
            .entry(account.to_string())
            .or_default();
        c.current += 1;
        c.max = c.max.max(c.current);
        c.submissions += 1;
        self.held = Some((account.to_string(), session.to_string()));
    }

    fn close(&mut self) {
        if let Some((account, session)) = self.held.take() {
            let mut inner = self.s.lock();
            inner.sessions.remove(&session);
            if let Some(c) = inner.stats.gateway_sessions.get_mut(&account) {
                c.current = c.current.saturating_sub(1);
            }
        }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.close();
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
    // The witness counts this session as open from READY until the socket ends (however
    // it ends); its id stops being live then.
    let mut open = OpenSession {
        s: s.clone(),
        held: None,
    };
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
                            Some(a) if !a.banned_now() => {
                                seq += 1;
                                // Interactions name the session they come from.
                                let session = s.next_id("sess");
                                s.lock().sessions.insert(session.clone(), t.clone());
                                open.opened(&a.name, &session);
                                let ready = json!({"op": 0, "t": "READY", "s": seq,
                                    "d": {"session_id": session, "user": {"id": "1", "username": a.name}}});
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
