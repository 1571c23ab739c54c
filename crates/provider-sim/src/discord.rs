//! Discord as Midjourney is reached through it: REST interactions (type 2 slash commands,
//! type 3 buttons), attachment upload, channel messages, and the gateway websocket that
//! carries the Midjourney bot's messages (start with our nonce, progress updates, the
//! final message with image and buttons, error embeds).

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::{Behaviour, Directives, JobState, Refusal, Shared, SimAccount, err};

const MJ_BOT: &str = "936929561302675456";
const ERROR_RED: u64 = 16_711_680;
const WARN_YELLOW: u64 = 16_776_960;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v9/interactions", post(interaction))
        .route("/api/v9/channels/{channel}/attachments", post(attachments))
        .route("/api/v9/channels/{channel}/messages", get(messages))
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

/// Push a gateway dispatch to every connection of this token, and keep MESSAGE_CREATEs
/// in the channel history.
fn dispatch(s: &Shared, token: &str, t: &str, d: Value) {
    if t == "MESSAGE_CREATE" || t == "MESSAGE_UPDATE" {
        let channel = d["channel_id"].as_str().unwrap_or("").to_string();
        let mut inner = s.lock();
        let hist = inner.messages.entry(channel).or_default();
        if t == "MESSAGE_UPDATE" {
            if let Some(m) = hist.iter_mut().find(|m| m["id"] == d["id"]) {
                *m = d.clone();
            }
        } else {
            hist.push_back(d.clone());
            while hist.len() > 200 {
                hist.pop_front();
            }
        }
    }
    let _ = s
        .gateway
        .send((token.to_string(), json!({"op": 0, "t": t, "d": d})));
}

fn error_embed(s: &Shared, token: &str, channel: &str, nonce: &str, title: &str, color: u64) {
    let id = s.next_id("9");
    dispatch(
        s,
        token,
        "MESSAGE_CREATE",
        json!({"id": id, "channel_id": channel, "nonce": nonce, "author": {"id": MJ_BOT},
               "content": "", "embeds": [{"title": title, "description": format!("{title}. (simulated)"), "color": color}],
               "attachments": [], "components": []}),
    );
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
    let (kind, prompt) = match body["type"].as_u64() {
        Some(2) => {
            let name = body["data"]["name"].as_str().unwrap_or("").to_string();
            let prompt = body["data"]["options"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["name"] == "prompt"))
                .and_then(|o| o["value"].as_str())
                .unwrap_or("")
                .to_string();
            (name, prompt)
        }
        Some(3) => {
            let custom = body["data"]["custom_id"].as_str().unwrap_or("").to_string();
            let origin = body["message_id"].as_str().unwrap_or("");
            let prompt = {
                let inner = s.lock();
                inner
                    .messages
                    .get(&channel)
                    .and_then(|h| h.iter().find(|m| m["id"] == origin))
                    .map(|m| m["x_prompt"].as_str().unwrap_or("").to_string())
            };
            let Some(prompt) = prompt else {
                return err(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Unknown Message", "code": 10008}),
                );
            };
            (custom, prompt)
        }
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid Form Body", "code": 50035}),
            );
        }
    };
    let d = Directives::parse(&prompt);
    match s.admit(&account, &d, false) {
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
        Err(Refusal::Full) => {
            error_embed(&s, &token, &channel, &nonce, "Queue full", WARN_YELLOW);
            return StatusCode::NO_CONTENT.into_response();
        }
        // Discord itself never refuses for a captcha; the bot answers with an embed.
        Err(Refusal::Captcha) | Ok(()) => {}
    }
    let fast = prompt.contains("--fast") || prompt.contains("--turbo");
    let refusal = match account.behaviour {
        Behaviour::Captcha => Some("Action needed to continue"),
        Behaviour::NoFast if fast => Some("Credits exhausted"),
        _ => None,
    };
    if let Some(title) = refusal {
        s.end(&account.name, d.tag.as_deref());
        error_embed(&s, &token, &channel, &nonce, title, ERROR_RED);
        return StatusCode::NO_CONTENT.into_response();
    }
    let job = s.next_id("job");
    let start_id = s.next_id("1");
    let data = json!({"kind": kind, "prompt": prompt, "nonce": nonce, "channel": channel,
                      "start_id": start_id, "token": token});
    s.start_job(&job, &account, &d, data, on_step);
    StatusCode::NO_CONTENT.into_response()
}

