//! The tenant's own view (`me`, settings) and the operator's routes (tenants, credits,
//! stats).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use switchyard_core::{NotEntitled, Plan, Provider, QuotaKind, ServiceMode};
use switchyard_scheduler::Owner;

use crate::error::{ApiError, ok};
use crate::json::{self, FromJson, Json, body_object};
use crate::tenants::{self, Tenant};
use crate::{Caller, Operator, Shared, view, webhooks};

async fn balances_json(state: &Shared, tenant: &str) -> Result<(Value, Value), ApiError> {
    Ok(view::balances(&state.sched.balances(tenant).await?))
}

/// `GET /api/v1/me`.
pub async fn me(State(state): State<Shared>, Caller(t): Caller) -> Result<Response, ApiError> {
    let (balances, held) = balances_json(&state, &t.tenant_id).await?;
    let load = state.sched.tenant_load(&t.tenant_id).await?;
    let limits = state.config.plans.get(t.plan);
    let settings = t.settings(&state.config);
    Ok(ok(view::me(&t, limits, &settings, &load, balances, held)))
}

/// `?days=` of the usage report.
#[derive(serde::Deserialize)]
pub struct UsageQuery {
    days: Option<String>,
}

/// `GET /api/v1/usage?days=N`: the plan's data report (1 day on Developer, 7 on Premium
/// and Enterprise; none on Hobbyist), per UTC day and provider, newest first. Without
/// `days`, the plan's whole period.
pub async fn usage(
    State(state): State<Shared>,
    Caller(t): Caller,
    Query(q): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let plans = &state.config.plans;
    let allowed = u64::from(plans.get(t.plan).report_days);
    let days = match q.days.as_deref().map(str::trim) {
        None | Some("") => allowed.max(1),
        Some(d) => d
            .parse::<u64>()
            .ok()
            .filter(|d| (1..=366).contains(d))
            .ok_or_else(|| {
                ApiError::invalid("/days", "days must be a whole number of days, 1 or more")
            })?,
    };
    if days > allowed {
        return Err(NotEntitled {
            plan: t.plan,
            needs: plans.lowest_plan_where(|l| u64::from(l.report_days) >= days),
            feature: format!("a {days}-day data report"),
        }
        .into());
    }
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let rows = state.sched.usage(&t.tenant_id, today, days).await?;
    Ok(ok(view::usage(days, &rows)))
}

/// `PATCH /api/v1/me/settings`.
pub async fn settings(
    State(state): State<Shared>,
    Caller(mut t): Caller,
    Json(v): Json<Value>,
) -> Result<Response, ApiError> {
    let m = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("/body", "the body must be a JSON object"))?;
    for (k, val) in m {
        match k.as_str() {
            "default_service_mode" => {
                t.default_service_mode = match val.as_str() {
                    Some("public") => ServiceMode::Ppu,
                    Some("private") => ServiceMode::Byoa,
                    _ => {
                        return Err(ApiError::invalid(
                            "/default_service_mode",
                            "default_service_mode must be \"public\" or \"private\"",
                        ));
                    }
                }
            }
            "failover_max_wait_s" => {
                t.failover_max_wait_s = val.as_u64().filter(|n| *n <= 86_400).ok_or_else(|| {
                    ApiError::invalid(
                        "/failover_max_wait_s",
                        "failover_max_wait_s must be 0 to 86400 seconds",
                    )
                })?;
            }
            "max_pending_s" => {
                t.max_pending_s = match val {
                    Value::Null => 0,
                    v => v.as_u64().filter(|n| *n <= 7 * 86_400).ok_or_else(|| {
                        ApiError::invalid(
                            "/max_pending_s",
                            "max_pending_s must be 0 (no limit) to 604800 seconds",
                        )
                    })?,
                };
            }
            "downgrade_when_no_fast_hours" => {
                t.downgrade_when_no_fast_hours = val.as_bool().ok_or_else(|| {
                    ApiError::invalid(
                        "/downgrade_when_no_fast_hours",
                        "downgrade_when_no_fast_hours must be true or false",
                    )
                })?;
            }
            "max_queued" => {
                t.max_queued = match val {
                    Value::Null => None,
                    v => Some(
                        v.as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    "/max_queued",
                                    "max_queued must be a whole number, 1 or more (null: the plan's)",
                                )
                            })?,
                    ),
                };
            }
            "notification_webhook" => match val {
                Value::Null => {
                    t.notification_webhook = None;
                    t.notification_secret = None;
                }
                Value::Object(w) => {
                    let endpoint = w.get("endpoint").and_then(Value::as_str).unwrap_or("");
                    webhooks::check_endpoint(
                        endpoint,
                        state.config.dispatcher.allow_private_webhooks,
                    )
                    .map_err(|m| ApiError::invalid("/notification_webhook/endpoint", m))?;
                    t.notification_webhook = Some(endpoint.to_string());
                    t.notification_secret = w
                        .get("secret")
                        .and_then(Value::as_str)
                        .map(|s| state.secrets.seal(s));
                }
                _ => {
                    return Err(ApiError::invalid(
                        "/notification_webhook",
                        "notification_webhook must be {endpoint, secret?} or null",
                    ));
                }
            },
            other => {
                return Err(ApiError::invalid(
                    &format!("/{other}"),
                    format!("unknown setting `{other}`"),
                ));
            }
        }
    }
    tenants::save(&state.sched, &t).await?;
    me(State(state), Caller(t)).await
}

fn plan_of(v: Option<&Value>) -> Result<Option<Plan>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            s.parse()
                .map(Some)
                .map_err(|e: switchyard_core::ParseEnumError| {
                    ApiError::invalid("/plan", e.to_string())
                })
        }
        Some(_) => Err(ApiError::invalid("/plan", "plan must be a string")),
    }
}

