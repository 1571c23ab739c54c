//! `/api/v1/task`: create, get (with `?wait=`), fetch, cancel.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use switchyard_core::{Origin, Provider, ServiceMode, SpecError, TaskBody, TaskSpec};
use switchyard_scheduler::{CancelOutcome, NewTask, Owner, SubmitError, TaskRecord, TenantLoad};

use crate::error::{ApiError, ok};
use crate::{Caller, Shared, tenants, view, webhooks};

/// Read a body up to the configured limit (413 beyond), then parse JSON (400 `/body`).
pub async fn read_json(state: &Shared, body: Body) -> Result<(Value, Vec<u8>), ApiError> {
    let limit = state.config.dispatcher.body_limit_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("/body", format!("the body is not valid JSON: {e}")))?;
    Ok((v, bytes.to_vec()))
}

fn object<'a>(
    v: &'a Value,
    field: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, ApiError> {
    let m = v.as_object().ok_or_else(|| {
        ApiError::invalid(
            field,
            format!(
                "{} must be a JSON object",
                if field.is_empty() { "the body" } else { field }
            ),
        )
    })?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            &format!("{field}/{k}"),
            format!(
                "unknown field `{k}`; expected one of: {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(m)
}

fn string_field<'a>(m: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match m.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::invalid(
            &format!("/{name}"),
            format!("{name} is required"),
        )),
        Some(_) => Err(ApiError::invalid(
            &format!("/{name}"),
            format!("{name} must be a string"),
        )),
    }
}

/// A request body that must be a JSON object with only `allowed` keys (`hint` is added
/// to the unknown-field message).
pub fn body_object<'a>(
    v: &'a Value,
    allowed: &[&str],
    hint: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    let m = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("/body", "the body must be a JSON object"))?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            &format!("/{k}"),
            format!(
                "unknown field `{k}`; expected one of: {}{hint}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(m)
}

/// Load for staged/pending, per provider.
async fn loads(state: &Shared, tenant: &str) -> HashMap<Provider, TenantLoad> {
    state
        .sched
        .tenant_load(tenant)
        .await
        .map(|v| v.into_iter().map(|l| (l.provider, l)).collect())
        .unwrap_or_default()
}

/// The task object of a record.
pub async fn render(
    state: &Shared,
    r: &TaskRecord,
    loads: &HashMap<Provider, TenantLoad>,
) -> Value {
    let logs = state.sched.task_log(r).await.unwrap_or_default();
    view::task(r, loads.get(&r.provider), &logs)
}

