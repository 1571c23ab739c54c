//! The ChatGPT (GPTs) adapter: conversations over server-sent events (create and
//! continue, with a GPT's `gizmo_id`), files, GPT create/modify, models and gizmos.
//! The upstream reference of a conversation is its id, stored from the first event; a
//! resumed run reads the conversation back instead of sending the message again. A
//! usage-limit answer cools the account down until the time the upstream gives.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_core::task::GptsTask;
use switchyard_core::{Config, Provider, TaskSpec};
use switchyard_worker::{
    Control, Job, Upstream, UpstreamError, classify_http, fetch_bytes, http_client, json_or_error,
    retry_after,
};

/// The GPTs adapter.
pub struct Gpts {
    http: reqwest::Client,
    api: String,
    poll: Duration,
}

impl Gpts {
    /// From the upstream config.
    pub fn new(c: &Config) -> Gpts {
        Gpts {
            http: http_client(c.upstreams.request_timeout_s.max(120)),
            api: c.upstreams.chatgpt_api.trim_end_matches('/').to_string(),
            poll: Duration::from_millis(c.worker.poll_interval_ms),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("origin", "https://chatgpt.com")
    }

    /// A usage-limit 429 carries `clears_in` (seconds) in its body.
    fn limit_error(status: u16, body: &str, header: Option<f64>) -> UpstreamError {
        if status == 429 {
            let clears = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["detail"]["clears_in"].as_f64())
                .or(header)
                .unwrap_or(0.0);
            return UpstreamError::RateLimited {
                retry_after_ms: (clears * 1000.0) as u64,
                message: "usage_limited: the account reached its message cap".into(),
            };
        }
        classify_http(status, body, header)
    }

