//! Typed configuration: every default in one place, parsed from TOML text and overridden
//! by environment-style variables.
//!
//! Precedence, lowest first: the defaults in this module, the TOML file, then
//! `SWITCHYARD_<SECTION>__<KEY>` variables (`SWITCHYARD_REDIS__URL`,
//! `SWITCHYARD_PLANS__ENTERPRISE__PPU_CAPS__MIDJOURNEY=100`), then `REDIS_URL`.
//! Only nested names (with `__`) are config keys; other `SWITCHYARD_*` variables
//! (`SWITCHYARD_URL`, `SWITCHYARD_MASTER_KEY`, …) belong to the programs that read them.
//! Unknown keys and invalid values fail at start with the key and the reason.
//!
//! Everything here is pure: the binaries read the file and the environment
//! (`switchyard_worker::config_load`) and hand the text and the variables to
//! [`Config::from_sources`].

use figment::providers::{Data, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::plan::{Plan, PlanTable};
use crate::pricing::PriceTable;
use crate::prompt_check::{PromptCheckConfig, PromptChecker};
use crate::provider::Provider as UpstreamProvider;
use crate::task::{MjVersion, ParseOptions};

/// The prefix of the variables that set config keys.
const ENV_PREFIX: &str = "SWITCHYARD_";
/// How errors name a value set by a `SWITCHYARD_*` variable.
const PREFIXED_ENV_SOURCE: &str = "`SWITCHYARD_` environment variable(s)";
/// How errors name a value set by `REDIS_URL`.
const PLAIN_ENV_SOURCE: &str = "environment variable(s)";

/// Whether a variable name (after the `SWITCHYARD_` prefix) is a config key: only the
/// nested `<SECTION>__<KEY>` ones are. The rest of the `SWITCHYARD_*` variables belong to
/// programs and tooling (`SWITCHYARD_MASTER_KEY`, `SWITCHYARD_CONFIG`,
/// `SWITCHYARD_LOG_FORMAT`, and the CLI's `SWITCHYARD_URL`, `SWITCHYARD_ADMIN_TOKEN`,
/// `SWITCHYARD_API_KEY`) and are never read as config keys.
fn is_config_env(name: &str) -> bool {
    name.contains("__")
}

/// Which variables set a config key, in the order they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OverrideKind {
    /// `SWITCHYARD_<SECTION>__<KEY>`.
    Prefixed,
    /// `REDIS_URL`, applied after every `SWITCHYARD_*` variable.
    RedisUrl,
}

/// The dotted config key a variable sets (`SWITCHYARD_REDIS__URL` and `REDIS_URL` both set
/// `redis.url`), or `None` when the variable is not a config key. Names are matched
/// without regard to case and surrounding spaces.
fn override_key(name: &str) -> Option<(OverrideKind, String)> {
    let name = name.trim();
    let (kind, key) = match name.get(..ENV_PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(ENV_PREFIX) => {
            let rest = &name[ENV_PREFIX.len()..];
            if !is_config_env(rest) {
                return None;
            }
            (OverrideKind::Prefixed, rest.replace("__", "."))
        }
        _ if name.eq_ignore_ascii_case("REDIS_URL") => {
            (OverrideKind::RedisUrl, "redis.url".to_string())
        }
        _ => return None,
    };
    let key = key.trim();
    if key.split('.').any(str::is_empty) {
        return None;
    }
    Some((kind, key.to_ascii_lowercase()))
}

/// One override variable as a figment provider: its value under its dotted key, parsed
/// as figment parses environment values (`100` is a number, `true` a bool).
struct Override {
    source: &'static str,
    key: String,
    value: String,
}

impl Provider for Override {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.source)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value: Value = self.value.parse().unwrap_or_else(|never| match never {});
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

/// TOML text as a figment provider that errors name by where the text came from.
struct NamedToml {
    name: String,
    data: Data<Toml>,
}

impl Provider for NamedToml {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.data.data()
    }
}