/// `POST /api/v1/task`.
pub async fn create(
    State(state): State<Shared>,
    Caller(tenant): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (v, raw) = read_json(&state, body).await?;
    let top = object(&v, "", &["model", "task_type", "input", "config"])?;
    let model = string_field(top, "model")?;
    let task_type = string_field(top, "task_type")?;
    let input = top.get("input").cloned().unwrap_or(Value::Null);
    let mut spec = TaskSpec::parse(model, task_type, &input, &state.config.parse_options())
        .map_err(|e| match e {
            SpecError::UnknownModel(_) => ApiError::bad("unknown_model", "/model", e.to_string()),
            SpecError::UnknownTaskType { .. } => {
                ApiError::bad("unknown_task_type", "/task_type", e.to_string())
            }
            SpecError::Invalid { field, message } => ApiError::invalid(&field, message),
        })?;

    // config
    let empty = Value::Object(Map::new());
    let cfg_v = top.get("config").filter(|c| !c.is_null()).unwrap_or(&empty);
    let cfg = object(cfg_v, "/config", &["service_mode", "webhook_config"])?;
    let mut service_mode = match cfg.get("service_mode") {
        None | Some(Value::Null) => tenant.default_service_mode,
        Some(Value::String(s)) if s.is_empty() => tenant.default_service_mode,
        Some(Value::String(s)) if s == "public" => ServiceMode::Ppu,
        Some(Value::String(s)) if s == "private" => ServiceMode::Byoa,
        Some(_) => {
            return Err(ApiError::invalid(
                "/config/service_mode",
                "service_mode must be \"public\" (PPU pool), \"private\" (your hosted accounts) or \"\" (your default)",
            ));
        }
    };
    let mut webhook: Option<(String, Option<String>)> = None;
    if let Some(w) = cfg.get("webhook_config").filter(|w| !w.is_null()) {
        let w = object(w, "/config/webhook_config", &["endpoint", "secret"])?;
        let endpoint = match w.get("endpoint") {
            Some(Value::String(e)) if !e.is_empty() => e.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => String::new(),
            Some(_) => {
                return Err(ApiError::invalid(
                    "/config/webhook_config/endpoint",
                    "endpoint must be a string",
                ));
            }
        };
        let secret = match w.get("secret") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            None | Some(Value::Null) | Some(Value::String(_)) => None,
            Some(_) => {
                return Err(ApiError::invalid(
                    "/config/webhook_config/secret",
                    "secret must be a string",
                ));
            }
        };
        if !endpoint.is_empty() {
            webhooks::check_endpoint(&endpoint, state.config.dispatcher.allow_private_webhooks)
                .map_err(|m| ApiError::invalid("/config/webhook_config/endpoint", m))?;
            webhook = Some((endpoint, secret));
        }
    }

    // Follow-ups run where their origin ran, with its mode and version.
    let mut pin = None;
    let mut origin = None;
    if let Some(origin_id) = spec.origin_task_id().map(str::to_string) {
        let o = state
            .sched
            .get_task(&tenant.tenant_id, &origin_id)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    "task_not_found",
                    format!("origin task {origin_id} not found for this key"),
                )
            })?;
        if o.provider != spec.provider() {
            return Err(ApiError::invalid(
                "/input/origin_task_id",
                format!("the origin task is a {} task", o.provider),
            ));
        }
        if o.status() != "completed" {
            return Err(ApiError::invalid(
                "/input/origin_task_id",
                format!(
                    "the origin task is {}; follow-ups need a completed task",
                    view::status(&o, None)
                ),
            ));
        }
        let ob = TaskBody::from_json(o.get("body")).ok();
        if let (TaskSpec::Midjourney(t), Some(r)) =
            (&mut spec, ob.as_ref().and_then(|b| b.resolved.clone()))
            && let (Ok(m), Ok(v)) = (
                serde_json::from_value(r["process_mode"].clone()),
                serde_json::from_value(r["version"].clone()),
            )
        {
            t.inherit(m, v);
        }
        service_mode = if o.get("pool") == "byoa" {
            ServiceMode::Byoa
        } else {
            ServiceMode::Ppu
        };
        pin = Some(o.get("account").to_string()).filter(|a| !a.is_empty());
        origin = Some(Origin {
            task_id: origin_id,
            output: serde_json::from_str(o.get("output")).unwrap_or(Value::Null),
        });
    }

    if spec.bot_id().is_some() && service_mode == ServiceMode::Ppu {
        return Err(ApiError::invalid(
            "/input/bot_id",
            "bot_id pins one of your hosted accounts; set config.service_mode to \"private\"",
        ));
    }
    state
        .config
        .plans
        .entitlement(tenant.plan, service_mode, &spec)
        .map_err(|e| ApiError::not_entitled(e.to_string()))?;
    if let Some(bot) = spec.bot_id() {
        let provider = spec.provider();
        match state
            .sched
            .get_account(provider, &Owner::Tenant(tenant.tenant_id.clone()), bot)
            .await?
        {
            Some(_) => pin = Some(bot.to_string()),
            None => return Err(ApiError::account_not_found(bot)),
        }
    }
    state.rate_check(&tenant.tenant_id)?;

    let resolved = match &spec {
        TaskSpec::Midjourney(t) => {
            Some(json!({"process_mode": t.process_mode, "version": t.version}))
        }
        _ => None,
    };
    let body = TaskBody {
        model: spec.provider(),
        task_type: spec.task_type().to_string(),
        input,
        resolved,
        origin,
    };
    let mut extra = Vec::new();
    if let Some((endpoint, secret)) = &webhook {
        extra.push(("wh_endpoint".to_string(), endpoint.clone()));
        if let Some(s) = secret {
            extra.push(("wh_secret".to_string(), state.secrets.seal(s)));
        }
    }
    let idempotency = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(|k| {
            (
                k.chars().take(200).collect::<String>(),
                hex::encode(Sha256::digest(&raw)),
            )
        });
    // A key reserved here is released below whatever the submit answers: it is kept
    // only when a task exists for it, so a refused request can be retried with it.
    if let Some((k, _)) = &idempotency {
        match tenants::idempotency_reserve(
            &state.sched,
            &tenant.tenant_id,
            k,
            spec.provider().as_str(),
        )
        .await?
        {
            tenants::IdemClaim::Reserved => {}
            tenants::IdemClaim::Taken {
                provider,
                created: true,
            } => {
                return Err(ApiError::conflict(
                    "idempotency_key_reused",
                    format!(
                        "this Idempotency-Key was used for a {provider} task with a different request"
                    ),
                ));
            }
            tenants::IdemClaim::Taken {
                provider,
                created: false,
            } => {
                return Err(ApiError::conflict(
                    "idempotency_key_reused",
                    format!(
                        "this Idempotency-Key is in use by a {provider} request in progress; retry once it has an answer"
                    ),
                ));
            }
        }
    }
    let new = NewTask {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.tenant_id.clone(),
        provider: spec.provider(),
        service_mode,
        process_mode: spec.process_mode(),
        pin,
        ppu_price: state.config.prices.price(ServiceMode::Ppu, &spec),
        body: body.to_json(),
        extra,
        idempotency: idempotency.clone(),
    };
    let outcome = state.sched.submit(&new).await;
    // Redis failed (the task may or may not exist): the reservation is left to expire,
    // which holds up only a retry for another provider.
    if let Some((k, _)) = &idempotency
        && !matches!(outcome, Err(SubmitError::Scheduler(_)))
        && let Err(e) =
            tenants::idempotency_release(&state.sched, &tenant.tenant_id, k, outcome.is_ok()).await
    {
        tracing::warn!(error = %e, "could not release an Idempotency-Key reservation");
    }
    let submitted = outcome.map_err(|e| match e {
        SubmitError::InsufficientQuota {
            kind,
            needed,
            available,
        } => ApiError::insufficient_quota(format!(
            "this task costs {needed} {kind} and {available} is available; top up and retry"
        )),
        SubmitError::NoAccount(m) => ApiError::no_account(format!(
            "{m}; add or re-enable a {} account, or use config.service_mode \"public\"",
            spec.provider()
        )),
        SubmitError::AccountNotFound(a) => ApiError::account_not_found(&a),
        SubmitError::IdempotencyKeyReused(id) => ApiError::conflict(
            "idempotency_key_reused",
            format!("this Idempotency-Key was used for task {id} with a different request"),
        ),
        SubmitError::NoTenant(_) => ApiError::unauthorized("unknown tenant"),
        SubmitError::Scheduler(e) => e.into(),
    })?;
    if !submitted.replayed {
        let pool = match submitted.pool {
            Some(ServiceMode::Byoa) => "byoa",
            _ => "ppu",
        };
        ::metrics::counter!("switchyard_tasks_created_total", "provider" => spec.provider().as_str(), "pool" => pool)
            .increment(1);
    }
    let rec = state
        .sched
        .get_task(&tenant.tenant_id, &submitted.id)
        .await?
        .ok_or_else(|| ApiError::task_not_found(&submitted.id))?;
    let data = render(&state, &rec, &loads(&state, &tenant.tenant_id).await).await;
    let mut resp = ok(data);
    if submitted.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// `?wait=S`.
