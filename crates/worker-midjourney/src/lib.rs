//! The Midjourney adapter: Discord REST interactions (type 2 slash commands for imagine,
//! describe and blend — with attachment upload — and type 3 buttons for upscale,
//! variation, reroll, pan, zoom, vary-region, seed) and one gateway websocket per account
//! (identify, heartbeat, interaction events and message create/update/delete matched to
//! our jobs, see `gateway.rs`).
//!
//! The upstream reference ([`MjReference`]) is stored before the command is sent (the
//! nonce is ours), dropped when Discord answers with an error, and stored again as each
//! of its keys appears: the interaction id,
//! the job message id, the Midjourney job id. A resumed run never sends the command again
//! while the job can exist: it fetches the job message by id (still there: the job runs;
//! gone: it ended) and reads the channel forward from the job message (or from the nonce's
//! time), page by page, until it has the result or the error, then follows it live. Only
//! when no reply to the interaction appears within [`REPLY_WINDOW`] of the nonce's time
//! — Discord accepted the interaction but the bot never answered it — does it submit
//! again. The bot's error embeds map to outcomes (UPSTREAMS.md §7.1).

mod gateway;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use switchyard_core::task::{MjAction, PanDirection, Upscaler, VariationOf};
use switchyard_core::{Config, ProcessMode, Provider, TaskSpec};
use switchyard_worker::{
    Control, InputRules, Job, OutputFile, Upstream, UpstreamError, fetch_bytes, http_client,
};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gateway::{Gateway, JobView, Known};
use tracing::warn;

/// How long after a command its first reply may still come; a resumed run that finds none
/// by then sends the command again. Discord fails an interaction its application has not
/// answered within 3 s; the rest is room for clocks that differ between hosts.
pub const REPLY_WINDOW: Duration = Duration::from_secs(15);
/// Pages of 100 messages a resumed run reads forward from the job at most, per catch-up.
const HISTORY_PAGES: usize = 100;
/// Discord's epoch (2015-01-01) in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What finds a Midjourney job again: stored through `Control::reference` as soon as
/// Discord accepts the interaction, and again as each key appears.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MjReference {
    /// Our interaction nonce (time-ordered: it dates the command).
    pub nonce: String,
    /// The channel the job runs in.
    pub channel_id: String,
    /// Discord's id for our interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
    /// The bot's job message (edited with progress, deleted when the job ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Midjourney's job id (a seed's: the origin's, whose seed is asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The modal the button opened was submitted (stored before it is): the job goes on
    /// under this nonce.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub modal_sent: bool,
}

/// Sending a command failed.
struct SendFailed {
    error: UpstreamError,
    /// Discord may have taken it (the reply was lost): only a look at the channel can tell.
    maybe_taken: bool,
}