fn on_step(s: &Shared, job_id: &str, state: &JobState) {
    let Some(job) = s.job(job_id) else { return };
    let d = &job.data;
    let token = d["token"].as_str().unwrap_or("");
    let channel = d["channel"].as_str().unwrap_or("");
    let prompt = d["prompt"].as_str().unwrap_or("");
    let start_id = d["start_id"].as_str().unwrap_or("");
    let nonce = d["nonce"].as_str().unwrap_or("");
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
                   "content": format!("**{prompt}** - <@1> (Waiting to start)"),
                   "attachments": [], "components": [], "embeds": []}),
        ),
        JobState::Running(p) => dispatch(
            s,
            token,
            "MESSAGE_UPDATE",
            json!({"id": start_id, "channel_id": channel, "author": {"id": MJ_BOT},
                   "content": format!("**{prompt}** - <@1> ({p}%) ({speed})"),
                   "attachments": [{"url": format!("{base}/_cdn/{job_id}_progress_{p}.webp"), "width": 512, "height": 512}],
                   "components": [], "embeds": []}),
        ),
        JobState::Failed(reason) => {
            error_embed(s, token, channel, nonce, reason, ERROR_RED);
            let _ = s.gateway.send((
                token.to_string(),
                json!({"op": 0, "t": "MESSAGE_DELETE", "d": {"id": start_id, "channel_id": channel}}),
            ));
        }
        JobState::Done => {
            let hash = format!("{:08x}-sim-{job_id}", job_id.len() * 7919);
            let kind = d["kind"].as_str().unwrap_or("");
            let upscaled = kind.contains("upsample") || kind.contains("upscale");
            let components = if upscaled {
                json!([{"type": 1, "components": [
                    {"type": 2, "custom_id": format!("MJ::JOB::high_variation::1::{hash}"), "label": "Vary (Strong)"},
                    {"type": 2, "custom_id": format!("MJ::JOB::low_variation::1::{hash}"), "label": "Vary (Subtle)"},
                    {"type": 2, "custom_id": format!("MJ::Outpaint::50::1::{hash}::SOLO"), "label": "Zoom Out 2x"},
                    {"type": 2, "custom_id": format!("MJ::JOB::pan_left::1::{hash}::SOLO"), "label": "⬅️"},
                    {"type": 2, "custom_id": format!("MJ::Inpaint::1::{hash}::SOLO"), "label": "Vary (Region)"}]}])
            } else {
                let mut row1: Vec<Value> = (1..=4)
                    .map(|i| json!({"type": 2, "custom_id": format!("MJ::JOB::upsample::{i}::{hash}"), "label": format!("U{i}")}))
                    .collect();
                row1.push(json!({"type": 2, "custom_id": format!("MJ::JOB::reroll::0::{hash}::SOLO"), "label": "🔄"}));
                let row2: Vec<Value> = (1..=4)
                    .map(|i| json!({"type": 2, "custom_id": format!("MJ::JOB::variation::{i}::{hash}"), "label": format!("V{i}")}))
                    .collect();
                json!([{"type": 1, "components": row1}, {"type": 1, "components": row2}])
            };
            let final_id = s.next_id("2");
            let embeds = if kind.contains("describe") {
                json!([{"description": "1️⃣ a simulated description --ar 1:1\n\n2️⃣ another reading --ar 1:1\n\n3️⃣ a third --ar 1:1\n\n4️⃣ a fourth --ar 1:1", "color": 0}])
            } else {
                json!([])
            };
            let content = if kind.contains("seed") {
                format!("**{prompt}** - <@1> seed 1234567890")
            } else {
                format!("**{prompt}** - <@1> ({speed})")
            };
            dispatch(
                s,
                token,
                "MESSAGE_CREATE",
                json!({"id": final_id, "channel_id": channel, "author": {"id": MJ_BOT},
                       "content": content, "x_prompt": prompt,
                       "message_reference": {"message_id": start_id},
                       "attachments": [{"url": format!("{base}/_cdn/{hash}.png"), "filename": format!("sim_{hash}.png"), "width": 2048, "height": 2048}],
                       "components": components, "embeds": embeds}),
            );
            let _ = s.gateway.send((
                token.to_string(),
                json!({"op": 0, "t": "MESSAGE_DELETE", "d": {"id": start_id, "channel_id": channel}}),
            ));
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

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn messages(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    if SimAccount::parse(&token(&headers)).is_none() {
        return unauthorized();
    }
    let limit = q.limit.unwrap_or(50).min(100);
    let inner = s.lock();
    let list: Vec<Value> = inner
        .messages
        .get(&channel)
        .map(|h| h.iter().rev().take(limit).cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(list)).into_response()
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