#[derive(serde::Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

/// `GET /api/v1/task/{id}`.
pub async fn get_one(
    State(state): State<Shared>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let wait = match q.wait.as_deref() {
        None | Some("") => 0,
        Some(w) => w
            .parse::<u64>()
            .map_err(|_| {
                ApiError::invalid("/wait", "wait must be a whole number of seconds, 0 to 60")
            })?
            .min(60),
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let rec = state
            .sched
            .get_task(&tenant.tenant_id, &id)
            .await?
            .ok_or_else(|| ApiError::task_not_found(&id))?;
        let terminal = matches!(rec.status(), "completed" | "failed" | "cancelled");
        if terminal || Instant::now() >= deadline {
            let data = render(&state, &rec, &loads(&state, &tenant.tenant_id).await).await;
            return Ok(ok(data));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /api/v1/task/fetch`.
pub async fn fetch(
    State(state): State<Shared>,
    Caller(tenant): Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let (v, _) = read_json(&state, body).await?;
    let m = object(&v, "", &["task_ids"])?;
    let ids: Vec<String> = match m.get("task_ids") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid("/task_ids", "task_ids must be an array of strings")
            })?,
        _ => {
            return Err(ApiError::invalid(
                "/task_ids",
                "task_ids must be an array of task ids",
            ));
        }
    };
    if ids.len() > 100 {
        return Err(ApiError::invalid(
            "/task_ids",
            format!("at most 100 task_ids per call; got {}", ids.len()),
        ));
    }
    let recs = state.sched.get_tasks(&tenant.tenant_id, &ids).await?;
    let l = loads(&state, &tenant.tenant_id).await;
    let mut out = Vec::new();
    for r in recs.iter().flatten() {
        out.push(render(&state, r, &l).await);
    }
    Ok(ok(Value::Array(out)))
}

/// `DELETE /api/v1/task/{id}`.
pub async fn cancel(
    State(state): State<Shared>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.sched.cancel(&tenant.tenant_id, &id).await? {
        CancelOutcome::Cancelled | CancelOutcome::AlreadyCancelled => {}
        CancelOutcome::NotFound => return Err(ApiError::task_not_found(&id)),
        CancelOutcome::NotCancellable(s) => {
            return Err(ApiError::conflict(
                "not_cancellable",
                format!("the task is {s}; only staged or pending tasks can be cancelled"),
            ));
        }
    }
    let rec = state
        .sched
        .get_task(&tenant.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::task_not_found(&id))?;
    Ok(ok(render(&state, &rec, &HashMap::new()).await).into_response())
}
