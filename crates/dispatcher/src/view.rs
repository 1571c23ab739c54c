//! The task object of the API, built from a stored task.

use std::time::{Duration, UNIX_EPOCH};

use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{Value, json};
use switchyard_core::{TaskBody, TaskStatus};
use switchyard_scheduler::{TaskRecord, TenantLoad};

use crate::error::ok;

/// RFC 3339 UTC from Unix milliseconds; `null` for 0.
pub fn time(ms: u64) -> Value {
    if ms == 0 {
        return Value::Null;
    }
    json!(humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string())
}

/// The status stored on a task; `None` for a value the API does not know.
pub fn stored_status(r: &TaskRecord) -> Option<TaskStatus> {
    [
        TaskStatus::Staged,
        TaskStatus::Pending,
        TaskStatus::Processing,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == r.status())
}

/// The API status of a stored task. A queued PPU task is `staged` while its tenant is
/// at its plan cap for the provider, `pending` otherwise.
pub fn status(r: &TaskRecord, load: Option<&TenantLoad>) -> &'static str {
    match stored_status(r) {
        Some(
            s @ (TaskStatus::Processing
            | TaskStatus::Completed
            | TaskStatus::Failed
            | TaskStatus::Cancelled),
        ) => s.as_str(),
        _ => {
            let capped = load.is_some_and(|l| {
                r.get("pool") == "ppu" && l.cap.is_some_and(|c| l.ppu_in_flight >= u64::from(c))
            });
            if capped { "staged" } else { "pending" }
        }
    }
}

/// The task object (`data` of create, get, fetch and webhooks). Secrets are never in it.
pub fn task(r: &TaskRecord, load: Option<&TenantLoad>, logs: &[String]) -> Value {
    let body = TaskBody::from_json(r.get("body")).ok();
    let input = body.as_ref().map_or(Value::Null, |b| b.input.clone());
    let task_type = body
        .as_ref()
        .map_or("", |b| b.task_type.as_str())
        .to_string();
    let output: Value = serde_json::from_str(r.get("output")).unwrap_or(Value::Null);
    let error = if r.get("error_code").is_empty() || stored_status(r) == Some(TaskStatus::Completed)
    {
        Value::Null
    } else {
        json!({"code": r.get("error_code"), "message": r.get("error_message"),
               "raw_message": r.get("error_raw")})
    };
    let service_mode = if r.get("svc") == "byoa" {
        "private"
    } else {
        "public"
    };
    let mut config = json!({"service_mode": service_mode});
    if !r.get("wh_endpoint").is_empty() {
        config["webhook_config"] = json!({"endpoint": r.get("wh_endpoint")});
    }
    let logs: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    json!({
        "task_id": r.get("id"),
        "model": r.provider.as_str(),
        "task_type": task_type,
        "status": status(r, load),
        "config": config,
        "input": input,
        "output": output,
        "meta": {
            "created_at": time(r.num("created_ms")),
            "started_at": time(r.num("started_ms")),
            "ended_at": time(r.num("ended_ms")),
            "usage": {"type": r.get("kind"), "frozen": r.num("hold"), "consume": r.num("consume")},
            "is_using_private_pool": r.get("pool") == "byoa",
            "failover_triggered": r.get("failover") == "1",
            "account_id": Some(r.get("account")).filter(|a| !a.is_empty()),
            "attempts": r.num("attempts"),
            "progress": r.num("progress"),
        },
        "logs": logs,
        "error": error,
    })
}

/// The reply to a create: the task object, marked `Idempotent-Replayed: true` when the
/// `Idempotency-Key` found an existing task.
pub fn created(task: Value, replayed: bool) -> Response {
    let mut resp = ok(task);
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}
