//! End-to-end test harness: a simulator, a private Redis, a scheduler under a fresh key
//! prefix, and workers (in-process, or the real binaries as child processes), wired the
//! way an operator wires them. Used by the adapter crates' and the dispatcher's tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::config::{Pacing, UpstreamsConfig};
use switchyard_core::secrets::SecretBox;
use switchyard_core::{Config, Plan, PlanTable, Provider, QuotaKind, ServiceMode, TaskSpec};
use switchyard_provider_sim::Sim;
use switchyard_scheduler::{
    AccountSpec, Owner, Scheduler, TaskRecord, TaskRequest, TenantSettings,
};
use switchyard_worker::{Upstream, Worker};
use tokio::sync::watch;

/// The master key every harness seals credentials with.
pub const MASTER_KEY: &str = "switchyard-harness-master-key";

/// Everything an end-to-end test needs.
pub struct Harness {
    /// The simulator.
    pub sim: Sim,
    /// The scheduler.
    pub sched: Scheduler,
    /// The config workers run with.
    pub config: Config,
    /// Seals account credentials.
    pub secrets: SecretBox,
    /// The plans of tenants made by [`Harness::tenant`] (others are taken as Enterprise).
    plans: std::sync::Mutex<std::collections::HashMap<String, Plan>>,
}

/// The credential JSON of a provider's account, from a simulator credential string.
pub fn credentials(provider: Provider, cred: &str) -> Value {
    match provider {
        Provider::Midjourney => json!({"token": cred}),
        Provider::Suno | Provider::Luma => json!({"cookie": cred}),
        Provider::Gpts => json!({"access_token": cred}),
    }
}

/// A config on `url` under a fresh key prefix, with the test-friendly timings every
/// test shares: quick retries, polls and reaps, no pacing to speak of, a 2 s shutdown
/// grace, input files fetched from the simulator on loopback.
pub fn test_config(url: &str, name: &str) -> Config {
    let mut c = Config::default();
    c.redis.url = url.to_string();
    c.redis.key_prefix = switchyard_test_support::unique_prefix(name);
    c.scheduler.retry_backoff_ms = 20;
    c.scheduler.retry_backoff_max_ms = 100;
    c.worker.poll_interval_ms = 50;
    c.scheduler.pacing = switchyard_core::config::PacingDefaults::all(Pacing::NONE);
    c.worker.reap_interval_ms = 200;
    c.scheduler.probe_backoff_ms = 300;
    c.scheduler.probe_backoff_max_ms = 1000;
    c.worker.shutdown_grace_s = 2;
    c.worker.allow_private_inputs = true;
    // Hosted results in this test binary's scratch directory (removed when it exits).
    c.storage.dir = switchyard_test_support::scratch("files")
        .join(&c.redis.key_prefix)
        .display()
        .to_string();
    c
}

/// A tenant with no PPU cap on any provider (Enterprise-like) and no failover.
pub fn uncapped_settings() -> TenantSettings {
    TenantSettings {
        plan: "enterprise".into(),
        caps: Provider::ALL.map(|p| (p, None)),
        failover: false,
        failover_max_wait_ms: 0,
        retention_s: 3600,
        max_queued: Provider::ALL.map(|p| (p, None)),
        max_pending_ms: 0,
        downgrade: true,
    }
}

impl Harness {
    /// A harness with test-friendly timings.
    pub async fn new(name: &str) -> Harness {
        Harness::with(name, |_| {}).await
    }

    /// A harness with config changes.
    pub async fn with(name: &str, f: impl FnOnce(&mut Config)) -> Harness {
        let sim = Sim::start("127.0.0.1:0").await.unwrap();
        let redis = switchyard_test_support::redis();
        let mut c = test_config(&redis.url, name);
        c.redis.pool_size = 64;
        c.scheduler.lease_ms = 3000;
        c.worker.task_timeout_s = 30;
        c.upstreams = UpstreamsConfig::all_at(&sim.url());
        f(&mut c);
        c.validate().unwrap();
        let sched = Scheduler::connect(&c).await.unwrap();
        Harness {
            sim,
            sched,
            config: c,
            secrets: SecretBox::new(MASTER_KEY).unwrap(),
            plans: Default::default(),
        }
    }

    /// A tenant on a plan, with no limit on its waiting tasks (tests queue deep backlogs;
    /// the plan's limit is tested where it is enforced, in the scheduler and the API).
    pub async fn tenant(&self, id: &str, plan: Plan) {
        self.plans.lock().unwrap().insert(id.to_string(), plan);
        let t = PlanTable::seed();
        let mut settings = TenantSettings::from_plan(plan.as_str(), t.get(plan), 0);
        settings.max_queued = settings.max_queued.map(|(p, _)| (p, None));
        self.sched.upsert_tenant(id, &settings).await.unwrap();
    }