/// A configuration file's text and where it was read from (errors name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TomlSource<'a> {
    /// Where the text came from: the file's path.
    pub origin: &'a str,
    /// The TOML text.
    pub text: &'a str,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where Redis is and how keys are named.
    pub redis: RedisConfig,
    /// Leases, retries, event retention.
    pub scheduler: SchedulerConfig,
    /// Defaults applied when a request leaves something out.
    pub defaults: TaskDefaults,
    /// The gateway-facing HTTP API.
    pub dispatcher: DispatcherConfig,
    /// The worker runtime.
    pub worker: WorkerConfig,
    /// Where the upstream providers are (base URLs; tests and the demo point them at the
    /// simulator).
    pub upstreams: UpstreamsConfig,
    /// The plan table (the seed's values; Enterprise is custom).
    pub plans: PlanTable,
    /// The price table (the seed's values).
    pub prices: PriceTable,
    /// The prompt checker's banned words and patterns.
    pub prompt_check: PromptCheckConfig,
    /// Where results are hosted (API.md, "Results are hosted").
    pub storage: StorageConfig,
}

/// Redis connection and key layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`, `rediss://…`; for a cluster, any one node.
    pub url: String,
    /// Talk to a Redis Cluster instead of a single node.
    pub cluster: bool,
    /// Prefix of every key (no braces or spaces).
    pub key_prefix: String,
    /// Connections per process.
    pub pool_size: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_string(),
            cluster: false,
            key_prefix: "sy".to_string(),
            pool_size: 32,
        }
    }
}

/// Scheduling behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// How long a claim's lease lasts without a heartbeat, in milliseconds.
    pub lease_ms: u64,
    /// Runs a task may start before it fails with `retries_exhausted`.
    pub max_attempts: u32,
    /// First retry delay after a transient failure, in milliseconds (doubles per attempt).
    pub retry_backoff_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub retry_backoff_max_ms: u64,
    /// Cool-down after a rate limit that gave no Retry-After, in milliseconds.
    pub default_cooldown_ms: u64,
    /// How long an account whose fast hours ran out takes no fast or turbo work when the
    /// upstream said nothing of when they come back, in milliseconds.
    pub no_fast_pause_ms: u64,
    /// Approximate length the event stream is trimmed to.
    pub events_max_len: u64,
    /// How long an `Idempotency-Key` is remembered, in seconds.
    pub idempotency_ttl_s: u64,
    /// Scheduling shards per provider (`{<provider>:<n>}`); tenants map to one shard.
    pub shards: u32,
    /// First delay before an account disabled by an upstream answer is probed again, in
    /// milliseconds; doubles with each failed probe.
    pub probe_backoff_ms: u64,
    /// Longest delay between two probes of a disabled account, in milliseconds.
    pub probe_backoff_max_ms: u64,
    /// Added to Redis's clock wherever the scheduler reads the time, in milliseconds: 0
    /// in production; tests of daily caps and active windows set it to stand at a chosen
    /// hour. Every process of a deployment must have the same value.
    pub clock_offset_ms: i64,
    /// Default pacing per provider: the gap between two submissions on one account is
    /// drawn uniformly from `[min_gap_s, max_gap_s]` unless the account sets its own.
    pub pacing: PacingDefaults,
}

/// A pacing range: the gap between two submissions on one account, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// The shortest gap.
    pub min_gap_s: f64,
    /// The longest gap.
    pub max_gap_s: f64,
}

impl Pacing {
    /// No pacing.
    pub const NONE: Pacing = Pacing {
        min_gap_s: 0.0,
        max_gap_s: 0.0,
    };

    /// The range in whole milliseconds `(lo, hi)`.
    pub fn as_ms(&self) -> (u64, u64) {
        (
            (self.min_gap_s * 1000.0).round() as u64,
            (self.max_gap_s * 1000.0).round() as u64,
        )
    }

