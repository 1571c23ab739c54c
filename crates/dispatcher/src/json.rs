//! JSON request bodies: the [`Json`] extractor, whose rejection is the API's error
//! envelope, and the field checks request types are built from.
//!
//! A body is read up to `dispatcher.body_limit_bytes` (413 `payload_too_large` beyond),
//! parsed as JSON (400 `invalid_request` at `/body` when it is not), then turned into the
//! request type by its [`FromJson`], which names a bad or unknown field with a JSON
//! pointer. The content type is not checked: a JSON body is read as JSON whatever its
//! header says.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::Shared;
use crate::error::ApiError;

/// A request type built from a parsed JSON body; refusals name the field.
pub trait FromJson: Sized {
    /// Check the body's shape and build the request.
    fn from_json(value: Value) -> Result<Self, ApiError>;
}

/// Any JSON value, for handlers that check the fields themselves.
impl FromJson for Value {
    fn from_json(value: Value) -> Result<Self, ApiError> {
        Ok(value)
    }
}

/// A JSON request body as `T`.
pub struct Json<T>(pub T);

impl<T: FromJson> FromRequest<Shared> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        read(state, req.into_body()).await.map(Json)
    }
}

/// A JSON request body as `T`, with the bytes it was sent as (what an `Idempotency-Key`
/// is bound to).
pub struct JsonWithBytes<T> {
    /// The request.
    pub value: T,
    /// The body as sent.
    pub bytes: Bytes,
}

impl<T: FromJson> FromRequest<Shared> for JsonWithBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        let (value, bytes) = parse(state, req.into_body()).await?;
        Ok(JsonWithBytes {
            value: T::from_json(value)?,
            bytes,
        })
    }
}

/// Read and build a body inside a handler, for routes that look their resource up first
/// (a missing resource is answered before a bad body).
pub async fn read<T: FromJson>(state: &Shared, body: Body) -> Result<T, ApiError> {
    let (value, _) = parse(state, body).await?;
    T::from_json(value)
}

/// Read a body up to the configured limit (413 beyond), then parse JSON (400 `/body`).
async fn parse(state: &Shared, body: Body) -> Result<(Value, Bytes), ApiError> {
    let limit = state.config.dispatcher.body_limit_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("/body", format!("the body is not valid JSON: {e}")))?;
    Ok((v, bytes))
}

/// A value at `field` (a JSON pointer; empty for the body itself) that must be an object
/// with only `allowed` keys.
pub fn object<'a>(
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

/// A required string member of the body.
pub fn string_field<'a>(m: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
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

/// A request body that must be a JSON object (400 at `/body`) with only `allowed` keys
/// (`hint` is added to the unknown-field message).
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_named_with_pointers() {
        let e = object(&json!([1]), "", &["a"]).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.message.as_str()),
            (Some(""), "the body must be a JSON object")
        );
        let e = object(&json!({"b": 1}), "/config", &["a"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("/config/b"));
        assert_eq!(e.message, "unknown field `b`; expected one of: a");
        let e = body_object(&json!(1), &["a"], "").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("/body"));
        let e = body_object(&json!({"b": 1}), &["a"], "; see the docs").unwrap_err();
        assert_eq!(
            e.message,
            "unknown field `b`; expected one of: a; see the docs"
        );
        let m = json!({"s": "x", "n": 1});
        let m = m.as_object().unwrap();
        assert_eq!(string_field(m, "s").unwrap(), "x");
        assert_eq!(
            string_field(m, "n").unwrap_err().message,
            "n must be a string"
        );
        assert_eq!(string_field(m, "z").unwrap_err().message, "z is required");
    }
}