impl MjReference {
    /// Take what a view learnt; true when something new was learnt.
    fn learn(&mut self, v: &JobView) -> bool {
        let before = self.clone();
        if self.interaction_id.is_none() {
            self.interaction_id.clone_from(&v.interaction_id);
        }
        if self.message_id.is_none() {
            self.message_id.clone_from(&v.start_id);
        }
        if self.job_id.is_none() {
            self.job_id.clone_from(&v.job_id);
        }
        *self != before
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// When the command was sent, from the nonce (microseconds, then four digits).
    fn sent_at_ms(&self) -> Option<u64> {
        let n = self.nonce.len().checked_sub(4)?;
        self.nonce[..n].parse::<u64>().ok().map(|us| us / 1000)
    }
}

/// A Discord snowflake at Unix time `ms` (messages after it were sent after then).
fn snowflake_at(ms: u64) -> u64 {
    ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How following a job ended, short of a result.
enum Followed {
    /// The bot never answered the interaction: nothing runs upstream.
    NeverAnswered,
    /// The job failed, or the account or the network did.
    Failed(UpstreamError),
}

impl From<UpstreamError> for Followed {
    fn from(e: UpstreamError) -> Self {
        Followed::Failed(e)
    }
}

impl From<switchyard_worker::LeaseLost> for Followed {
    fn from(e: switchyard_worker::LeaseLost) -> Self {
        Followed::Failed(e.into())
    }
}

const APPLICATION_ID: &str = "936929561302675456";

/// The Midjourney adapter.
pub struct Midjourney {
    http: reqwest::Client,
    /// Midjourney's image CDN (`upstreams.midjourney_cdn`), without a trailing slash.
    cdn: String,
    /// Where input files may come from (`worker.allow_private_inputs`).
    inputs: InputRules,
    api: String,
    /// The Vary (Region) editor's host (`upstreams.discord_inpaint`).
    inpaint: String,
    gateway_url: String,
    poll: Duration,
    gateways: Mutex<HashMap<String, Arc<Gateway>>>,
    /// The accounts' shared sessions, once the runtime attached the scheduler.
    sessions: std::sync::OnceLock<session::Sessions>,
    nonce: AtomicU64,
    /// Midjourney's slash commands, name → (id, version), read from the command index
    /// (they change over time); dropped when Discord calls one outdated.
    commands: Mutex<HashMap<String, (String, String)>>,
}

/// What a Midjourney error embed means.
pub fn classify_embed(title: &str, description: &str) -> UpstreamError {
    let t = title.to_ascii_lowercase();
    let raw = format!("{title}: {description}");
    // ("Job queued" is no error: the job waits on its account and starts by itself.)
    if t.contains("queue full") {
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
        // A temporary block names its end as a Discord timestamp (`<t:1700000000:R>`).
        let until = description
            .split("<t:")
            .nth(1)
            .and_then(|t| t.split([':', '>']).next())
            .and_then(|t| t.parse::<u64>().ok())
            .map(|s| format!(" until {}", s * 1000))
            .unwrap_or_default();
        UpstreamError::AccountDead {
            reason: format!("Midjourney: {title}{until}"),
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
            inputs: InputRules::of(c),
            cdn: c.upstreams.midjourney_cdn.trim_end_matches('/').to_string(),
            http: http_client(c.upstreams.request_timeout_s),
            api: c.upstreams.discord_api.trim_end_matches('/').to_string(),
            inpaint: c
                .upstreams
                .discord_inpaint
                .trim_end_matches('/')
                .to_string(),
            gateway_url: c.upstreams.discord_gateway.clone(),
            poll: Duration::from_millis(c.worker.poll_interval_ms.min(1000)),
            gateways: Mutex::new(HashMap::new()),
            sessions: std::sync::OnceLock::new(),
            nonce: AtomicU64::new(0),
            commands: Mutex::new(HashMap::new()),
        }
    }

    async fn gateway(&self, account: &str, token: &str) -> Result<Arc<Gateway>, UpstreamError> {
        // Attached to a scheduler (every worker process): the account's one shared
        // session. Alone (no scheduler): a session of this process.
        if let Some(sessions) = self.sessions.get() {
            return sessions.view(account, token).await;
        }
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

    /// Midjourney's `/info` through the account's session: the fast hours it has left.
    async fn fast_time_left(
        &self,
        account: &str,
        credentials: &Value,
    ) -> Result<f64, UpstreamError> {
        let token = credentials["token"].as_str().unwrap_or("");
        let channel = credentials["channel_id"].as_str().unwrap_or("0");
        let gw = self.gateway(account, token).await?;
        let (id, version) = self.command("info", channel, token).await?;
        let nonce = self.new_nonce();
        gw.track(&nonce, &Known::default());
        let at = (
            &credentials["guild_id"],
            channel,
            gw.session_id.as_str(),
            nonce.as_str(),
        );
        let body = slash_command(at, &(id, version), "info", json!([]), json!([]));
        let answer = async {
            self.send_interaction(token, &body)
                .await
                .map_err(|f| f.error)?;
            let deadline = Instant::now() + INFO_WAIT;
            loop {
                let view = gw.view(&nonce);
                if let Some((title, description)) = &view.error {
                    // ("Action needed to continue": a captcha, as for a job.)
                    return Err(classify_embed(title, description));
                }
                if let Some(m) = view.first_reply {
                    return fast_time_in(&m).ok_or_else(|| {
                        UpstreamError::Transient("Midjourney's /info names no fast time".into())
                    });
                }
                if Instant::now() >= deadline || !gw.alive() {
                    return Err(UpstreamError::Transient(
                        "Midjourney did not answer /info".into(),
                    ));
                }
                gw.changed(Duration::from_millis(250)).await;
            }
        }
        .await;
        gw.forget(&nonce);
        answer
    }

    /// Discord says a session is gone: its view ends here, so that the next use waits
    /// for the account's next session (and its followers catch up).
    fn session_ended(&self, session_id: &str) {
        if let Some(sessions) = self.sessions.get() {
            sessions.ended(session_id);
        }
        for g in self
            .gateways
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            if g.session_id == session_id {
                g.end();
            }
        }
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
        Err(switchyard_worker::refusal(resp).await)
    }

    /// Send an interaction (a command or a button press).
    async fn send_interaction(&self, token: &str, body: &Value) -> Result<(), SendFailed> {
        let sent = self
            .http
            .post(format!("{}/api/v9/interactions", self.api))
            .header("authorization", token)
            .json(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(SendFailed {
                    maybe_taken: !e.is_connect(),
                    error: e.into(),
                });
            }
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let error = match switchyard_worker::refusal(resp).await {
            // The session the interaction named ended (its holder died, another opened
            // the next): nothing was taken; the retry names the current one.
            UpstreamError::BadRequest { raw, .. } if raw.contains("Unknown session") => {
                if let Some(sid) = body["session_id"].as_str() {
                    self.session_ended(sid);
                }
                session_gone()
            }
            e => e,
        };
        Err(SendFailed {
            error,
            maybe_taken: false,
        })
    }

    /// Upload an image from a URL as a Discord attachment; returns the uploaded filename.
    async fn upload(
        &self,
        channel: &str,
        token: &str,
        url: &str,
        idx: usize,
    ) -> Result<(String, String), UpstreamError> {
        let bytes = fetch_bytes(&self.http, url, "the image", self.inputs).await?;
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
        let session_id = self
            .gateway(&job.account_id, token)
            .await?
            .session_id
            .clone();
        let ids = match action {
            MjAction::Imagine(_) => Some(self.command("imagine", channel, token).await?),
            MjAction::Describe(_) => Some(self.command("describe", channel, token).await?),
            MjAction::Blend(_) => Some(self.command("blend", channel, token).await?),
            _ => None,
        };
        let command = |name: &str, options: Value, attachments: Value| {
            let at = (&guild, channel, session_id.as_str(), nonce);
            slash_command(
                at,
                &ids.clone().unwrap_or_default(),
                name,
                options,
                attachments,
            )
        };
        Ok(match action {
            MjAction::Imagine(_) => command(
                "imagine",
                json!([{"type": 3, "name": "prompt", "value": echo(action, mode)}]),
                json!([]),
            ),
            MjAction::Describe(a) => {
                let (name, up) = self.upload(channel, token, &a.image_url, 0).await?;
                command(
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
                command("blend", json!(options), json!(attachments))
            }
            _ => {
                let origin = job.origin.as_ref().ok_or_else(|| {
                    UpstreamError::rejected("this action needs its origin task's result")
                })?;
                let message_id = origin.output["message_id"].as_str().ok_or_else(|| {
                    UpstreamError::rejected("the origin task has no Midjourney message to act on")
                })?;
                let custom = custom_id(action, &origin.output)?;
                json!({"type": 3, "application_id": APPLICATION_ID, "guild_id": guild,
                       "channel_id": origin.output["channel_id"].as_str().unwrap_or(channel),
                       "message_id": message_id, "message_flags": 0, "session_id": session_id,
                       "nonce": nonce, "data": {"component_type": 2, "custom_id": custom}})
            }
        })
    }

    /// What the modal of a follow-up's button is submitted with: Custom Zoom's prompt
    /// and ratio, Vary (Region)'s mask (as a PNG `data:` URL) and prompt.
    async fn modal_reply(&self, action: &MjAction) -> Result<Option<ModalReply>, UpstreamError> {
        Ok(match action {
            MjAction::Outpaint(o) if zoom_button(o.zoom_ratio, o.prompt.as_deref()).is_none() => {
                Some(ModalReply::Zoom {
                    ratio: o.zoom_ratio,
                    prompt: o.prompt.clone().filter(|p| !p.trim().is_empty()),
                })
            }
            // In Remix mode these buttons open a prompt modal (else they just run).
            MjAction::Variation(v) => Some(ModalReply::Remix {
                prompt: remix_prompt(v.prompt.as_deref(), v.aspect_ratio.as_deref()),
            }),
            MjAction::Reroll(r) => Some(ModalReply::Remix {
                prompt: remix_prompt(r.prompt.as_deref(), r.aspect_ratio.as_deref()),
            }),
            MjAction::Pan(p) => Some(ModalReply::Remix {
                prompt: remix_prompt(p.prompt.as_deref(), None),
            }),
            MjAction::Inpaint(a) => {
                let mask = if a.mask.starts_with("http://") || a.mask.starts_with("https://") {
                    let bytes = fetch_bytes(&self.http, &a.mask, "the mask", self.inputs).await?;
                    format!("data:image/png;base64,{}", B64.encode(bytes))
                } else if a.mask.starts_with("data:") {
                    a.mask.clone()
                } else {
                    format!("data:image/png;base64,{}", a.mask.trim())
                };
                Some(ModalReply::Region {
                    mask,
                    prompt: a.prompt.clone(),
                })
            }
            _ => None,
        })
    }

    /// Submit the modal a button opened: Custom Zoom's text modal as a MODAL_SUBMIT
    /// interaction (under our nonce), Vary (Region)'s editor at its `submit-job`.
    async fn submit_modal(
        &self,
        job: &Job,
        token: &str,
        reference: &MjReference,
        shown: &Value,
        reply: &ModalReply,
    ) -> Result<(), UpstreamError> {
        match reply {
            // A text modal (Custom Zoom, Remix): its one text input, filled in.
            ModalReply::Zoom { .. } | ModalReply::Remix { .. } => {
                let input = &shown["components"][0]["components"][0];
                let prefilled = input["value"].as_str().unwrap_or("");
                let value = match reply {
                    ModalReply::Zoom { ratio, prompt } => {
                        let text = prompt.as_deref().unwrap_or(prefilled);
                        format!("{} --zoom {ratio}", without_flag(text, "--zoom"))
                    }
                    ModalReply::Remix { prompt: Some(p) } => p.clone(),
                    _ => prefilled.to_string(),
                };
                let body = json!({"type": 5, "application_id": APPLICATION_ID,
                    "guild_id": job.credentials["guild_id"], "channel_id": reference.channel_id,
                    "session_id": self.gateway(&job.account_id, token).await?.session_id.clone(),
                    "nonce": reference.nonce,
                    "data": {"id": shown["id"], "custom_id": shown["custom_id"],
                             "components": [{"type": 1, "components": [{"type": 4,
                                 "custom_id": input["custom_id"], "value": value}]}]}});
                self.send_interaction(token, &body)
                    .await
                    .map_err(|f| f.error)
            }
            ModalReply::Region { mask, prompt } => {
                let body = json!({"customId": shown["custom_id"], "maskedImage": mask,
                                  "prompt": prompt, "full_prompt": null,
                                  "userId": "0", "username": "0"});
                let resp = self
                    .http
                    .post(format!("{}/inpaint/api/submit-job", self.inpaint))
                    .json(&body)
                    .send()
                    .await?;
                if resp.status().is_success() {
                    return Ok(());
                }
                Err(switchyard_worker::refusal(resp).await)
            }
        }
    }

    /// A seed: react ✉️ to the origin's result; the bot answers with a direct message
    /// naming the job and its seed. A reaction already there makes no new message, so a
    /// fresh run takes ours off first; a resumed run reads the direct messages first.
    async fn seed(
        &self,
        job: &Job,
        ctl: &dyn Control,
        token: &str,
        resumed: Option<MjReference>,
    ) -> Result<Value, UpstreamError> {
        let origin = job
            .origin
            .as_ref()
            .ok_or_else(|| UpstreamError::rejected("seed needs its origin task's result"))?;
        let (Some(message), Some(channel), Some(origin_job)) = (
            origin.output["message_id"].as_str(),
            origin.output["channel_id"].as_str(),
            origin.output["job_id"].as_str(),
        ) else {
            return Err(UpstreamError::rejected(
                "the origin task has no Midjourney message to ask its seed of",
            ));
        };
        let gw = self.gateway(&job.account_id, token).await?;
        let known = Known {
            seed_of: Some(origin_job.to_string()),
            ..Known::default()
        };
        let reference = match resumed {
            Some(r) => {
                gw.track(&r.nonce, &known);
                self.catch_up_dm(&gw, token, &r).await?;
                r
            }
            None => {
                let r = MjReference {
                    nonce: self.new_nonce(),
                    channel_id: channel.to_string(),
                    job_id: Some(origin_job.to_string()),
                    ..MjReference::default()
                };
                gw.track(&r.nonce, &known);
                ctl.reference(&r.to_json()).await?;
                let path = format!(
                    "/api/v9/channels/{channel}/messages/{message}/reactions/%E2%9C%89%EF%B8%8F/%40me"
                );
                let _ = self.request(reqwest::Method::DELETE, &path, token).await;
                self.request(reqwest::Method::PUT, &path, token).await?;
                r
            }
        };
        let started = Instant::now();
        let mut caught_up = false;
        let result = loop {
            let view = gw.view(&reference.nonce);
            if let Some(dm) = &view.done {
                let Some(seed) = gateway::seed_in(dm) else {
                    break Err(UpstreamError::Transient(
                        "Midjourney's message names no seed".into(),
                    ));
                };
                break Ok(json!({"task_progress": 100, "progress": 100, "seed": seed,
                                "job_id": origin_job, "message_id": message,
                                "channel_id": channel}));
            }
            if started.elapsed() > REPLY_WINDOW && !caught_up {
                self.catch_up_dm(&gw, token, &reference).await?;
                caught_up = true;
                continue;
            }
            if started.elapsed() > 2 * REPLY_WINDOW {
                break Err(UpstreamError::Transient(
                    "Midjourney sent no seed for the reaction".into(),
                ));
            }
            gw.changed(self.poll).await;
        };
        gw.forget(&reference.nonce);
        result
    }

    /// Read the direct messages with the bot since the reaction (a seed's answer).
    async fn catch_up_dm(
        &self,
        gw: &Gateway,
        token: &str,
        reference: &MjReference,
    ) -> Result<(), UpstreamError> {
        let channels = self
            .get_json("/api/v9/users/@me/channels", token)
            .await?
            .unwrap_or(Value::Null);
        let dm = channels.as_array().into_iter().flatten().find(|c| {
            c["recipients"]
                .as_array()
                .is_some_and(|r| r.iter().any(|u| u["id"] == APPLICATION_ID))
        });
        let Some(dm) = dm.and_then(|c| c["id"].as_str()) else {
            return Ok(());
        };
        let after = snowflake_at(reference.sent_at_ms().unwrap_or(0).saturating_sub(10_000));
        self.read_forward(gw, token, dm, after, &reference.nonce)
            .await
    }

    /// A request with no body; a 404 is no error (a reaction that was not there).
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> Result<(), UpstreamError> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("authorization", token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) || status == 404 {
            return Ok(());
        }
        Err(switchyard_worker::refusal(resp).await)
    }

    /// A slash command's id and version: from the cache, else from the channel's command
    /// index (Midjourney's entries).
    async fn command(
        &self,
        name: &str,
        channel: &str,
        token: &str,
    ) -> Result<(String, String), UpstreamError> {
        let cached = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let index = self
            .get_json(
                &format!("/api/v9/channels/{channel}/application-command-index"),
                token,
            )
            .await?
            .unwrap_or(Value::Null);
        let mut found = HashMap::new();
        for c in index["application_commands"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if c["application_id"] == APPLICATION_ID
                && let (Some(n), Some(id), Some(v)) =
                    (c["name"].as_str(), c["id"].as_str(), c["version"].as_str())
            {
                found.insert(n.to_string(), (id.to_string(), v.to_string()));
            }
        }
        let mine = found.get(name).cloned();
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(found);
        mine.ok_or_else(|| {
            UpstreamError::Transient(format!(
                "Midjourney's /{name} command is not in the channel's command index"
            ))
        })
    }

    /// Forget the cached commands (Discord called one outdated).
    fn forget_commands(&self) {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    async fn get_json(&self, path: &str, token: &str) -> Result<Option<Value>, UpstreamError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.api))
            .header("authorization", token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(switchyard_worker::refusal(resp).await);
        }
        resp.json()
            .await
            .map(Some)
            .map_err(|_| UpstreamError::Transient("discord sent unreadable JSON".into()))
    }

