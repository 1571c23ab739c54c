//! The API's replies, built from what the scheduler stores: the task object, accounts,
//! tenants, `me`, balances and stats. Nothing here reads or writes the store.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{Map, Value, json};
use switchyard_core::{
    AccountState, ActiveWindow, PlanLimits, Provider, QuotaKind, ServiceMode, TaskBody, TaskStatus,
};
use switchyard_scheduler::{
    AccountInfo, Balance, ProviderLoad, StoredStatus, TaskRecord, Tenant, TenantLoad,
    TenantSettings, UsageDay,
};

use crate::error::ok;

/// RFC 3339 UTC from Unix milliseconds; `null` for 0.
pub fn time(ms: u64) -> Value {
    if ms == 0 {
        return Value::Null;
    }
    json!(humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string())
}

/// The API status of a stored task. A queued PPU task is `staged` while its tenant is
/// at its plan cap for the provider, `pending` otherwise.
pub fn status(r: &TaskRecord, load: Option<&TenantLoad>) -> TaskStatus {
    let capped = load.is_some_and(|l| l.cap.is_some_and(|c| l.ppu_in_flight >= u64::from(c)));
    r.api_status(capped)
}

/// Who looks at a task: its tenant's plan and approvals, which decide the optional
/// output fields (API.md, "Output").
pub struct Viewer<'a> {
    /// The tenant's plan.
    pub plan: &'a PlanLimits,
    /// The operator approved the tenant's "upon approval" extras.
    pub approved_extras: bool,
    /// Hosted results, whose links replace the upstream's URLs.
    pub hosted: Option<&'a crate::files::Hosted>,
}

impl<'a> Viewer<'a> {
    /// The viewer that is `tenant`.
    pub fn of(state: &'a crate::Shared, tenant: &Tenant) -> Self {
        Viewer {
            plan: state.config.plans.get(tenant.plan),
            approved_extras: tenant.approved_extras,
            hosted: Some(&state.files),
        }
    }

    /// Whether the task's progress is shown (Midjourney: a plan feature per pool).
    pub fn shows_progress(&self, r: &TaskRecord) -> bool {
        r.provider != Provider::Midjourney || self.plan.midjourney.output(r.pool).task_progress
    }

    /// The output as the plan gives it, with hosted files' links in place of the
    /// upstream's URLs.
    fn output(&self, r: &TaskRecord) -> Value {
        let out = self.plan_output(r);
        match self.hosted {
            Some(h) => h.show(r, out),
            None => out,
        }
    }

    /// The output as the plan gives it: Midjourney's optional fields the plan does not
    /// give in the pool the task ran in are absent (not `null`).
    fn plan_output(&self, r: &TaskRecord) -> Value {
        let mut out = r.output.clone();
        if r.provider != Provider::Midjourney {
            return out;
        }
        let fields = self.plan.midjourney.output(r.pool);
        if let Value::Object(m) = &mut out {
            if !fields.task_progress {
                m.remove("task_progress");
                m.remove("progress");
            }
            if !fields.discord_image_url {
                m.remove("discord_image_url");
                m.remove("temporary_image_urls");
            }
            if !fields.intermediate_image_urls.given(self.approved_extras) {
                m.remove("intermediate_image_urls");
            }
        }
        out
    }

    /// `meta.progress`: as reported where progress is shown, else 0 until completed.
    fn progress(&self, r: &TaskRecord) -> u8 {
        if self.shows_progress(r) || r.status == StoredStatus::Completed {
            r.progress
        } else {
            0
        }
    }
}

/// The task object (`data` of create, get, fetch and webhooks). Secrets are never in it.
pub fn task(r: &TaskRecord, load: Option<&TenantLoad>, logs: &[String], viewer: &Viewer) -> Value {
    let body = TaskBody::from_json(&r.body).ok();
    let input = body.as_ref().map_or(Value::Null, |b| b.input.clone());
    let task_type = body
        .as_ref()
        .map_or("", |b| b.task_type.as_str())
        .to_string();
    let error = task_error(r);
    let service_mode = if r.requested == ServiceMode::Byoa {
        "private"
    } else {
        "public"
    };
    // The secret is write-only: GoAPI's shape, always empty.
    let endpoint = r.webhook.as_ref().map_or("", |w| w.endpoint.as_str());
    let config = json!({"service_mode": service_mode,
                        "webhook_config": {"endpoint": endpoint, "secret": ""}});
    let process_mode = if r.provider == Provider::Midjourney {
        json!(r.process_mode.as_str())
    } else {
        Value::Null
    };
    let logs: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    json!({
        "task_id": r.id,
        "model": body.as_ref().map_or(r.provider.as_str(), TaskBody::model_name),
        "task_type": task_type,
        "status": status(r, load).as_str(),
        "config": config,
        "input": input,
        "output": viewer.output(r),
        "meta": {
            "created_at": time(r.created_ms),
            "started_at": time(r.started_ms),
            "ended_at": time(r.ended_ms),
            "usage": {"type": r.quota_kind.as_str(), "frozen": r.hold, "consume": r.consume},
            "is_using_private_pool": r.pool == ServiceMode::Byoa,
            "failover_triggered": r.failover,
            "account_id": r.account,
            "attempts": r.attempts,
            "progress": viewer.progress(r),
            "process_mode": process_mode,
        },
        "detail": null,
        "logs": logs,
        "error": error,
    })
}