    /// Why the range is unusable, if it is: both in 0 … 3600 s, min ≤ max.
    pub fn problem(&self) -> Option<&'static str> {
        let ok = |v: f64| v.is_finite() && (0.0..=3600.0).contains(&v);
        if !ok(self.min_gap_s) || !ok(self.max_gap_s) {
            Some("gaps are seconds from 0 to 3600")
        } else if self.min_gap_s > self.max_gap_s {
            Some("min_gap_s must not exceed max_gap_s")
        } else {
            None
        }
    }
}

/// The default pacing of each provider's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingDefaults {
    /// Midjourney: a few irregular seconds between two jobs of one Discord account.
    pub midjourney: Pacing,
    /// Suno.
    pub suno: Pacing,
    /// Luma Dream Machine.
    pub luma: Pacing,
    /// ChatGPT GPTs.
    pub gpts: Pacing,
}

impl Default for PacingDefaults {
    fn default() -> Self {
        PacingDefaults {
            midjourney: Pacing {
                min_gap_s: 3.0,
                max_gap_s: 8.0,
            },
            suno: Pacing {
                min_gap_s: 1.0,
                max_gap_s: 3.0,
            },
            luma: Pacing {
                min_gap_s: 1.0,
                max_gap_s: 3.0,
            },
            gpts: Pacing {
                min_gap_s: 0.2,
                max_gap_s: 1.0,
            },
        }
    }
}

impl PacingDefaults {
    /// The default of one provider.
    pub fn of(&self, p: crate::Provider) -> Pacing {
        match p {
            crate::Provider::Midjourney => self.midjourney,
            crate::Provider::Suno => self.suno,
            crate::Provider::Luma => self.luma,
            crate::Provider::Gpts => self.gpts,
        }
    }

    /// The same range for every provider.
    pub fn all(p: Pacing) -> Self {
        PacingDefaults {
            midjourney: p,
            suno: p,
            luma: p,
            gpts: p,
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease_ms: 30_000,
            max_attempts: 3,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 60_000,
            default_cooldown_ms: 60_000,
            no_fast_pause_ms: 3_600_000,
            events_max_len: 100_000,
            idempotency_ttl_s: 24 * 3600,
            shards: 1,
            probe_backoff_ms: 60_000,
            probe_backoff_max_ms: 6 * 3_600_000,
            clock_offset_ms: 0,
            pacing: PacingDefaults::default(),
        }
    }
}

/// Defaults for what a request leaves out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskDefaults {
    /// The Midjourney price row when the prompt has no `--v`/`--niji` flag.
    pub mj_version: MjVersion,
    /// The plan of a tenant created without one.
    pub plan: Plan,
}

impl Default for TaskDefaults {
    fn default() -> Self {
        TaskDefaults {
            mj_version: MjVersion::V6,
            plan: Plan::Hobbyist,
        }
    }
}

