//! The Suno adapter: Clerk session → JWT (cached per account), the captcha check,
//! `generate/v2` (two clips per generation, custom mode and continue), feed polling,
//! lyrics, audio upload. The upstream reference is the clip ids (`{"clips": [..]}`), or
//! the lyrics or upload id (`{"lyrics": id}`, `{"upload": id}`), stored as soon as Suno
//! answers the submission. A resumed run polls the feed (or the lyrics / upload) by those
//! ids — whether the clips are still submitted, queued or streaming, or already complete —
//! and never submits again. What remains: a crash between Suno's answer and the store (one
//! HTTP reply and one Redis call) submits again; Suno has no lookup of a generation by
//! anything we chose before sending it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use switchyard_core::task::SunoTask;
use switchyard_core::{Config, Provider, TaskSpec};
use switchyard_worker::{Control, Job, Upstream, UpstreamError, http_client, json_or_error};

/// How long a Clerk JWT is reused (they live about an hour; refresh well before).
const JWT_REUSE: Duration = Duration::from_secs(25 * 60);

/// The Suno adapter.
pub struct Suno {
    http: reqwest::Client,
    api: String,
    clerk: String,
    poll: Duration,
    jwts: Mutex<HashMap<String, (String, Instant)>>,
}

impl Suno {
    /// From the upstream config.
    pub fn new(c: &Config) -> Suno {
        Suno {
            http: http_client(c.upstreams.request_timeout_s),
            api: c.upstreams.suno_api.trim_end_matches('/').to_string(),
            clerk: c.upstreams.suno_clerk.trim_end_matches('/').to_string(),
            poll: Duration::from_millis(c.worker.poll_interval_ms),
            jwts: Mutex::new(HashMap::new()),
        }
    }

    fn cookie_header(cookie: &str) -> String {
        if cookie.contains('=') {
            cookie.to_string()
        } else {
            format!("__client={cookie}")
        }
    }

