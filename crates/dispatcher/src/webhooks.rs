//! Webhooks: task events to the task's endpoint, account notifications to the tenant's.
//!
//! Delivery reads every shard's event stream through a consumer group (so several
//! dispatchers share the work), keeps one ordered queue per task, and retries any non-2xx
//! or timeout with exponential backoff and full jitter (1 s doubling, at most
//! `webhook_max_backoff_s` apart) for `webhook_retry_for_s`. The stream entry is
//! acknowledged only when its delivery succeeded or was given up, and a dispatcher that
//! died leaves its entries to be claimed by another. Each attempt is logged on the task.
//! Every request carries `x-webhook-secret` and a signature
//! `x-switchyard-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;
use switchyard_core::Provider;
use switchyard_scheduler::Event;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::{Shared, tasks, tenants};

const GROUP: &str = "webhooks";

/// Is this address one a webhook may not reach by default?
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (64..128).contains(&v.octets()[1]) // CGNAT
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some_and(|m| private(IpAddr::V4(m)))
        }
    }
}

/// Check an endpoint at create time: http(s), a host, no literal private address
/// (unless allowed). Returns what is wrong.
pub fn check_endpoint(endpoint: &str, allow_private: bool) -> Result<(), String> {
    let u =
        url::Url::parse(endpoint).map_err(|e| format!("the endpoint is not a valid URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "the endpoint must be http or https, not {}",
            u.scheme()
        ));
    }
    let host = u.host_str().ok_or("the endpoint needs a host")?;
    if allow_private {
        return Ok(());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost") {
        return Err("the endpoint points at this machine (localhost); use a public address".into());
    }
    if let Ok(ip) = bare.parse::<IpAddr>()
        && private(ip)
    {
        return Err(format!(
            "the endpoint is a private, loopback or link-local address ({ip}); use a public address"
        ));
    }
    Ok(())
}

/// Resolve an endpoint's host at delivery and refuse private addresses.
async fn check_resolved(endpoint: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let u = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
    let host = u.host_str().unwrap_or("");
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|_| "the endpoint's host does not resolve".to_string())?;
    for a in addrs {
        if private(a.ip()) {
            return Err(format!(
                "the endpoint resolves to a private address ({})",
                a.ip()
            ));
        }
    }
    Ok(())
}

/// `x-switchyard-signature` for a body sent at `t`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One event to deliver.
struct Job {
    consumer: String,
    base: String,
    entry: String,
    event: Event,
}

