//! The operator dashboard: `GET /dashboard` (a self-contained page, no build step) and
//! the data it polls, `GET /admin/v1/dashboard`: per provider the queue, tasks in flight
//! against each tenant's cap, every pool account with its state and load, throughput per
//! minute over the last 15 minutes, and recent failures.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{Html, Response};
use serde_json::{Value, json};
use switchyard_core::Provider;
use switchyard_scheduler::Owner;

use crate::error::{ApiError, ok};
use crate::{Operator, Shared, tenants};

const PAGE: &str = include_str!("dashboard.html");

/// `GET /dashboard`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `GET /admin/v1/dashboard`.
pub async fn data(State(state): State<Shared>, _: Operator) -> Result<Response, ApiError> {
    let now = now_ms();
    let minute = |ms: u64| ms / 60_000;
    let mut providers = serde_json::Map::new();
    let all_tenants: Vec<_> = tenants::list(&state.sched)
        .await?
        .into_iter()
        .take(50)
        .collect();
    let ids: Vec<String> = all_tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let tenant_loads = state.sched.tenant_loads(&ids).await?;
    let mut throughput: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for m in minute(now).saturating_sub(14)..=minute(now) {
        throughput.insert(m, (0, 0));
    }
    let mut failures = Vec::new();
    for p in Provider::ALL {
        let load = state.sched.provider_load(p).await?;
        let pool = state.sched.list_accounts(p, &Owner::Pool).await?;
        // Outcomes per account over the window, from the event streams (bounded reads).
        let mut per_account: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let events = state
            .sched
            .recent_events(p, now.saturating_sub(15 * 60_000), 5000)
            .await?;
        for e in &events {
            let field = |k: &str| e.fields.get(k).cloned().unwrap_or_default();
            let kind = field("type");
            let at: u64 = field("at").parse().unwrap_or(0);
            for (account, n) in e.completions() {
                per_account.entry(account).or_default().0 += n;
                if let Some(slot) = throughput.get_mut(&minute(at)) {
                    slot.0 += n;
                }
            }
            if kind == "failed" {
                per_account.entry(field("account")).or_default().1 += 1;
                if let Some(slot) = throughput.get_mut(&minute(at)) {
                    slot.1 += 1;
                }
            }
            if kind == "failed" && failures.len() < 20 {
                failures.push(
                    json!({"provider": p, "task_id": field("task"), "code": field("code"),
                    "account": field("account"), "at": crate::view::time(at)}),
                );
            }
        }
        let accounts: Vec<Value> = pool
            .iter()
            .map(|a| {
                let (s, until, code, message) = crate::view::account_state(a);
                let reason = message.or(code).unwrap_or_default();
                let (ok_n, failed_n) = per_account.get(&a.id).copied().unwrap_or_default();
                let window = a.window.as_ref().map(|w| {
                    format!("{}–{} {}", switchyard_core::ActiveWindow::hhmm(w.start),
                        switchyard_core::ActiveWindow::hhmm(w.end), w.tz.as_deref().unwrap_or("UTC"))
                });
                let cap_total = a.daily_cap.map(|d| d.all.unwrap_or(0) + d.relax.unwrap_or(0) + d.fast.unwrap_or(0) + d.turbo.unwrap_or(0));
                json!({"account_id": a.id, "name": a.name, "state": s, "reason": reason,
                       "state_until": until.map(crate::view::time),
                       "next_allowed_at": a.next_allowed_ms.map(crate::view::time),
                       "today": a.today_total(), "daily_cap": cap_total, "window": window,
                       "in_flight": a.in_flight.iter().sum::<u32>(), "capacity": a.capacity.iter().sum::<u32>(),
                       "recent": {"completed": ok_n, "failed": failed_n}})
            })
            .collect();
        let mut tenant_rows = Vec::new();
        for (t, loads) in all_tenants.iter().zip(&tenant_loads) {
            if let Some(l) = loads.iter().find(|l| l.provider == p) {
                tenant_rows.push(
                    json!({"tenant_id": t.tenant_id, "name": t.name, "plan": t.plan,
                    "ppu_in_flight": l.ppu_in_flight, "byoa_in_flight": l.byoa_in_flight,
                    "cap": l.cap, "queued": l.queued.max(0)}),
                );
            }
        }
        providers.insert(
            p.as_str().into(),
            json!({"queued": load.queued.max(0), "in_flight": load.in_flight,
            "accounts": accounts, "tenants": tenant_rows}),
        );
    }
    let series: Vec<Value> = throughput
        .iter()
        .map(|(m, (c, f))| json!({"minute": crate::view::time(m * 60_000), "completed": c, "failed": f}))
        .collect();
    Ok(ok(
        json!({"providers": providers, "throughput": series, "failures": failures}),
    ))
}
