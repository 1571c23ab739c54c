//! The API's error envelope and stable error codes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error: status, stable code, message, and the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// What was wrong and what to do.
    pub message: String,
    /// JSON pointer to the field (400s).
    pub field: Option<String>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
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

    /// 503: Redis unreachable; nothing was written.
    pub fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the task store is unreachable; nothing was written, retry shortly",
        )
    }
}

impl From<switchyard_scheduler::SchedulerError> for ApiError {
    fn from(e: switchyard_scheduler::SchedulerError) -> Self {
        tracing::warn!(error = %e, "store error");
        ApiError::unavailable()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            error["field"] = json!(f);
        }
        let body = json!({"code": self.status.as_u16(), "message": self.message, "data": {"error": error}});
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
    axum::Json(json!({"code": 200, "message": "success", "data": data})).into_response()
}
