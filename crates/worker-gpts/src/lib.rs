//! The ChatGPT (GPTs) adapter: conversations over server-sent events (create and
//! continue, with a GPT's `gizmo_id`), files, GPT create/modify, models and gizmos.
//! A usage-limit answer cools the account down until the time the upstream gives.
//!
//! **Resume.** The upstream reference of a conversation turn is JSON: our user message's
//! id (a fresh UUID per task, chosen by us as the web client does) and its parent, stored
//! *before* the message is sent; the conversation id (known up front for a continue,
//! from the first event for a new conversation) and the answer's message id, added as
//! soon as the stream shows them. A resumed run reads the conversation back
//! (`GET /backend-api/conversation/{id}`, its `mapping` of message nodes) and waits for
//! the assistant message whose parent is *our* message — never the conversation's
//! latest answer, which may be the previous turn's. When the reference has no
//! conversation id yet (the run died between sending and the first event), the resume
//! pages through the account's conversations, most recently updated first, for our
//! message id (ChatGPT has no lookup by message id), down to those last updated before the
//! message was sent (the reference carries that time). Only when our message is in none of
//! them is it sent again (with the same id).
//!
//! **Single calls.** Models, gizmos and `download_file` only read: repeating them is
//! harmless. `upload_file` is not resumed: a run that dies mid-way leaves at most an
//! unused file in the account's storage and the retry uploads again. `modify_gpts` writes
//! the GPT it names, so repeating it writes the same thing. `create_gpts` would make a
//! second GPT: its result is stored as the reference before the task completes, and a
//! resumed run returns that result without calling again (the window left is between
//! ChatGPT's answer and that store).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard_core::task::GptsTask;
use switchyard_core::{Config, Provider, TaskSpec};
use switchyard_worker::{
    Control, InputRules, Job, OutputFile, Upstream, UpstreamError, classify_http, fetch_bytes,
    http_client, json_of, json_or_error, retry_after,
};

/// The GPTs adapter.
pub struct Gpts {
    http: reqwest::Client,
    /// Where input files may come from (`worker.allow_private_inputs`).
    inputs: InputRules,
    api: String,
    poll: Duration,
}

