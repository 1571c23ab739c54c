//! The worker runtime every provider binary shares.
//!
//! It owns claiming (in batches, while it has local capacity), lease heartbeats, per-account
//! pacing, the task timeout, turning an upstream outcome into complete / retry / cool-down /
//! disable / fail, the reaper of its provider, and graceful shutdown (stop claiming, let
//! running tasks finish within a grace period, hand back the rest so they are re-queued at
//! once).
//!
//! It knows nothing of any upstream's protocol: a provider crate implements [`Upstream`],
//! one small trait, and this runtime drives it.
//!
//! This file holds that trait and what an adapter uses: [`Job`], [`Control`],
//! [`UpstreamError`] and the HTTP helpers most upstreams share. `runtime` holds the
//! [`Worker`] (claim loop, heartbeats, reaper, the per-task pipeline, shutdown); `lease`
//! a run's lease clock, the Redis retries it allows and the [`Control`] behind it;
//! `outcome` the one mapping from a run's result to a scheduler call and a metric label;
//! `start` a worker process's start-up ([`run_main`], logs, the metrics endpoint,
//! signals); `config_load` what every binary reads at start-up (the config file, the
//! environment, the master key).

mod acks;
pub mod config_load;
mod host;
mod lease;
mod outcome;
mod runtime;
mod start;

use async_trait::async_trait;
use serde_json::Value;
use switchyard_core::{Origin, Provider, TaskSpec};

pub use host::open_files;
pub use runtime::Worker;
pub use start::{
    init_logs, init_logs_at, run_main, serve_metrics, shutdown_signal, wait_for_signal,
};
pub use switchyard_files::{HOSTED_FIELD, safe_name};

/// One task as the upstream adapter sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The task id.
    pub task_id: String,
    /// The account it runs on.
    pub account_id: String,
    /// The typed task (its process mode resolved; a follow-up's inherited).
    pub spec: TaskSpec,
    /// For follow-ups: the origin task's id and output.
    pub origin: Option<Origin>,
    /// The account's credentials (opened; never log them).
    pub credentials: Value,
    /// 1 for the first run.
    pub attempt: u32,
    /// Set when an earlier run already submitted upstream: resume from it, do not submit
    /// again.
    pub upstream_ref: Option<String>,
}

impl Job {
    /// A credential field as text ("" when absent).
    pub fn credential(&self, field: &str) -> &str {
        self.credentials[field].as_str().unwrap_or("")
    }
}

/// The lease was lost: another worker owns the task now. Stop working on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lease on this task was lost")]
pub struct LeaseLost;

/// What an adapter may tell the runtime while a task runs.
#[async_trait]
pub trait Control: Send + Sync {
    /// Store the upstream reference, at once after the upstream accepted the task (or
    /// before submitting, as an intent that finds the job again), so a re-claimed task
    /// resumes instead of submitting twice. An empty reference says the upstream has no
    /// job for the task (it refused the submission): the stored one is dropped, and a
    /// retry submits afresh, on any account.
    async fn reference(&self, upstream_ref: &str) -> Result<(), LeaseLost>;
    /// Report progress (0–100) and, optionally, partial output.
    async fn progress(&self, percent: u8, partial: Option<&Value>) -> Result<(), LeaseLost>;
    /// Wait for the account's pacing (its gap since its previous submission, held in
    /// Redis across every worker process). Call it right before the request that makes a
    /// new upstream job, once per job.
    async fn pace(&self) -> Result<(), LeaseLost> {
        Ok(())
    }
}