/// The body of a tenant create: a name (1 to 200 characters) and a plan (the
/// configured default when absent).
pub struct NewTenant {
    name: String,
    plan: Option<Plan>,
}

impl FromJson for NewTenant {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let m = body_object(&v, &["name", "plan"], "")?;
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty() && n.len() <= 200)
            .ok_or_else(|| ApiError::invalid("/name", "name is required (1 to 200 characters)"))?;
        Ok(NewTenant {
            name: name.to_string(),
            plan: plan_of(m.get("plan"))?,
        })
    }
}

/// `POST /admin/v1/tenants`.
pub async fn create_tenant(
    State(state): State<Shared>,
    _: Operator,
    Json(NewTenant { name, plan }): Json<NewTenant>,
) -> Result<Response, ApiError> {
    let plan = plan.unwrap_or(state.config.defaults.plan);
    let t = Tenant {
        tenant_id: format!("t_{}", uuid::Uuid::now_v7().simple()),
        name,
        plan,
        created_at: crate::view::time(now_ms())
            .as_str()
            .unwrap_or("")
            .to_string(),
        default_service_mode: ServiceMode::Ppu,
        failover_max_wait_s: 0,
        notification_webhook: None,
        notification_secret: None,
        approved_extras: false,
        max_queued: None,
        max_pending_s: 0,
        downgrade_when_no_fast_hours: true,
    };
    let key = tenants::create(&state.sched, &t).await?;
    Ok(ok(view::tenant_created(&t, &key)))
}

/// `GET /admin/v1/tenants`.
pub async fn list_tenants(State(state): State<Shared>, _: Operator) -> Result<Response, ApiError> {
    let all = tenants::list(&state.sched).await?;
    Ok(ok(Value::Array(
        all.iter().map(view::tenant_listed).collect(),
    )))
}

/// The body of a tenant update: a new name or plan, each optional.
pub struct TenantChange {
    name: Option<String>,
    plan: Option<Plan>,
    approved_extras: Option<bool>,
}

impl FromJson for TenantChange {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let m = body_object(
            &v,
            &["name", "plan", "approved_extras"],
            "; Enterprise caps are set in config under [plans.enterprise]",
        )?;
        Ok(TenantChange {
            plan: plan_of(m.get("plan"))?,
            name: m.get("name").and_then(Value::as_str).map(str::to_string),
            approved_extras: match m.get("approved_extras") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "/approved_extras",
                        "approved_extras must be true or false",
                    ));
                }
            },
        })
    }
}

/// `PATCH /admin/v1/tenants/{id}`.
pub async fn update_tenant(
    State(state): State<Shared>,
    _: Operator,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let mut t = tenants::get(&state.sched, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant {id}")))?;
    let change: TenantChange = json::read(&state, body).await?;
    if let Some(p) = change.plan {
        t.plan = p;
    }
    if let Some(n) = change.name {
        t.name = n;
    }
    if let Some(a) = change.approved_extras {
        t.approved_extras = a;
    }
    tenants::save(&state.sched, &t).await?;
    Ok(ok(view::tenant(&t)))
}

/// The body of a top-up: a quota kind and a whole amount from 1 to 10⁹.
pub struct TopUp {
    kind: QuotaKind,
    amount: i64,
}

impl FromJson for TopUp {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let m = v
            .as_object()
            .ok_or_else(|| ApiError::invalid("/body", "the body must be a JSON object"))?;
        let kind: QuotaKind = m
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("/kind", "kind is required"))?
            .parse()
            .map_err(|e: switchyard_core::ParseEnumError| {
                ApiError::invalid("/kind", e.to_string())
            })?;
        let amount = m
            .get("amount")
            .and_then(Value::as_i64)
            .filter(|a| *a > 0 && *a <= 1_000_000_000)
            .ok_or_else(|| {
                ApiError::invalid(
                    "/amount",
                    "amount must be a whole number from 1 to 1000000000",
                )
            })?;
        Ok(TopUp { kind, amount })
    }
}

/// `POST /admin/v1/tenants/{id}/credits` (Idempotency-Key required).
pub async fn credit(
    State(state): State<Shared>,
    _: Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let t = tenants::get(&state.sched, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant {id}")))?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "/headers/idempotency-key",
                "top-ups need an Idempotency-Key header, so a retry cannot credit twice",
            )
        })?
        .to_string();
    let TopUp { kind, amount } = json::read(&state, body).await?;
    state.config.plans.top_up_entitlement(t.plan, kind)?;
    if let Some(first) = tenants::stored_reply(&state.sched, &format!("credit:{id}"), &key).await? {
        return Ok(ok(first));
    }
    let (_, replay) = state.sched.top_up(&id, kind, amount, &key).await?;
    let (balances, _) = balances_json(&state, &id).await?;
    let reply = json!({"tenant_id": id, "balances": balances});
    if !replay {
        tenants::store_reply(&state.sched, &format!("credit:{id}"), &key, &reply).await?;
    }
    Ok(ok(reply))
}

/// `GET /admin/v1/stats`.
pub async fn stats(State(state): State<Shared>, _: Operator) -> Result<Response, ApiError> {
    let mut providers = serde_json::Map::new();
    for p in Provider::ALL {
        let load = state.sched.provider_load(p).await?;
        let pool = state.sched.list_accounts(p, &Owner::Pool).await?;
        providers.insert(p.as_str().into(), view::provider_stats(&load, &pool));
    }
    Ok(ok(json!({"providers": providers})))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
