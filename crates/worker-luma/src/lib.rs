//! The Luma Dream Machine adapter: generations (text, key frames — uploaded through a
//! presigned URL first — and extend), polling, watermark-free download. The upstream
//! reference is the new generation's id (for an extend, the extension's, not its
//! origin's), stored as soon as Luma answers the submission; a resumed run polls
//! `GET /api/photon/v1/generations/{id}` until it is completed and never submits again.
//! What remains: a crash between Luma's answer and the store submits again (key frames
//! uploaded before make no generation). `remove_watermark` only reads a finished
//! generation, so it is safe to repeat.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use switchyard_core::task::{LumaFrame, LumaFrameKind, LumaTask};
use switchyard_core::{Config, Provider, TaskSpec};
use switchyard_worker::{
    Control, Job, Upstream, UpstreamError, fetch_bytes, http_client, json_or_error,
};

/// The Luma adapter.
pub struct Luma {
    http: reqwest::Client,
    api: String,
    poll: Duration,
}

impl Luma {
    /// From the upstream config.
    pub fn new(c: &Config) -> Luma {
        Luma {
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
        let bytes = fetch_bytes(&self.http, url, "the key frame image").await?;
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
        job.body
            .origin
            .as_ref()
            .and_then(|o| o.output["generation_id"].as_str())
            .map(str::to_string)
    }

    async fn submit(&self, job: &Job, task: &LumaTask) -> Result<String, UpstreamError> {
        let cookie = job.credential("cookie");
        let (path, body) = match task {
            LumaTask::VideoGeneration(v) => {
                let mut body = json!({"user_prompt": v.prompt, "aspect_ratio": v.aspect_ratio.as_deref().unwrap_or("16:9"),
                                      "expand_prompt": v.expand_prompt.unwrap_or(false), "loop": v.loop_.unwrap_or(false)});
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
                ("/api/photon/v1/generations/".to_string(), body)
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
                )
            }
            LumaTask::RemoveWatermark(_) => {
                return Err(UpstreamError::rejected(
                    "remove_watermark has nothing to submit",
                ));
            }
        };
        let r = json_or_error(self.req(reqwest::Method::POST, &path, cookie).json(&body)).await?;
        r[0]["id"]
            .as_str()
            .or(r["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| UpstreamError::Transient("Luma returned no generation".into()))
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
        let generation = match &job.upstream_ref {
            Some(r) => r.clone(),
            None => {
                let id = self.submit(job, task).await?;
                ctl.reference(&id).await?;
                id
            }
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

    async fn probe(&self, credentials: &Value) -> Result<(), UpstreamError> {
        let cookie = credentials["cookie"].as_str().unwrap_or("");
        json_or_error(self.req(reqwest::Method::GET, "/api/users/v1/me", cookie))
            .await
            .map(|_| ())
    }
}