/// How an upstream call failed; the runtime maps each to a scheduler outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Network trouble, 5xx, a timeout: retry, possibly on another account.
    #[error("transient upstream failure: {0}")]
    Transient(String),
    /// 429, queue full, usage limit: cool the account down.
    #[error("rate limited for {retry_after_ms} ms: {message}")]
    RateLimited {
        /// How long the account should rest (0: the configured default).
        retry_after_ms: u64,
        /// What the upstream said.
        message: String,
    },
    /// The account's fast hours ran out: it takes no fast or turbo work for a while and
    /// keeps serving relax.
    #[error("no fast hours for {retry_after_ms} ms: {message}")]
    NoFastHours {
        /// How long fast and turbo stay off (0: an hour).
        retry_after_ms: u64,
        /// What the upstream said.
        message: String,
    },
    /// 401, ban, captcha, subscription gone: disable the account.
    #[error("account unusable: {reason}")]
    AccountDead {
        /// Why (for the tenant; never a secret).
        reason: String,
    },
    /// The upstream refused the task itself: fail it, no retry.
    #[error("rejected upstream: {message}")]
    BadRequest {
        /// For the tenant.
        message: String,
        /// The upstream's own text.
        raw: String,
    },
    /// The lease was lost while running.
    #[error("lease lost")]
    LeaseLost,
}

impl UpstreamError {
    /// The task itself cannot be run upstream (bad input for this upstream): no retry.
    pub fn rejected(message: &str) -> Self {
        UpstreamError::BadRequest {
            message: message.into(),
            raw: String::new(),
        }
    }
}

impl From<LeaseLost> for UpstreamError {
    fn from(_: LeaseLost) -> Self {
        UpstreamError::LeaseLost
    }
}

impl From<reqwest::Error> for UpstreamError {
    fn from(e: reqwest::Error) -> Self {
        // Never include the URL's query or headers: they may carry tokens.
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_decode() {
            "unreadable reply"
        } else {
            "request failed"
        };
        UpstreamError::Transient(format!("upstream {what}"))
    }
}

/// Unix milliseconds of an RFC 3339 time, as upstream APIs date their jobs
/// (`2026-01-07T01:36:08.845Z`, or with an offset); `None` when it is not one.
pub fn parse_iso_ms(t: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A provider adapter: its upstream protocol, and nothing else.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// The provider it speaks to.
    fn provider(&self) -> Provider;

    /// Run one task to its end: submit it (or, when `job.upstream_ref` is set, resume
    /// from that reference), report the reference through `ctl` as soon as the upstream
    /// accepts, follow progress, and return the output.
    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError>;

    /// Check that an account works (credentials valid, not banned). `Err(NoFastHours)`:
    /// it works, but has no fast hours now (Midjourney's `/info`).
    async fn probe(&self, account: &str, credentials: &Value) -> Result<(), UpstreamError>;

    /// Called once by the runtime before any task: the scheduler, for adapters that
    /// share state across worker processes (Midjourney's one gateway session per
    /// account). Nothing by default.
    fn attach(&self, sched: &switchyard_scheduler::Scheduler) {
        let _ = sched;
    }

    /// Called once by the runtime when it has stopped (no task runs any more, the
    /// unfinished ones handed back): give up what other worker processes wait for
    /// (Midjourney's gateway session leases, so that another process takes each at
    /// once instead of when it expires). Nothing by default.
    async fn stopped(&self) {}

    /// The files of a finished task's output to host (API.md, "Results are hosted"):
    /// the runtime downloads each, stores it, and the API shows the hosted link in its
    /// place. None by default.
    fn files(&self, output: &Value) -> Vec<OutputFile> {
        let _ = output;
        Vec::new()
    }

    /// The ids of the upstream objects a finished task's output names (a conversation, a
    /// clip, a generation…), which later follow-ups may name alone: they run on the
    /// account that holds them (API.md, "Follow-ups stay on their account"). None by
    /// default.
    fn objects(&self, output: &Value) -> Vec<String> {
        let _ = output;
        Vec::new()
    }
}