/// Run the deliverer until the task is aborted.
pub async fn run(state: Shared) {
    let consumer = format!("d-{}", uuid::Uuid::now_v7().simple());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(
            state.config.dispatcher.webhook_timeout_s.max(1),
        ))
        .build()
        .unwrap_or_default();
    let queues: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>> = Arc::default();
    let mut bases = Vec::new();
    for p in Provider::ALL {
        bases.extend(state.sched.bases(p));
    }
    let mut handles = Vec::new();
    for base in bases {
        let (state, http, queues, consumer) = (
            state.clone(),
            http.clone(),
            queues.clone(),
            consumer.clone(),
        );
        handles.push(tokio::spawn(async move {
            read_shard(state, base, consumer, http, queues).await;
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

async fn read_shard(
    state: Shared,
    base: String,
    consumer: String,
    http: reqwest::Client,
    queues: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>>,
) {
    let _ = state.sched.ensure_event_group(&base, GROUP).await;
    let mut last_sweep = Instant::now();
    loop {
        let mut entries: Vec<Event> = Vec::new();
        match state
            .sched
            .read_event_group(&base, GROUP, &consumer, 200, 400)
            .await
        {
            Ok(read) => entries.extend(read),
            Err(e) => {
                debug!(error = %e, "event read failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        // Entries a dead dispatcher left unacknowledged come back here.
        if last_sweep.elapsed() > Duration::from_secs(30) {
            last_sweep = Instant::now();
            let idle_ms = (state.config.dispatcher.webhook_max_backoff_s * 2 + 60) * 1000;
            if let Ok(claimed) = state
                .sched
                .claim_stale_events(&base, GROUP, &consumer, idle_ms, 100)
                .await
            {
                entries.extend(claimed);
            }
        }
        for event in entries {
            let id = event.id.clone();
            let key = match event.kind.as_str() {
                "created" | "progress" | "completed" | "failed" | "cancelled" => {
                    event.fields.get("task").cloned()
                }
                "account" => event
                    .fields
                    .get("owner")
                    .filter(|o| o.as_str() != "pool")
                    .map(|o| format!("acct:{o}")),
                _ => None,
            };
            let Some(key) = key else {
                ack(&state, &base, &id).await;
                continue;
            };
            let job = Job {
                consumer: consumer.clone(),
                base: base.clone(),
                entry: id,
                event,
            };
            let mut q = queues.lock().unwrap_or_else(|p| p.into_inner());
            // Send to the key's running queue; a queue that just closed hands the job back.
            let unsent = match q.get(&key) {
                Some(tx) => tx.send(job).err().map(|e| e.0),
                None => Some(job),
            };
            if let Some(job) = unsent {
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(job);
                q.insert(key.clone(), tx);
                tokio::spawn(per_key(
                    state.clone(),
                    http.clone(),
                    key,
                    rx,
                    queues.clone(),
                ));
            }
        }
    }
}

async fn ack(state: &Shared, base: &str, id: &str) {
    let _ = state.sched.ack_event(base, GROUP, id).await;
}

/// Deliver one task's (or tenant's notification) events in order.
async fn per_key(
    state: Shared,
    http: reqwest::Client,
    key: String,
    mut rx: mpsc::UnboundedReceiver<Job>,
    queues: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>>,
) {
    let mut last_progress: Option<Instant> = None;
    loop {
        let job = match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(j)) => j,
            _ => break,
        };
        if job.event.kind == "progress" {
            let gap = Duration::from_millis(state.config.dispatcher.progress_webhook_gap_ms);
            if last_progress.is_some_and(|t| t.elapsed() < gap) {
                ack(&state, &job.base, &job.entry).await;
                continue;
            }
            last_progress = Some(Instant::now());
        }
        if let Err(e) = deliver(&state, &http, &job).await {
            debug!(error = %e, "no delivery");
        }
        ack(&state, &job.base, &job.entry).await;
    }
    queues
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
}

/// Deliver one event with retries; logs attempts on the task.
async fn deliver(state: &Shared, http: &reqwest::Client, job: &Job) -> Result<(), String> {
    let tenant_id = job
        .event
        .fields
        .get("tenant")
        .or(job.event.fields.get("owner"))
        .cloned()
        .unwrap_or_default();
    let at: u64 = job
        .event
        .fields
        .get("at")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (endpoint, secret, body, record) = if job.event.kind == "account" {
        let t = tenants::get(&state.sched, &tenant_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no tenant")?;
        let endpoint = t
            .notification_webhook
            .clone()
            .ok_or("no notification webhook")?;
        let secret = t
            .notification_secret
            .as_deref()
            .and_then(|s| state.secrets.open(s).ok());
        let Some(body) = notification(&job.event, at) else {
            return Ok(());
        };
        (endpoint, secret, body, None)
    } else {
        let task_id = job.event.fields.get("task").cloned().unwrap_or_default();
        let rec = state
            .sched
            .get_task(&tenant_id, &task_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("task gone")?;
        let endpoint = rec.get("wh_endpoint").to_string();
        if endpoint.is_empty() {
            return Ok(());
        }
        let secret = Some(rec.get("wh_secret"))
            .filter(|s| !s.is_empty())
            .and_then(|s| state.secrets.open(s).ok());
        let data = tasks::render(state, &rec, &HashMap::new()).await;
        let body = json!({"timestamp": at / 1000, "event": format!("task.{}", job.event.kind), "data": data});
        (endpoint, secret, body, Some(rec))
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let d = &state.config.dispatcher;
    let give_up = Instant::now() + Duration::from_secs(d.webhook_retry_for_s);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = match check_resolved(&endpoint, d.allow_private_webhooks).await {
            Err(e) => Err(e),
            Ok(()) => {
                let t = now_s();
                let mut req = http
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(bytes.clone());
                if let Some(s) = &secret {
                    req = req
                        .header("x-webhook-secret", s)
                        .header("x-switchyard-signature", signature(s, t, &bytes));
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
                    Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                    Err(e) if e.is_timeout() => Err("timeout".into()),
                    Err(_) => Err("connection failed".into()),
                }
            }
        };
        if let Some(rec) = &record {
            let mut entry = json!({"time": crate::view::time(now_s() * 1000), "kind": "webhook",
                                   "event": body["event"], "attempt": attempt});
            match &outcome {
                Ok(s) => entry["status"] = json!(s),
                Err(e) => entry["error"] = json!(e),
            }
            let _ = state.sched.append_task_log(rec, &entry.to_string()).await;
        }
        let label = match (&outcome, Instant::now() >= give_up) {
            (Ok(_), _) => "delivered",
            (Err(_), true) => "given_up",
            (Err(_), false) => "retried",
        };
        metrics::counter!("switchyard_webhook_attempts_total", "outcome" => label).increment(1);
        match outcome {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= give_up => {
                warn!(endpoint = %endpoint_host(&endpoint), error = %e, "webhook given up");
                return Err(e);
            }
            Err(_) => {
                // Keep the entry ours while we retry (a sweep only takes idle ones).
                let _ = state
                    .sched
                    .keep_event_claimed(&job.base, GROUP, &job.consumer, &job.entry)
                    .await;
                let cap = Duration::from_secs(d.webhook_max_backoff_s.max(1));
                let exp = Duration::from_secs(1)
                    .saturating_mul(2u32.saturating_pow(attempt.min(20) - 1))
                    .min(cap);
                let wait = rand::rng()
                    .random_range(Duration::from_millis(100)..=exp.max(Duration::from_millis(101)));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn endpoint_host(e: &str) -> String {
    url::Url::parse(e)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// The account notification for an `account` event, or `None` when there is nothing
/// to tell (an account becoming active).
fn notification(e: &Event, at_ms: u64) -> Option<Value> {
    let f = |k: &str| e.fields.get(k).cloned().unwrap_or_default();
    let (state, reason, account) = (f("state"), f("reason"), f("account"));
    let until = f("until")
        .parse::<u64>()
        .ok()
        .filter(|u| *u > 0)
        .map(crate::view::time);
    let r = reason.to_ascii_lowercase();
    let (kind, message) = match state.as_str() {
        "disabled" if r.contains("captcha") => (
            "account_captcha_required",
            "the account needs a captcha solved",
        ),
        "disabled" if r.contains("subscription") => (
            "account_subscription_expired",
            "the account's subscription is not active",
        ),
        "disabled" => ("account_banned", "the account was disabled"),
        "active" | "cooling_down" if r.contains("no_fast_hours") => (
            "account_no_fast_hours",
            "the account has no fast hours left",
        ),
        "cooling_down" => (
            "account_usage_limited",
            "the account is rate-limited upstream",
        ),
        _ => return None,
    };
    Some(
        json!({"type": kind, "time": at_ms / 1000, "message": message,
                "detail": {"account_id": account, "reason": reason, "until": until}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account_event(state: &str, reason: &str) -> Event {
        let fields = [
            ("type", "account"),
            ("account", "a1"),
            ("state", state),
            ("reason", reason),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Event {
            id: "1-0".into(),
            kind: "account".into(),
            fields,
        }
    }

    #[test]
    fn account_events_become_notifications() {
        let kind = |state: &str, reason: &str| {
            notification(&account_event(state, reason), 1_000)
                .map(|n| n["type"].as_str().unwrap_or_default().to_string())
        };
        // Fast hours gone: the account stays active (relax goes on), and the tenant is told.
        assert_eq!(
            kind(
                "active",
                "no_fast_hours: the account has no fast hours left"
            )
            .as_deref(),
            Some("account_no_fast_hours")
        );
        assert_eq!(kind("active", ""), None);
        assert_eq!(
            kind("cooling_down", "rate_limited").as_deref(),
            Some("account_usage_limited")
        );
        assert_eq!(
            kind("disabled", "captcha required").as_deref(),
            Some("account_captcha_required")
        );
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "ftp://x.com",
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://localhost:8080/",
            "not a url",
        ] {
            assert!(check_endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://127.0.0.1:9/x", true).is_ok());
    }

    #[test]
    fn signatures_cover_time_and_body() {
        let a = signature("s3cr3t", 100, b"{}");
        assert!(a.starts_with("t=100,v1="));
        assert_ne!(a, signature("s3cr3t", 101, b"{}"));
        assert_ne!(a, signature("other", 100, b"{}"));
    }
}