/// The numeric `error.code` of a failed task's reason (API.md, "Error codes"); a reason
/// without a number of its own reads as an upstream refusal.
pub fn task_error_code(reason: &str) -> u32 {
    match reason {
        "upstream_timeout" => 10001,
        "account_error" => 10002,
        "retries_exhausted" => 10003,
        "insufficient_quota" => 10004,
        "cancelled" => 10005,
        "expired_in_queue" => 10006,
        _ => 10000,
    }
}

/// A task's error object in GoAPI's shape: `{code: 0, message: "", raw_message: "",
/// detail: null}` when it has none (never `null`); a failed or cancelled task's code per
/// reason, with `reason` beside it.
fn task_error(r: &TaskRecord) -> Value {
    match &r.error {
        Some(e) if !e.code.is_empty() && r.status != StoredStatus::Completed => json!({
            "code": task_error_code(&e.code), "message": e.message, "raw_message": e.raw,
            "detail": null, "reason": e.code}),
        _ => json!({"code": 0, "message": "", "raw_message": "", "detail": null}),
    }
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

/// `available` and `held` per quota kind, every kind present.
pub fn balances(b: &HashMap<QuotaKind, Balance>) -> (Value, Value) {
    let mut avail = Map::new();
    let mut held = Map::new();
    for k in QuotaKind::ALL {
        let v = b.get(&k).copied().unwrap_or_default();
        avail.insert(k.as_str().into(), json!(v.available));
        held.insert(k.as_str().into(), json!(v.held));
    }
    (Value::Object(avail), Value::Object(held))
}

/// `GET /api/v1/me`: the tenant, its settings, its caps and load per provider, and its
/// balances.
pub fn me(
    t: &Tenant,
    limits: &PlanLimits,
    settings: &TenantSettings,
    load: &[TenantLoad],
    balances: Value,
    held: Value,
) -> Value {
    let mut caps = Map::new();
    let mut in_flight = Map::new();
    let mut queued = Map::new();
    let mut max_queued = Map::new();
    for l in load {
        max_queued.insert(
            l.provider.as_str().into(),
            json!(settings.max_queued_for(l.provider)),
        );
        let p = l.provider.as_str();
        let cap = match l.provider {
            Provider::Gpts if !limits.gpts_ppu => Value::Null,
            _ => json!(limits.ppu_cap(l.provider)),
        };
        caps.insert(p.into(), cap);
        in_flight.insert(p.into(), json!(l.ppu_in_flight + l.byoa_in_flight));
        queued.insert(p.into(), json!(l.queued.max(0)));
    }
    json!({"tenant_id": t.tenant_id, "name": t.name, "plan": t.plan,
    "default_service_mode": t.default_service_mode.api_name(),
    "failover_max_wait_s": t.failover_max_wait_s,
    "max_pending_s": t.max_pending_s,
    "notification_webhook": t.notification_webhook,
    "caps": caps, "max_queued": max_queued, "balances": balances, "held": held,
    "in_flight": in_flight, "queued": queued})
}

/// A UTC day (days since the epoch) as `YYYY-MM-DD`.
fn date(day: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(day * 86_400);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

/// `GET /api/v1/usage`: the report's rows (day, provider: tasks, successes, failures,
/// cancelled, quota spent in the provider's quota kind, p50/p95 time from creation to
/// completion in ms) and totals per provider over the period.
pub fn usage(days: u64, rows: &[UsageDay]) -> Value {
    let mut totals = Map::new();
    let report: Vec<Value> = rows
        .iter()
        .map(|r| {
            let t = totals.entry(r.provider.as_str()).or_insert_with(|| {
                json!({"tasks": 0, "successes": 0, "failures": 0,
                    "cancelled": 0, "quota_spent": 0, "quota_kind": QuotaKind::of(r.provider)})
            });
            for (k, v) in [
                ("tasks", r.tasks()),
                ("successes", r.completed),
                ("failures", r.failed),
                ("cancelled", r.cancelled),
                ("quota_spent", r.spent),
            ] {
                t[k] = json!(t[k].as_u64().unwrap_or(0) + v);
            }
            json!({"date": date(r.day), "provider": r.provider, "tasks": r.tasks(),
                   "successes": r.completed, "failures": r.failed, "cancelled": r.cancelled,
                   "quota_spent": r.spent, "quota_kind": QuotaKind::of(r.provider),
                   "p50_ms": r.p50_ms, "p95_ms": r.p95_ms})
        })
        .collect();
    let (from, to) = match (rows.last(), rows.first()) {
        (Some(a), Some(b)) => (json!(date(a.day)), json!(date(b.day))),
        _ => (Value::Null, Value::Null),
    };
    json!({"days": days, "from": from, "to": to, "report": report, "totals": totals})
}

/// A tenant: id, name, plan, and whether the operator approved its "upon approval"
/// extras.
pub fn tenant(t: &Tenant) -> Value {
    json!({"tenant_id": t.tenant_id, "name": t.name, "plan": t.plan,
           "approved_extras": t.approved_extras})
}

/// A new tenant, with its API key (shown this once).
pub fn tenant_created(t: &Tenant, api_key: &str) -> Value {
    json!({"tenant_id": t.tenant_id, "name": t.name, "plan": t.plan, "api_key": api_key})
}

/// A tenant in the operator's list.
pub fn tenant_listed(t: &Tenant) -> Value {
    json!({"tenant_id": t.tenant_id, "name": t.name, "plan": t.plan, "created_at": t.created_at})
}

/// One provider in `GET /admin/v1/stats`: its queue and the PPU pool's accounts.
pub fn provider_stats(load: &ProviderLoad, pool: &[AccountInfo]) -> Value {
    let count = |f: &dyn Fn(&AccountState) -> bool| pool.iter().filter(|a| f(&a.state)).count();
    let capacity: u32 = pool.iter().map(|a| a.capacity.iter().sum::<u32>()).sum();
    json!({
    "queued": load.queued.max(0), "in_flight": load.in_flight,
    "pool": {"accounts": pool.len(), "capacity": capacity,
             "active": count(&|s| matches!(s, AccountState::Active)),
             "cooling_down": count(&|s| matches!(s, AccountState::CoolingDown { .. })),
             "disabled": count(&|s| matches!(s, AccountState::Disabled { .. }))}})
}

/// An account as the API shows it: state, capacity, load, and the credential hint
/// (`••••` + last 4), never the credentials.
/// An account's state as the API names it, with until when (ms), the stable reason code
/// and the reason's words: `active`, `checking`, `cooling_down`, `resting` (daily cap or
/// outside its window) or `disabled`.
pub fn account_state(
    a: &AccountInfo,
) -> (&'static str, Option<u64>, Option<String>, Option<String>) {
    match (&a.state, &a.resting) {
        (AccountState::Active, Some((until, why))) => {
            ("resting", Some(*until), Some(why.clone()), None)
        }
        (AccountState::Active, None) => ("active", None, None, None),
        (AccountState::Checking, _) => ("checking", None, None, None),
        (AccountState::CoolingDown { until_ms, reason }, _) => (
            "cooling_down",
            Some(*until_ms),
            Some(if reason.contains("no_fast") {
                "no_fast_hours".into()
            } else {
                "rate_limited".into()
            }),
            Some(reason.clone()),
        ),
        (AccountState::Disabled { reason }, _) => (
            "disabled",
            None,
            Some(switchyard_core::account::disabled_code(reason).into()),
            Some(reason.clone()),
        ),
    }
}

/// An account as the API shows it (credentials masked).
pub fn account(a: &AccountInfo) -> Value {
    let (state, until, reason, message) = account_state(a);
    let until = until.map_or(Value::Null, time);
    let per_mode = |v: &[u32; 3]| {
        if a.provider == Provider::Midjourney {
            json!({"relax": v[0], "fast": v[1], "turbo": v[2]})
        } else {
            json!({"default": v[0]})
        }
    };
    let field = crate::accounts::credential_fields(a.provider)[0];
    let bot_id = if a.bot_id > 0 {
        json!(a.bot_id)
    } else {
        Value::Null
    };
    let mut today = per_mode(&a.today);
    today["total"] = json!(a.today_total());
    let window = a.window.as_ref().map_or(Value::Null, |w| {
        json!({"start": ActiveWindow::hhmm(w.start), "end": ActiveWindow::hhmm(w.end),
               "tz": w.tz.as_deref().unwrap_or("UTC")})
    });
    json!({"account_id": a.id, "bot_id": bot_id, "provider": a.provider, "name": a.name, "state": state,
           "state_until": until, "state_reason": reason, "state_message": message,
           "capacity": per_mode(&a.capacity),
           "weight": a.weight, "backup": a.backup,
           "in_flight": a.in_flight.iter().sum::<u32>(),
           "no_fast_hours_until": a.fast_off_until_ms.map_or(Value::Null, time),
           "pacing": {"min_gap_s": a.pacing.min_gap_s, "max_gap_s": a.pacing.max_gap_s,
                      "default": !a.pacing_own},
           "daily_cap": a.daily_cap.map_or(Value::Null, |d| json!(d)),
           "active_window": window,
           "today": today,
           "next_allowed_at": a.next_allowed_ms.map_or(Value::Null, time),
           "credentials": {field: a.hint}})
}

/// The reply to an account's removal.
pub fn account_deleted(id: &str) -> Value {
    json!({"account_id": id, "deleted": true})
}
