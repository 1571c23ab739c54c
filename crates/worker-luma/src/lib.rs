//! The Luma Dream Machine adapter: generations (text, key frames — uploaded through a
//! presigned URL first — and extend), polling, watermark-free download. The upstream
//! reference is the new generation's id (for an extend, the extension's, not its
//! origin's), stored as soon as Luma answers the submission; a resumed run polls
//! `GET /api/photon/v1/generations/{id}` until it is completed and never submits again.
//!
//! A creation is preceded by an intent: just before the `POST` (after any key frames are
//! uploaded: they make no generation) the reference becomes `{"submitting": {"at": <Unix
//! ms, this host>, "prompt": <user_prompt>, "extends": <origin generation id, for an
//! extend>}}`. A run resumed with only the intent (the last one died between sending and
//! storing the id) reads the account's generations, newest first
//! (`GET /api/photon/v1/user/generations/?offset=&limit=`), back to those created before
//! the intent's time less [`CLOCK_SKEW_MS`], and adopts the oldest there whose `prompt`
//! equals ours exactly and which extends the same generation (or none, for a creation);
//! it stores its id and follows it. Only when there is none (Luma never took the request)
//! does it submit, with a fresh intent. A submission refused outright (4xx, 429) drops
//! the intent (`Control::reference("")`), so the retry submits afresh on any account; one
//! that failed with a 5xx or a lost answer, which may come after Luma made the generation,
//! looks in the list at once and adopts what it finds, else drops the intent.
//!
//! What remains: two tasks with the same prompt (and origin) on the same account within
//! the skew window, one of which died in that window, may adopt the same generation (Luma
//! shows nothing of ours that tells them apart — key frames are matched by nothing, as
//! each upload gets a new URL); a generation Luma made but does not yet list when the
//! resumed run looks is made again. `parent_generation_id` is the simulator's name for an
//! extension's origin (the web API's is not recorded in UPSTREAMS.md): an extend intent
//! adopts nothing when the list does not show it, and submits again as before.
//! `remove_watermark` only reads a finished generation, so it is safe to repeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};
use switchyard_core::task::{LumaFrame, LumaFrameKind, LumaTask};
use switchyard_core::{Config, Provider, TaskSpec};
use switchyard_worker::{
    Control, InputRules, Job, OutputFile, Upstream, UpstreamError, fetch_bytes, http_client,
    json_or_error, parse_iso_ms,
};

/// How far before an intent's time (this host's clock) a generation may be dated by
/// Luma's clock and still be taken for the one the intent sent.
pub const CLOCK_SKEW_MS: u64 = 5_000;

/// Generations a page of the list holds, and the pages read back at most when looking for
/// an intent's generation (an intent is seconds old when it is looked for).
const LIST_PAGE: usize = 50;
const MAX_LIST_PAGES: usize = 20;

/// Unix time in ms on this host.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The id of the generation to adopt for an intent (`{"at", "prompt", "extends"?}`) among
/// listed generations created at or after `since` (Unix ms): the oldest whose `prompt`
/// equals ours and which extends the same generation (none for a creation).
pub fn adopt_from_list(generations: &[Value], intent: &Value, since: u64) -> Option<String> {
    generations
        .iter()
        .filter_map(|g| {
            let at = parse_iso_ms(g["created_at"].as_str()?)?;
            let same = g["prompt"].as_str().unwrap_or("")
                == intent["prompt"].as_str().unwrap_or("")
                && g["parent_generation_id"].as_str() == intent["extends"].as_str();
            (at >= since && same).then_some((at, g["id"].as_str()?))
        })
        .min()
        .map(|(_, id)| id.to_string())
}

/// The Luma adapter.
pub struct Luma {
    http: reqwest::Client,
    /// Where input files may come from (`worker.allow_private_inputs`).
    inputs: InputRules,
    api: String,
    poll: Duration,
}

impl Luma {
    /// From the upstream config.
    pub fn new(c: &Config) -> Luma {
        Luma {
            inputs: InputRules::of(c),
            http: http_client(c.upstreams.request_timeout_s),
            api: c.upstreams.luma_api.trim_end_matches('/').to_string(),
            poll: Duration::from_millis(c.worker.poll_interval_ms),
        }
    }

    fn cookie(job_cookie: &str) -> String {
        if job_cookie.contains('=') {
            job_cookie.to_string()
        } else {
            format!("access_token={job_cookie}")
        }
    }

    fn req(&self, method: reqwest::Method, path: &str, cookie: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .header("cookie", Self::cookie(cookie))
            .header("origin", "https://lumalabs.ai")
            .header("referer", "https://lumalabs.ai/")
    }

