//! The Midjourney adapter: Discord REST interactions (type 2 slash commands for imagine,
//! describe and blend — with attachment upload — and type 3 buttons for upscale,
//! variation, reroll, pan, zoom, vary-region, seed) and one gateway websocket per account
//! (identify, heartbeat, message create/update/delete matched to our nonce). The upstream
//! reference is the interaction nonce, stored as soon as Discord accepts it; a resumed run
//! reads the channel's recent messages to find where the job got to instead of sending
//! the command again. The bot's error embeds map to outcomes (UPSTREAMS.md §7.1).

mod gateway;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use switchyard_core::task::{MjAction, PanDirection, Upscaler};
use switchyard_core::{Config, ProcessMode, Provider, TaskSpec};
use switchyard_worker::{
    Control, Job, Upstream, UpstreamError, fetch_bytes, http_client, retry_after,
};

use gateway::{Gateway, JobView};

const APPLICATION_ID: &str = "936929561302675456";
const IMAGINE_COMMAND: (&str, &str) = ("938956540159881230", "1237876415471554623");
const DESCRIBE_COMMAND: (&str, &str) = ("1092492867185950852", "1237876415471554625");
const BLEND_COMMAND: (&str, &str) = ("1062880104792997970", "1237876415471554624");

/// The Midjourney adapter.
pub struct Midjourney {
    http: reqwest::Client,
    api: String,
    gateway_url: String,
    poll: Duration,
    gateways: Mutex<HashMap<String, Arc<Gateway>>>,
    nonce: AtomicU64,
}

/// What a Midjourney error embed means.
pub fn classify_embed(title: &str, description: &str) -> UpstreamError {
    let t = title.to_ascii_lowercase();
    let raw = format!("{title}: {description}");
    if t.contains("job queued") || t.contains("queue full") {
        UpstreamError::RateLimited {
            retry_after_ms: 30_000,
            message: format!("the account's Midjourney queue is full ({title})"),
        }
    } else if t.contains("credits exhausted") {
        // Fast hours are gone: the account takes no fast or turbo work for an hour (then
        // a fast job tries it again) and keeps serving relax.
        UpstreamError::NoFastHours {
            retry_after_ms: 3_600_000,
            message: "the account has no fast hours left".into(),
        }
    } else if t.contains("action needed") {
        UpstreamError::AccountDead {
            reason: "captcha required (Action needed to continue)".into(),
        }
    } else if t.contains("blocked")
        || t.contains("subscription")
        || t.contains("plan cancelled")
        || t.contains("pending mod")
        || t.contains("tos not accepted")
    {
        UpstreamError::AccountDead {
            reason: format!("Midjourney: {title}"),
        }
    } else {
        // Banned prompt, invalid prompt/parameter/link, output filters, anything else.
        UpstreamError::BadRequest {
            message: format!("Midjourney rejected the task: {title}"),
            raw,
        }
    }
}

impl Midjourney {
    /// From the upstream config.
    pub fn new(c: &Config) -> Midjourney {
        Midjourney {
            http: http_client(c.upstreams.request_timeout_s),
            api: c.upstreams.discord_api.trim_end_matches('/').to_string(),
            gateway_url: c.upstreams.discord_gateway.clone(),
            poll: Duration::from_millis(c.worker.poll_interval_ms.min(1000)),
            gateways: Mutex::new(HashMap::new()),
            nonce: AtomicU64::new(0),
        }
    }

