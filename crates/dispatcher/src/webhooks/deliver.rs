//! Sending one webhook: the JSON body signed with the endpoint's secret, posted with
//! retries (exponential backoff with full jitter, 1 s doubling up to
//! `webhook_max_backoff_s`, for `webhook_retry_for_s`), the endpoint's host resolved and
//! checked before each attempt, each attempt logged on the task.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;
use switchyard_scheduler::TaskRecord;
use tracing::warn;

use super::endpoint::{check_resolved, endpoint_host};
use super::{GROUP, Job};
use crate::Shared;

/// A webhook to send.
pub(super) struct Message {
    /// Where it goes.
    pub endpoint: String,
    /// The secret it is signed with, opened.
    pub secret: Option<String>,
    /// The JSON body.
    pub body: Value,
    /// The task its attempts are logged on (none for account notifications).
    pub record: Option<TaskRecord>,
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

/// Send `message` for `job` with retries, keeping the job's stream entry claimed while
/// it retries; logs attempts on the task. An error is the last attempt's, once given up.
pub(super) async fn deliver(
    state: &Shared,
    http: &reqwest::Client,
    job: &Job,
    message: &Message,
) -> Result<(), String> {
    let Message {
        endpoint,
        secret,
        body,
        record,
    } = message;
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let d = &state.config.dispatcher;
    let give_up = Instant::now() + Duration::from_secs(d.webhook_retry_for_s);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = match check_resolved(endpoint, d.allow_private_webhooks).await {
            Err(e) => Err(e),
            Ok(()) => {
                let t = now_s();
                let mut req = http
                    .post(endpoint.as_str())
                    .header("content-type", "application/json")
                    .body(bytes.clone());
                if let Some(s) = secret {
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
        if let Some(rec) = record {
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
                warn!(endpoint = %endpoint_host(endpoint), error = %e, "webhook given up");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_time_and_body() {
        let a = signature("s3cr3t", 100, b"{}");
        assert!(a.starts_with("t=100,v1="));
        assert_ne!(a, signature("s3cr3t", 101, b"{}"));
        assert_ne!(a, signature("other", 100, b"{}"));
    }
}
