//! Task intake: a create request turned into the [`NewTask`] the scheduler is given, and
//! the submit around it.
//!
//! In order: the typed input (`switchyard_core::TaskSpec`), `config` (service mode,
//! webhook), the origin of a follow-up (which fixes its mode, account and Midjourney
//! version), the `bot_id` rule, entitlement, the pinned account, the rate limit, then the
//! price and the stored body. [`submit`] reserves the `Idempotency-Key`, runs the one
//! submit script and releases the reservation. The first refusal is the answer.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use switchyard_core::{Origin, ServiceMode, TaskBody, TaskSpec, TaskStatus};
use switchyard_scheduler::{NewTask, Owner, SubmitError, Submitted};

use crate::error::{ApiError, Refused};
use crate::json::{FromJson, object, string_field};
use crate::tenants::{self, IdemClaim, Tenant};
use crate::{Shared, view, webhooks};

/// The body of `POST /api/v1/task`, its shape checked: an object of `model` and
/// `task_type` (strings), `input` and `config`. `input` and `config` are checked by
/// [`prepare`], `input` first.
pub struct CreateTask {
    /// The provider's name.
    pub model: String,
    /// The provider's task type.
    pub task_type: String,
    /// The task's input, as sent.
    pub input: Value,
    /// `config`, as sent (`null` when absent).
    pub config: Value,
}

impl FromJson for CreateTask {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let top = object(&v, "", &["model", "task_type", "input", "config"])?;
        Ok(CreateTask {
            model: string_field(top, "model")?.to_string(),
            task_type: string_field(top, "task_type")?.to_string(),
            input: top.get("input").cloned().unwrap_or(Value::Null),
            config: top.get("config").cloned().unwrap_or(Value::Null),
        })
    }
}

/// A task's webhook: where its events go, and the secret they are signed with.
struct Webhook {
    endpoint: String,
    secret: Option<String>,
}

/// `config`: the service mode (the tenant's default when absent or `""`) and a webhook.
fn config(
    v: &Value,
    default_mode: ServiceMode,
    allow_private_webhooks: bool,
) -> Result<(ServiceMode, Option<Webhook>), ApiError> {
    let empty = Value::Object(Map::new());
    let cfg_v = Some(v).filter(|c| !c.is_null()).unwrap_or(&empty);
    let cfg = object(cfg_v, "/config", &["service_mode", "webhook_config"])?;
    let service_mode = match cfg.get("service_mode") {
        None | Some(Value::Null) => default_mode,
        Some(Value::String(s)) if s.is_empty() => default_mode,
        Some(Value::String(s)) if s == "public" => ServiceMode::Ppu,
        Some(Value::String(s)) if s == "private" => ServiceMode::Byoa,
        Some(_) => {
            return Err(ApiError::invalid(
                "/config/service_mode",
                "service_mode must be \"public\" (PPU pool), \"private\" (your hosted accounts) or \"\" (your default)",
            ));
        }
    };
    let mut webhook = None;
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
            webhooks::check_endpoint(&endpoint, allow_private_webhooks)
                .map_err(|m| ApiError::invalid("/config/webhook_config/endpoint", m))?;
            webhook = Some(Webhook { endpoint, secret });
        }
    }
    Ok((service_mode, webhook))
}

/// What a follow-up takes from its origin task.
struct FollowUp {
    service_mode: ServiceMode,
    pin: Option<String>,
    origin: Origin,
}

/// Follow-ups run where their origin ran, with its mode and (Midjourney) its process
/// mode and version, which are written into `spec`.
async fn follow_up(
    state: &Shared,
    tenant: &Tenant,
    spec: &mut TaskSpec,
    origin_id: String,
) -> Result<FollowUp, ApiError> {
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
    if view::stored_status(&o) != Some(TaskStatus::Completed) {
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
        (&mut *spec, ob.as_ref().and_then(|b| b.resolved.clone()))
        && let (Ok(m), Ok(v)) = (
            serde_json::from_value(r["process_mode"].clone()),
            serde_json::from_value(r["version"].clone()),
        )
    {
        t.inherit(m, v);
    }
    Ok(FollowUp {
        service_mode: if o.get("pool") == ServiceMode::Byoa.as_str() {
            ServiceMode::Byoa
        } else {
            ServiceMode::Ppu
        },
        pin: Some(o.get("account").to_string()).filter(|a| !a.is_empty()),
        origin: Origin {
            task_id: origin_id,
            output: serde_json::from_str(o.get("output")).unwrap_or(Value::Null),
        },
    })
}

/// The `Idempotency-Key` header (at most 200 characters kept) and the SHA-256 of the
/// request it came with.
pub fn idempotency(headers: &HeaderMap, body: &Bytes) -> Option<(String, String)> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(|k| {
            (
                k.chars().take(200).collect::<String>(),
                hex::encode(Sha256::digest(body)),
            )
        })
}