    async fn gateway(&self, account: &str, token: &str) -> Result<Arc<Gateway>, UpstreamError> {
        let existing = self
            .gateways
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .cloned();
        if let Some(g) = existing
            && g.alive()
        {
            return Ok(g);
        }
        let g = Gateway::connect(&self.gateway_url, token).await?;
        self.gateways
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_string(), g.clone());
        Ok(g)
    }

    fn new_nonce(&self) -> String {
        // Discord nonces are numeric strings; time-ordered and unique per process.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        format!(
            "{t}{:04}",
            self.nonce.fetch_add(1, Ordering::Relaxed) % 10_000
        )
    }

    async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<reqwest::Response, UpstreamError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.api))
            .header("authorization", token)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let ra = retry_after(&resp);
        let text = resp.text().await.unwrap_or_default();
        Err(switchyard_worker::classify_http(status, &text, ra))
    }

    /// Upload an image from a URL as a Discord attachment; returns the uploaded filename.
    async fn upload(
        &self,
        channel: &str,
        token: &str,
        url: &str,
        idx: usize,
    ) -> Result<(String, String), UpstreamError> {
        let bytes = fetch_bytes(&self.http, url, "the image").await?;
        let filename = format!("image{idx}.png");
        let slot: Value = self
            .post_json(
                &format!("/api/v9/channels/{channel}/attachments"),
                token,
                &json!({"files": [{"filename": filename, "file_size": bytes.len(), "id": idx.to_string()}]}),
            )
            .await?
            .json()
            .await
            .map_err(|_| UpstreamError::Transient("unreadable attachment slot".into()))?;
        let a = &slot["attachments"][0];
        self.http
            .put(a["upload_url"].as_str().unwrap_or(""))
            .body(bytes)
            .send()
            .await?
            .error_for_status()
            .map_err(|_| UpstreamError::Transient("image upload failed".into()))?;
        Ok((
            filename,
            a["upload_filename"].as_str().unwrap_or("").to_string(),
        ))
    }

    /// The interaction body for a task.
    async fn interaction(
        &self,
        job: &Job,
        action: &MjAction,
        mode: ProcessMode,
        nonce: &str,
        channel: &str,
    ) -> Result<Value, UpstreamError> {
        let token = job.credential("token");
        let guild = job.credentials["guild_id"].clone();
        let flag = match mode {
            ProcessMode::Relax => "--relax",
            ProcessMode::Fast => "--fast",
            ProcessMode::Turbo => "--turbo",
        };
        let command = |cmd: (&str, &str), name: &str, options: Value, attachments: Value| {
            json!({"type": 2, "application_id": APPLICATION_ID, "guild_id": guild, "channel_id": channel,
                   "session_id": "switchyard", "nonce": nonce,
                   "data": {"version": cmd.1, "id": cmd.0, "name": name, "type": 1,
                            "options": options, "attachments": attachments}})
        };
        let with_flag = |p: &str| {
            if p.contains(flag) {
                p.to_string()
            } else {
                format!("{p} {flag}")
            }
        };
        Ok(match action {
            MjAction::Imagine(a) => {
                let mut prompt = with_flag(&a.prompt);
                if let Some(ar) = &a.aspect_ratio
                    && !prompt.contains("--ar")
                {
                    prompt = format!("{prompt} --ar {ar}");
                }
                command(
                    IMAGINE_COMMAND,
                    "imagine",
                    json!([{"type": 3, "name": "prompt", "value": prompt}]),
                    json!([]),
                )
            }
            MjAction::Describe(a) => {
                let (name, up) = self.upload(channel, token, &a.image_url, 0).await?;
                command(
                    DESCRIBE_COMMAND,
                    "describe",
                    json!([{"type": 11, "name": "image", "value": 0}]),
                    json!([{"id": "0", "filename": name, "uploaded_filename": up}]),
                )
            }
            MjAction::Blend(a) => {
                let mut options = Vec::new();
                let mut attachments = Vec::new();
                for (i, url) in a.image_urls.iter().enumerate() {
                    let (name, up) = self.upload(channel, token, url, i).await?;
                    options
                        .push(json!({"type": 11, "name": format!("image{}", i + 1), "value": i}));
                    attachments.push(
                        json!({"id": i.to_string(), "filename": name, "uploaded_filename": up}),
                    );
                }
                if let Some(d) = a.dimension {
                    let d = serde_json::to_value(d).unwrap_or_default();
                    options.push(json!({"type": 3, "name": "dimensions", "value": format!("--ar {}", match d.as_str() {
                        Some("portrait") => "2:3", Some("landscape") => "3:2", _ => "1:1" })}));
                }
                command(BLEND_COMMAND, "blend", json!(options), json!(attachments))
            }
            _ => {
                let origin = job.body.origin.as_ref().ok_or_else(|| {
                    UpstreamError::rejected("this action needs its origin task's result")
                })?;
                let message_id = origin.output["message_id"].as_str().ok_or_else(|| {
                    UpstreamError::rejected("the origin task has no Midjourney message to act on")
                })?;
                let custom = custom_id(action, &origin.output)?;
                json!({"type": 3, "application_id": APPLICATION_ID, "guild_id": guild,
                       "channel_id": origin.output["channel_id"].as_str().unwrap_or(channel),
                       "message_id": message_id, "message_flags": 0, "session_id": "switchyard",
                       "nonce": nonce, "data": {"component_type": 2, "custom_id": custom}})
            }
        })
    }

    /// Rebuild what happened to a job from the channel's recent messages (resume).
    async fn recover(
        &self,
        gw: &Gateway,
        token: &str,
        channel: &str,
        nonce: &str,
    ) -> Result<(), UpstreamError> {
        let resp = self
            .http
            .get(format!(
                "{}/api/v9/channels/{channel}/messages?limit=100",
                self.api
            ))
            .header("authorization", token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let ra = retry_after(&resp);
            let text = resp.text().await.unwrap_or_default();
            return Err(switchyard_worker::classify_http(status, &text, ra));
        }
        let msgs: Vec<Value> = resp.json().await.unwrap_or_default();
        // Oldest first, as they happened.
        for m in msgs.iter().rev() {
            gw.observe("MESSAGE_CREATE", m);
        }
        gw.ensure(nonce);
        Ok(())
    }
}

