//! `/api/v1/task`: create, get (with `?wait=`), fetch, cancel.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use switchyard_core::Provider;
use switchyard_scheduler::{CancelOutcome, TaskRecord, TenantLoad};

use crate::error::{ApiError, ok, ok_saying};
use crate::intake::{self, CreateTask};
use crate::json::{FromJson, Json, JsonWithBytes, object};
use crate::tenants::Tenant;
use crate::{Caller, Shared, Submitter, view};

/// Load for staged/pending, per provider.
async fn loads(state: &Shared, tenant: &str) -> HashMap<Provider, TenantLoad> {
    state
        .sched
        .tenant_load(tenant)
        .await
        .map(|v| v.into_iter().map(|l| (l.provider, l)).collect())
        .unwrap_or_default()
}

/// The task object of a record, as its tenant's plan shows it.
pub async fn render(
    state: &Shared,
    tenant: &Tenant,
    r: &TaskRecord,
    loads: &HashMap<Provider, TenantLoad>,
) -> Value {
    let logs = state.sched.task_log(r).await.unwrap_or_default();
    view::task(
        r,
        loads.get(&r.provider),
        &logs,
        &view::Viewer::of(state, tenant),
    )
}

/// The task object of a record, staged or pending as the tenant's load says now.
pub async fn render_now(state: &Shared, tenant: &Tenant, r: &TaskRecord) -> Value {
    let loads = loads(state, &tenant.tenant_id).await;
    render(state, tenant, r, &loads).await
}

/// `POST /api/v1/task`.
pub async fn create(
    State(state): State<Shared>,
    Submitter(tenant): Submitter,
    headers: HeaderMap,
    JsonWithBytes { value: req, bytes }: JsonWithBytes<CreateTask>,
) -> Result<Response, ApiError> {
    let idempotency = intake::idempotency(&headers, &bytes);
    let new = intake::prepare(&state, &tenant, req, idempotency).await?;
    let submitted = intake::submit(&state, &new).await?;
    let rec = state
        .sched
        .get_task(&tenant.tenant_id, &submitted.id)
        .await?
        .ok_or_else(|| ApiError::task_not_found(&submitted.id))?;
    let data = render_now(&state, &tenant, &rec).await;
    Ok(view::created(data, submitted.replayed))
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
        let terminal = rec.api_status(false).is_terminal();
        if terminal || Instant::now() >= deadline {
            return Ok(ok(render_now(&state, &tenant, &rec).await));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The body of `POST /api/v1/task/fetch`: `task_ids`, at most 100.
pub struct FetchTasks {
    /// The ids asked for.
    pub task_ids: Vec<String>,
}

impl FromJson for FetchTasks {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let m = object(&v, "", &["task_ids"])?;
        let task_ids: Vec<String> = match m.get("task_ids") {
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
        if task_ids.len() > 100 {
            return Err(ApiError::invalid(
                "/task_ids",
                format!("at most 100 task_ids per call; got {}", task_ids.len()),
            ));
        }
        Ok(FetchTasks { task_ids })
    }
}

/// `POST /api/v1/task/fetch`.
pub async fn fetch(
    State(state): State<Shared>,
    Caller(tenant): Caller,
    Json(FetchTasks { task_ids: ids }): Json<FetchTasks>,
) -> Result<Response, ApiError> {
    let recs = state.sched.get_tasks(&tenant.tenant_id, &ids).await?;
    let l = loads(&state, &tenant.tenant_id).await;
    let mut out = Vec::new();
    for r in recs.iter().flatten() {
        out.push(render(&state, &tenant, r, &l).await);
    }
    Ok(ok(Value::Array(out)))
}

/// `DELETE /api/v1/task/{id}` and `POST /api/v1/task/{id}/cancel`: GoAPI's reply,
/// `message: "task <id> canceled"` and the task.
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
    let data = render(&state, &tenant, &rec, &HashMap::new()).await;
    Ok(ok_saying(&format!("task {id} canceled"), data))
}

/// The query of `DELETE /api/v1/tasks`.
#[derive(serde::Deserialize)]
pub struct BulkCancelQuery {
    created_before: Option<String>,
    model: Option<String>,
}

/// `DELETE /api/v1/tasks?created_before=<unix s>&model=<model or all>`: cancel every
/// cancellable task of the caller's that matches; replies the count and the ids.
pub async fn cancel_many(
    State(state): State<Shared>,
    Caller(tenant): Caller,
    Query(q): Query<BulkCancelQuery>,
) -> Result<Response, ApiError> {
    let before_ms = match q.created_before.as_deref().map(str::trim) {
        None | Some("") => u64::MAX,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .ok_or_else(|| {
                ApiError::invalid(
                    "/created_before",
                    "created_before must be a Unix time in seconds",
                )
            })?,
    };
    let providers: Vec<Provider> = match q.model.as_deref().map(str::trim) {
        None | Some("") | Some("all") => Provider::ALL.to_vec(),
        Some(m) => vec![Provider::from_model_name(m).ok_or_else(|| {
            ApiError::from(switchyard_core::SpecError::UnknownModel(m.to_string()))
        })?],
    };
    let mut ids = Vec::new();
    for p in providers {
        ids.extend(
            state
                .sched
                .cancel_created_before(&tenant.tenant_id, p, before_ms)
                .await?,
        );
    }
    let n = ids.len();
    Ok(ok_saying(
        &format!("{n} tasks canceled"),
        json!({"cancelled": n, "task_ids": ids}),
    ))
}
