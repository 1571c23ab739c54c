//! Task intake: a create request turned into the [`NewTask`] the scheduler is given, and
//! the submit around it.
//!
//! In order: the typed input (`switchyard_core::TaskSpec`), `config` (service mode,
//! webhook), then the scheduler's intake (`Scheduler::intake`: the origin of a follow-up,
//! the `bot_id` rule, entitlement, the pinned account, the price and the stored body),
//! then the rate limit. [`submit`] reserves the `Idempotency-Key`, runs the one submit
//! script and releases the reservation. The first refusal is the answer.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use switchyard_core::{ServiceMode, TaskSpec};
use switchyard_scheduler::{NewTask, SubmitError, Submitted, TaskRequest};

use crate::error::{ApiError, Refused};
use crate::json::{FromJson, object, string_field};
use crate::tenants::{self, IdemClaim, Tenant};
use crate::{Shared, webhooks};

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
    let spec = TaskSpec::parse(&model, &task_type, &input, &state.config.parse_options())?;
    let (service_mode, webhook) = config(
        &cfg,
        tenant.default_service_mode,
        state.config.dispatcher.allow_private_webhooks,
    )?;

    let mut extra = Vec::new();
    if let Some(Webhook { endpoint, secret }) = &webhook {
        extra.push(("wh_endpoint".to_string(), endpoint.clone()));
        if let Some(s) = secret {
            extra.push(("wh_secret".to_string(), state.secrets.seal(s)));
        }
    }
    let request = TaskRequest {
        model,
        task_type,
        spec,
        input,
        service_mode,
        extra,
        idempotency,
    };
    let task = state
        .sched
        .intake(&tenant.tenant_id, tenant.plan, request)
        .await?;
    if let Err(limited) = state.rate_check(&tenant.tenant_id) {
        // 402 and queue_full come before rate_limited in the validation order: a request
        // over its rate that either would refuse is answered so (read only: nothing is
        // submitted).
        return Err(refusal_before_rate(state, tenant, &task)
            .await?
            .unwrap_or(limited));
    }
    Ok(task)
}

/// What the submit would refuse `task` for, read without submitting: a PPU balance short
/// of its price (counting Midjourney's credit exchange), or a full queue.
async fn refusal_before_rate(
    state: &Shared,
    tenant: &Tenant,
    task: &NewTask,
) -> Result<Option<ApiError>, ApiError> {
    if task.service_mode == ServiceMode::Ppu && task.ppu_price.amount > 0 {
        let balances = state.sched.balances(&tenant.tenant_id).await?;
        let kind = task.ppu_price.kind;
        let available = balances.get(&kind).map_or(0, |b| b.available.max(0) as u64);
        let credits = balances
            .get(&switchyard_core::QuotaKind::Credits)
            .map_or(0, |b| b.available.max(0) as u64);
        let exchangeable = kind == switchyard_core::QuotaKind::MjQuota
            && state.config.prices.mj_auto_conversion(available, credits) > 0;
        if available < task.ppu_price.amount && !exchangeable {
            return Ok(Some(
                Refused {
                    provider: task.provider,
                    error: SubmitError::InsufficientQuota {
                        kind,
                        needed: task.ppu_price.amount,
                        available,
                    },
                }
                .into(),
            ));
        }
    }
    if let Some(limit) = tenant.settings(&state.config).max_queued_for(task.provider) {
        let load = state.sched.tenant_load(&tenant.tenant_id).await?;
        let queued = load
            .iter()
            .find(|l| l.provider == task.provider)
            .map_or(0, |l| l.queued.max(0) as u64);
        if queued >= u64::from(limit) {
            return Ok(Some(ApiError::queue_full(task.provider, limit)));
        }
    }
    Ok(None)
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
