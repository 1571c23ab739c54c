//! A small Rust client for the task API, for gateways written in Rust (and the tests).

use std::time::Duration;

use serde_json::{Value, json};

/// An API error as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ClientError {
    /// HTTP status (0: no answer).
    pub status: u16,
    /// Stable error code (`unauthorized`, `invalid_request`, …).
    pub code: String,
    /// The message.
    pub message: String,
    /// The field, for 400s.
    pub field: Option<String>,
}

/// A client bound to one API key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) with an API key.
    pub fn new(base: &str, api_key: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(75))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            key: api_key.to_string(),
        }
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(Value, reqwest::header::HeaderMap), ClientError> {
        let resp = req
            .header("x-api-key", &self.key)
            .send()
            .await
            .map_err(|e| ClientError {
                status: 0,
                code: "connection".into(),
                message: e.to_string(),
                field: None,
            })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok((body["data"].clone(), headers));
        }
        let err = &body["data"]["error"];
        Err(ClientError {
            status,
            code: err["code"].as_str().unwrap_or("unknown").to_string(),
            message: err["message"].as_str().unwrap_or("").to_string(),
            field: err["field"].as_str().map(str::to_string),
        })
    }

    /// Create a task; returns the task object.
    pub async fn create_task(
        &self,
        model: &str,
        task_type: &str,
        input: Value,
        config: Option<Value>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({"model": model, "task_type": task_type, "input": input});
        if let Some(c) = config {
            body["config"] = c;
        }
        Ok(self
            .call(
                self.http
                    .post(format!("{}/api/v1/task", self.base))
                    .json(&body),
            )
            .await?
            .0)
    }

    /// Create with an Idempotency-Key; returns the task and whether it was a replay.
    pub async fn create_task_idempotent(
        &self,
        key: &str,
        body: &Value,
    ) -> Result<(Value, bool), ClientError> {
        let (v, h) = self
            .call(
                self.http
                    .post(format!("{}/api/v1/task", self.base))
                    .header("idempotency-key", key)
                    .json(body),
            )
            .await?;
        Ok((v, h.get("idempotent-replayed").is_some()))
    }

    /// Get a task, waiting up to `wait_s` seconds for it to finish.
    pub async fn get_task(&self, id: &str, wait_s: u64) -> Result<Value, ClientError> {
        Ok(self
            .call(
                self.http
                    .get(format!("{}/api/v1/task/{id}?wait={wait_s}", self.base)),
            )
            .await?
            .0)
    }

    /// Wait until a task is terminal (or `timeout` passes) and return it.
    pub async fn wait_task(&self, id: &str, timeout: Duration) -> Result<Value, ClientError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline
                .saturating_duration_since(std::time::Instant::now())
                .as_secs()
                .min(60);
            let t = self.get_task(id, left.max(1)).await?;
            let done = matches!(
                t["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            );
            if done || std::time::Instant::now() >= deadline {
                return Ok(t);
            }
        }
    }

    /// Fetch up to 100 tasks.
    pub async fn fetch(&self, ids: &[String]) -> Result<Vec<Value>, ClientError> {
        let (v, _) = self
            .call(
                self.http
                    .post(format!("{}/api/v1/task/fetch", self.base))
                    .json(&json!({"task_ids": ids})),
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Cancel a staged or pending task.
    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        Ok(self
            .call(self.http.delete(format!("{}/api/v1/task/{id}", self.base)))
            .await?
            .0)
    }

    /// The tenant's plan, caps, balances and load.
    pub async fn me(&self) -> Result<Value, ClientError> {
        Ok(self
            .call(self.http.get(format!("{}/api/v1/me", self.base)))
            .await?
            .0)
    }
}