    /// Lift every PPU cap of a tenant (Enterprise-like), for load tests.
    pub async fn upsert_uncapped(&self, id: &str) {
        self.sched
            .upsert_tenant(id, &uncapped_settings())
            .await
            .unwrap();
    }

    /// Credit a balance.
    pub async fn fund(&self, tenant: &str, kind: QuotaKind, amount: i64) {
        let key = uuid::Uuid::now_v7().to_string();
        self.sched.top_up(tenant, kind, amount, &key).await.unwrap();
    }

    /// Add an account (pool or tenant) whose simulator credential is `cred`.
    pub async fn account(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
        cred: &str,
        capacity: [u32; 3],
    ) {
        let sealed = self.secrets.seal(&credentials(provider, cred).to_string());
        self.sched
            .add_account(
                provider,
                owner,
                id,
                &AccountSpec {
                    name: Some(id.to_string()),
                    capacity: Some(capacity),
                    weight: Some(1),
                    backup: Some(false),
                    secret: Some(sealed),
                    ..AccountSpec::default()
                },
            )
            .await
            .unwrap();
    }

    /// Submit a task the way the dispatcher does: the input parsed, then the scheduler's
    /// intake (a follow-up's origin, entitlement for the tenant's plan, price, body), then
    /// the submit. Panics on a refusal.
    pub async fn submit(
        &self,
        tenant: &str,
        mode: ServiceMode,
        model: &str,
        task_type: &str,
        input: Value,
    ) -> String {
        let spec = TaskSpec::parse(model, task_type, &input, &self.config.parse_options())
            .unwrap_or_else(|e| panic!("{model}/{task_type}: {e}"));
        let plan = self.plans.lock().unwrap().get(tenant).copied();
        let request = TaskRequest {
            model: model.to_string(),
            task_type: task_type.to_string(),
            spec,
            input,
            service_mode: mode,
            extra: vec![],
            idempotency: None,
        };
        let task = self
            .sched
            .intake(tenant, plan.unwrap_or(Plan::Enterprise), request)
            .await
            .unwrap_or_else(|e| panic!("{model}/{task_type}: {e}"));
        self.sched.submit(&task).await.unwrap();
        task.id
    }

    /// Wait until a task is completed, failed or cancelled.
    pub async fn wait_terminal(&self, tenant: &str, id: &str, timeout: Duration) -> TaskRecord {
        self.wait_task(tenant, id, "a terminal status", timeout, |r| {
            r.status.is_terminal()
        })
        .await
    }