    /// Key frames must live on Luma's storage: fetch the image and upload it.
    async fn upload_frame(&self, frame: &LumaFrame, cookie: &str) -> Result<String, UpstreamError> {
        let url = frame.url.as_deref().unwrap_or("");
        let bytes = fetch_bytes(&self.http, url, "the key frame image", self.inputs).await?;
        let slot = json_or_error(self.req(
            reqwest::Method::POST,
            "/api/photon/v1/generations/file_upload?file_type=image&filename=frame.jpg",
            cookie,
        ))
        .await?;
        let presigned = slot["presigned_url"].as_str().unwrap_or("");
        self.http
            .put(presigned)
            .header("content-type", "image/jpeg")
            .body(bytes)
            .send()
            .await?
            .error_for_status()
            .map_err(|_| UpstreamError::Transient("key frame upload failed".into()))?;
        Ok(slot["public_url"].as_str().unwrap_or("").to_string())
    }

    fn origin_generation(job: &Job) -> Option<String> {
        job.origin
            .as_ref()
            .and_then(|o| o.output["generation_id"].as_str())
            .map(str::to_string)
    }

    /// Submit: key frames first, then the intent, then the creation; stores the new
    /// generation's id as the reference.
    async fn submit(
        &self,
        job: &Job,
        task: &LumaTask,
        ctl: &dyn Control,
    ) -> Result<String, UpstreamError> {
        let cookie = job.credential("cookie");
        let (path, body, extends) = match task {
            LumaTask::VideoGeneration(v) => {
                let mut body = json!({"user_prompt": v.prompt, "aspect_ratio": v.aspect_ratio.as_deref().unwrap_or("16:9"),
                                      "expand_prompt": v.expand_prompt.unwrap_or(false), "loop": v.loop_.unwrap_or(false)});
                if let Some(m) = v.model_name {
                    body["model"] = json!(m.upstream_name());
                }
                if let Some(d) = v.duration {
                    body["duration"] = json!(format!("{d}s"));
                }
                if let Some(kf) = &v.key_frames {
                    for (field, frame) in [("image_url", &kf.frame0), ("image_end_url", &kf.frame1)]
                    {
                        if let Some(f) = frame
                            && f.kind == LumaFrameKind::Image
                        {
                            body[field] = json!(self.upload_frame(f, cookie).await?);
                        }
                    }
                }
                ("/api/photon/v1/generations/".to_string(), body, None)
            }
            LumaTask::ExtendVideo(e) => {
                let generation = e
                    .generation_id
                    .clone()
                    .or_else(|| Self::origin_generation(job))
                    .ok_or_else(|| {
                        UpstreamError::rejected(
                            "extend_video needs the origin task's generation id",
                        )
                    })?;
                (
                    format!("/api/photon/v1/generations/{generation}/extend"),
                    json!({"user_prompt": e.prompt.as_deref().unwrap_or(""), "expand_prompt": false}),
                    Some(generation),
                )
            }
            LumaTask::RemoveWatermark(_) => {
                return Err(UpstreamError::rejected(
                    "remove_watermark has nothing to submit",
                ));
            }
        };
        // Paced first: a run that dies while it waits has stored no intent, and its retry
        // submits afresh instead of searching the generations.
        ctl.pace().await?;
        let intent = json!({"at": now_ms(), "prompt": body["user_prompt"], "extends": extends});
        ctl.reference(&json!({ "submitting": intent }).to_string())
            .await?;
        let sent = json_or_error(self.req(reqwest::Method::POST, &path, cookie).json(&body)).await;
        let r = match sent {
            Ok(r) => r,
            Err(UpstreamError::LeaseLost) => return Err(UpstreamError::LeaseLost),
            Err(e @ UpstreamError::Transient(_)) => {
                // A 5xx or a lost answer: Luma may have made the generation all the same.
                if let Some(id) = self.find_generation(&intent, cookie).await? {
                    ctl.reference(&id).await?;
                    return Ok(id);
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
        let id = r[0]["id"]
            .as_str()
            .or(r["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| UpstreamError::Transient("Luma returned no generation".into()))?;
        ctl.reference(&id).await?;
        Ok(id)
    }

    /// Look in the account's generations for the one an intent sent: `Some(id)` to adopt,
    /// `None` when Luma never made it.
    async fn find_generation(
        &self,
        intent: &Value,
        cookie: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let since = intent["at"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(CLOCK_SKEW_MS);
        let mut seen = Vec::new();
        for page in 0..MAX_LIST_PAGES {
            let r = json_or_error(self.req(
                reqwest::Method::GET,
                &format!(
                    "/api/photon/v1/user/generations/?offset={}&limit={LIST_PAGE}",
                    page * LIST_PAGE
                ),
                cookie,
            ))
            .await?;
            let list = r
                .as_array()
                .or(r["generations"].as_array())
                .cloned()
                .unwrap_or_default();
            // Newest first: a generation older than the window ends the search.
            let older = list.iter().any(|g| {
                g["created_at"]
                    .as_str()
                    .and_then(parse_iso_ms)
                    .is_some_and(|at| at < since)
            });
            let last = list.len() < LIST_PAGE;
            seen.extend(list);
            if older || last {
                return Ok(adopt_from_list(&seen, intent, since));
            }
        }
        Err(UpstreamError::Transient(
            "the Luma list is too long to find an earlier submission in".into(),
        ))
    }
}

fn media(v: &Value) -> Value {
    if v.is_null() {
        Value::Null
    } else {
        json!({"url": v["url"], "width": v["width"], "height": v["height"]})
    }
}

#[async_trait]
impl Upstream for Luma {
    fn provider(&self) -> Provider {
        Provider::Luma
    }

    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        let TaskSpec::Luma(task) = &job.spec else {
            return Err(UpstreamError::rejected("not a Luma task"));
        };
        let cookie = job.credential("cookie");
        if let LumaTask::RemoveWatermark(_) = task {
            // A read of a finished generation: nothing to submit, nothing to resume.
            let generation = Self::origin_generation(job).ok_or_else(|| {
                UpstreamError::rejected("remove_watermark needs a completed Luma task")
            })?;
            let r = json_or_error(self.req(
                reqwest::Method::GET,
                &format!("/api/photon/v1/generations/{generation}/download_video_url"),
                cookie,
            ))
            .await?;
            return Ok(
                json!({"generation_id": generation, "video": {"url": r["url"]}, "video_raw": {"url": r["url"]}}),
            );
        }
        let intent = job
            .upstream_ref
            .as_deref()
            .filter(|r| r.starts_with('{'))
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .map(|r| r["submitting"].clone())
            .filter(Value::is_object);
        let generation = match (&job.upstream_ref, intent) {
            (_, Some(intent)) => match self.find_generation(&intent, cookie).await? {
                Some(id) => {
                    ctl.reference(&id).await?;
                    id
                }
                None => self.submit(job, task, ctl).await?,
            },
            (Some(r), None) => r.clone(),
            (None, None) => self.submit(job, task, ctl).await?,
        };
        loop {
            let g = json_or_error(self.req(
                reqwest::Method::GET,
                &format!("/api/photon/v1/generations/{generation}"),
                cookie,
            ))
            .await?;
            match g["state"].as_str() {
                Some("completed") => {
                    return Ok(
                        json!({"generation_id": generation, "video": media(&g["video"]),
                        "video_raw": media(&g["video_raw"]), "thumbnail": media(&g["thumbnail"]),
                        "last_frame": media(&g["last_frame"]), "prompt": g["prompt"]}),
                    );
                }
                Some("failed") => {
                    let raw = g["failure_reason"].as_str().unwrap_or("failed").to_string();
                    return Err(UpstreamError::BadRequest {
                        message: format!("Luma could not make this video: {raw}"),
                        raw,
                    });
                }
                Some("processing") | Some("dreaming") => ctl.progress(50, None).await?,
                _ => ctl.progress(10, None).await?,
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The video and its thumbnail (`video_raw` keeps Luma's own link).
    fn files(&self, output: &Value) -> Vec<OutputFile> {
        let mut out = Vec::new();
        out.extend(OutputFile::at(output, "/video/url", "video", "mp4"));
        out.extend(OutputFile::at(output, "/thumbnail/url", "thumbnail", "jpg"));
        out
    }

    /// The generation (an extend names it).
    fn objects(&self, output: &Value) -> Vec<String> {
        switchyard_worker::ids_at(output, &["/generation_id"])
    }

    async fn probe(&self, _account: &str, credentials: &Value) -> Result<(), UpstreamError> {
        let cookie = credentials["cookie"].as_str().unwrap_or("");
        json_or_error(self.req(reqwest::Method::GET, "/api/users/v1/me", cookie))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_generation_with_our_prompt_and_origin_in_the_window_is_adopted() {
        let at = parse_iso_ms("2026-01-07T01:36:10.000Z").unwrap();
        let since = at - CLOCK_SKEW_MS;
        let g = |id: &str, t: &str, prompt: &str, parent: Value| {
            json!({"id": id, "created_at": t, "prompt": prompt, "state": "pending",
                   "parent_generation_id": parent})
        };
        let list = vec![
            g("later", "2026-01-07T01:36:13.000Z", "gulls", Value::Null),
            g("ext", "2026-01-07T01:36:12.000Z", "gulls", json!("origin")),
            g("other", "2026-01-07T01:36:11.000Z", "gulls!", Value::Null),
            g("ours", "2026-01-07T01:36:09.000Z", "gulls", Value::Null),
            g("old", "2026-01-07T01:36:01.000Z", "gulls", Value::Null),
        ];
        let create = json!({"at": at, "prompt": "gulls", "extends": null});
        assert_eq!(
            adopt_from_list(&list, &create, since).as_deref(),
            Some("ours")
        );
        let extend = json!({"at": at, "prompt": "gulls", "extends": "origin"});
        assert_eq!(
            adopt_from_list(&list, &extend, since).as_deref(),
            Some("ext")
        );
        let elsewhere = json!({"at": at, "prompt": "gulls", "extends": "another"});
        assert_eq!(adopt_from_list(&list, &elsewhere, since), None);
        assert_eq!(adopt_from_list(&list[2..3], &create, since), None);
        assert_eq!(adopt_from_list(&list[4..], &create, since), None);
    }
}