    async fn converse(
        &self,
        job: &Job,
        message: &str,
        conversation: Option<&str>,
        gizmo: Option<&str>,
        model: Option<&str>,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        let token = job.credential("access_token");
        let mut body = json!({"action": "next", "parent_message_id": job.task_id,
            "messages": [{"id": job.task_id, "author": {"role": "user"},
                          "content": {"content_type": "text", "parts": [message]}}],
            "model": model.unwrap_or(if gizmo.is_some() { "gpt-4-gizmo" } else { "gpt-4o" })});
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        if let Some(g) = gizmo {
            body["conversation_mode"] = json!({"kind": "gizmo_interaction", "gizmo_id": g});
            body["gizmo_id"] = json!(g);
        }
        let resp = self
            .req(reqwest::Method::POST, "/backend-api/conversation", token)
            .header("accept", "text/event-stream")
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let ra = retry_after(&resp);
            let text = resp.text().await.unwrap_or_default();
            return Err(Self::limit_error(status, &text, ra));
        }
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let mut conv = conversation.map(str::to_string);
        let mut referenced = conversation.is_some();
        if let Some(c) = conversation {
            ctl.reference(&json!({"conversation_id": c}).to_string())
                .await?;
        }
        let mut last: Option<Value> = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = buf.find('\n') {
                let line = buf[..pos].trim().to_string();
                buf.drain(..=pos);
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return self.finish(conv, last);
                }
                let Ok(ev) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if let Some(err) = ev["error"].as_str() {
                    return Err(UpstreamError::BadRequest {
                        message: "ChatGPT refused the message".into(),
                        raw: err.to_string(),
                    });
                }
                if let Some(c) = ev["conversation_id"].as_str() {
                    conv = Some(c.to_string());
                    if !referenced {
                        ctl.reference(&json!({"conversation_id": c}).to_string())
                            .await?;
                        referenced = true;
                    }
                }
                if ev["message"]["author"]["role"] == "assistant" {
                    last = Some(ev["message"].clone());
                    ctl.progress(50, None).await?;
                }
            }
        }
        self.finish(conv, last)
    }

    fn finish(&self, conv: Option<String>, last: Option<Value>) -> Result<Value, UpstreamError> {
        let msg = last
            .ok_or_else(|| UpstreamError::Transient("the stream ended without an answer".into()))?;
        let content = msg["content"]["parts"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("")
            })
            .unwrap_or_default();
        Ok(json!({"conversation_id": conv, "message": {"role": "assistant", "content": content}}))
    }

    /// A resumed conversation: read it back until the answer is there.
    async fn read_back(&self, job: &Job, reference: &str) -> Result<Value, UpstreamError> {
        let conv = serde_json::from_str::<Value>(reference)
            .ok()
            .and_then(|v| v["conversation_id"].as_str().map(str::to_string))
            .ok_or_else(|| UpstreamError::rejected("unreadable upstream reference"))?;
        loop {
            let r = json_or_error(self.req(
                reqwest::Method::GET,
                &format!("/backend-api/conversation/{conv}"),
                job.credential("access_token"),
            ))
            .await?;
            if r["status"] == "finished" {
                return Ok(json!({"conversation_id": conv,
                    "message": {"role": "assistant", "content": r["last_message"]["content"]}}));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[async_trait]
impl Upstream for Gpts {
    fn provider(&self) -> Provider {
        Provider::Gpts
    }

    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        let TaskSpec::Gpts(task) = &job.spec else {
            return Err(UpstreamError::rejected("not a GPTs task"));
        };
        let token = job.credential("access_token");
        match task {
            GptsTask::CreateConversation(c) => {
                if let Some(r) = &job.upstream_ref {
                    return self.read_back(job, r).await;
                }
                self.converse(
                    job,
                    &c.message,
                    None,
                    c.gizmo_id.as_deref(),
                    c.model.as_deref(),
                    ctl,
                )
                .await
            }
            GptsTask::ContinueConversation(c) => {
                if let Some(r) = &job.upstream_ref {
                    return self.read_back(job, r).await;
                }
                self.converse(job, &c.message, Some(&c.conversation_id), None, None, ctl)
                    .await
            }
            GptsTask::UploadFile(u) => {
                let bytes = fetch_bytes(&self.http, &u.file_url, "the file to upload").await?;
                let name = u.file_url.rsplit('/').next().unwrap_or("file");
                let slot = json_or_error(
                    self.req(reqwest::Method::POST, "/backend-api/files", token)
                        .json(&json!({"file_name": name, "file_size": bytes.len(), "use_case": "my_files"})),
                )
                .await?;
                let id = slot["file_id"].as_str().unwrap_or("").to_string();
                self.http
                    .put(slot["upload_url"].as_str().unwrap_or(""))
                    .body(bytes)
                    .send()
                    .await?
                    .error_for_status()
                    .map_err(|_| UpstreamError::Transient("file upload failed".into()))?;
                json_or_error(self.req(
                    reqwest::Method::POST,
                    &format!("/backend-api/files/{id}/uploaded"),
                    token,
                ))
                .await?;
                Ok(json!({"file_id": id, "file_name": name}))
            }
            GptsTask::DownloadFile(d) => {
                let r = json_or_error(self.req(
                    reqwest::Method::GET,
                    &format!("/backend-api/files/{}/download", d.file_id),
                    token,
                ))
                .await?;
                Ok(
                    json!({"file_id": d.file_id, "download_url": r["download_url"], "file_name": r["file_name"]}),
                )
            }
            GptsTask::CreateGpts(g) | GptsTask::ModifyGpts(g) => {
                let r = json_or_error(
                    self.req(
                        reqwest::Method::POST,
                        "/backend-api/gizmos/snorlax/upsert",
                        token,
                    )
                    .json(&json!({"gizmo_id": g.gizmo_id,
                            "display": {"name": g.name, "description": g.description,
                                        "prompt_starters": g.conversation_starters},
                            "instructions": g.instructions})),
                )
                .await?;
                Ok(json!({"gizmo_id": r["gizmo"]["id"], "gizmo": r["gizmo"]}))
            }
            GptsTask::Models(_) => {
                json_or_error(self.req(reqwest::Method::GET, "/backend-api/models", token)).await
            }
            GptsTask::Gizmos(_) => {
                json_or_error(self.req(
                    reqwest::Method::GET,
                    "/backend-api/gizmos/bootstrap",
                    token,
                ))
                .await
            }
        }
    }

    async fn probe(&self, credentials: &Value) -> Result<(), UpstreamError> {
        let token = credentials["access_token"].as_str().unwrap_or("");
        json_or_error(self.req(reqwest::Method::GET, "/backend-api/models", token))
            .await
            .map(|_| ())
    }
}