/// The dispatcher (HTTP API, webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherConfig {
    /// Address to listen on.
    pub listen: String,
    /// Bearer token of the admin routes (required to serve them; a secret: prefer the
    /// environment, `SWITCHYARD_DISPATCHER__ADMIN_TOKEN`).
    pub admin_token: String,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Requests per second per API key.
    pub rate_limit_per_s: u32,
    /// Burst per API key.
    pub rate_limit_burst: u32,
    /// Allow webhook endpoints in private, loopback and link-local ranges (tests, demo).
    pub allow_private_webhooks: bool,
    /// Keep retrying a webhook delivery for this long, in seconds.
    pub webhook_retry_for_s: u64,
    /// Longest wait between two delivery attempts, in seconds.
    pub webhook_max_backoff_s: u64,
    /// Timeout of one delivery attempt, in seconds.
    pub webhook_timeout_s: u64,
    /// Smallest gap between two `task.progress` webhooks of one task, in milliseconds.
    pub progress_webhook_gap_ms: u64,
    /// The address clients reach this API at (`https://api.example.com`), which hosted
    /// result links start with. Empty: `http://` and the address it listens on.
    pub public_url: String,
    /// Where the operator is told of the PPU pool's accounts (disabled, re-enabled,
    /// rate limited, out of fast hours, none left): a URL, notified as tenants are of
    /// theirs. Empty: nobody (the metrics still count them).
    pub operator_webhook: String,
    /// The secret that signs the operator's notifications (a secret: prefer the
    /// environment, `SWITCHYARD_DISPATCHER__OPERATOR_WEBHOOK_SECRET`). Empty: unsigned.
    pub operator_webhook_secret: String,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            listen: "127.0.0.1:8080".into(),
            admin_token: String::new(),
            body_limit_bytes: 1024 * 1024,
            rate_limit_per_s: 50,
            rate_limit_burst: 100,
            allow_private_webhooks: false,
            webhook_retry_for_s: 24 * 3600,
            webhook_max_backoff_s: 600,
            webhook_timeout_s: 10,
            progress_webhook_gap_ms: 2000,
            public_url: String::new(),
            operator_webhook: String::new(),
            operator_webhook_secret: String::new(),
        }
    }
}

/// The worker runtime of every provider binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Upstream jobs one process runs at once.
    pub concurrency: usize,
    /// Tasks asked for per claim.
    pub claim_batch: usize,
    /// Longest a task may run upstream before it counts as a transient failure, in seconds.
    pub task_timeout_s: u64,
    /// How often a running task is polled upstream, in milliseconds.
    pub poll_interval_ms: u64,
    /// On SIGTERM: how long running tasks may finish before they are handed back, in
    /// seconds.
    pub shutdown_grace_s: u64,
    /// How often this process reaps expired leases of its provider, in milliseconds.
    pub reap_interval_ms: u64,
    /// Address for `/metrics` and `/healthz` (empty: none).
    pub metrics_listen: String,
    /// Input files (images, key frames, GPTs files) may be fetched from private,
    /// loopback and link-local addresses (the demo and tests, whose files are on
    /// loopback). Off in production: a client's URL must not reach the operator's network.
    pub allow_private_inputs: bool,
    /// Largest input file a worker fetches, in bytes.
    pub max_input_bytes: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 200,
            claim_batch: 16,
            task_timeout_s: 900,
            poll_interval_ms: 1000,
            shutdown_grace_s: 20,
            reap_interval_ms: 1000,
            metrics_listen: String::new(),
            allow_private_inputs: false,
            max_input_bytes: 25 * 1024 * 1024,
        }
    }
}

/// Where hosted results are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A directory of this machine (`storage.dir`): one host, the demo's default.
    Local,
    /// An S3-compatible bucket (`storage.s3_*`): workers and dispatchers on many hosts.
    S3,
    /// Nothing is stored: results keep the upstream's own (expiring) URLs.
    Off,
}

/// Hosted results: each output file is downloaded by the worker, stored here, and served
/// by the dispatcher at signed links until the task's retention ends.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local`, `s3` or `off`.
    pub kind: StorageKind,
    /// The directory of `local` (created when missing). The default, under the system's
    /// temporary directory, is shared by the processes of one host and does not outlive a
    /// reboot: set it for anything that should last.
    pub dir: String,
    /// The bucket of `s3`.
    pub s3_bucket: String,
    /// A key prefix inside the bucket (may be empty).
    pub s3_prefix: String,
    /// The bucket's region.
    pub s3_region: String,
    /// The S3 endpoint (empty: AWS); an S3-compatible server's URL otherwise.
    pub s3_endpoint: String,
    /// The access key id (empty: the AWS environment and instance credentials).
    pub s3_access_key_id: String,
    /// The secret access key (a secret: prefer `SWITCHYARD_STORAGE__S3_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: String,
    /// Allow an `http://` endpoint (a server on a private network, tests).
    pub s3_allow_http: bool,
    /// Largest output file a worker downloads, in bytes.
    pub max_file_bytes: u64,
    /// Longest download of one output file, in seconds.
    pub download_timeout_s: u64,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind)
            .field("dir", &self.dir)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_prefix", &self.s3_prefix)
            .field("s3_region", &self.s3_region)
            .field("s3_endpoint", &self.s3_endpoint)
            .field(
                "s3_access_key_id",
                &crate::secrets::mask(&self.s3_access_key_id),
            )
            .field("s3_secret_access_key", &"••••")
            .field("s3_allow_http", &self.s3_allow_http)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("download_timeout_s", &self.download_timeout_s)
            .finish()
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Local,
            dir: std::env::temp_dir()
                .join("switchyard-files")
                .display()
                .to_string(),
            s3_bucket: String::new(),
            s3_prefix: String::new(),
            s3_region: "us-east-1".into(),
            s3_endpoint: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_allow_http: false,
            max_file_bytes: 512 * 1024 * 1024,
            download_timeout_s: 300,
        }
    }
}

