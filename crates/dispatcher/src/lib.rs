//! The dispatcher: the gateway-facing HTTP API (`shared/API.md`) over the scheduler.
//!
//! It owns authentication (API keys → tenants, the admin token), request validation
//! (`json.rs`) and its error envelope (`error.rs`), task intake with entitlement and
//! pricing of each request (`intake.rs`, through `switchyard-core`), hosted-account
//! management with credentials sealed at rest, the replies (`view.rs`: the task's status,
//! meta, output), webhooks (`webhooks/`), and a Rust client (`client.rs`). It holds no scheduling state of its own: every change goes through one
//! scheduler script.

pub mod accounts;
pub mod admin;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod files;
pub mod intake;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod tasks;
pub mod tenants;
pub mod view;
pub mod webhooks;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchyard_core::Config;
use switchyard_core::secrets::SecretBox;
use switchyard_scheduler::Scheduler;

use crate::error::ApiError;
use crate::tenants::Tenant;

/// Shared state of every handler.
pub struct AppState {
    /// The scheduler.
    pub sched: Scheduler,
    /// Configuration.
    pub config: Config,
    /// Seals credentials and webhook secrets.
    pub secrets: SecretBox,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Hosted results: the store (when on) and the links to it.
    pub files: files::Hosted,
}

/// The state handle.
pub type Shared = Arc<AppState>;

impl AppState {
    /// State over a scheduler.
    pub fn new(sched: Scheduler, secrets: SecretBox) -> Shared {
        metrics::handle();
        let config = sched.config().clone();
        let d = &config.dispatcher;
        let quota =
            Quota::per_second(NonZeroU32::new(d.rate_limit_per_s).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(d.rate_limit_burst).unwrap_or(NonZeroU32::MIN));
        let files = files::Hosted::open(&config, &secrets);
        Arc::new(AppState {
            sched,
            config,
            secrets,
            limiter: RateLimiter::keyed(quota),
            files,
        })
    }

    /// Take one request from the tenant's rate budget, or say when to come back.
    pub fn rate_check(&self, tenant: &str) -> Result<(), ApiError> {
        match self.limiter.check_key(&tenant.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                Err(ApiError::rate_limited(wait.as_secs() + 1))
            }
        }
    }
}

/// The calling tenant, from `X-API-Key`, with one request taken from its rate budget
/// (a `?wait` long poll counts once).
pub struct Caller(pub Tenant);

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let Submitter(t) = Submitter::from_request_parts(parts, state).await?;
        state.rate_check(&t.tenant_id)?;
        Ok(Caller(t))
    }
}

/// The calling tenant of a create, from `X-API-Key`, not yet rate-checked: the create
/// takes from the budget last, after its other checks (API.md's validation order).
pub struct Submitter(pub Tenant);

impl FromRequestParts<Shared> for Submitter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing X-API-Key header"))?;
        match tenants::by_key(&state.sched, key).await? {
            Some(t) => Ok(Submitter(t)),
            None => Err(ApiError::unauthorized("unknown API key")),
        }
    }
}

/// The operator, from `Authorization: Bearer <admin token>`.
pub struct Operator;

impl FromRequestParts<Shared> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let expected = &state.config.dispatcher.admin_token;
        if expected.is_empty() {
            return Err(ApiError::forbidden(
                "the admin API is off: set dispatcher.admin_token (SWITCHYARD_DISPATCHER__ADMIN_TOKEN)",
            ));
        }
        let given = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <admin token>"))?;
        if tenants::constant_time_eq(given.trim(), expected) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized("wrong admin token"))
        }
    }
}

/// Every route of the API.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/task", post(tasks::create))
        .route("/api/v1/task/fetch", post(tasks::fetch))
        .route(
            "/api/v1/task/{id}",
            get(tasks::get_one).delete(tasks::cancel),
        )
        .route("/api/v1/task/{id}/cancel", post(tasks::cancel))
        .route("/api/v1/tasks", axum::routing::delete(tasks::cancel_many))
        .route(
            "/api/v1/accounts",
            post(accounts::create).get(accounts::list),
        )
        .route(
            "/api/v1/accounts/{id}",
            patch(accounts::update).delete(accounts::remove),
        )
        .route("/api/v1/accounts/{id}/check", post(accounts::check))
        .route("/api/v1/me", get(admin::me))
        .route("/api/v1/me/settings", patch(admin::settings))
        .route("/api/v1/usage", get(admin::usage))
        .route(
            "/admin/v1/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route("/admin/v1/tenants/{id}", patch(admin::update_tenant))
        .route("/admin/v1/tenants/{id}/credits", post(admin::credit))
        .route(
            "/admin/v1/pool/accounts",
            post(accounts::pool_create).get(accounts::pool_list),
        )
        .route(
            "/admin/v1/pool/accounts/{id}",
            patch(accounts::pool_update).delete(accounts::pool_remove),
        )
        .route(
            "/admin/v1/pool/accounts/{id}/check",
            post(accounts::pool_check),
        )
        .route("/admin/v1/stats", get(admin::stats))
        .route("/admin/v1/dashboard", get(dashboard::data))
        .route("/dashboard", get(dashboard::page))
        .route("/files/{task}/{name}", get(files::serve_file))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_route))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/readyz", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn ready(State(s): State<Shared>) -> Response {
    match s.sched.ping().await {
        Ok(()) => "ready".into_response(),
        Err(_) => ApiError::unavailable().into_response(),
    }
}

async fn metrics_route(State(s): State<Shared>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics::render(&s).await,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route; see the API reference")
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

/// Serve until `shutdown` completes; also runs the webhook deliverer.
pub async fn serve(
    state: Shared,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        state.files.listening_at(addr);
    }
    let deliverer = tokio::spawn(webhooks::run(state.clone()));
    let app = router(state);
    let r = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    deliverer.abort();
    r
}