/// The strings at `pointers` of `output` (absent and empty ones left out): the usual
/// way an adapter lists its output's object ids.
pub fn ids_at(output: &Value, pointers: &[&str]) -> Vec<String> {
    pointers
        .iter()
        .filter_map(|p| output.pointer(p).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A file of a task's output to host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The JSON pointer of the output field that holds its URL (`/image_url`); the API
    /// shows the hosted link there.
    pub pointer: String,
    /// Where the upstream serves it.
    pub url: String,
    /// Its name among the task's files (`image.png`): letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// A grid of four images (Midjourney): also cut into them, stored as
    /// `<name's stem>_<i>.png` and shown at `<split_into>/<i>` (`/image_urls`).
    pub split_into: Option<String>,
    /// More fields that show the same file (an upscale's `/image_urls/0`).
    pub also_at: Vec<String>,
}

impl OutputFile {
    /// The file at `pointer` of `output`, when that field holds a URL, named `stem` and
    /// the URL's extension (`default_ext` when it has none).
    pub fn at(output: &Value, pointer: &str, stem: &str, default_ext: &str) -> Option<OutputFile> {
        let url = output.pointer(pointer)?.as_str()?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return None;
        }
        Some(OutputFile {
            pointer: pointer.to_string(),
            url: url.to_string(),
            name: format!(
                "{}.{}",
                safe_name(stem),
                url_extension(url).unwrap_or(default_ext)
            ),
            split_into: None,
            also_at: Vec::new(),
        })
    }
}

/// A URL's file extension (`mp3` of `https://cdn/a/b.mp3?x=1`), when it has a short
/// alphanumeric one.
pub fn url_extension(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let file = path.rsplit('/').next()?;
    let (_, ext) = file.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5 && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(ext)
}

/// Map an HTTP status and body to an upstream error, the way most upstreams answer.
/// `retry_after` is the Retry-After header in seconds, when given.
pub fn classify_http(status: u16, body: &str, retry_after: Option<f64>) -> UpstreamError {
    let snippet: String = body.chars().take(500).collect();
    match status {
        401 => UpstreamError::AccountDead {
            reason: match suspended_until(body) {
                Some(t) => format!("banned: the account is suspended until {t}"),
                None => {
                    "unauthorized: the account's session is invalid (banned or logged out)".into()
                }
            },
        },
        402 => UpstreamError::AccountDead {
            reason: "subscription expired: the upstream wants payment (402)".into(),
        },
        403 if body.contains("captcha") => UpstreamError::AccountDead {
            reason: "captcha required".into(),
        },
        403 => UpstreamError::AccountDead {
            reason: "forbidden: the account may be banned or lack a subscription".into(),
        },
        429 => UpstreamError::RateLimited {
            retry_after_ms: retry_after.map_or(0, |s| (s * 1000.0) as u64),
            message: "rate limited upstream".into(),
        },
        400 | 404 | 413 | 422 => UpstreamError::BadRequest {
            message: format!("the upstream refused the request ({status})"),
            raw: snippet,
        },
        _ => UpstreamError::Transient(format!("upstream answered {status}")),
    }
}

