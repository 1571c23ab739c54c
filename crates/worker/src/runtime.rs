//! The claim loop, heartbeats, the per-task pipeline, the reaper and shutdown.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use switchyard_core::secrets::SecretBox;
use switchyard_core::{Config, ParseOptions, TaskBody};
use switchyard_scheduler::{ClaimedTask, FailKind, Lease, Scheduler};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use crate::{Control, Job, LeaseLost, Upstream, UpstreamError};

/// A running worker for one provider.
pub struct Worker {
    sched: Scheduler,
    upstream: Arc<dyn Upstream>,
    config: Config,
    secrets: SecretBox,
    parse: ParseOptions,
    pacing: DefaultKeyedRateLimiter<String>,
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    lease: Lease,
    handle: JoinHandle<()>,
}

impl Worker {
    /// A worker over `sched` running `upstream`'s tasks.
    pub fn new(
        sched: Scheduler,
        upstream: Arc<dyn Upstream>,
        config: &Config,
        secrets: SecretBox,
    ) -> Arc<Worker> {
        let gap = Duration::from_millis(config.worker.account_min_gap_ms.max(1));
        let quota = Quota::with_period(gap)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Arc::new(Worker {
            sched,
            upstream,
            config: config.clone(),
            secrets,
            parse: config.parse_options(),
            pacing: RateLimiter::keyed(quota),
            running: Mutex::new(HashMap::new()),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tasks running now.
    pub fn in_flight(&self) -> usize {
        self.running().len()
    }

    /// Run until `shutdown` turns true; then stop claiming, give running tasks the grace
    /// period, and hand back what is left.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let provider = self.upstream.provider();
        let wc = &self.config.worker;
        let slots = Arc::new(Semaphore::new(wc.concurrency));
        let heartbeat = tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        let reaper = tokio::spawn(self.clone().reap_loop(shutdown.clone()));
        info!(%provider, concurrency = wc.concurrency, "worker started");
        while !*shutdown.borrow() {
            let free = slots.available_permits();
            if free == 0 {
                // Wait for a slot (or shutdown) without holding it.
                tokio::select! {
                    p = slots.clone().acquire_owned() => drop(p),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let n = free.min(wc.claim_batch);
            let started = std::time::Instant::now();
            let claimed = tokio::select! {
                r = self.sched.claim(provider, n, Duration::from_secs(1)) => r,
                _ = shutdown.changed() => Ok(Vec::new()),
            };
            if let Ok(t) = &claimed
                && !t.is_empty()
            {
                metrics::histogram!("switchyard_claim_seconds", "provider" => provider.as_str())
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("switchyard_claimed_total", "provider" => provider.as_str())
                    .increment(t.len() as u64);
            }
            match claimed {
                Ok(tasks) => {
                    for task in tasks {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            // Cannot happen (we asked for at most `free`); hand it back.
                            let _ = self
                                .sched
                                .fail(&task.lease, &FailKind::Handback, "", "")
                                .await;
                            continue;
                        };
                        let id = task.lease.id.clone();
                        let lease = task.lease.clone();
                        let me = self.clone();
                        let span = info_span!("task", task_id = %id, tenant = %task.tenant, account = %task.account, attempt = task.attempt);
                        let handle = tokio::spawn(
                            async move {
                                me.run_one(task).await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                        self.running().insert(id, Running { lease, handle });
                    }
                }
                Err(e) => {
                    warn!(error = %e, "claim failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.drain().await;
        heartbeat.abort();
        reaper.abort();
        info!(%provider, "worker stopped");
    }

    /// Stop: wait for running tasks up to the grace period, then hand back the rest.
    async fn drain(&self) {
        let grace = Duration::from_secs(self.config.worker.shutdown_grace_s);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            self.running().retain(|_, r| !r.handle.is_finished());
            if self.running().is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left: Vec<Running> = self.running().drain().map(|(_, r)| r).collect();
        if !left.is_empty() {
            info!(count = left.len(), "handing back unfinished tasks");
        }
        for r in left {
            r.handle.abort();
            if let Err(e) = self.sched.fail(&r.lease, &FailKind::Handback, "", "").await {
                warn!(task_id = %r.lease.id, error = %e, "hand-back failed; the reaper will requeue it");
            }
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis((self.config.scheduler.lease_ms / 3).max(200));
        loop {
            tokio::time::sleep(every).await;
            let leases: Vec<Lease> = {
                let mut r = self.running();
                r.retain(|_, t| !t.handle.is_finished());
                r.values().map(|t| t.lease.clone()).collect()
            };
            if leases.is_empty() {
                if *shutdown.borrow() {
                    return;
                }
                continue;
            }
            match self.sched.heartbeat(&leases).await {
                Ok(ok) => {
                    for (lease, alive) in leases.iter().zip(ok) {
                        if !alive && let Some(r) = self.running().remove(&lease.id) {
                            warn!(task_id = %lease.id, "lease lost; stopping this run");
                            r.handle.abort();
                        }
                    }
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
        }
    }

    async fn reap_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.worker.reap_interval_ms);
        let provider = self.upstream.provider();
        while !*shutdown.borrow() {
            if let Err(e) = self.sched.reap(provider, 500).await {
                warn!(error = %e, "reap failed");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One task: read it, pace the account, run it upstream under the timeout, settle.
    async fn run_one(&self, task: ClaimedTask) {
        let lease = task.lease.clone();
        let outcome = match self.prepare(&task) {
            Ok(job) => {
                self.pacing.until_key_ready(&job.account_id).await;
                let ctl = LeaseControl {
                    sched: self.sched.clone(),
                    lease: lease.clone(),
                };
                let timeout = Duration::from_secs(self.config.worker.task_timeout_s);
                match tokio::time::timeout(timeout, self.upstream.run(&job, &ctl)).await {
                    Ok(r) => r,
                    Err(_) => Err(UpstreamError::Transient(format!(
                        "upstream_timeout: no result within {} s",
                        timeout.as_secs()
                    ))),
                }
            }
            Err(e) => Err(e),
        };
        let label = match &outcome {
            Ok(_) => "completed",
            Err(UpstreamError::Transient(_)) => "transient",
            Err(UpstreamError::RateLimited { .. }) => "rate_limited",
            Err(UpstreamError::NoFastHours { .. }) => "no_fast_hours",
            Err(UpstreamError::AccountDead { .. }) => "account_dead",
            Err(UpstreamError::BadRequest { .. }) => "bad_request",
            Err(UpstreamError::LeaseLost) => "lease_lost",
        };
        metrics::counter!("switchyard_task_outcomes_total",
            "provider" => self.upstream.provider().as_str(), "outcome" => label)
        .increment(1);
        let result = match outcome {
            Ok(output) => self
                .sched
                .complete(&lease, &output.to_string())
                .await
                .map(|o| info!(outcome = ?o, "completed")),
            Err(UpstreamError::LeaseLost) => Ok(()),
            Err(e) => {
                let (kind, message, raw) = match &e {
                    UpstreamError::Transient(m) => (FailKind::Transient, m.clone(), String::new()),
                    UpstreamError::RateLimited {
                        retry_after_ms,
                        message,
                    } => (
                        FailKind::RateLimited {
                            retry_after_ms: *retry_after_ms,
                        },
                        message.clone(),
                        String::new(),
                    ),
                    UpstreamError::NoFastHours {
                        retry_after_ms,
                        message,
                    } => (
                        FailKind::NoFastHours {
                            retry_after_ms: *retry_after_ms,
                        },
                        message.clone(),
                        String::new(),
                    ),
                    UpstreamError::AccountDead { reason } => (
                        FailKind::AccountDead {
                            reason: reason.clone(),
                        },
                        reason.clone(),
                        String::new(),
                    ),
                    UpstreamError::BadRequest { message, raw } => {
                        (FailKind::BadRequest, message.clone(), raw.clone())
                    }
                    UpstreamError::LeaseLost => (FailKind::Handback, String::new(), String::new()),
                };
                self.sched
                    .fail(&lease, &kind, &message, &raw)
                    .await
                    .map(|o| info!(outcome = ?o, error = %e, "run failed"))
            }
        };
        if let Err(e) = result {
            warn!(error = %e, "could not record the outcome; the lease will expire and the task be retried");
        }
        self.running().remove(&lease.id);
    }

    fn prepare(&self, task: &ClaimedTask) -> Result<Job, UpstreamError> {
        let bad = |m: String| UpstreamError::BadRequest {
            message: m,
            raw: String::new(),
        };
        let body = TaskBody::from_json(&task.body)
            .map_err(|e| bad(format!("the task body is unreadable: {e}")))?;
        let spec = body
            .spec(&self.parse)
            .map_err(|e| bad(format!("the task input is no longer valid: {e}")))?;
        let opened =
            self.secrets
                .open(&task.account_secret)
                .map_err(|_| UpstreamError::AccountDead {
                    reason: "the account's stored credentials do not open with this master key"
                        .into(),
                })?;
        let credentials: Value =
            serde_json::from_str(&opened).map_err(|_| UpstreamError::AccountDead {
                reason: "the account's stored credentials are not valid JSON".into(),
            })?;
        Ok(Job {
            task_id: task.lease.id.clone(),
            account_id: task.account.clone(),
            spec,
            body,
            credentials,
            mode: task.mode,
            attempt: task.attempt,
            upstream_ref: task.upstream_ref.clone(),
        })
    }
}

struct LeaseControl {
    sched: Scheduler,
    lease: Lease,
}

#[async_trait]
impl Control for LeaseControl {
    async fn reference(&self, upstream_ref: &str) -> Result<(), LeaseLost> {
        match self
            .sched
            .report(&self.lease, Some(upstream_ref), None, None)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(LeaseLost),
            // Redis trouble: the reference must be stored before going on, or a retry
            // would submit twice. Treat as lost; the lease expires and the task retries.
            Err(e) => {
                warn!(error = %e, "could not store the upstream reference");
                Err(LeaseLost)
            }
        }
    }

    async fn progress(&self, percent: u8, partial: Option<&Value>) -> Result<(), LeaseLost> {
        let out = partial.map(Value::to_string);
        match self
            .sched
            .report(&self.lease, None, Some(percent.min(100)), out.as_deref())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(LeaseLost),
            Err(e) => {
                warn!(error = %e, "could not report progress");
                Ok(())
            }
        }
    }
}

/// The `main` of a provider binary: config (`--config FILE` or `SWITCHYARD_CONFIG`, then
/// `SWITCHYARD_*`), the master key, logs, Redis, and the worker until SIGTERM or SIGINT.
pub async fn run_main(make: impl FnOnce(&Config) -> Arc<dyn Upstream>) -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var("SWITCHYARD_CONFIG").ok();
    let mut json_logs = std::env::var("SWITCHYARD_LOG_FORMAT").ok().as_deref() == Some("json");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => path = args.next(),
            "--log-format" => json_logs = args.next().as_deref() == Some("json"),
            "-h" | "--help" => {
                println!(
                    "usage: {} [--config FILE] [--log-format text|json]\n\
                     Runs this provider's worker. Needs SWITCHYARD_MASTER_KEY (the key the \
                     dispatcher seals account credentials with) and Redis (redis.url / REDIS_URL).",
                    std::env::args().next().unwrap_or_default()
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument `{other}`; see --help"),
        }
    }
    init_logs(json_logs);
    let config = Config::load(path.as_deref().map(std::path::Path::new))?;
    let secrets = SecretBox::from_env()?;
    let sched = Scheduler::connect(&config).await?;
    let upstream = make(&config);
    if !config.worker.metrics_listen.is_empty() {
        serve_metrics(&config.worker.metrics_listen).await?;
    }
    let worker = Worker::new(sched, upstream, &config, secrets);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: no new claims; running tasks get the grace period");
        let _ = tx.send(true);
    });
    worker.run(rx).await;
    Ok(())
}

/// Serve `/metrics` (Prometheus) and `/healthz` for this worker process.
pub async fn serve_metrics(listen: &str) -> anyhow::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("worker.metrics_listen {listen}: {e}"))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let h = handle.clone();
                async move { h.render() }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(())
}

/// SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Human-readable logs by default, JSON with `json`; level from `RUST_LOG` (default info).
pub fn init_logs(json: bool) {
    init_logs_at(json, "info");
}

/// As [`init_logs`], with another default level.
pub fn init_logs_at(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