    /// Wait until `cond` holds on a task.
    pub async fn wait_task(
        &self,
        tenant: &str,
        id: &str,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&TaskRecord) -> bool,
    ) -> TaskRecord {
        let deadline = Instant::now() + timeout;
        loop {
            let rec = self.sched.get_task(tenant, id).await.unwrap();
            if let Some(r) = &rec
                && cond(r)
            {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "task {id}: timed out waiting for {what}: {rec:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Run a worker in this process until the returned sender sends `true`.
    pub fn start_worker(&self, upstream: Arc<dyn Upstream>) -> RunningWorker {
        let worker = Worker::new(
            self.sched.clone(),
            upstream,
            &self.config,
            self.secrets.clone(),
        );
        let (tx, rx) = watch::channel(false);
        let handle = tokio::spawn(worker.run(rx));
        RunningWorker { stop: tx, handle }
    }

    /// The environment a worker binary needs to join this harness.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let u = &c.upstreams;
        [
            ("SWITCHYARD_REDIS__URL", c.redis.url.clone()),
            ("SWITCHYARD_REDIS__KEY_PREFIX", c.redis.key_prefix.clone()),
            (
                "SWITCHYARD_SCHEDULER__LEASE_MS",
                c.scheduler.lease_ms.to_string(),
            ),
            (
                "SWITCHYARD_SCHEDULER__RETRY_BACKOFF_MS",
                c.scheduler.retry_backoff_ms.to_string(),
            ),
            (
                "SWITCHYARD_SCHEDULER__RETRY_BACKOFF_MAX_MS",
                c.scheduler.retry_backoff_max_ms.to_string(),
            ),
            (
                "SWITCHYARD_WORKER__POLL_INTERVAL_MS",
                c.worker.poll_interval_ms.to_string(),
            ),
            (
                "SWITCHYARD_SCHEDULER__CLOCK_OFFSET_MS",
                c.scheduler.clock_offset_ms.to_string(),
            ),
            (
                "SWITCHYARD_SCHEDULER__PROBE_BACKOFF_MS",
                c.scheduler.probe_backoff_ms.to_string(),
            ),
            (
                "SWITCHYARD_SCHEDULER__PROBE_BACKOFF_MAX_MS",
                c.scheduler.probe_backoff_max_ms.to_string(),
            ),
            (
                "SWITCHYARD_WORKER__SHUTDOWN_GRACE_S",
                c.worker.shutdown_grace_s.to_string(),
            ),
            (
                "SWITCHYARD_WORKER__REAP_INTERVAL_MS",
                c.worker.reap_interval_ms.to_string(),
            ),
            (
                "SWITCHYARD_WORKER__CONCURRENCY",
                c.worker.concurrency.to_string(),
            ),
            (
                "SWITCHYARD_WORKER__ALLOW_PRIVATE_INPUTS",
                c.worker.allow_private_inputs.to_string(),
            ),
            ("SWITCHYARD_UPSTREAMS__DISCORD_API", u.discord_api.clone()),
            (
                "SWITCHYARD_UPSTREAMS__DISCORD_GATEWAY",
                u.discord_gateway.clone(),
            ),
            ("SWITCHYARD_UPSTREAMS__SUNO_API", u.suno_api.clone()),
            ("SWITCHYARD_UPSTREAMS__SUNO_CLERK", u.suno_clerk.clone()),
            ("SWITCHYARD_UPSTREAMS__LUMA_API", u.luma_api.clone()),
            ("SWITCHYARD_UPSTREAMS__CHATGPT_API", u.chatgpt_api.clone()),
            (
                "SWITCHYARD_UPSTREAMS__MIDJOURNEY_CDN",
                u.midjourney_cdn.clone(),
            ),
            (
                "SWITCHYARD_UPSTREAMS__DISCORD_INPAINT",
                u.discord_inpaint.clone(),
            ),
            ("SWITCHYARD_STORAGE__DIR", c.storage.dir.clone()),
            ("SWITCHYARD_MASTER_KEY", MASTER_KEY.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(Provider::ALL.into_iter().flat_map(|p| {
            let pacing = c.scheduler.pacing.of(p);
            let key = |f: &str| {
                format!(
                    "SWITCHYARD_SCHEDULER__PACING__{}__{f}",
                    p.as_str().to_uppercase()
                )
            };
            [
                (key("MIN_GAP_S"), pacing.min_gap_s.to_string()),
                (key("MAX_GAP_S"), pacing.max_gap_s.to_string()),
            ]
        }))
        .collect()
    }
}

/// A worker running in this process.
pub struct RunningWorker {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Stop it (graceful) and wait.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// A task's output as JSON.
pub fn output(r: &TaskRecord) -> Value {
    r.output.clone()
}

/// A worker binary running as a child process with a harness's environment. Dropped while
/// it still runs (a failing test), it is SIGKILLed, so no test leaves one behind.
pub struct WorkerProcess {
    child: std::process::Child,
}

impl Harness {
    /// Start the worker binary `exe` (e.g. `env!("CARGO_BIN_EXE_switchyard-worker-suno")`)
    /// with [`Harness::worker_env`] and `extra` on top.
    pub fn spawn_worker_binary(&self, exe: &str, extra: &[(&str, &str)]) -> WorkerProcess {
        let mut cmd = std::process::Command::new(exe);
        cmd.envs(self.worker_env())
            .env_remove("SWITCHYARD_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        WorkerProcess {
            child: cmd.spawn().unwrap_or_else(|e| panic!("start {exe}: {e}")),
        }
    }

    /// Wait until the simulator's witness shows no job running on `account` upstream.
    pub async fn wait_upstream_idle(&self, account: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self
            .sim
            .stats()
            .accounts
            .get(account)
            .map_or(0, |c| c.current)
            > 0
        {
            assert!(
                Instant::now() < deadline,
                "{account}: the upstream jobs never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the simulator's witness counts `n` upstream jobs for `[sim:task=marker]`.
    pub async fn wait_upstream_jobs(&self, marker: &str, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.sim.stats();
            if s.tasks.get(marker) == Some(&n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} upstream jobs of {marker}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl WorkerProcess {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (`-TERM`, `-KILL`, …) with `kill`.
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {} failed", self.child.id());
    }

    /// SIGKILL (no hand-back, no goodbye) and reap it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Wait for it to exit by itself within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("worker status") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (graceful: hand back what runs) and wait for the exit.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.wait_exit(within)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