/// When a refusal says a suspension ends (`"suspended_until": <ms since the epoch>` in
/// its JSON body), that time.
pub fn suspended_until(body: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(body).ok()?;
    fn find(v: &Value) -> Option<u64> {
        match v {
            Value::Object(m) => m
                .get("suspended_until")
                .and_then(Value::as_u64)
                .or_else(|| m.values().find_map(find)),
            Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    find(&v)
}

/// Read the Retry-After header (seconds) of a response.
pub fn retry_after(resp: &reqwest::Response) -> Option<f64> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The error of a response that is not a success, classified as most upstreams answer
/// ([`classify_http`], with its Retry-After and body).
pub async fn refusal(resp: reqwest::Response) -> UpstreamError {
    let status = resp.status().as_u16();
    let ra = retry_after(&resp);
    let text = resp.text().await.unwrap_or_default();
    classify_http(status, &text, ra)
}

/// Send a request and return its JSON body, classifying failures.
pub async fn json_or_error(req: reqwest::RequestBuilder) -> Result<Value, UpstreamError> {
    json_of(req.send().await?).await
}

/// A response's JSON body (`Null` when empty), or its failure classified
/// ([`classify_http`]): for a caller that reads the response's headers first.
pub async fn json_of(resp: reqwest::Response) -> Result<Value, UpstreamError> {
    let status = resp.status().as_u16();
    let ra = retry_after(&resp);
    let text = resp.text().await?;
    if !(200..300).contains(&status) {
        return Err(classify_http(status, &text, ra));
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .map_err(|_| UpstreamError::Transient("upstream sent unreadable JSON".into()))
}

/// Where input files may come from and how large they may be (`worker` config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputRules {
    /// Private, loopback and link-local addresses are allowed.
    pub allow_private: bool,
    /// Largest file, in bytes.
    pub max_bytes: u64,
}

impl InputRules {
    /// The rules of `config`.
    pub fn of(config: &switchyard_core::Config) -> Self {
        InputRules {
            allow_private: config.worker.allow_private_inputs,
            max_bytes: config.worker.max_input_bytes,
        }
    }
}

/// Fetch a file the task names (an image to upload, a file for a GPT): a `data:` URL's
/// bytes, or an http(s) URL's body, under `rules` — a host that is or resolves to a
/// private, loopback or link-local address is refused unless allowed, as is a file
/// larger than the limit. A URL that cannot be fetched is the request's fault:
/// `BadRequest` naming `what` and why.
pub async fn fetch_bytes(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    rules: InputRules,
) -> Result<Vec<u8>, UpstreamError> {
    let bad = |why: String| UpstreamError::BadRequest {
        message: format!("could not fetch {what}: {why}"),
        raw: String::new(),
    };
    if url.len() >= 5 && url[..5].eq_ignore_ascii_case("data:") {
        return switchyard_core::task::decode_data_url(url).map_err(bad);
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a valid URL ({e})")))?;
    if !rules.allow_private {
        switchyard_core::net::check_host(&parsed, "its URL").map_err(bad)?;
        let host = parsed.host_str().unwrap_or("");
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs =
            tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
                .await
                .map_err(|_| bad("its host does not resolve".into()))?;
        for a in addrs {
            if switchyard_core::net::is_private(a.ip()) {
                return Err(bad(format!(
                    "its host resolves to a private address ({})",
                    a.ip()
                )));
            }
        }
    }
    // Checked addresses are not followed elsewhere: no redirects then.
    static NO_REDIRECTS: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = if rules.allow_private {
        http
    } else {
        NO_REDIRECTS.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap_or_default()
        })
    };
    let mut resp = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(bad(format!("HTTP {}", resp.status().as_u16())));
    }
    let too_large = || bad(format!("the file is larger than {} bytes", rules.max_bytes));
    if resp.content_length().is_some_and(|n| n > rules.max_bytes) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?
    {
        if (out.len() + chunk.len()) as u64 > rules.max_bytes {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An HTTP client with the configured timeout, no redirects to other hosts' credentials.
pub fn http_client(timeout_s: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_s.max(1)))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{UpstreamError, classify_http, parse_iso_ms};

    #[test]
    fn a_suspension_that_names_its_end_says_it() {
        let body = r#"{"errors": [{"code": "account_suspended", "meta": {"suspended_until": 1780000000000}}]}"#;
        match classify_http(401, body, None) {
            UpstreamError::AccountDead { reason } => {
                assert!(reason.ends_with("until 1780000000000"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        match classify_http(401, r#"{"detail": "Unauthorized"}"#, None) {
            UpstreamError::AccountDead { reason } => assert!(!reason.contains("until"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc3339_times_parse_to_unix_ms() {
        assert_eq!(parse_iso_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso_ms("2026-01-07T01:36:08.845Z"),
            Some(1_767_749_768_845)
        );
        assert_eq!(
            parse_iso_ms("2026-01-07T03:36:08.845123+02:00"),
            Some(1_767_749_768_845)
        );
        assert_eq!(
            parse_iso_ms("2026-01-06T20:36:08.845-05:00"),
            Some(1_767_749_768_845)
        );
        assert_eq!(
            parse_iso_ms("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500)
        );
        assert_eq!(parse_iso_ms("yesterday"), None);
        assert_eq!(parse_iso_ms("2026-01-07"), None);
    }
}
