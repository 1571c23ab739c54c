//! A running dispatcher with workers and the simulator, plus a webhook receiver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use switchyard_core::Config;
use switchyard_dispatcher::AppState;
use switchyard_dispatcher::client::Client;
use switchyard_harness::{Harness, RunningWorker};

pub const ADMIN: &str = "admin-token-for-tests-0001";

pub struct Api {
    pub h: Harness,
    pub url: String,
    pub http: reqwest::Client,
    pub workers: Vec<RunningWorker>,
    server: tokio::task::JoinHandle<()>,
}

impl Api {
    pub async fn start(name: &str) -> Api {
        Api::start_with(name, |_| {}).await
    }

    pub async fn start_with(name: &str, f: impl FnOnce(&mut Config)) -> Api {
        let h = Harness::with(name, |c| {
            c.dispatcher.admin_token = ADMIN.into();
            c.dispatcher.allow_private_webhooks = true;
            c.dispatcher.webhook_max_backoff_s = 1;
            c.dispatcher.progress_webhook_gap_ms = 0;
            f(c);
        })
        .await;
        let state = AppState::new(h.sched.clone(), h.secrets.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            switchyard_dispatcher::serve(state, listener, std::future::pending())
                .await
                .unwrap();
        });
        Api {
            h,
            url,
            http: reqwest::Client::new(),
            workers: Vec::new(),
            server,
        }
    }

    /// Run a worker of every provider in this process.
    pub fn run_workers(&mut self) {
        let c = &self.h.config;
        self.workers.push(
            self.h
                .start_worker(Arc::new(switchyard_worker_midjourney::Midjourney::new(c))),
        );
        self.workers.push(
            self.h
                .start_worker(Arc::new(switchyard_worker_suno::Suno::new(c))),
        );
        self.workers.push(
            self.h
                .start_worker(Arc::new(switchyard_worker_luma::Luma::new(c))),
        );
        self.workers.push(
            self.h
                .start_worker(Arc::new(switchyard_worker_gpts::Gpts::new(c))),
        );
    }

    /// An admin call; returns (status, body).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// A new tenant; returns (tenant id, API key).
    pub async fn tenant(&self, plan: &str) -> (String, String) {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/tenants",
                Some(json!({"name": format!("{plan} co"), "plan": plan})),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        (
            v["data"]["tenant_id"].as_str().unwrap().into(),
            v["data"]["api_key"].as_str().unwrap().into(),
        )
    }

    pub async fn credit(&self, tenant: &str, kind: &str, amount: i64) {
        let key = uuid::Uuid::now_v7().to_string();
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/tenants/{tenant}/credits"),
                Some(json!({"kind": kind, "amount": amount})),
                Some(&key),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    /// A pool account per provider (big capacity).
    pub async fn pool(&self) {
        for (p, creds, cap) in [
            (
                "midjourney",
                json!({"token": "sim:ok:pool-mj-account-0001"}),
                json!({"capacity": {"relax": 50, "fast": 50, "turbo": 50}}),
            ),
            (
                "suno",
                json!({"cookie": "sim:ok:pool-suno-cookie-0001"}),
                json!({"concurrency": 50}),
            ),
            (
                "luma",
                json!({"cookie": "sim:ok:pool-luma-cookie-0001"}),
                json!({"concurrency": 50}),
            ),
            (
                "gpts",
                json!({"access_token": "sim:ok:pool-gpts-token-0001"}),
                json!({"concurrency": 50}),
            ),
        ] {
            let mut body =
                json!({"provider": p, "name": format!("pool {p}"), "credentials": creds});
            for (k, v) in cap.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (s, v) = self
                .admin(
                    reqwest::Method::POST,
                    "/admin/v1/pool/accounts",
                    Some(body),
                    None,
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
    }

    pub fn client(&self, key: &str) -> Client {
        Client::new(&self.url, key)
    }

    /// A raw call with a key: (status, headers, body).
    pub async fn raw(
        &self,
        key: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        (s, h, r.json().await.unwrap_or(Value::Null))
    }

    /// Create a task (the body as given) that must be accepted; its id.
    pub async fn create_ok(&self, key: &str, body: Value) -> String {
        let (s, _, v) = self
            .raw(
                Some(key),
                reqwest::Method::POST,
                "/api/v1/task",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(s, 200, "{body} → {v}");
        v["data"]["task_id"].as_str().unwrap().to_string()
    }

    /// Send the tenant's notifications to a new receiver.
    pub async fn notifications(&self, key: &str) -> Receiver {
        let hook = Receiver::start(0).await;
        let (s, _, v) = self
            .raw(
                Some(key),
                reqwest::Method::PATCH,
                "/api/v1/me/settings",
                Some(&json!({"notification_webhook": {"endpoint": hook.url}}).to_string()),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        hook
    }

    pub async fn stop(self) {
        for w in self.workers {
            w.stop().await;
        }
        self.server.abort();
    }
}

/// A webhook receiver: records every delivery; answers 500 to the first `fail_first`.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<(HeaderMap, Value, u16)>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        let got: Arc<Mutex<Vec<(HeaderMap, Value, u16)>>> = Arc::default();
        let fail = Arc::new(AtomicUsize::new(fail_first));
        let (g, f) = (got.clone(), fail.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (g, f) = (g.clone(), f.clone());
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let status = if f.load(Ordering::SeqCst) > 0 {
                        f.fetch_sub(1, Ordering::SeqCst);
                        500
                    } else {
                        200
                    };
                    let mut h = headers.clone();
                    h.insert(
                        "x-raw-body",
                        axum::http::HeaderValue::from_bytes(&body)
                            .unwrap_or(axum::http::HeaderValue::from_static("")),
                    );
                    g.lock().unwrap().push((h, v, status));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Receiver {
            url,
            got,
            fail_first: fail,
        }
    }

    /// Accepted (2xx) deliveries: (event, task id, body).
    pub fn accepted(&self) -> Vec<(String, String, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, s)| *s == 200)
            .map(|(_, v, _)| {
                (
                    v["event"].as_str().unwrap_or("").to_string(),
                    v["data"]["task_id"].as_str().unwrap_or("").to_string(),
                    v.clone(),
                )
            })
            .collect()
    }

    pub async fn wait_for(&self, task: &str, event: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self
            .accepted()
            .iter()
            .any(|(e, t, _)| e == event && t == task)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no {event} webhook for {task}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