    async fn jwt(&self, account: &str, cookie: &str) -> Result<String, UpstreamError> {
        if let Some((jwt, at)) = self
            .jwts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            && at.elapsed() < JWT_REUSE
        {
            return Ok(jwt.clone());
        }
        let client = json_or_error(
            self.http
                .get(format!(
                    "{}/v1/client?_is_native=true&_clerk_js_version=5",
                    self.clerk
                ))
                .header("cookie", Self::cookie_header(cookie)),
        )
        .await?;
        let sid = client["response"]["last_active_session_id"]
            .as_str()
            .ok_or_else(|| UpstreamError::AccountDead {
                reason: "the Suno cookie has no active session (logged out?)".into(),
            })?;
        let token = json_or_error(
            self.http
                .post(format!("{}/v1/client/sessions/{sid}/tokens", self.clerk))
                .header("cookie", Self::cookie_header(cookie)),
        )
        .await?;
        let jwt = token["jwt"]
            .as_str()
            .ok_or_else(|| UpstreamError::Transient("Clerk gave no token".into()))?
            .to_string();
        self.jwts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_string(), (jwt.clone(), Instant::now()));
        Ok(jwt)
    }

    async fn submit(&self, task: &SunoTask, jwt: &str) -> Result<Value, UpstreamError> {
        let auth = format!("Bearer {jwt}");
        let check = json_or_error(
            self.http
                .post(format!("{}/api/c/check", self.api))
                .header("authorization", &auth)
                .json(&json!({"ctype": "generation"})),
        )
        .await?;
        if check["required"] == json!(true) {
            return Err(UpstreamError::AccountDead {
                reason: "captcha required".into(),
            });
        }
        match task {
            SunoTask::GenerateMusic(g) => {
                let body = json!({"prompt": "", "gpt_description_prompt": g.gpt_description_prompt,
                    "make_instrumental": g.make_instrumental.unwrap_or(false),
                    "mv": g.model_version.as_deref().unwrap_or("chirp-v3-5"),
                    "generation_type": "TEXT", "token": null});
                self.generate(&auth, body).await
            }
            SunoTask::GenerateMusicCustom(g) => {
                let mut body = json!({"prompt": g.prompt, "title": g.title, "tags": g.tags,
                    "negative_tags": g.negative_tags, "make_instrumental": g.make_instrumental.unwrap_or(false),
                    "mv": g.model_version.as_deref().unwrap_or("chirp-v3-5"),
                    "generation_type": "TEXT", "token": null});
                if let Some(clip) = &g.continue_clip_id {
                    body["continue_clip_id"] = json!(clip);
                    body["continue_at"] = json!(g.continue_at);
                    body["task"] = json!("extend");
                }
                self.generate(&auth, body).await
            }
            SunoTask::Lyrics(l) => {
                let r = json_or_error(
                    self.http
                        .post(format!("{}/api/generate/lyrics/", self.api))
                        .header("authorization", &auth)
                        .json(&json!({"prompt": l.prompt})),
                )
                .await?;
                Ok(json!({"lyrics": r["id"]}))
            }
            SunoTask::Upload(u) => {
                let r = json_or_error(
                    self.http
                        .post(format!("{}/api/uploads/audio/", self.api))
                        .header("authorization", &auth)
                        .json(&json!({"url": u.audio_url, "extension": "mp3"})),
                )
                .await?;
                Ok(json!({"upload": r["id"]}))
            }
        }
    }

    async fn generate(&self, auth: &str, body: Value) -> Result<Value, UpstreamError> {
        let r = json_or_error(
            self.http
                .post(format!("{}/api/generate/v2/", self.api))
                .header("authorization", auth)
                .json(&body),
        )
        .await?;
        let ids: Vec<Value> = r["clips"]
            .as_array()
            .map(|c| c.iter().map(|c| c["id"].clone()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(UpstreamError::Transient("Suno accepted no clips".into()));
        }
        Ok(json!({"clips": ids}))
    }

    /// One look at the task upstream: `Some(output)` when done.
    async fn poll_once(
        &self,
        reference: &Value,
        jwt: &str,
        ctl: &dyn Control,
    ) -> Result<Option<Value>, UpstreamError> {
        let auth = format!("Bearer {jwt}");
        if let Some(ids) = reference["clips"].as_array() {
            let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
            let r = json_or_error(
                self.http
                    .get(format!("{}/api/feed/v2?ids={}", self.api, ids.join(",")))
                    .header("authorization", &auth),
            )
            .await?;
            let clips = r["clips"].as_array().cloned().unwrap_or_default();
            if let Some(bad) = clips.iter().find(|c| c["status"] == "error") {
                let raw = bad["metadata"]["error_message"]
                    .as_str()
                    .unwrap_or("error")
                    .to_string();
                return Err(UpstreamError::BadRequest {
                    message: format!("Suno could not generate this song: {raw}"),
                    raw,
                });
            }
            let rank = |s: &Value| match s.as_str() {
                Some("complete") => 100,
                Some("streaming") => 80,
                Some("queued") => 30,
                _ => 10,
            };
            let least = clips.iter().map(|c| rank(&c["status"])).min().unwrap_or(10);
            // Done only when every clip we hold is in the answer and complete.
            let all = ids
                .iter()
                .all(|id| clips.iter().any(|c| c["id"].as_str() == Some(id)));
            if least == 100 && all && !clips.is_empty() {
                let clips: Vec<Value> = clips
                    .iter()
                    .map(|c| json!({"id": c["id"], "audio_url": c["audio_url"], "video_url": c["video_url"],
                        "image_url": c["image_url"], "title": c["title"], "metadata": c["metadata"]}))
                    .collect();
                return Ok(Some(json!({"clips": clips})));
            }
            ctl.progress(least as u8, None).await?;
            return Ok(None);
        }
        if let Some(id) = reference["lyrics"].as_str() {
            let r = json_or_error(
                self.http
                    .get(format!("{}/api/generate/lyrics/{id}", self.api))
                    .header("authorization", &auth),
            )
            .await?;
            return match r["status"].as_str() {
                Some("complete") => Ok(Some(json!({"text": r["text"], "title": r["title"]}))),
                Some("error") => Err(UpstreamError::BadRequest {
                    message: "Suno could not write these lyrics".into(),
                    raw: r["error_message"].as_str().unwrap_or("").to_string(),
                }),
                _ => Ok(None),
            };
        }
        if let Some(id) = reference["upload"].as_str() {
            let r = json_or_error(
                self.http
                    .get(format!("{}/api/uploads/audio/{id}", self.api))
                    .header("authorization", &auth),
            )
            .await?;
            return match r["status"].as_str() {
                Some("complete") => Ok(Some(
                    json!({"clip_id": r["clip_id"], "title": r["title"], "audio_url": r["audio_url"]}),
                )),
                Some("error") => Err(UpstreamError::BadRequest {
                    message: "Suno could not process this audio".into(),
                    raw: String::new(),
                }),
                _ => Ok(None),
            };
        }
        Err(UpstreamError::BadRequest {
            message: "unreadable upstream reference".into(),
            raw: reference.to_string(),
        })
    }
}

#[async_trait]
impl Upstream for Suno {
    fn provider(&self) -> Provider {
        Provider::Suno
    }

    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        let TaskSpec::Suno(task) = &job.spec else {
            return Err(UpstreamError::BadRequest {
                message: "not a Suno task".into(),
                raw: String::new(),
            });
        };
        let jwt = self.jwt(&job.account_id, job.credential("cookie")).await?;
        let reference = match &job.upstream_ref {
            Some(r) => serde_json::from_str(r).unwrap_or(Value::Null),
            None => {
                let r = self.submit(task, &jwt).await?;
                ctl.reference(&r.to_string()).await?;
                r
            }
        };
        loop {
            if let Some(out) = self.poll_once(&reference, &jwt, ctl).await? {
                return Ok(out);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn probe(&self, credentials: &Value) -> Result<(), UpstreamError> {
        let cookie = credentials["cookie"].as_str().unwrap_or("");
        self.jwt("probe", cookie).await.map(|_| ())
    }
}
