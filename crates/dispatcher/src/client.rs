//! A small Rust client for the task API, for gateways written in Rust, the `switchyard`
//! command and the tests: a tenant's calls with its API key ([`Client::new`]), the
//! operator's `/admin/v1` calls with the admin token ([`Client::admin`]).

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::TaskStatus;

/// An API error as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}: {message}")]
pub struct ClientError {
    /// HTTP status (0: no answer).
    pub status: u16,
    /// The stable reason (`unauthorized`, `invalid_request`, …; `data.error.reason`).
    pub reason: String,
    /// The message.
    pub message: String,
    /// The field, for 400s.
    pub field: Option<String>,
}

/// How a client authenticates.
#[derive(Clone)]
enum Auth {
    /// A tenant's API key (`X-API-Key`).
    ApiKey(String),
    /// The operator's admin token (`Authorization: Bearer`).
    Admin(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret itself is never printed.
        f.write_str(match self {
            Auth::ApiKey(_) => "ApiKey(…)",
            Auth::Admin(_) => "Admin(…)",
        })
    }
}

/// A client bound to one API key, or to the admin token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) with a tenant's API key.
    pub fn new(base: &str, api_key: &str) -> Client {
        Client::with_auth(base, Auth::ApiKey(api_key.to_string()))
    }

    /// A client for the operator's admin API (`/admin/v1`) at `base`, with the admin
    /// token.
    pub fn admin(base: &str, admin_token: &str) -> Client {
        Client::with_auth(base, Auth::Admin(admin_token.to_string()))
    }

    fn with_auth(base: &str, auth: Auth) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(75))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            auth,
        }
    }

    /// The base URL it calls.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(Value, reqwest::header::HeaderMap), ClientError> {
        let req = match &self.auth {
            Auth::ApiKey(k) => req.header("x-api-key", k),
            Auth::Admin(t) => req.bearer_auth(t),
        };
        let resp = req.send().await.map_err(|e| ClientError {
            status: 0,
            reason: "connection".into(),
            message: e.to_string(),
            field: None,
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok((body["data"].clone(), headers));
        }
        let err = &body["data"]["error"];
        let message = match err["message"].as_str() {
            Some(m) => m.to_string(),
            // Not the API's envelope (a proxy's page, say): what came back.
            None => text.chars().take(200).collect(),
        };
        Err(ClientError {
            status,
            reason: err["reason"].as_str().unwrap_or("unknown").to_string(),
            message,
            field: err["field"].as_str().map(str::to_string),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.call(self.http.get(self.url(path))).await?.0)
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        Ok(self.call(req).await?.0)
    }

    async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        Ok(self
            .call(self.http.patch(self.url(path)).json(body))
            .await?
            .0)
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
            let done = serde_json::from_value::<TaskStatus>(t["status"].clone())
                .is_ok_and(TaskStatus::is_terminal);
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

    /// Cancel every cancellable task created before `created_before` (Unix seconds; `None`:
    /// all) of `model` (`None`: every model); returns `{cancelled, task_ids}`.
    pub async fn cancel_tasks(
        &self,
        created_before: Option<u64>,
        model: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut query = Vec::new();
        if let Some(t) = created_before {
            query.push(("created_before", t.to_string()));
        }
        query.push(("model", model.unwrap_or("all").to_string()));
        Ok(self
            .call(
                self.http
                    .delete(format!("{}/api/v1/tasks", self.base))
                    .query(&query),
            )
            .await?
            .0)
    }

    /// Change the tenant's settings (`default_service_mode`, `failover_max_wait_s`,
    /// `notification_webhook`, `max_queued`, `max_pending_s`); returns `me`.
    pub async fn update_settings(&self, body: &Value) -> Result<Value, ClientError> {
        self.patch("/api/v1/me/settings", body).await
    }

    /// The plan's data report for the last `days` days (`None`: the plan's period).
    pub async fn usage(&self, days: Option<u32>) -> Result<Value, ClientError> {
        match days {
            Some(d) => self.get(&format!("/api/v1/usage?days={d}")).await,
            None => self.get("/api/v1/usage").await,
        }
    }

    /// The tenant's plan, caps, balances and load.
    pub async fn me(&self) -> Result<Value, ClientError> {
        Ok(self
            .call(self.http.get(format!("{}/api/v1/me", self.base)))
            .await?
            .0)
    }

    /// Add a hosted account of the tenant's own (BYOA): `POST /api/v1/accounts` with
    /// `{provider, name?, credentials, concurrency? | capacity?}`; returns the account.
    pub async fn add_account(&self, body: &Value) -> Result<Value, ClientError> {
        self.post("/api/v1/accounts", body, None).await
    }

    /// The tenant's hosted accounts.
    pub async fn accounts(&self) -> Result<Value, ClientError> {
        self.get("/api/v1/accounts").await
    }

    /// Probe one of the tenant's accounts now; the account after the probe.
    pub async fn check_account(&self, id: &str) -> Result<Value, ClientError> {
        self.post(&format!("/api/v1/accounts/{id}/check"), &Value::Null, None)
            .await
    }

    /// Admin: probe a pool account now; the account after the probe.
    pub async fn check_pool_account(&self, id: &str) -> Result<Value, ClientError> {
        self.post(
            &format!("/admin/v1/pool/accounts/{id}/check"),
            &Value::Null,
            None,
        )
        .await
    }

    /// Change one of the tenant's accounts (`{"enabled": false}`, capacity, name…).
    pub async fn update_account(&self, id: &str, body: &Value) -> Result<Value, ClientError> {
        self.patch(&format!("/api/v1/accounts/{id}"), body).await
    }

    /// Admin: create a tenant on `plan`; the answer carries its API key (shown once).
    pub async fn create_tenant(&self, name: &str, plan: &str) -> Result<Value, ClientError> {
        self.post(
            "/admin/v1/tenants",
            &json!({"name": name, "plan": plan}),
            None,
        )
        .await
    }

    /// Admin: every tenant.
    pub async fn tenants(&self) -> Result<Value, ClientError> {
        self.get("/admin/v1/tenants").await
    }

    /// Admin: move a tenant to another plan; returns the tenant.
    pub async fn set_plan(&self, tenant_id: &str, plan: &str) -> Result<Value, ClientError> {
        self.patch(
            &format!("/admin/v1/tenants/{tenant_id}"),
            &json!({"plan": plan}),
        )
        .await
    }

    /// Admin: credit `amount` to one of a tenant's balances (`credits`, `mj_quota`…),
    /// once per `idempotency_key`; returns the balances.
    pub async fn top_up(
        &self,
        tenant_id: &str,
        kind: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<Value, ClientError> {
        self.post(
            &format!("/admin/v1/tenants/{tenant_id}/credits"),
            &json!({"kind": kind, "amount": amount}),
            Some(idempotency_key),
        )
        .await
    }

    /// Admin: add an account to the PPU pool (the body as for [`Client::add_account`]).
    pub async fn add_pool_account(&self, body: &Value) -> Result<Value, ClientError> {
        self.post("/admin/v1/pool/accounts", body, None).await
    }

    /// Admin: the PPU pool's accounts.
    pub async fn pool_accounts(&self) -> Result<Value, ClientError> {
        self.get("/admin/v1/pool/accounts").await
    }

    /// Admin: change a pool account (`{"enabled": false}`, capacity, name…).
    pub async fn update_pool_account(&self, id: &str, body: &Value) -> Result<Value, ClientError> {
        self.patch(&format!("/admin/v1/pool/accounts/{id}"), body)
            .await
    }

    /// Admin: queues and the pool per provider (`/admin/v1/stats`).
    pub async fn stats(&self) -> Result<Value, ClientError> {
        self.get("/admin/v1/stats").await
    }

    /// Admin: the operator dashboard's data (`/admin/v1/dashboard`).
    pub async fn dashboard(&self) -> Result<Value, ClientError> {
        self.get("/admin/v1/dashboard").await
    }
}
