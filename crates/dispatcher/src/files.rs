//! Hosted results (API.md, "Results are hosted"): the links the task object shows in place
//! of the upstream's URLs, and `GET /files/{task}/{name}`, which serves a stored file to
//! whoever holds a link — no API key — until the task's retention ends.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use switchyard_core::Config;
use switchyard_core::secrets::SecretBox;
use switchyard_files::{Files, HOSTED_FIELD, LinkSigner, content_type};
use switchyard_scheduler::TaskRecord;

use crate::Shared;
use crate::error::ApiError;

/// The store, the signer, and the address links start with.
pub struct Hosted {
    store: Result<Option<Files>, String>,
    signer: LinkSigner,
    configured_url: String,
    listening_url: OnceLock<String>,
}

impl Hosted {
    /// From `config.storage` and the master key (links are signed with a key derived
    /// from it, so every dispatcher checks every other's links).
    pub fn open(config: &Config, secrets: &SecretBox) -> Hosted {
        Hosted {
            store: Files::open(&config.storage).map_err(|e| e.to_string()),
            signer: LinkSigner::new(secrets.signing_key()),
            configured_url: config
                .dispatcher
                .public_url
                .trim_end_matches('/')
                .to_string(),
            listening_url: OnceLock::new(),
        }
    }

    /// Why the store cannot be used, when it cannot (the binaries refuse to start then).
    pub fn problem(&self) -> Option<&str> {
        self.store.as_ref().err().map(String::as_str)
    }

    /// The dispatcher listens at `addr`: links start there unless `dispatcher.public_url`
    /// says otherwise.
    pub fn listening_at(&self, addr: SocketAddr) {
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        let _ = self.listening_url.set(format!("http://{host}"));
    }

    fn base(&self) -> &str {
        if self.configured_url.is_empty() {
            self.listening_url.get().map_or("", String::as_str)
        } else {
            &self.configured_url
        }
    }

    /// The output with each hosted file's link in its place, and without the list of
    /// hosted files. A task stored by a worker that hosted nothing is shown as it is.
    pub fn show(&self, r: &TaskRecord, mut output: Value) -> Value {
        let Some(Value::Object(hosted)) =
            output.as_object_mut().and_then(|m| m.remove(HOSTED_FIELD))
        else {
            return output;
        };
        if !matches!(self.store, Ok(Some(_))) {
            return output;
        }
        let expires = r.retained_until_ms().div_ceil(1000);
        for (pointer, name) in hosted {
            let (Some(name), Some(slot)) = (name.as_str(), output.pointer_mut(&pointer)) else {
                continue;
            };
            *slot = Value::String(self.signer.link(self.base(), &r.id, name, expires));
        }
        output
    }
}

/// The query of a link.
#[derive(Deserialize)]
pub struct LinkQuery {
    expires: Option<u64>,
    sig: Option<String>,
}

/// `GET /files/{task}/{name}?expires=…&sig=…`: the stored file, for a link that is
/// signed and has not expired.
pub async fn serve_file(
    State(s): State<Shared>,
    Path((task, name)): Path<(String, String)>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let (Some(expires), Some(sig)) = (q.expires, q.sig) else {
        return ApiError::forbidden("a hosted file needs its link's expires and sig parameters")
            .into_response();
    };
    if !s.files.signer.verify(&task, &name, expires, &sig) {
        return ApiError::forbidden(
            "this link's signature does not match; use the link the task shows",
        )
        .into_response();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let gone = || {
        ApiError::not_found(
            "file_not_found",
            "this file is gone: the task's retention ended",
        )
        .into_response()
    };
    if now >= expires {
        return gone();
    }
    let files = match &s.files.store {
        Ok(Some(f)) => f,
        Ok(None) | Err(_) => return gone(),
    };
    match files.get(&task, &name).await {
        Ok(Some(bytes)) => (
            StatusCode::OK,
            [
                ("content-type", content_type(&name).to_string()),
                (
                    "cache-control",
                    format!("private, max-age={}", expires - now),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => gone(),
        Err(e) => {
            tracing::warn!(task = %task, error = %e, "could not read a hosted file");
            ApiError::unavailable().into_response()
        }
    }
}