    /// Catch a job up from Discord (a resumed run, or a reconnected gateway): fetch the job
    /// message by id (gone means the job ended), then read the channel forward from the
    /// job message — or from the command's time — page by page, until the job's result or
    /// error is found or the channel's end is reached.
    async fn catch_up(
        &self,
        gw: &Gateway,
        token: &str,
        reference: &MjReference,
    ) -> Result<(), UpstreamError> {
        let channel = &reference.channel_id;
        let v = gw.view(&reference.nonce);
        let start = v.start_id.clone().or(reference.message_id.clone());
        if let Some(start) = &start {
            match self
                .get_json(
                    &format!("/api/v9/channels/{channel}/messages/{start}"),
                    token,
                )
                .await?
            {
                Some(m) => gw.observe("MESSAGE_UPDATE", &m),
                None => gw.observe("MESSAGE_DELETE", &json!({"id": start})),
            }
        }
        let after = match (&start, reference.sent_at_ms()) {
            (Some(s), _) => s.parse().unwrap_or(0),
            // A little before the nonce's time: clocks differ between hosts.
            (None, Some(ms)) => snowflake_at(ms.saturating_sub(10_000)),
            (None, None) => snowflake_at(now_ms().saturating_sub(15 * 60_000)),
        };
        self.read_forward(gw, token, channel, after, &reference.nonce)
            .await
    }

