//! The API's error envelope and stable error codes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_core::{NotEntitled, Provider, SpecError};
use switchyard_scheduler::{AccountError, IntakeError, SchedulerError, SubmitError};

/// An API error: status, stable code, message, and the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case reason (`data.error.reason`).
    pub reason: &'static str,
    /// What was wrong and what to do.
    pub message: String,
    /// JSON pointer to the field (400s).
    pub field: Option<String>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request` naming a field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// 400 with another code, naming a field.
    pub fn bad(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 `not_entitled`.
    pub fn not_entitled(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "not_entitled", message)
    }

    /// 402.
    pub fn insufficient_quota(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYMENT_REQUIRED, "insufficient_quota", message)
    }

    /// 404 `task_not_found`.
    pub fn task_not_found(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            format!("no task {id} for this key (unknown, expired, or another tenant's)"),
        )
    }

    /// 404 `account_not_found`.
    pub fn account_not_found(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "account_not_found",
            format!("no account {id} for this key"),
        )
    }

    /// 404 for anything else.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; see the API reference"),
        )
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 422 `invalid_credentials`: the account's probe failed.
    pub fn invalid_credentials(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_credentials",
            message,
        )
    }

    /// 422 `no_account`.
    pub fn no_account(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_account", message)
    }

    /// 429.
    pub fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests for this key; retry after {} s",
                    retry_after.max(1)
                ),
            )
        }
    }

    /// 429 `queue_full`: the tenant has `limit` tasks waiting for `provider`.
    pub fn queue_full(provider: Provider, limit: u32) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!(
                "you have {limit} {provider} tasks waiting, the most your plan and settings allow (max_queued); wait for some to start, or cancel some"
            ),
        )
    }

    /// 503: Redis unreachable; nothing was written.
    pub fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the task store is unreachable; nothing was written, retry shortly",
        )
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        tracing::warn!(error = %e, "store error");
        ApiError::unavailable()
    }
}

/// An invalid task: `unknown_model` at `/model`, `unknown_task_type` at `/task_type`, or
/// `invalid_request` at the field the spec names.
impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::UnknownModel(_) => ApiError::bad("unknown_model", "/model", e.to_string()),
            SpecError::UnknownTaskType { .. } => {
                ApiError::bad("unknown_task_type", "/task_type", e.to_string())
            }
            SpecError::Invalid { field, message } => ApiError::invalid(&field, message),
        }
    }
}

/// 403 `not_entitled`, saying which plan would allow it.
impl From<NotEntitled> for ApiError {
    fn from(e: NotEntitled) -> Self {
        ApiError::not_entitled(e.to_string())
    }
}

/// A request the intake refused: 404 `task_not_found` for a missing origin task, 400 at
/// the field, 400 `prompt_rejected` naming the word, 403 `not_entitled`, 404
/// `account_not_found` for an unknown `bot_id`.
impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::OriginNotFound(_) => ApiError::not_found("task_not_found", e.to_string()),
            IntakeError::Invalid { field, message } => ApiError::invalid(field, message),
            IntakeError::NotEntitled(e) => e.into(),
            IntakeError::AccountNotFound(id) => ApiError::account_not_found(&id),
            IntakeError::PromptRejected { field, matched } => ApiError::bad(
                "prompt_rejected",
                &field,
                format!(
                    "the prompt contains `{matched}`, which is not allowed; remove it and retry"
                ),
            ),
            IntakeError::Scheduler(e) => e.into(),
        }
    }
}

/// A hosted or pool account change the scheduler refused.
impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Exists(id) => {
                ApiError::conflict("account_exists", format!("account {id} exists"))
            }
            AccountError::NotFound(id) => ApiError::account_not_found(&id),
            AccountError::Scheduler(e) => e.into(),
        }
    }
}

/// A submit the scheduler refused, with the provider the task was for (the `no_account`
/// reply names it).
#[derive(Debug)]
pub struct Refused {
    /// The task's provider.
    pub provider: Provider,
    /// What the scheduler answered.
    pub error: SubmitError,
}

impl From<Refused> for ApiError {
    fn from(Refused { provider, error }: Refused) -> Self {
        match error {
            SubmitError::InsufficientQuota {
                kind,
                needed,
                available,
            } => ApiError::insufficient_quota(format!(
                "this task costs {needed} {kind} and {available} is available; top up and retry"
            )),
            SubmitError::NoAccount(m) => ApiError::no_account(format!(
                "{m}; add or re-enable a {provider} account, or use config.service_mode \"public\""
            )),
            SubmitError::AccountNotFound(a) => ApiError::account_not_found(&a),
            SubmitError::IdempotencyKeyReused(id) => ApiError::conflict(
                "idempotency_key_reused",
                format!("this Idempotency-Key was used for task {id} with a different request"),
            ),
            SubmitError::QueueFull(limit) => ApiError::queue_full(provider, limit),
            SubmitError::NoTenant(_) => ApiError::unauthorized("unknown tenant"),
            SubmitError::Scheduler(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        let mut error = json!({"code": code, "message": self.message, "raw_message": "",
                               "detail": null, "reason": self.reason});
        if let Some(f) = &self.field {
            error["field"] = json!(f);
        }
        let body = json!({"code": code, "message": self.message, "data": {"error": error, "detail": null}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp
    }
}

/// A success envelope.
pub fn ok(data: serde_json::Value) -> Response {
    ok_saying("success", data)
}

/// 201 with a success envelope: something was created.
pub fn created(data: serde_json::Value) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(json!({"code": 201, "message": "success", "data": data})),
    )
        .into_response()
}

/// A success envelope with its own message (GoAPI's cancel replies).
pub fn ok_saying(message: &str, data: serde_json::Value) -> Response {
    axum::Json(json!({"code": 200, "message": message, "data": data})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{Plan, QuotaKind};

    /// One row per mapped error: what it becomes on the wire.
    #[test]
    fn errors_map_to_stable_codes() {
        let mj = Provider::Midjourney;
        let refused = |error| {
            ApiError::from(Refused {
                provider: mj,
                error,
            })
        };
        let rows: Vec<(ApiError, u16, &str, Option<&str>, &str)> = vec![
            (
                SpecError::UnknownModel("kling".into()).into(),
                400,
                "unknown_model",
                Some("/model"),
                "unknown model `kling`; expected one of: midjourney, suno (also `music-s`, `suno/v3-chorip`), luma, gpts",
            ),
            (
                SpecError::input("prompt", "prompt is required").into(),
                400,
                "invalid_request",
                Some("/input/prompt"),
                "prompt is required",
            ),
            (
                NotEntitled {
                    plan: Plan::Hobbyist,
                    needs: None,
                    feature: "suno lyrics".into(),
                }
                .into(),
                403,
                "not_entitled",
                None,
                "suno lyrics is not available on the hobbyist plan",
            ),
            (
                AccountError::Exists("acc_1".into()).into(),
                409,
                "account_exists",
                None,
                "account acc_1 exists",
            ),
            (
                AccountError::NotFound("acc_1".into()).into(),
                404,
                "account_not_found",
                None,
                "no account acc_1 for this key",
            ),
            (
                refused(SubmitError::InsufficientQuota {
                    kind: QuotaKind::MjQuota,
                    needed: 8,
                    available: 5,
                }),
                402,
                "insufficient_quota",
                None,
                "this task costs 8 mj_quota and 5 is available; top up and retry",
            ),
            (
                refused(SubmitError::NoAccount("no usable account".into())),
                422,
                "no_account",
                None,
                "no usable account; add or re-enable a midjourney account, or use config.service_mode \"public\"",
            ),
            (
                refused(SubmitError::IdempotencyKeyReused("t1".into())),
                409,
                "idempotency_key_reused",
                None,
                "this Idempotency-Key was used for task t1 with a different request",
            ),
            (
                refused(SubmitError::QueueFull(30)),
                429,
                "queue_full",
                None,
                "you have 30 midjourney tasks waiting, the most your plan and settings allow (max_queued); wait for some to start, or cancel some",
            ),
            (
                refused(SubmitError::NoTenant("t".into())),
                401,
                "unauthorized",
                None,
                "unknown tenant",
            ),
        ];
        for (e, status, code, field, message) in rows {
            assert_eq!(e.status.as_u16(), status, "{e:?}");
            assert_eq!(e.reason, code, "{e:?}");
            assert!(crate::openapi::ERROR_CODES.contains(&e.reason), "{e:?}");
            assert_eq!(e.field.as_deref(), field, "{e:?}");
            assert_eq!(e.message, message, "{e:?}");
        }
    }
}