/// The button to press for a follow-up, from the origin message's buttons.
fn custom_id(action: &MjAction, origin: &Value) -> Result<String, UpstreamError> {
    let ids: Vec<String> = origin["components"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c["custom_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let hash = ids
        .iter()
        .find_map(|id| id.split("::").nth(4).or_else(|| id.split("::").nth(3)))
        .unwrap_or("0")
        .to_string();
    let find = |prefix: &str| ids.iter().find(|id| id.starts_with(prefix)).cloned();
    let (prefix, fallback) = match action {
        MjAction::Upscale(u) => match (u.index, u.upscaler) {
            (Some(i), _) => (format!("MJ::JOB::upsample::{i}::"), None),
            (None, Some(up)) => {
                let name = match up {
                    Upscaler::X2 => "v6_2x_subtle",
                    Upscaler::X4 => "v5_4x",
                    Upscaler::Light => "light",
                    Upscaler::Beta => "beta",
                    Upscaler::Subtle => "v6_2x_subtle",
                    Upscaler::Creative => "v6_2x_creative",
                };
                (
                    format!("MJ::JOB::upsample_{name}::"),
                    Some(format!("MJ::JOB::upsample_{name}::1::{hash}::SOLO")),
                )
            }
            (None, None) => return Err(UpstreamError::rejected("upscale needs index or upscaler")),
        },
        MjAction::Variation(v) => (format!("MJ::JOB::variation::{}::", v.index), None),
        MjAction::Reroll(_) => ("MJ::JOB::reroll::".to_string(), None),
        MjAction::Pan(p) => {
            let d = match p.direction {
                PanDirection::Left => "left",
                PanDirection::Right => "right",
                PanDirection::Up => "up",
                PanDirection::Down => "down",
            };
            (
                format!("MJ::JOB::pan_{d}::"),
                Some(format!("MJ::JOB::pan_{d}::1::{hash}::SOLO")),
            )
        }
        MjAction::Outpaint(_) => (
            "MJ::Outpaint::".to_string(),
            Some(format!("MJ::Outpaint::50::1::{hash}::SOLO")),
        ),
        MjAction::Inpaint(_) => (
            "MJ::Inpaint::".to_string(),
            Some(format!("MJ::Inpaint::1::{hash}::SOLO")),
        ),
        MjAction::Seed(_) => (
            "MJ::JOB::seed::".to_string(),
            Some(format!("MJ::JOB::seed::0::{hash}")),
        ),
        _ => return Err(UpstreamError::rejected("not a follow-up action")),
    };
    find(&prefix)
        .or(fallback)
        .ok_or_else(|| UpstreamError::rejected("the origin result has no button for this action"))
}

fn action_names(components: &Value) -> Vec<String> {
    components
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| {
                    let id = c["custom_id"].as_str()?;
                    let parts: Vec<&str> = id.split("::").collect();
                    Some(
                        match (
                            parts.get(1).copied(),
                            parts.get(2).copied(),
                            parts.get(3).copied(),
                        ) {
                            (Some("JOB"), Some("upsample"), Some(i)) => format!("upscale{i}"),
                            (Some("JOB"), Some("variation"), Some(i)) => format!("variation{i}"),
                            (Some("JOB"), Some(name), _) => name.to_string(),
                            (Some("Outpaint"), _, _) => "outpaint".to_string(),
                            (Some("Inpaint"), _, _) => "inpaint".to_string(),
                            _ => id.to_string(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The task output from the final message (fields per UPSTREAMS.md §2.1).
fn output(view: &JobView, channel: &str) -> Value {
    let m = view.done.clone().unwrap_or(Value::Null);
    let url = m["attachments"][0]["url"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let split: Vec<String> = if url.is_empty() {
        vec![]
    } else {
        let stem = url.trim_end_matches(".png");
        (0..4).map(|i| format!("{stem}_{i}.png")).collect()
    };
    let content = m["content"].as_str().unwrap_or("");
    let seed = content
        .split("seed ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok());
    let description = m["embeds"][0]["description"].as_str().map(str::to_string);
    json!({"image_url": url, "image_urls": split, "temporary_image_urls": split,
           "discord_image_url": url, "progress": 100, "actions": action_names(&m["components"]),
           "seed": seed, "description": description,
           "message_id": m["id"], "channel_id": m["channel_id"].as_str().unwrap_or(channel),
           "components": m["components"]})
}

#[async_trait]
impl Upstream for Midjourney {
    fn provider(&self) -> Provider {
        Provider::Midjourney
    }

    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        let TaskSpec::Midjourney(task) = &job.spec else {
            return Err(UpstreamError::rejected("not a Midjourney task"));
        };
        let token = job.credential("token").to_string();
        let channel = job.credentials["channel_id"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        let mut gw = self.gateway(&job.account_id, &token).await?;
        let nonce = match &job.upstream_ref {
            Some(r) => {
                let nonce = serde_json::from_str::<Value>(r)
                    .ok()
                    .and_then(|v| v["nonce"].as_str().map(str::to_string))
                    .ok_or_else(|| UpstreamError::rejected("unreadable upstream reference"))?;
                self.recover(&gw, &token, &channel, &nonce).await?;
                nonce
            }
            None => {
                let nonce = self.new_nonce();
                let body = self
                    .interaction(job, &task.action, task.process_mode, &nonce, &channel)
                    .await?;
                gw.ensure(&nonce);
                self.post_json("/api/v9/interactions", &token, &body)
                    .await?;
                ctl.reference(&json!({"nonce": nonce, "channel_id": channel}).to_string())
                    .await?;
                nonce
            }
        };
        let mut last_progress = 0u8;
        loop {
            let view = gw.view(&nonce);
            if let Some((title, description)) = &view.error {
                return Err(classify_embed(title, description));
            }
            if view.done.is_some() {
                return Ok(output(&view, &channel));
            }
            if view.progress > last_progress {
                last_progress = view.progress;
                ctl.progress(view.progress, None).await?;
            }
            if !gw.alive() {
                // Reconnect and catch up from the channel history.
                gw = self.gateway(&job.account_id, &token).await?;
                self.recover(&gw, &token, &channel, &nonce).await?;
                continue;
            }
            gw.changed(self.poll).await;
        }
    }

    async fn probe(&self, credentials: &Value) -> Result<(), UpstreamError> {
        let token = credentials["token"].as_str().unwrap_or("");
        Gateway::connect(&self.gateway_url, token).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_embeds_map_to_outcomes() {
        assert!(matches!(
            classify_embed("Banned prompt detected", ""),
            UpstreamError::BadRequest { .. }
        ));
        assert!(matches!(
            classify_embed("Invalid parameter", ""),
            UpstreamError::BadRequest { .. }
        ));
        assert!(matches!(
            classify_embed("Job queued", ""),
            UpstreamError::RateLimited { .. }
        ));
        assert!(matches!(
            classify_embed("Queue full", ""),
            UpstreamError::RateLimited { .. }
        ));
        assert!(matches!(
            classify_embed("Blocked", ""),
            UpstreamError::AccountDead { .. }
        ));
        assert!(matches!(
            classify_embed("Subscription paused", ""),
            UpstreamError::AccountDead { .. }
        ));
        assert!(matches!(
            classify_embed("Action needed to continue", ""),
            UpstreamError::AccountDead { .. }
        ));
        match classify_embed("Credits exhausted", "") {
            UpstreamError::NoFastHours { retry_after_ms, .. } => {
                assert_eq!(retry_after_ms, 3_600_000)
            }
            other => panic!("{other:?}"),
        }
    }
}
