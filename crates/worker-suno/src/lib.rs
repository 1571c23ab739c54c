//! The Suno adapter: Clerk session → JWT (cached per account), the captcha check,
//! `generate/v2` (two clips per generation, custom mode and continue), feed polling,
//! lyrics, audio upload. The upstream reference is the clip ids (`{"clips": [..]}`), or
//! the lyrics or upload id (`{"lyrics": id}`, `{"upload": id}`), stored as soon as Suno
//! answers the submission. A resumed run polls the feed (or the lyrics / upload) by those
//! ids — whether the clips are still submitted, queued or streaming, or already complete —
//! and never submits again.
//!
//! A generation is preceded by an intent: just before `generate/v2` the reference becomes
//! `{"submitting": {"at": <Unix ms, this host>, "mv": .., and what the feed will show of
//! it}}` — `gpt_description_prompt` in description mode; `prompt` (the lyrics), `tags` and
//! `title` in custom mode. A run resumed with only the intent (the last one died between
//! sending and storing the clip ids) reads the account's feed, newest first
//! (`GET /api/feed/v2?page=N`), back to the clips created before the intent's time less
//! [`CLOCK_SKEW_MS`], and adopts the oldest generation there whose shown input equals ours
//! exactly (its clips: those sharing its `created_at`, ordered by `batch_index`); it stores
//! their ids and follows them. Only when there is none (Suno never took the request) does it
//! generate, with a fresh intent. A submission refused outright (4xx, 429) drops the
//! intent (`Control::reference("")`), so the retry submits afresh on any account; one that
//! failed with a 5xx or a lost answer, which may come after Suno made the clips, looks in
//! the feed at once and adopts what it finds, else drops the intent.
//!
//! What remains: two tasks with identical input on the same account within the skew
//! window, one of which died in that window, may adopt the same generation (the feed shows
//! nothing of ours that tells them apart); a generation Suno made but does not yet list in
//! the feed when the resumed run looks is made again. Lyrics and uploads take no intent:
//! Suno lists neither (lyrics are a free, unlisted text generation; an upload shows in the
//! feed only once processed, as a clip that names no URL of ours), so a crash between
//! Suno's answer and the store submits them again — they cost no generation credits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};
use switchyard_core::task::SunoTask;
use switchyard_core::{Config, Provider, TaskSpec};
use switchyard_worker::{
    Control, Job, OutputFile, Upstream, UpstreamError, http_client, json_or_error, parse_iso_ms,
};

/// How long a Clerk JWT is reused (they live about an hour; refresh well before).
const JWT_REUSE: Duration = Duration::from_secs(25 * 60);

/// How far before an intent's time (this host's clock) a generation may be dated by
/// Suno's clock and still be taken for the one the intent sent.
pub const CLOCK_SKEW_MS: u64 = 5_000;

/// The feed pages read back at most when looking for an intent's generation (20 clips
/// each): an intent is seconds old when it is looked for.
const MAX_FEED_PAGES: usize = 50;

/// Unix time in ms on this host.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Text fields compare equal when both are absent or empty, or both the same text.
fn same_text(shown: &Value, ours: &Value) -> bool {
    shown.as_str().unwrap_or("") == ours.as_str().unwrap_or("")
}

/// Whether a feed clip shows exactly the input an intent (`{"at", "mv", …}`) sent.
pub fn clip_shows_intent(clip: &Value, intent: &Value) -> bool {
    let meta = &clip["metadata"];
    let model = clip["model_name"].is_null() || same_text(&clip["model_name"], &intent["mv"]);
    let input = if intent["gpt_description_prompt"].is_string() {
        same_text(
            &meta["gpt_description_prompt"],
            &intent["gpt_description_prompt"],
        )
    } else {
        meta["gpt_description_prompt"]
            .as_str()
            .unwrap_or("")
            .is_empty()
            && same_text(&meta["prompt"], &intent["prompt"])
            && same_text(&meta["tags"], &intent["tags"])
            && same_text(&clip["title"], &intent["title"])
    };
    model && input
}

/// Suno's output as GoAPI shows it: a map from clip id to the clip
/// (`{id, audio_url, video_url, image_url, image_large_url, title, duration, metadata}`).
fn clip_map(clips: &[Value]) -> Value {
    let mut map = serde_json::Map::new();
    for c in clips {
        let Some(id) = c["id"].as_str() else { continue };
        map.insert(
            id.to_string(),
            json!({"id": id, "audio_url": c["audio_url"], "video_url": c["video_url"],
                   "image_url": c["image_url"], "image_large_url": c["image_large_url"],
                   "title": c["title"], "duration": c["metadata"]["duration"],
                   "metadata": c["metadata"]}),
        );
    }
    Value::Object(map)
}