    /// Read a channel's messages after the snowflake `after`, page by page, into the
    /// gateway's matcher, until the job of `nonce` is done or failed or the channel's end
    /// is reached (at most `HISTORY_PAGES` pages).
    async fn read_forward(
        &self,
        gw: &Gateway,
        token: &str,
        channel: &str,
        mut after: u64,
        nonce: &str,
    ) -> Result<(), UpstreamError> {
        for _ in 0..HISTORY_PAGES {
            let v = gw.view(nonce);
            if v.done.is_some() || v.error.is_some() {
                return Ok(());
            }
            let page: Vec<Value> = self
                .get_json(
                    &format!("/api/v9/channels/{channel}/messages?after={after}&limit=100"),
                    token,
                )
                .await?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            // Newest first: apply oldest first, as they happened.
            for m in page.iter().rev() {
                gw.observe("MESSAGE_CREATE", m);
            }
            let newest = page
                .iter()
                .filter_map(|m| m["id"].as_str()?.parse::<u64>().ok())
                .max();
            match newest {
                Some(n) if page.len() == 100 => after = n,
                _ => return Ok(()),
            }
        }
        warn!(channel = %channel, "the channel's history is longer than a catch-up reads; following live");
        Ok(())
    }

    /// Follow a job to its end: live gateway events, catch-ups when in doubt, the
    /// reference stored again as each key appears.
    async fn follow(
        &self,
        job: &Job,
        ctl: &dyn Control,
        token: &str,
        mut reference: MjReference,
        resumed: bool,
        modal: Option<&ModalReply>,
    ) -> Result<Value, Followed> {
        let mut gw = self.gateway(&job.account_id, token).await?;
        let known = |r: &MjReference| Known {
            echo: job_echo(job),
            interaction_id: r.interaction_id.clone(),
            start_id: r.message_id.clone(),
            job_id: r.job_id.clone(),
            seed_of: None,
        };
        gw.track(&reference.nonce, &known(&reference));
        let nonce = reference.nonce.clone();
        let images = match &job.spec {
            TaskSpec::Midjourney(t) => images_of(&t.action),
            _ => 4,
        };
        let result = async {
            if resumed {
                self.catch_up(&gw, token, &reference).await?;
            }
            let mut last_progress = 0u8;
            let mut last_catch_up = Instant::now();
            loop {
                let view = gw.view(&nonce);
                if reference.learn(&view) {
                    ctl.reference(&reference.to_json()).await?;
                }
                if let Some((title, description)) = &view.error {
                    return Err(classify_embed(title, description).into());
                }
                // The button opened its modal: submit it, once. Stored as submitted first:
                // a run resumed after a lost answer must not submit (and so generate) twice.
                if let Some(shown) = &view.modal
                    && !reference.modal_sent
                {
                    let Some(reply) = modal else {
                        return Err(UpstreamError::rejected(
                            "Midjourney opened a modal this action has nothing to submit to",
                        )
                        .into());
                    };
                    reference.modal_sent = true;
                    ctl.reference(&reference.to_json()).await?;
                    self.submit_modal(job, token, &reference, shown, reply)
                        .await?;
                }
                if view.done.is_some() {
                    return Ok(output(&view, &reference, images, &self.cdn));
                }
                if view.progress > last_progress {
                    last_progress = view.progress;
                    let partial = json!({"task_progress": view.progress, "progress": view.progress,
                                         "intermediate_image_urls": view.previews});
                    ctl.progress(view.progress, Some(&partial)).await?;
                }
                if !gw.alive() {
                    // Reconnect and catch up from the channel.
                    gw = self.gateway(&job.account_id, token).await?;
                    gw.track(&nonce, &known(&reference));
                    self.catch_up(&gw, token, &reference).await?;
                    last_catch_up = Instant::now();
                    continue;
                }
                let unanswered = view.start_id.is_none() && view.interaction_id.is_none();
                if unanswered
                    && reference.sent_at_ms().is_none_or(|t| {
                        now_ms().saturating_sub(t) > REPLY_WINDOW.as_millis() as u64
                    })
                {
                    return Err(Followed::NeverAnswered);
                }
                // In doubt (nothing seen yet, or the job message is gone with no result
                // seen): look at the channel again now and then.
                if (unanswered || view.start_gone) && last_catch_up.elapsed() > CATCH_UP_EVERY {
                    self.catch_up(&gw, token, &reference).await?;
                    last_catch_up = Instant::now();
                    continue;
                }
                gw.changed(self.poll).await;
            }
        }
        .await;
        gw.forget(&nonce);
        result
    }
}