/// Upstream base URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamsConfig {
    /// Discord REST (`/api/v9/...`).
    pub discord_api: String,
    /// Discord gateway websocket.
    pub discord_gateway: String,
    /// Suno studio API.
    pub suno_api: String,
    /// Suno's Clerk (session → JWT).
    pub suno_clerk: String,
    /// Luma's web API.
    pub luma_api: String,
    /// ChatGPT's web backend.
    pub chatgpt_api: String,
    /// Midjourney's image CDN: each image of a grid is `<cdn>/<job id>/0_<i>.png`.
    pub midjourney_cdn: String,
    /// Midjourney's Vary (Region) editor (its activity host), which takes the mask and
    /// prompt at `/inpaint/api/submit-job`.
    pub discord_inpaint: String,
    /// Per-request timeout, in seconds.
    pub request_timeout_s: u64,
}

impl Default for UpstreamsConfig {
    fn default() -> Self {
        UpstreamsConfig {
            discord_api: "https://discord.com".into(),
            discord_gateway: "wss://gateway.discord.gg/?encoding=json&v=9".into(),
            suno_api: "https://studio-api.prod.suno.com".into(),
            suno_clerk: "https://clerk.suno.com".into(),
            luma_api: "https://internal-api.virginia.labs.lumalabs.ai".into(),
            chatgpt_api: "https://chatgpt.com".into(),
            midjourney_cdn: "https://cdn.midjourney.com".into(),
            discord_inpaint: "https://936929561302675456.discordsays.com".into(),
            request_timeout_s: 30,
        }
    }
}

impl UpstreamsConfig {
    /// Every base URL at one address (the simulator's), as `switchyard sim` serves them.
    pub fn all_at(http_base: &str) -> Self {
        let base = http_base.trim_end_matches('/').to_string();
        let ws = base.replacen("http", "ws", 1);
        UpstreamsConfig {
            discord_api: base.clone(),
            discord_gateway: format!("{ws}/gateway"),
            suno_api: base.clone(),
            suno_clerk: base.clone(),
            luma_api: base.clone(),
            chatgpt_api: base.clone(),
            midjourney_cdn: format!("{base}/_mjcdn"),
            discord_inpaint: base.clone(),
            request_timeout_s: 30,
        }
    }
}

/// Configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file named does not exist.
    #[error("config file {path} does not exist; pass an existing TOML file or none")]
    MissingFile {
        /// The path given.
        path: String,
    },
    /// The file named exists but cannot be read.
    #[error("config file {path} cannot be read ({reason}); pass a readable TOML file or none")]
    Unreadable {
        /// The path given.
        path: String,
        /// Why reading failed.
        reason: String,
    },
    /// A key has a value that cannot be used.
    #[error("invalid config key `{key}`: {reason}")]
    Invalid {
        /// Dotted key (`scheduler.lease_ms`).
        key: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Build from the defaults, an optional TOML file's text and environment-style
    /// `(name, value)` variables, then validate. Variables that are not config keys are
    /// ignored (see the module docs); errors name the key and where its value came from.
    pub fn from_sources<I>(toml: Option<TomlSource<'_>>, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(toml) = toml {
            fig = fig.merge(NamedToml {
                name: format!("TOML file {}", toml.origin),
                data: Toml::string(toml.text),
            });
        }
        let mut redis_urls = Vec::new();
        for (name, value) in vars {
            match override_key(&name) {
                Some((OverrideKind::Prefixed, key)) => {
                    fig = fig.merge(Override {
                        source: PREFIXED_ENV_SOURCE,
                        key,
                        value,
                    });
                }
                Some((OverrideKind::RedisUrl, key)) => redis_urls.push(Override {
                    source: PLAIN_ENV_SOURCE,
                    key,
                    value,
                }),
                None => {}
            }
        }
        for redis_url in redis_urls {
            fig = fig.merge(redis_url);
        }
        let config: Config = fig.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                "(root)".to_string()
            } else {
                e.path.join(".")
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            ConfigError::invalid(&key, format!("{}{source}", e.kind))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parse a TOML string over the defaults (no environment), then validate.
    pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::invalid(&e.path.join("."), e.kind.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Check values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for p in crate::Provider::ALL {
            if let Some(why) = self.scheduler.pacing.of(p).problem() {
                return Err(ConfigError::invalid(&format!("scheduler.pacing.{p}"), why));
            }
        }
        PromptChecker::new(&self.prompt_check)
            .map_err(|e| ConfigError::invalid("prompt_check.patterns", e))?;
        let st = &self.storage;
        match st.kind {
            StorageKind::Local if st.dir.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    "storage.dir",
                    "must name a directory when storage.kind is local",
                ));
            }
            StorageKind::S3 if st.s3_bucket.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    "storage.s3_bucket",
                    "must name a bucket when storage.kind is s3",
                ));
            }
            _ => {}
        }
        if st.max_file_bytes == 0 || st.download_timeout_s == 0 {
            return Err(ConfigError::invalid(
                "storage.max_file_bytes",
                "storage.max_file_bytes and storage.download_timeout_s must be at least 1",
            ));
        }
        let public = &self.dispatcher.public_url;
        if !(public.is_empty() || public.starts_with("http://") || public.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "dispatcher.public_url",
                "must start with http:// or https:// (or be empty)",
            ));
        }
        let r = &self.redis;
        if !["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|s| r.url.starts_with(s))
        {
            return Err(ConfigError::invalid(
                "redis.url",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        if r.key_prefix.is_empty()
            || r.key_prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace())
        {
            return Err(ConfigError::invalid(
                "redis.key_prefix",
                "must be non-empty, without braces or spaces",
            ));
        }
        if r.pool_size == 0 {
            return Err(ConfigError::invalid(
                "redis.pool_size",
                "must be at least 1",
            ));
        }
        let s = &self.scheduler;
        if s.lease_ms < 1000 {
            return Err(ConfigError::invalid(
                "scheduler.lease_ms",
                "must be at least 1000 (1 s)",
            ));
        }
        if s.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "scheduler.max_attempts",
                "must be at least 1",
            ));
        }
        if s.retry_backoff_ms > s.retry_backoff_max_ms {
            return Err(ConfigError::invalid(
                "scheduler.retry_backoff_ms",
                "must not exceed scheduler.retry_backoff_max_ms",
            ));
        }
        if s.events_max_len < 1000 {
            return Err(ConfigError::invalid(
                "scheduler.events_max_len",
                "must be at least 1000",
            ));
        }
        if !(1..=1024).contains(&s.shards) {
            return Err(ConfigError::invalid(
                "scheduler.shards",
                "must be between 1 and 1024",
            ));
        }
        for plan in Plan::ALL {
            let limits = self.plans.get(plan);
            for provider in UpstreamProvider::ALL {
                if limits.ppu_cap(provider) == Some(0) {
                    return Err(ConfigError::invalid(
                        &format!("plans.{plan}.ppu_caps.{provider}"),
                        "must be at least 1; leave it out for no cap",
                    ));
                }
            }
            if limits.task_log_retention_hours == 0 {
                return Err(ConfigError::invalid(
                    &format!("plans.{plan}.task_log_retention_hours"),
                    "must be at least 1",
                ));
            }
        }
        let d = &self.dispatcher;
        if d.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "dispatcher.listen",
                "must be an address like 127.0.0.1:8080",
            ));
        }
        if d.body_limit_bytes < 1024 || d.rate_limit_per_s == 0 || d.rate_limit_burst == 0 {
            return Err(ConfigError::invalid(
                "dispatcher.body_limit_bytes",
                "the body limit must be at least 1024 and the rate limits at least 1",
            ));
        }
        let w = &self.worker;
        if w.concurrency == 0 || w.claim_batch == 0 {
            return Err(ConfigError::invalid(
                "worker.concurrency",
                "worker.concurrency and worker.claim_batch must be at least 1",
            ));
        }
        if w.task_timeout_s == 0 || w.poll_interval_ms == 0 || w.reap_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "worker.task_timeout_s",
                "worker timeouts and intervals must be at least 1",
            ));
        }
        for (key, url) in [
            ("upstreams.discord_api", &self.upstreams.discord_api),
            ("upstreams.suno_api", &self.upstreams.suno_api),
            ("upstreams.suno_clerk", &self.upstreams.suno_clerk),
            ("upstreams.luma_api", &self.upstreams.luma_api),
            ("upstreams.chatgpt_api", &self.upstreams.chatgpt_api),
            ("upstreams.midjourney_cdn", &self.upstreams.midjourney_cdn),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::invalid(key, "must be an http(s) URL"));
            }
        }
        if !(self.upstreams.discord_gateway.starts_with("ws://")
            || self.upstreams.discord_gateway.starts_with("wss://"))
        {
            return Err(ConfigError::invalid(
                "upstreams.discord_gateway",
                "must be a ws(s) URL",
            ));
        }
        let u = &self.prices.units_per_dollar;
        if [
            u.credits,
            u.mj_quota,
            u.suno_quota,
            u.luma_quota,
            u.gpts_quota,
        ]
        .contains(&0)
        {
            return Err(ConfigError::invalid(
                "prices.units_per_dollar",
                "every rate must be at least 1",
            ));
        }
        Ok(())
    }

    /// Options that task parsing needs.
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            default_mj_version: self.defaults.mj_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_are_the_seed() {
        let c = Config::from_sources(None, []).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.plans, PlanTable::seed());
        assert_eq!(c.prices, PriceTable::seed());
    }

    #[test]
    fn toml_overrides_enterprise_caps_and_keeps_the_rest() {
        let c = Config::from_toml_str(
            "[plans.enterprise.ppu_caps]\nmidjourney = 120\n[scheduler]\nlease_ms = 5000\n",
        )
        .unwrap();
        assert_eq!(c.plans.enterprise.ppu_caps.midjourney, Some(120));
        assert_eq!(c.plans.enterprise.ppu_caps.suno, Some(30));
        assert_eq!(c.plans.premium.ppu_caps.midjourney, Some(30));
        assert_eq!(c.scheduler.lease_ms, 5000);
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("[scheduler]\nlease_ms = 10\n", "scheduler.lease_ms"),
            ("[scheduler]\nlease_ms = \"soon\"\n", "scheduler.lease_ms"),
            ("[redis]\nurl = \"http://x\"\n", "redis.url"),
            ("[redis]\nkey_prefix = \"{x}\"\n", "redis.key_prefix"),
            (
                "[plans.developer.ppu_caps]\nsuno = 0\n",
                "plans.developer.ppu_caps.suno",
            ),
            ("[redis]\nurll = \"redis://x\"\n", "redis"),
        ];
        for (toml, key) in cases {
            match Config::from_toml_str(toml) {
                Err(ConfigError::Invalid { key: k, reason }) => {
                    assert!(k.starts_with(key), "{toml}: key {k} ({reason})")
                }
                other => panic!("{toml}: expected invalid {key}, got {other:?}"),
            }
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn invalid(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    const FILE: TomlSource<'static> = TomlSource {
        origin: "/etc/switchyard.toml",
        text: "[redis]\nkey_prefix = \"fromfile\"\n",
    };

    #[test]
    fn variables_override_the_file_and_redis_url_comes_last() {
        let c = Config::from_sources(
            Some(FILE),
            vars(&[
                ("REDIS_URL", "redis://r1"),
                ("SWITCHYARD_REDIS__URL", "redis://r2"),
                ("SWITCHYARD_PLANS__ENTERPRISE__PPU_CAPS__MIDJOURNEY", "100"),
                ("SWITCHYARD_SCHEDULER__LEASE_MS", "5000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.redis.key_prefix, "fromfile");
        assert_eq!(c.redis.url, "redis://r1");
        assert_eq!(c.plans.enterprise.ppu_caps.midjourney, Some(100));
        assert_eq!(c.scheduler.lease_ms, 5000);

        let c = Config::from_sources(
            Some(FILE),
            vars(&[
                ("switchyard_redis__key_prefix", "lower"),
                ("redis_url", "redis://low"),
            ]),
        )
        .unwrap();
        assert_eq!(c.redis.key_prefix, "lower");
        assert_eq!(c.redis.url, "redis://low");
    }

    #[test]
    fn variables_that_are_not_config_keys_are_ignored() {
        let c = Config::from_sources(
            None,
            vars(&[
                ("SWITCHYARD_URL", "x"),
                ("SWITCHYARD_MASTER_KEY", "y"),
                ("SWITCHYARD_REDIS____KEY_PREFIX", "zz"),
                ("SWITCHYARD___X", "1"),
                ("", "1"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn errors_name_the_key_and_where_the_value_came_from() {
        let file = |text| {
            Some(TomlSource {
                origin: "/etc/switchyard.toml",
                text,
            })
        };
        assert_eq!(
            invalid(Config::from_sources(
                file("[scheduler]\nlease_ms = \"soon\"\n"),
                []
            )),
            "invalid config key `scheduler.lease_ms`: invalid type: found string \"soon\", \
             expected u64 (from TOML file /etc/switchyard.toml)"
        );
        assert_eq!(
            invalid(Config::from_sources(file("[redis]\nurll = 1\n"), [])),
            "invalid config key `redis.urll`: unknown field: found `urll`, expected `one of \
             `url`, `cluster`, `key_prefix`, `pool_size`` (from TOML file /etc/switchyard.toml)"
        );
        assert!(
            invalid(Config::from_sources(file("[redis\n"), []))
                .starts_with("invalid config key `(root)`: TOML parse error at line 1, column 7")
        );
        assert_eq!(
            invalid(Config::from_sources(
                None,
                vars(&[("SWITCHYARD_SCHEDULER__LEASE_MS", "soon")])
            )),
            "invalid config key `scheduler.lease_ms`: invalid type: found string \"soon\", \
             expected u64 (from `SWITCHYARD_` environment variable(s))"
        );
        assert_eq!(
            invalid(Config::from_sources(
                None,
                vars(&[("SWITCHYARD_REDIS__KEY_PREFIX", "123")])
            )),
            "invalid config key `redis.key_prefix`: invalid type: found unsigned int `123`, \
             expected a string (from `SWITCHYARD_` environment variable(s))"
        );
        assert_eq!(
            invalid(Config::from_sources(
                None,
                vars(&[("REDIS_URL", "http://x")])
            )),
            "invalid config key `redis.url`: must start with redis://, rediss:// or unix://"
        );
    }
}
