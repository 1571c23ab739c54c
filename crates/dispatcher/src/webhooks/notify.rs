//! The notification consumer: every shard's event stream read through the consumer
//! group, one ordered queue per task (or per tenant for account notifications), and for
//! each event what it sends: the task object to the task's webhook, or an account
//! notification to the tenant's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::Provider;
use switchyard_scheduler::Event;
use tokio::sync::mpsc;
use tracing::debug;

use super::deliver::{self, Message};
use super::{GROUP, Job};
use crate::{Shared, tasks, tenants, view};

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
        bases.extend(state.sched.bases(p).into_iter().map(|b| (p, b)));
    }
    let mut handles = Vec::new();
    for (provider, base) in bases {
        let (state, http, queues, consumer) = (
            state.clone(),
            http.clone(),
            queues.clone(),
            consumer.clone(),
        );
        handles.push(tokio::spawn(async move {
            read_shard(state, provider, base, consumer, http, queues).await;
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

async fn read_shard(
    state: Shared,
    provider: Provider,
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
                // A pool account's events go to the operator, in order, by one queue.
                "account" => event.fields.get("owner").map(|o| format!("acct:{o}")),
                "ledger"
                    if event.fields.get("entry").map(String::as_str) == Some("convert_failed") =>
                {
                    event.fields.get("tenant").map(|t| format!("acct:{t}"))
                }
                _ => None,
            };
            let Some(key) = key else {
                ack(&state, &base, &id).await;
                continue;
            };
            let job = Job {
                consumer: consumer.clone(),
                provider,
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
        match message(&state, &job).await {
            Ok(Some(m)) => {
                if let Err(e) = deliver::deliver(&state, &http, &job, &m).await {
                    debug!(error = %e, "no delivery");
                }
            }
            Ok(None) => {}
            Err(e) => debug!(error = %e, "no delivery"),
        }
        ack(&state, &job.base, &job.entry).await;
    }
    queues
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
}

/// What an event sends, and where; `None` when it sends nothing (a task without a
/// webhook, an account notification with nothing to tell). An error says why it cannot
/// be sent (the tenant or task is gone, the store failed).
async fn message(state: &Shared, job: &Job) -> Result<Option<Message>, String> {
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
    if job.event.kind == "account" && tenant_id == "pool" {
        return Ok(operator_message(state, job, at));
    }
    let message = if job.event.kind == "account" || job.event.kind == "ledger" {
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
        let Some(body) = notification(&job.event, job.provider, at) else {
            return Ok(None);
        };
        Message {
            endpoint,
            secret,
            body,
            record: None,
        }
    } else {
        let task_id = job.event.fields.get("task").cloned().unwrap_or_default();
        let rec = state
            .sched
            .get_task(&tenant_id, &task_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("task gone")?;
        let Some(webhook) = &rec.webhook else {
            return Ok(None);
        };
        // The tenant (its plan shapes the task object) is read only for a task that has a
        // webhook.
        let tenant = tenants::get(&state.sched, &tenant_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no tenant")?;
        let endpoint = webhook.endpoint.clone();
        let secret = webhook
            .sealed_secret
            .as_deref()
            .and_then(|s| state.secrets.open(s).ok());
        // Midjourney progress is a plan feature: no `task.progress` where the plan does
        // not give it. The task is shown staged or pending as GET shows it now.
        if job.event.kind == "progress" && !view::Viewer::of(state, &tenant).shows_progress(&rec) {
            return Ok(None);
        }
        let data = tasks::render_now(state, &tenant, &rec).await;
        let body = json!({"timestamp": at / 1000, "event": format!("task.{}", job.event.kind), "data": data});
        Message {
            endpoint,
            secret,
            body,
            record: Some(rec),
        }
    };
    Ok(Some(message))
}

/// The operator's notification of a pool account's event (counted in
/// `switchyard_pool_account_events_total` whether or not a webhook is set): the tenant
/// notification's shape, with `"pool": true`.
fn operator_message(state: &Shared, job: &Job, at_ms: u64) -> Option<Message> {
    let kind = job.event.fields.get("state").cloned().unwrap_or_default();
    metrics::counter!("switchyard_pool_account_events_total",
        "provider" => job.provider.as_str(), "state" => kind)
    .increment(1);
    let d = &state.config.dispatcher;
    if d.operator_webhook.is_empty() {
        return None;
    }
    let mut body = notification(&job.event, job.provider, at_ms)?;
    body["pool"] = json!(true);
    Some(Message {
        endpoint: d.operator_webhook.clone(),
        secret: Some(d.operator_webhook_secret.clone()).filter(|s| !s.is_empty()),
        body,
        record: None,
    })
}

/// The tenant notification for an `account` event of `provider`'s accounts (or a failed
/// credit exchange, a `ledger` event), under
/// GoAPI's type names (API.md, Webhooks; ours, in the same shape, for Suno and Luma), or
/// `None` when there is nothing to tell (an account added, a cool-down ending).
fn notification(e: &Event, provider: Provider, at_ms: u64) -> Option<Value> {
    let f = |k: &str| e.fields.get(k).cloned().unwrap_or_default();
    if e.kind == "ledger" {
        return (f("entry") == "convert_failed").then(|| {
            json!({"type": "go_api_quota_exchange_failed", "time": at_ms / 1000,
                   "message": "Midjourney quota ran short and there were not enough credits to exchange for more; top up",
                   "detail": {"provider": provider, "credits": f("credits").parse::<u64>().unwrap_or(0),
                              "needed": f("needed").parse::<u64>().unwrap_or(0)}})
        });
    }
    let (state, reason, account, prev) = (f("state"), f("reason"), f("account"), f("prev"));
    let until = f("until")
        .parse::<u64>()
        .ok()
        .filter(|u| *u > 0)
        .map(crate::view::time);
    let r = reason.to_ascii_lowercase();
    let no_fast = r.contains("no_fast_hours");
    let (kind, message) = match (provider, state.as_str()) {
        (Provider::Midjourney, "none_active") => (
            "no_active_mj_bot",
            "none of your Midjourney accounts can take work; private tasks wait",
        ),
        (_, "none_active") => (
            "no_active_account",
            "none of your accounts of this provider can take work; private tasks wait",
        ),
        (Provider::Midjourney, "active" | "cooling_down") if no_fast => (
            "mj_bot_no_fasthour",
            "the Midjourney account has no fast hours left; relax jobs go on",
        ),
        (_, "active") if prev == "disabled" => {
            ("account_reenabled", "the account takes work again")
        }
        // The tenant disabled it: nothing to tell it (it is no ban).
        (_, "disabled") if r == "disabled by tenant" => return None,
        (Provider::Midjourney, "disabled") if r.contains("captcha") => (
            "mj_bot_captcha_required",
            "the Midjourney account needs a captcha solved",
        ),
        (Provider::Midjourney, "disabled") if r.contains("subscription") => (
            "mj_bot_subscription_expired",
            "the Midjourney account's subscription is not active",
        ),
        (Provider::Midjourney, "disabled") => {
            ("mj_bot_banned", "the Midjourney account was disabled")
        }
        (Provider::Midjourney, "cooling_down") => (
            "mj_penalty_triggered",
            "Midjourney limited the account for a while",
        ),
        (Provider::Gpts, "disabled") => (
            "gpt_account_unavailable",
            "the ChatGPT account cannot be used",
        ),
        (Provider::Gpts, "cooling_down") => (
            "gpt_usage_limit_reached",
            "the ChatGPT account reached its usage limit",
        ),
        (_, "disabled") => ("account_disabled", "the account was disabled"),
        (_, "backups_promoted") => (
            "backup_accounts_promoted",
            "none of your primary accounts can take this work now; your backup accounts take it",
        ),
        _ => return None,
    };
    let mut detail = json!({"account_id": account, "provider": provider, "reason": reason,
                            "until": until});
    if let Some(mode) = e.fields.get("mode") {
        detail["mode"] = json!(mode);
    }
    Some(json!({"type": kind, "time": at_ms / 1000, "message": message, "detail": detail}))
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
    fn account_events_become_notifications_under_goapis_names() {
        let kind = |p: Provider, state: &str, reason: &str, prev: &str| {
            let mut e = account_event(state, reason);
            e.fields.insert("prev".into(), prev.into());
            notification(&e, p, 1_000).map(|n| n["type"].as_str().unwrap_or_default().to_string())
        };
        let mj = Provider::Midjourney;
        let rows = [
            (
                mj,
                "active",
                "no_fast_hours: the account has no fast hours left",
                "active",
                Some("mj_bot_no_fasthour"),
            ),
            (mj, "active", "", "cooling_down", None),
            (mj, "active", "", "disabled", Some("account_reenabled")),
            (
                mj,
                "cooling_down",
                "rate_limited",
                "active",
                Some("mj_penalty_triggered"),
            ),
            (
                mj,
                "disabled",
                "captcha required",
                "active",
                Some("mj_bot_captcha_required"),
            ),
            (
                mj,
                "disabled",
                "subscription_expired",
                "active",
                Some("mj_bot_subscription_expired"),
            ),
            (
                mj,
                "disabled",
                "banned: 4004",
                "active",
                Some("mj_bot_banned"),
            ),
            (
                Provider::Gpts,
                "disabled",
                "invalid_credentials",
                "active",
                Some("gpt_account_unavailable"),
            ),
            (
                Provider::Gpts,
                "cooling_down",
                "usage_limited",
                "active",
                Some("gpt_usage_limit_reached"),
            ),
            (
                Provider::Suno,
                "disabled",
                "banned",
                "active",
                Some("account_disabled"),
            ),
            (
                Provider::Luma,
                "cooling_down",
                "rate_limited",
                "active",
                None,
            ),
            (mj, "none_active", "banned", "", Some("no_active_mj_bot")),
            (
                Provider::Suno,
                "backups_promoted",
                "no primary account can take relax work",
                "",
                Some("backup_accounts_promoted"),
            ),
            (mj, "backups_demoted", "", "", None),
            (mj, "disabled", "disabled by tenant", "active", None),
            (
                Provider::Suno,
                "disabled",
                "disabled by tenant",
                "active",
                None,
            ),
            (
                Provider::Suno,
                "none_active",
                "",
                "",
                Some("no_active_account"),
            ),
        ];
        for (p, state, reason, prev, want) in rows {
            assert_eq!(
                kind(p, state, reason, prev).as_deref(),
                want,
                "{p} {state} {reason} (was {prev})"
            );
        }
    }
}