/// Check a create request for `tenant` and build the task to submit.
pub async fn prepare(
    state: &Shared,
    tenant: &Tenant,
    req: CreateTask,
    idempotency: Option<(String, String)>,
) -> Result<NewTask, ApiError> {
    let CreateTask {
        model,
        task_type,
        input,
        config: cfg,
    } = req;
    let mut spec = TaskSpec::parse(&model, &task_type, &input, &state.config.parse_options())?;
    let (mut service_mode, webhook) = config(
        &cfg,
        tenant.default_service_mode,
        state.config.dispatcher.allow_private_webhooks,
    )?;

    let mut pin = None;
    let mut origin = None;
    if let Some(origin_id) = spec.origin_task_id().map(str::to_string) {
        let f = follow_up(state, tenant, &mut spec, origin_id).await?;
        service_mode = f.service_mode;
        pin = f.pin;
        origin = Some(f.origin);
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
        .entitlement(tenant.plan, service_mode, &spec)?;
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
    if let Some(Webhook { endpoint, secret }) = &webhook {
        extra.push(("wh_endpoint".to_string(), endpoint.clone()));
        if let Some(s) = secret {
            extra.push(("wh_secret".to_string(), state.secrets.seal(s)));
        }
    }
    Ok(NewTask {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.tenant_id.clone(),
        provider: spec.provider(),
        service_mode,
        process_mode: spec.process_mode(),
        pin,
        ppu_price: state.config.prices.price(ServiceMode::Ppu, &spec),
        body: body.to_json(),
        extra,
        idempotency,
    })
}

/// Reserve the task's `Idempotency-Key` (if any), submit it, and release the reservation.
/// A new task is counted in `switchyard_tasks_created_total`.
pub async fn submit(state: &Shared, new: &NewTask) -> Result<Submitted, ApiError> {
    // A key reserved here is released below whatever the submit answers: it is kept
    // only when a task exists for it, so a refused request can be retried with it.
    if let Some((k, _)) = &new.idempotency {
        reserve(state, &new.tenant, k, new.provider.as_str()).await?;
    }
    let outcome = state.sched.submit(new).await;
    // Redis failed (the task may or may not exist): the reservation is left to expire,
    // which holds up only a retry for another provider.
    if let Some((k, _)) = &new.idempotency
        && !matches!(outcome, Err(SubmitError::Scheduler(_)))
        && let Err(e) =
            tenants::idempotency_release(&state.sched, &new.tenant, k, outcome.is_ok()).await
    {
        tracing::warn!(error = %e, "could not release an Idempotency-Key reservation");
    }
    let submitted = outcome.map_err(|error| Refused {
        provider: new.provider,
        error,
    })?;
    if !submitted.replayed {
        let pool = match submitted.pool {
            Some(ServiceMode::Byoa) => "byoa",
            _ => "ppu",
        };
        ::metrics::counter!("switchyard_tasks_created_total", "provider" => new.provider.as_str(), "pool" => pool)
            .increment(1);
    }
    Ok(submitted)
}

/// Reserve an `Idempotency-Key` for a request for `provider`; 409 while another request
/// holds it or when it names a task made from a different request.
async fn reserve(state: &Shared, tenant: &str, key: &str, provider: &str) -> Result<(), ApiError> {
    match tenants::idempotency_reserve(&state.sched, tenant, key, provider).await? {
        IdemClaim::Reserved => Ok(()),
        IdemClaim::Taken {
            provider,
            created: true,
        } => Err(ApiError::conflict(
            "idempotency_key_reused",
            format!("this Idempotency-Key was used for a {provider} task with a different request"),
        )),
        IdemClaim::Taken {
            provider,
            created: false,
        } => Err(ApiError::conflict(
            "idempotency_key_reused",
            format!(
                "this Idempotency-Key is in use by a {provider} request in progress; retry once it has an answer"
            ),
        )),
    }
}