/// What a follow-up's modal is submitted with.
#[derive(Debug, Clone)]
enum ModalReply {
    /// Custom Zoom: the ratio, and a new prompt (else the modal's own).
    Zoom { ratio: f64, prompt: Option<String> },
    /// Vary (Region): the mask as a PNG `data:` URL, and the prompt for the region.
    Region { mask: String, prompt: String },
    /// Remix mode's prompt modal (variation, reroll, pan): the new prompt (else the
    /// modal's own).
    Remix { prompt: Option<String> },
}

/// Whether a resumed run presses its button afresh: the button always opens a modal
/// (Custom Zoom, Vary (Region)) and the modal was never submitted, so no job exists. (A
/// Remix-capable button may have started its job at once: it is never pressed again.)
fn press_again(modal: Option<&ModalReply>, r: &MjReference) -> bool {
    matches!(
        modal,
        Some(ModalReply::Zoom { .. } | ModalReply::Region { .. })
    ) && !r.modal_sent
}

/// A remix prompt with its aspect ratio (`--ar`, unless the prompt has one).
fn remix_prompt(prompt: Option<&str>, aspect_ratio: Option<&str>) -> Option<String> {
    let prompt = prompt.map(str::trim).filter(|p| !p.is_empty())?;
    Some(
        match aspect_ratio.map(str::trim).filter(|a| !a.is_empty()) {
            Some(ar) if !prompt.contains("--ar ") && !prompt.contains("--aspect ") => {
                format!("{prompt} --ar {ar}")
            }
            _ => prompt.to_string(),
        },
    )
}