/// A JSON pointer's escaping of one key (RFC 6901).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Lyrics as GoAPI shows them: `{text, title, lyrics_pairs: [{title, text}]}`.
fn lyrics_output(r: &Value) -> Value {
    let (text, title) = (&r["text"], &r["title"]);
    json!({"text": text, "title": title, "lyrics_pairs": [{"title": title, "text": text}]})
}

/// The adopted reference (`{"clips": [..]}`) from the clips of a feed that show an
/// intent's input and were created at or after `since` (Unix ms): the oldest such
/// generation's clips, by `batch_index`. `None` when there are none.
pub fn adopt_from_feed(clips: &[Value], intent: &Value, since: u64) -> Option<Value> {
    let mut found: Vec<(u64, u64, &str)> = clips
        .iter()
        .filter_map(|c| {
            let at = parse_iso_ms(c["created_at"].as_str()?)?;
            (at >= since && clip_shows_intent(c, intent)).then_some((
                at,
                c["batch_index"].as_u64().unwrap_or(0),
                c["id"].as_str()?,
            ))
        })
        .collect();
    let oldest = found.iter().map(|f| f.0).min()?;
    found.retain(|f| f.0 == oldest);
    found.sort_unstable();
    found.dedup();
    Some(json!({"clips": found.iter().map(|f| f.2).collect::<Vec<_>>()}))
}

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
        let jwt = self.fresh_jwt(cookie).await?;
        self.jwts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_string(), (jwt.clone(), Instant::now()));
        Ok(jwt)
    }

    /// Suno's captcha check: a pending captcha disables the account.
    async fn no_captcha(&self, auth: &str) -> Result<(), UpstreamError> {
        let check = json_or_error(
            self.http
                .post(format!("{}/api/c/check", self.api))
                .header("authorization", auth)
                .json(&json!({"ctype": "generation"})),
        )
        .await?;
        if check["required"] == json!(true) {
            return Err(UpstreamError::AccountDead {
                reason: "captcha required".into(),
            });
        }
        Ok(())
    }

    /// A new JWT from Clerk for the cookie's session.
    async fn fresh_jwt(&self, cookie: &str) -> Result<String, UpstreamError> {
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
        token["jwt"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| UpstreamError::Transient("Clerk gave no token".into()))
    }

    /// Submit, storing the intent (generations) before and the reference after.
    async fn submit(
        &self,
        task: &SunoTask,
        jwt: &str,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        let r = self.submit_inner(task, jwt, ctl).await?;
        ctl.reference(&r.to_string()).await?;
        Ok(r)
    }

    async fn submit_inner(
        &self,
        task: &SunoTask,
        jwt: &str,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        let auth = format!("Bearer {jwt}");
        self.no_captcha(&auth).await?;
        match task {
            SunoTask::GenerateMusic(g) => {
                let body = json!({"prompt": "", "gpt_description_prompt": g.gpt_description_prompt,
                    "make_instrumental": g.make_instrumental.unwrap_or(false),
                    "mv": g.model_version.as_deref().unwrap_or("chirp-v3-5"),
                    "generation_type": "TEXT", "token": null});
                self.generate(&auth, body, ctl).await
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
                self.generate(&auth, body, ctl).await
            }
            SunoTask::Lyrics(l) => {
                ctl.pace().await?;
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
                ctl.pace().await?;
                let r = json_or_error(
                    self.http
                        .post(format!("{}/api/uploads/audio/", self.api))
                        .header("authorization", &auth)
                        .json(&json!({"url": u.audio_url, "extension": "mp3"})),
                )
                .await?;
                Ok(json!({"upload": r["id"]}))
            }
            SunoTask::Concat(c) => {
                // The result is one new clip, followed in the feed like a generation's.
                ctl.pace().await?;
                let r = json_or_error(
                    self.http
                        .post(format!("{}/api/generate/concat/v2/", self.api))
                        .header("authorization", &auth)
                        .json(&json!({"clip_id": c.clip_id})),
                )
                .await?;
                let id = r["id"]
                    .as_str()
                    .ok_or_else(|| UpstreamError::Transient("Suno's concat gave no clip".into()))?;
                Ok(json!({"clips": [id]}))
            }
        }
    }

    async fn generate(
        &self,
        auth: &str,
        body: Value,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        // Paced first: a run that dies while it waits has stored no intent, and its retry
        // submits afresh instead of searching the feed.
        ctl.pace().await?;
        // The intent: what finds these clips again in the feed if we die before their ids
        // are stored.
        let mut intent = json!({"at": now_ms(), "mv": body["mv"]});
        if body["gpt_description_prompt"].is_string() {
            intent["gpt_description_prompt"] = body["gpt_description_prompt"].clone();
        } else {
            for field in ["prompt", "tags", "title"] {
                intent[field] = body[field].clone();
            }
        }
        ctl.reference(&json!({ "submitting": intent }).to_string())
            .await?;
        let sent = json_or_error(
            self.http
                .post(format!("{}/api/generate/v2/", self.api))
                .header("authorization", auth)
                .json(&body),
        )
        .await;
        let r = match sent {
            Ok(r) => r,
            Err(UpstreamError::LeaseLost) => return Err(UpstreamError::LeaseLost),
            Err(e @ UpstreamError::Transient(_)) => {
                // A 5xx or a lost answer: Suno may have made the generation all the same.
                let jwt = auth.trim_start_matches("Bearer ");
                if let Some(found) = self.find_generation(&intent, jwt).await? {
                    ctl.reference(&found.to_string()).await?;
                    return Ok(found);
                }
                ctl.reference("").await?;
                return Err(e);
            }
            Err(e) => {
                // Refused outright: nothing was made; the retry submits afresh, anywhere.
                ctl.reference("").await?;
                return Err(e);
            }
        };
        let ids: Vec<Value> = r["clips"]
            .as_array()
            .map(|c| c.iter().map(|c| c["id"].clone()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(UpstreamError::Transient("Suno accepted no clips".into()));
        }
        Ok(json!({"clips": ids}))
    }

    /// Look in the account's feed for the generation an intent sent: `Some(reference)` to
    /// adopt, `None` when Suno never made it.
    async fn find_generation(
        &self,
        intent: &Value,
        jwt: &str,
    ) -> Result<Option<Value>, UpstreamError> {
        let auth = format!("Bearer {jwt}");
        let since = intent["at"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(CLOCK_SKEW_MS);
        let mut seen = Vec::new();
        for page in 0..MAX_FEED_PAGES {
            let r = json_or_error(
                self.http
                    .get(format!("{}/api/feed/v2?page={page}", self.api))
                    .header("authorization", &auth),
            )
            .await?;
            let clips = r["clips"].as_array().cloned().unwrap_or_default();
            // Newest first: a clip older than the window ends the search.
            let older = clips.iter().any(|c| {
                c["created_at"]
                    .as_str()
                    .and_then(parse_iso_ms)
                    .is_some_and(|at| at < since)
            });
            let last = clips.is_empty();
            seen.extend(clips);
            if older || last {
                return Ok(adopt_from_feed(&seen, intent, since));
            }
        }
        Err(UpstreamError::Transient(
            "the Suno feed is too long to find an earlier submission in".into(),
        ))
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
                return Ok(Some(json!({"clips": clip_map(&clips)})));
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
                Some("complete") => Ok(Some(lyrics_output(&r))),
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
        let stored: Option<Value> = job
            .upstream_ref
            .as_deref()
            .map(|r| serde_json::from_str(r).unwrap_or(Value::Null));
        let reference = match stored {
            Some(r) if r["submitting"].is_object() => {
                match self.find_generation(&r["submitting"], &jwt).await? {
                    Some(found) => {
                        ctl.reference(&found.to_string()).await?;
                        found
                    }
                    None => self.submit(task, &jwt, ctl).await?,
                }
            }
            Some(r) => r,
            None => self.submit(task, &jwt, ctl).await?,
        };
        loop {
            if let Some(out) = self.poll_once(&reference, &jwt, ctl).await? {
                return Ok(out);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Each clip's audio and cover; an upload's audio.
    fn files(&self, output: &Value) -> Vec<OutputFile> {
        let mut out = Vec::new();
        if let Some(clips) = output["clips"].as_object() {
            for id in clips.keys() {
                let at = |field: &str| format!("/clips/{}/{field}", pointer_escape(id));
                out.extend(OutputFile::at(output, &at("audio_url"), id, "mp3"));
                out.extend(OutputFile::at(
                    output,
                    &at("image_url"),
                    &format!("{id}_cover"),
                    "jpeg",
                ));
            }
        }
        out.extend(OutputFile::at(output, "/audio_url", "audio", "mp3"));
        out
    }

    /// Each clip made, and an upload's clip (a continue or concat names one).
    fn objects(&self, output: &Value) -> Vec<String> {
        let mut ids = switchyard_worker::ids_at(output, &["/clip_id"]);
        if let Some(clips) = output["clips"].as_object() {
            ids.extend(clips.keys().cloned());
        }
        ids
    }

    /// The session signs in (a fresh JWT), the subscription is active, and no captcha
    /// is pending.
    async fn probe(&self, _account: &str, credentials: &Value) -> Result<(), UpstreamError> {
        let cookie = credentials["cookie"].as_str().unwrap_or("");
        let auth = format!("Bearer {}", self.fresh_jwt(cookie).await?);
        let billing = json_or_error(
            self.http
                .get(format!("{}/api/billing/info/", self.api))
                .header("authorization", &auth),
        )
        .await?;
        if billing["is_active"] == json!(false) {
            return Err(UpstreamError::AccountDead {
                reason: "subscription expired: the Suno plan is not active".into(),
            });
        }
        self.no_captcha(&auth).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn clip(id: &str, at: &str, batch: u64, meta: Value, title: &str) -> Value {
        json!({"id": id, "created_at": at, "batch_index": batch, "model_name": "chirp-v3-5",
               "title": title, "metadata": meta})
    }

    #[test]
    fn the_oldest_generation_showing_the_intent_in_the_window_is_adopted() {
        let at = parse_iso_ms("2026-01-07T01:36:10.000Z").unwrap();
        let since = at - CLOCK_SKEW_MS;
        let described = json!({"at": at, "mv": "chirp-v3-5", "gpt_description_prompt": "a tide"});
        let meta = json!({"gpt_description_prompt": "a tide", "prompt": "[Verse] Suno's words", "tags": "pop"});
        // Newest first, as the feed lists them.
        let feed = vec![
            clip("new-b", "2026-01-07T01:36:12.000Z", 1, meta.clone(), "Tide"),
            clip("new-a", "2026-01-07T01:36:12.000Z", 0, meta.clone(), "Tide"),
            clip(
                "oth-b",
                "2026-01-07T01:36:11.000Z",
                1,
                json!({"gpt_description_prompt": "a tide!"}),
                "x",
            ),
            clip(
                "oth-a",
                "2026-01-07T01:36:11.000Z",
                0,
                json!({"gpt_description_prompt": "a tide!"}),
                "x",
            ),
            clip(
                "ours-b",
                "2026-01-07T01:36:09.500Z",
                1,
                meta.clone(),
                "Tide",
            ),
            clip(
                "ours-a",
                "2026-01-07T01:36:09.500Z",
                0,
                meta.clone(),
                "Tide",
            ),
            clip("old-b", "2026-01-07T01:36:04.000Z", 1, meta.clone(), "Tide"),
            clip("old-a", "2026-01-07T01:36:04.000Z", 0, meta.clone(), "Tide"),
        ];
        assert_eq!(
            adopt_from_feed(&feed, &described, since),
            Some(json!({"clips": ["ours-a", "ours-b"]}))
        );
        // Nothing in the window shows it: nothing to adopt, generate.
        assert_eq!(adopt_from_feed(&feed[2..4], &described, since), None);
        assert_eq!(adopt_from_feed(&feed[6..], &described, since), None);
        // Another model is another generation.
        let v4 = json!({"at": at, "mv": "chirp-v4", "gpt_description_prompt": "a tide"});
        assert_eq!(adopt_from_feed(&feed, &v4, since), None);
    }

    #[test]
    fn custom_mode_matches_lyrics_tags_and_title_exactly() {
        let at = 1_767_749_770_000;
        let custom = json!({"at": at, "mv": "chirp-v3-5", "prompt": "[Verse] rails", "tags": "folk", "title": null});
        let t = "2026-01-07T01:36:10.000Z";
        let shown = |prompt: &str, tags: &str, title: &str, gdp: Value| {
            clip(
                "c-a",
                t,
                0,
                json!({"prompt": prompt, "tags": tags, "gpt_description_prompt": gdp}),
                title,
            )
        };
        let adopt = |c: Value| adopt_from_feed(&[c], &custom, at - CLOCK_SKEW_MS);
        assert!(adopt(shown("[Verse] rails", "folk", "", Value::Null)).is_some());
        assert!(adopt(shown("[Verse] rails", "rock", "", Value::Null)).is_none());
        assert!(adopt(shown("[Verse] rails", "folk", "Rails", Value::Null)).is_none());
        assert!(adopt(shown("[Verse] rails ", "folk", "", Value::Null)).is_none());
        // A description-mode song whose written lyrics happen to be ours is not ours.
        assert!(adopt(shown("[Verse] rails", "folk", "", json!("rails"))).is_none());
    }
}