impl Gpts {
    /// From the upstream config.
    pub fn new(c: &Config) -> Gpts {
        Gpts {
            inputs: InputRules::of(c),
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

    /// Read a conversation back: its mapping of message nodes (parent, children, status
    /// of each message) and its current node. Another account's conversation, or one that
    /// does not exist, is a 404: the task asked for a conversation this account cannot see.
    async fn read_conversation(&self, token: &str, id: &str) -> Result<Value, UpstreamError> {
        json_or_error(self.req(
            reqwest::Method::GET,
            &format!("/backend-api/conversation/{id}"),
            token,
        ))
        .await
        .map_err(|e| match e {
            UpstreamError::BadRequest { raw, .. } if raw.contains("not found") => {
                UpstreamError::BadRequest {
                    message: "conversation not found on this account".into(),
                    raw,
                }
            }
            e => e,
        })
    }

    /// Find the conversation that holds our message, when the run that sent it died before
    /// the stream named the conversation (only a new conversation's first turn can lack
    /// it: a continue knows its conversation up front). ChatGPT has no lookup by message
    /// id, so this pages through the account's conversations, most recently updated first,
    /// down to the first one last updated before the message was sent (a conversation that
    /// took it was updated then), and reads the mapping of those created since then (ours
    /// was created by our message): however much other traffic the account had, ours is
    /// among those, and older conversations that others continue cost no read. A reference
    /// without the sending time (written by an older version) reads the first [`RECENT`]
    /// only. `None`: the message was never accepted.
    async fn find_conversation(
        &self,
        token: &str,
        turn: &Turn,
    ) -> Result<Option<String>, UpstreamError> {
        let (page_size, pages) = if turn.sent_at.is_some() {
            (100, MAX_PAGES)
        } else {
            (RECENT, 1)
        };
        let mut since = None;
        for page in 0..pages {
            let resp = self
                .req(
                    reqwest::Method::GET,
                    &format!(
                        "/backend-api/conversations?offset={}&limit={page_size}&order=updated",
                        page * page_size
                    ),
                    token,
                )
                .send()
                .await?;
            if page == 0 {
                // The sending time on ChatGPT's clock: ours, moved by how far its clock
                // (its reply's `Date`) is from ours now.
                let skew = http_date(&resp).map(|upstream| upstream - now_s());
                since = turn.sent_at.map(|t| match skew {
                    Some(skew) => t + skew - DATE_SLACK_S,
                    None => t - CLOCK_SLACK_S,
                });
            }
            let list = json_of(resp).await?;
            let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for item in items {
                if let Some(since) = since {
                    if upstream_time(&item["update_time"]).is_some_and(|u| u < since) {
                        return Ok(None);
                    }
                    if upstream_time(&item["create_time"]).is_some_and(|c| c < since) {
                        continue;
                    }
                }
                let Some(id) = item["id"].as_str() else {
                    continue;
                };
                match self.read_conversation(token, id).await {
                    Ok(conv) if conv["mapping"].get(&turn.message_id).is_some() => {
                        return Ok(Some(id.to_string()));
                    }
                    // Gone since the listing (deleted): not ours to find.
                    Ok(_) | Err(UpstreamError::BadRequest { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if items.len() < page_size {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// A first run: wait for the account's pacing, choose our message's id, store the
    /// reference (before the message is sent, so that a crash at any point after leaves a
    /// way to find it), then send. Pacing comes first: a run that dies or loses Redis
    /// while it waits has stored nothing, and its retry starts afresh instead of looking
    /// upstream for a message that was never sent.
    async fn start_turn(
        &self,
        job: &Job,
        message: &str,
        conversation: Option<&str>,
        gizmo: Option<&str>,
        model: Option<&str>,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        let token = job.credential("access_token");
        ctl.pace().await?;
        let turn = match conversation {
            Some(c) => {
                // The new message goes under the conversation's latest one, as the web
                // client sends it (read after pacing: the latest as of the send).
                let conv = self.read_conversation(token, c).await?;
                let parent = conv["current_node"].as_str().ok_or_else(|| {
                    UpstreamError::Transient("the conversation has no current message".into())
                })?;
                Turn {
                    conversation_id: Some(c.to_string()),
                    message_id: new_message_id(),
                    parent_message_id: parent.to_string(),
                    answer_id: None,
                    sent_at: Some(now_s()),
                }
            }
            None => Turn {
                conversation_id: None,
                message_id: new_message_id(),
                // A new conversation starts under a root the client names.
                parent_message_id: new_message_id(),
                answer_id: None,
                sent_at: Some(now_s()),
            },
        };
        ctl.reference(&turn.to_reference()).await?;
        self.send(job, message, turn, gizmo, model, ctl).await
    }

    /// Send our message and follow the answer's server-sent events; the reference is
    /// completed with the conversation id and the answer's id as soon as they show.
    async fn send(
        &self,
        job: &Job,
        message: &str,
        mut turn: Turn,
        gizmo: Option<&str>,
        model: Option<&str>,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        let token = job.credential("access_token");
        let mut body = json!({"action": "next", "parent_message_id": turn.parent_message_id,
            "messages": [{"id": turn.message_id, "author": {"role": "user"},
                          "content": {"content_type": "text", "parts": [message]}}],
            "model": model.unwrap_or(if gizmo.is_some() { "gpt-4-gizmo" } else { "gpt-4o" })});
        if let Some(c) = &turn.conversation_id {
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
                    return finish(turn.conversation_id, last);
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
                let mut learned = false;
                if turn.conversation_id.is_none()
                    && let Some(c) = ev["conversation_id"].as_str()
                {
                    turn.conversation_id = Some(c.to_string());
                    learned = true;
                }
                if ev["message"]["author"]["role"] == "assistant" {
                    if turn.answer_id.is_none()
                        && let Some(a) = ev["message"]["id"].as_str()
                    {
                        turn.answer_id = Some(a.to_string());
                        learned = true;
                    }
                    last = Some(ev["message"].clone());
                }
                if learned {
                    ctl.reference(&turn.to_reference()).await?;
                }
                if last.is_some() {
                    ctl.progress(50, None).await?;
                }
            }
        }
        // The stream ended without [DONE]: only a finished answer is an answer. Anything
        // else is retried, and the retry resumes from the reference.
        match &last {
            Some(m) if m["status"] == "finished_successfully" => finish(turn.conversation_id, last),
            _ => Err(UpstreamError::Transient(
                "the stream ended before the answer was finished".into(),
            )),
        }
    }

    /// A resumed run: find our message upstream and wait for the answer whose parent it is.
    /// Only when our message is not there (the earlier run died before ChatGPT accepted it)
    /// is it sent, with the same id.
    #[allow(clippy::too_many_arguments)]
    async fn resume(
        &self,
        job: &Job,
        mut turn: Turn,
        message: &str,
        continues: bool,
        gizmo: Option<&str>,
        model: Option<&str>,
        ctl: &dyn Control,
    ) -> Result<Value, UpstreamError> {
        let token = job.credential("access_token");
        let conv_id = match turn.conversation_id.clone() {
            Some(c) => c,
            None => match self.find_conversation(token, &turn).await? {
                Some(c) => {
                    turn.conversation_id = Some(c.clone());
                    ctl.reference(&turn.to_reference()).await?;
                    c
                }
                None => {
                    // Never accepted: a new submission, paced as one.
                    ctl.pace().await?;
                    return self.send(job, message, turn, gizmo, model, ctl).await;
                }
            },
        };
        loop {
            let conv = self.read_conversation(token, &conv_id).await?;
            let mapping = &conv["mapping"];
            let Some(ours) = mapping.get(&turn.message_id) else {
                // Never accepted: send it now, under the conversation's latest message
                // (a continue) or as a new conversation.
                if continues {
                    if let Some(p) = conv["current_node"].as_str() {
                        turn.parent_message_id = p.to_string();
                    }
                } else {
                    turn.conversation_id = None;
                }
                ctl.pace().await?;
                return self.send(job, message, turn, gizmo, model, ctl).await;
            };
            let answer = turn
                .answer_id
                .as_deref()
                .and_then(|a| mapping.get(a))
                .filter(|n| n["parent"] == json!(turn.message_id))
                .or_else(|| {
                    ours["children"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.as_str().and_then(|c| mapping.get(c)))
                        .rfind(|n| n["message"]["author"]["role"] == "assistant")
                });
            if let Some(node) = answer {
                let msg = &node["message"];
                match msg["status"].as_str() {
                    Some("finished_successfully") | Some("finished_partial_completion") => {
                        return finish(Some(conv_id), Some(msg.clone()));
                    }
                    Some("in_progress") => {
                        if turn.answer_id.is_none()
                            && let Some(a) = msg["id"].as_str()
                        {
                            turn.answer_id = Some(a.to_string());
                            ctl.reference(&turn.to_reference()).await?;
                        }
                        ctl.progress(50, None).await?;
                    }
                    other => {
                        let raw = msg["metadata"]["error"]
                            .as_str()
                            .or(other)
                            .unwrap_or("no status")
                            .to_string();
                        return Err(UpstreamError::BadRequest {
                            message: "ChatGPT did not answer the message".into(),
                            raw,
                        });
                    }
                }
            } else {
                ctl.progress(10, None).await?;
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// How many of the account's most recently updated conversations a resume reads to find
/// a message whose conversation it never learned, when it does not know when the message
/// was sent.
pub const RECENT: usize = 28;
/// Pages of 100 conversations a resume reads at most to find a message it knows the
/// sending time of.
const MAX_PAGES: usize = 50;

/// How far this host's clock and ChatGPT's may differ (seconds) when a resume compares
/// the time it sent a message with the times ChatGPT lists conversations by, and ChatGPT's
/// reply had no `Date` to tell.
const CLOCK_SLACK_S: f64 = 300.0;
/// The error of a sending time moved to ChatGPT's clock by its `Date` (whole seconds) and
/// compared with list times that may be whole seconds too, plus the reply's way back.
const DATE_SLACK_S: f64 = 3.0;

/// The time an upstream reply was sent by its own clock (its `Date` header), Unix seconds.
fn http_date(resp: &reqwest::Response) -> Option<f64> {
    let date = resp.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    let at = jiff::fmt::rfc2822::parse(date).ok()?;
    Some(at.timestamp().as_millisecond() as f64 / 1000.0)
}

/// A time as ChatGPT gives it: Unix seconds (a conversation's own times), or an ISO 8601
/// string in UTC, with or without an offset (the conversation list's). `None`: neither.
fn upstream_time(v: &Value) -> Option<f64> {
    if let Some(t) = v.as_f64() {
        return Some(t);
    }
    let s = v.as_str()?;
    let ts = match s.parse::<jiff::Timestamp>() {
        Ok(ts) => ts,
        Err(_) => s
            .parse::<jiff::civil::DateTime>()
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp(),
    };
    Some(ts.as_millisecond() as f64 / 1000.0)
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What finds one conversation turn again (the upstream reference, as JSON): our user
/// message's id and its parent, stored before the message is sent; the conversation id
/// once known (at once for a continue, from the first event for a new conversation); the
/// answer's id once seen.
#[derive(Debug, Clone, Default, PartialEq)]
struct Turn {
    conversation_id: Option<String>,
    message_id: String,
    parent_message_id: String,
    answer_id: Option<String>,
    /// When the message was first sent (Unix seconds): a conversation updated before then
    /// cannot hold it.
    sent_at: Option<f64>,
}

impl Turn {
    fn to_reference(&self) -> String {
        let mut r = json!({"message_id": self.message_id,
                           "parent_message_id": self.parent_message_id});
        if let Some(c) = &self.conversation_id {
            r["conversation_id"] = json!(c);
        }
        if let Some(a) = &self.answer_id {
            r["answer_id"] = json!(a);
        }
        if let Some(t) = self.sent_at {
            r["sent_at"] = json!(t);
        }
        r.to_string()
    }

    /// Read a stored reference. One written before message ids were stored holds only the
    /// conversation id; its message id was the task id.
    fn parse(reference: &str, task_id: &str) -> Option<Turn> {
        let v: Value = serde_json::from_str(reference).ok()?;
        let text = |f: &str| v[f].as_str().map(str::to_string);
        let turn = Turn {
            conversation_id: text("conversation_id"),
            message_id: text("message_id").unwrap_or_else(|| task_id.to_string()),
            parent_message_id: text("parent_message_id").unwrap_or_else(new_message_id),
            answer_id: text("answer_id"),
            sent_at: v["sent_at"].as_f64(),
        };
        (v.is_object()).then_some(turn)
    }
}

/// A fresh message id in the UUID form the web client uses (random, version 4).
fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn finish(conv: Option<String>, last: Option<Value>) -> Result<Value, UpstreamError> {
    let msg =
        last.ok_or_else(|| UpstreamError::Transient("the stream ended without an answer".into()))?;
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
                let (gizmo, model) = (c.gizmo_id.as_deref(), c.model.as_deref());
                match job.upstream_ref.as_deref() {
                    Some(r) => {
                        let turn = Turn::parse(r, &job.task_id).ok_or_else(|| {
                            UpstreamError::rejected("unreadable upstream reference")
                        })?;
                        self.resume(job, turn, &c.message, false, gizmo, model, ctl)
                            .await
                    }
                    None => {
                        self.start_turn(job, &c.message, None, gizmo, model, ctl)
                            .await
                    }
                }
            }
            GptsTask::ContinueConversation(c) => match job.upstream_ref.as_deref() {
                Some(r) => {
                    let mut turn = Turn::parse(r, &job.task_id)
                        .ok_or_else(|| UpstreamError::rejected("unreadable upstream reference"))?;
                    turn.conversation_id = Some(c.conversation_id.clone());
                    self.resume(job, turn, &c.message, true, None, None, ctl)
                        .await
                }
                None => {
                    self.start_turn(job, &c.message, Some(&c.conversation_id), None, None, ctl)
                        .await
                }
            },
            GptsTask::UploadFile(u) => {
                let bytes =
                    fetch_bytes(&self.http, &u.file_url, "the file to upload", self.inputs).await?;
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
                // Creating a GPT twice makes two GPTs: the result is the reference, and a
                // resumed run hands it back without calling again. Modify names its GPT,
                // so repeating it writes the same thing again.
                if let Some(r) = &job.upstream_ref
                    && let Ok(out) = serde_json::from_str::<Value>(r)
                    && out["gizmo_id"].is_string()
                {
                    return Ok(out);
                }
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
                let out = json!({"gizmo_id": r["gizmo"]["id"], "gizmo": r["gizmo"]});
                if matches!(task, GptsTask::CreateGpts(_)) {
                    ctl.reference(&out.to_string()).await?;
                }
                Ok(out)
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

    /// A downloaded file, under its own name.
    fn files(&self, output: &Value) -> Vec<OutputFile> {
        let name = output["file_name"].as_str().unwrap_or("file");
        let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
        let mut f = OutputFile::at(output, "/download_url", stem, "bin");
        // The file's own extension, when it has one, over the link's.
        if let (Some(f), Some(ext)) = (f.as_mut(), switchyard_worker::url_extension(name)) {
            f.name = format!("{}.{ext}", switchyard_worker::safe_name(stem));
        }
        f.into_iter().collect()
    }

    /// A conversation, an uploaded file, a GPT made.
    fn objects(&self, output: &Value) -> Vec<String> {
        switchyard_worker::ids_at(output, &["/conversation_id", "/file_id", "/gizmo_id"])
    }

    async fn probe(&self, _account: &str, credentials: &Value) -> Result<(), UpstreamError> {
        let token = credentials["access_token"].as_str().unwrap_or("");
        json_or_error(self.req(reqwest::Method::GET, "/backend-api/models", token))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_times_read_as_chatgpt_writes_them() {
        let at = 1_680_810_921.0; // 2023-04-06T19:55:21Z
        assert_eq!(upstream_time(&json!(at)), Some(at));
        assert_eq!(upstream_time(&json!("2023-04-06T19:55:21")), Some(at));
        assert_eq!(
            upstream_time(&json!("2023-04-06T19:55:21.620368")),
            Some(at + 0.620)
        );
        assert_eq!(
            upstream_time(&json!("2023-04-06T19:55:21.620368+00:00")),
            Some(at + 0.620)
        );
        assert_eq!(upstream_time(&json!("2023-04-06T21:55:21+02:00")), Some(at));
        assert_eq!(upstream_time(&json!("yesterday")), None);
        assert_eq!(upstream_time(&Value::Null), None);
    }
}