/// Discord refused a command as outdated (its version changed).
fn outdated_command(e: &UpstreamError) -> bool {
    matches!(e, UpstreamError::BadRequest { raw, .. }
        if raw.contains("APPLICATION_COMMAND_INVALID_VERSION") || raw.contains("\"code\": 10063") || raw.contains("\"code\":10063"))
}

/// `text` without a `--flag value` pair.
fn without_flag(text: &str, flag: &str) -> String {
    let mut out = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == flag {
            words.next();
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// A slash command's interaction: `at` is (guild, channel, session id, nonce), `ids` the
/// command's id and version from the command index.
fn slash_command(
    (guild, channel, session_id, nonce): (&Value, &str, &str, &str),
    (id, version): &(String, String),
    name: &str,
    options: Value,
    attachments: Value,
) -> Value {
    json!({"type": 2, "application_id": APPLICATION_ID, "guild_id": guild, "channel_id": channel,
           "session_id": session_id, "nonce": nonce,
           "data": {"version": version, "id": id, "name": name, "type": 1,
                    "options": options, "attachments": attachments}})
}

/// How long `/info` may take to answer.
const INFO_WAIT: Duration = Duration::from_secs(15);

/// The fast hours an `/info` answer shows (`**Fast Time Remaining**: 12.50/15.0 hours`).
fn fast_time_in(m: &Value) -> Option<f64> {
    let text = m["embeds"][0]["description"].as_str()?;
    let (_, after) = text.split_once("Fast Time Remaining")?;
    after
        .trim_start_matches(['*', ':', ' '])
        .split('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// An interaction named a session Discord no longer knows (it ended).
fn session_gone() -> UpstreamError {
    UpstreamError::Transient("discord: the gateway session ended".into())
}

/// How often a job in doubt is caught up from the channel.
const CATCH_UP_EVERY: Duration = Duration::from_secs(5);

/// The prompt a command's first reply echoes (`**<prompt>** - …`): the imagine prompt as
/// sent, with its speed flag and aspect ratio.
fn echo(action: &MjAction, mode: ProcessMode) -> String {
    let MjAction::Imagine(a) = action else {
        return String::new();
    };
    let flag = match mode {
        ProcessMode::Relax => "--relax",
        ProcessMode::Fast => "--fast",
        ProcessMode::Turbo => "--turbo",
    };
    // The speed flag is the mode it runs in (a fast task may run in relax): another one
    // the prompt carries goes.
    let kept: Vec<&str> = a
        .prompt
        .split(' ')
        .filter(|w| !matches!(*w, "--relax" | "--fast" | "--turbo") || *w == flag)
        .collect();
    let kept = kept.join(" ");
    let mut prompt = if kept.split(' ').any(|w| w == flag) {
        kept
    } else {
        format!("{kept} {flag}")
    };
    if let Some(ar) = &a.aspect_ratio
        && !prompt.contains("--ar")
    {
        prompt = format!("{prompt} --ar {ar}");
    }
    prompt
}

fn job_echo(job: &Job) -> Option<String> {
    match &job.spec {
        TaskSpec::Midjourney(t) if matches!(t.action, MjAction::Imagine(_)) => {
            Some(echo(&t.action, t.process_mode))
        }
        _ => None,
    }
}

/// The button a follow-up presses on its origin's result, read from the buttons the
/// result has (Midjourney names them per model version); an action whose button the
/// result lacks is refused, naming what it has.
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
    let starting = |prefix: &str| ids.iter().find(|id| id.starts_with(prefix)).cloned();
    // An upscaler: `MJ::JOB::upsample_<version>_<kind>::…`, `<version>` being v5, v6, v6r1,
    // v7… — the kind decides, whichever version the result is — or V4's
    // `MJ::JOB::upsample_<kind>::…` (light, beta).
    let upscaler = |kind: &str| {
        ids.iter()
            .find(|id| {
                id.strip_prefix("MJ::JOB::upsample_")
                    .and_then(|rest| rest.split("::").next())
                    .is_some_and(|name| {
                        name == kind || name.split_once('_').is_some_and(|(_, k)| k == kind)
                    })
            })
            .cloned()
    };
    let (found, what) = match action {
        MjAction::Upscale(u) => match (u.index, u.upscaler) {
            (Some(i), _) => (
                starting(&format!("MJ::JOB::upsample::{i}::")),
                format!("U{i}"),
            ),
            (None, Some(up)) => {
                let (kind, label) = match up {
                    Upscaler::X2 => ("2x", "Upscale (2x)"),
                    Upscaler::X4 => ("4x", "Upscale (4x)"),
                    Upscaler::Subtle => ("2x_subtle", "Upscale (Subtle)"),
                    Upscaler::Creative => ("2x_creative", "Upscale (Creative)"),
                    Upscaler::Light => ("light", "Upscale (Light)"),
                    Upscaler::Beta => ("beta", "Upscale (Beta)"),
                };
                (upscaler(kind), label.to_string())
            }
            (None, None) => return Err(UpstreamError::rejected("upscale needs index or upscaler")),
        },
        MjAction::Variation(v) => match v.index {
            VariationOf::Image(i) => (
                starting(&format!("MJ::JOB::variation::{i}::")),
                format!("V{i}"),
            ),
            // Vary (Strong) / (Subtle) are buttons of an upscaled image.
            VariationOf::Strong => (
                starting("MJ::JOB::high_variation::"),
                "Vary (Strong)".into(),
            ),
            VariationOf::Subtle => (starting("MJ::JOB::low_variation::"), "Vary (Subtle)".into()),
        },
        MjAction::Reroll(_) => (starting("MJ::JOB::reroll::"), "🔄".into()),
        MjAction::Pan(p) => {
            let d = match p.direction {
                PanDirection::Left => "left",
                PanDirection::Right => "right",
                PanDirection::Up => "up",
                PanDirection::Down => "down",
            };
            (starting(&format!("MJ::JOB::pan_{d}::")), format!("pan {d}"))
        }
        // Zoom Out 2x and 1.5x are buttons; any other ratio (or a new prompt) is Custom
        // Zoom's modal.
        MjAction::Outpaint(o) => match zoom_button(o.zoom_ratio, o.prompt.as_deref()) {
            Some(scale) => (
                starting(&format!("MJ::Outpaint::{scale}::")),
                format!("Zoom Out {}x", o.zoom_ratio),
            ),
            None => (starting("MJ::CustomZoom::"), "Custom Zoom".into()),
        },
        MjAction::Inpaint(_) => (starting("MJ::Inpaint::"), "Vary (Region)".into()),
        _ => return Err(UpstreamError::rejected("not a button action")),
    };
    found.ok_or_else(|| {
        UpstreamError::rejected(&format!(
            "the origin result has no {what} button (its buttons: {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.iter()
                    .map(|i| i.split("::").take(3).collect::<Vec<_>>().join("::"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))
    })
}

/// The Zoom Out button a ratio presses (`50` for 2x, `75` for 1.5x: the image's share of
/// the new frame), or `None` for Custom Zoom (another ratio, or a new prompt).
fn zoom_button(ratio: f64, prompt: Option<&str>) -> Option<u8> {
    if prompt.is_some_and(|p| !p.trim().is_empty()) {
        return None;
    }
    if (ratio - 2.0).abs() < 1e-9 {
        Some(50)
    } else if (ratio - 1.5).abs() < 1e-9 {
        Some(75)
    } else {
        None
    }
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
fn output(view: &JobView, reference: &MjReference, images: usize, cdn: &str) -> Value {
    let channel = reference.channel_id.as_str();
    let m = view.done.clone().unwrap_or(Value::Null);
    let url = m["attachments"][0]["url"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let content = m["content"].as_str().unwrap_or("");
    let seed = content
        .split("seed ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok());
    let description = m["embeds"][0]["description"].as_str().map(str::to_string);
    let mut out = json!({"task_progress": 100, "progress": 100,
           "intermediate_image_urls": view.previews, "actions": action_names(&m["components"]),
           "message_id": m["id"], "channel_id": m["channel_id"].as_str().unwrap_or(channel),
           "job_id": view.job_id.clone().or(reference.job_id.clone()),
           "components": m["components"]});
    if let Some(seed) = seed {
        out["seed"] = json!(seed);
    }
    if let Some(d) = description {
        out["description"] = json!(d);
    }
    // A grid shows four images — Midjourney's CDN holds each under the job id —, an
    // upscale one; describe and seed none.
    if images > 0 && !url.is_empty() {
        let job = view.job_id.as_ref().or(reference.job_id.as_ref());
        let split: Option<Vec<String>> = match (images, job) {
            (1, _) => Some(vec![url.clone()]),
            (_, Some(job)) => Some(
                (0..images)
                    .map(|i| format!("{cdn}/{job}/0_{i}.png"))
                    .collect(),
            ),
            (_, None) => None,
        };
        out["image_url"] = json!(url);
        out["discord_image_url"] = json!(url);
        if let Some(split) = split {
            out["image_urls"] = json!(split);
            out["temporary_image_urls"] = json!(split);
        }
    }
    out
}

/// How many images an action's result shows: one for an upscale, none for describe and
/// seed, the four of a grid otherwise.
fn images_of(action: &MjAction) -> usize {
    match action {
        MjAction::Upscale(_) => 1,
        MjAction::Describe(_) | MjAction::Seed(_) => 0,
        _ => 4,
    }
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
        let mut resumed = match &job.upstream_ref {
            Some(r) => Some(
                serde_json::from_str::<MjReference>(r)
                    .map_err(|_| UpstreamError::rejected("unreadable upstream reference"))?,
            ),
            None => None,
        };
        if let MjAction::Seed(_) = &task.action {
            return self.seed(job, ctl, &token, resumed).await;
        }
        let modal = self.modal_reply(&task.action).await?;
        if resumed
            .as_ref()
            .is_some_and(|r| press_again(modal.as_ref(), r))
        {
            resumed = None;
        }
        loop {
            let (reference, resuming) = match resumed.take() {
                Some(r) => (r, true),
                None => {
                    let nonce = self.new_nonce();
                    let body = self
                        .interaction(job, &task.action, task.process_mode, &nonce, &channel)
                        .await?;
                    // Track before sending, so the first reply is not missed.
                    let gw = self.gateway(&job.account_id, &token).await?;
                    gw.track(&nonce, &Known::default());
                    // Paced before anything is stored: a run that dies while it waits
                    // leaves no nonce to look for, and its retry sends afresh.
                    ctl.pace().await?;
                    // The nonce is ours: store it before sending, so that no crash after
                    // Discord took the command can lead to sending it twice.
                    let reference = MjReference {
                        nonce,
                        channel_id: channel.clone(),
                        ..MjReference::default()
                    };
                    ctl.reference(&reference.to_json()).await?;
                    let mut sent = self.send_interaction(&token, &body).await;
                    // Sent again, with a body made afresh (Discord took nothing): once when
                    // Midjourney published new command versions (read first), up to twice
                    // when the session the command named ended (its holder died: the
                    // account's next session is waited for).
                    let (mut reread, mut resessioned) = (false, 0);
                    while let Err(f) = &sent {
                        if outdated_command(&f.error) && !reread {
                            reread = true;
                            self.forget_commands();
                        } else if f.error == session_gone() && resessioned < 2 {
                            resessioned += 1;
                        } else {
                            break;
                        }
                        let body = self
                            .interaction(
                                job,
                                &task.action,
                                task.process_mode,
                                &reference.nonce,
                                &channel,
                            )
                            .await?;
                        self.gateway(&job.account_id, &token)
                            .await?
                            .track(&reference.nonce, &Known::default());
                        sent = self.send_interaction(&token, &body).await;
                    }
                    if let Err(sent) = sent {
                        if !sent.maybe_taken {
                            // Discord did not take it: the retry sends afresh, anywhere.
                            ctl.reference("").await?;
                        }
                        return Err(sent.error);
                    }
                    (reference, false)
                }
            };
            match self
                .follow(job, ctl, &token, reference, resuming, modal.as_ref())
                .await
            {
                Ok(out) => return Ok(out),
                Err(Followed::Failed(e)) => return Err(e),
                Err(Followed::NeverAnswered) if resuming => {
                    warn!("the bot never answered the interaction; sending the command again");
                }
                Err(Followed::NeverAnswered) => {
                    return Err(UpstreamError::Transient(
                        "Midjourney never answered the command".into(),
                    ));
                }
            }
        }
    }

    /// The image: a grid is also cut into its four images (`image_urls`); an upscale's
    /// one image is `image_urls`' only entry too.
    fn files(&self, output: &Value) -> Vec<OutputFile> {
        let Some(mut f) = OutputFile::at(output, "/image_url", "image", "png") else {
            return Vec::new();
        };
        match output["image_urls"].as_array().map(Vec::len) {
            Some(4) => f.split_into = Some("/image_urls".into()),
            Some(1) => f.also_at.push("/image_urls/0".into()),
            _ => {}
        }
        vec![f]
    }

    /// The job's message (its buttons are pressed on it).
    fn objects(&self, output: &Value) -> Vec<String> {
        switchyard_worker::ids_at(output, &["/message_id"])
    }

    /// The token signs in (`GET /users/@me`): no gateway session is opened for it (an
    /// account has one, shared by every process).
    /// With the account's shared session (a worker), also Midjourney's `/info`: no fast
    /// time left is `NoFastHours`.
    async fn probe(&self, account: &str, credentials: &Value) -> Result<(), UpstreamError> {
        let token = credentials["token"].as_str().unwrap_or("");
        if self.get_json("/api/v9/users/@me", token).await?.is_none() {
            return Err(UpstreamError::Transient(
                "discord: /users/@me not found".into(),
            ));
        }
        if self.sessions.get().is_none() {
            return Ok(());
        }
        match self.fast_time_left(account, credentials).await? {
            hours if hours > 0.0 => Ok(()),
            _ => Err(UpstreamError::NoFastHours {
                retry_after_ms: 0,
                message: "Midjourney's /info shows no fast time left".into(),
            }),
        }
    }

    fn attach(&self, sched: &switchyard_scheduler::Scheduler) {
        let _ = self.sessions.set(session::Sessions::new(
            sched.clone(),
            self.gateway_url.clone(),
        ));
    }

    /// The gateway sessions this process holds pass to the others at once.
    async fn stopped(&self) {
        if let Some(sessions) = self.sessions.get() {
            sessions.release_all().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unsubmitted_modal_of_a_modal_button_is_pressed_again() {
        let zoom = ModalReply::Zoom {
            ratio: 1.7,
            prompt: None,
        };
        let remix = ModalReply::Remix { prompt: None };
        let fresh = MjReference::default();
        let sent = MjReference {
            modal_sent: true,
            ..MjReference::default()
        };
        assert!(press_again(Some(&zoom), &fresh));
        assert!(!press_again(Some(&zoom), &sent));
        assert!(
            !press_again(Some(&remix), &fresh),
            "a remix button may have run at once"
        );
        assert!(!press_again(None, &fresh));
    }

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
        // A temporary block says when it ends: the probe comes then.
        match classify_embed("Blocked", "Your access is blocked until <t:1780000000:f>.") {
            UpstreamError::AccountDead { reason } => {
                assert!(reason.ends_with("until 1780000000000"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
