//! Shared helpers for the worker runtime's tests: real Redis (private servers), a
//! scheduler under a fresh key prefix, tenants, accounts and well-formed tasks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::secrets::SecretBox;
use switchyard_core::{Config, Provider, QuotaKind, ServiceMode, TaskBody, TaskSpec};
use switchyard_scheduler::{AccountSpec, NewTask, Owner, Scheduler, TenantSettings};

/// The master key the tests seal credentials with.
pub const MASTER_KEY: &str = "switchyard-worker-tests-master-key";

/// The provider the tests' fake upstreams claim to be.
pub const PROVIDER: Provider = Provider::Suno;

/// A config on `url` under a fresh prefix, with test-friendly timings.
pub fn config(url: &str, name: &str) -> Config {
    let mut c = Config::default();
    c.redis.url = url.to_string();
    c.redis.key_prefix = switchyard_test_support::unique_prefix(name);
    c.redis.pool_size = 32;
    c.scheduler.retry_backoff_ms = 20;
    c.scheduler.retry_backoff_max_ms = 100;
    c.worker.poll_interval_ms = 50;
    c.worker.account_min_gap_ms = 1;
    c.worker.reap_interval_ms = 200;
    c.worker.shutdown_grace_s = 2;
    c
}

/// The secret box matching [`MASTER_KEY`].
pub fn secrets() -> SecretBox {
    SecretBox::new(MASTER_KEY).unwrap()
}

/// An uncapped tenant with plenty of Suno credits and `accounts` pool accounts of
/// `capacity` relax slots each.
pub async fn setup(s: &Scheduler, tenant: &str, accounts: usize, capacity: u32) {
    tenant_only(s, tenant).await;
    pool_accounts(s, accounts, capacity).await;
}

/// An uncapped tenant with plenty of Suno credits.
pub async fn tenant_only(s: &Scheduler, tenant: &str) {
    s.upsert_tenant(
        tenant,
        &TenantSettings {
            plan: "enterprise".into(),
            caps: Provider::ALL.map(|p| (p, None)),
            failover: false,
            failover_max_wait_ms: 0,
            retention_s: 3600,
        },
    )
    .await
    .unwrap();
    let key = uuid::Uuid::now_v7().to_string();
    s.top_up(tenant, QuotaKind::of(PROVIDER), 10_000_000, &key)
        .await
        .unwrap();
}

/// At least `accounts` pool accounts (`acct0`…) of `capacity` slots in each mode, and at
/// least one on each shard (pool accounts are spread over the shards by id).
pub async fn pool_accounts(s: &Scheduler, accounts: usize, capacity: u32) {
    let sealed = secrets().seal(&json!({"cookie": "c"}).to_string());
    let shards = s.config().scheduler.shards;
    let mut covered = vec![false; shards as usize];
    let mut ids = Vec::new();
    for i in 0.. {
        if ids.len() >= accounts && covered.iter().all(|c| *c) {
            break;
        }
        let id = format!("acct{i}");
        covered[switchyard_scheduler::keys::shard_of(&id, shards) as usize] = true;
        ids.push(id);
    }
    for id in ids {
        s.add_account(
            PROVIDER,
            &Owner::Pool,
            &id,
            &AccountSpec {
                name: Some(id.clone()),
                capacity: Some([capacity, capacity, capacity]),
                weight: Some(1),
                backup: Some(false),
                secret: Some(sealed.clone()),
                ..AccountSpec::default()
            },
        )
        .await
        .unwrap();
    }
}

/// A well-formed Suno lyrics task whose prompt is `prompt`.
pub fn task(config: &Config, tenant: &str, prompt: &str) -> NewTask {
    let input = json!({ "prompt": prompt });
    let spec = TaskSpec::parse("suno", "lyrics", &input, &config.parse_options()).unwrap();
    let body = TaskBody {
        model: spec.provider(),
        task_type: "lyrics".into(),
        input,
        resolved: None,
        origin: None,
    };
    NewTask {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.to_string(),
        provider: spec.provider(),
        service_mode: ServiceMode::Ppu,
        process_mode: spec.process_mode(),
        pin: None,
        ppu_price: config.prices.price(ServiceMode::Ppu, &spec),
        body: body.to_json(),
        extra: vec![],
        idempotency: None,
    }
}

/// Submit a task; its id.
pub async fn submit(s: &Scheduler, config: &Config, tenant: &str, prompt: &str) -> String {
    let t = task(config, tenant, prompt);
    s.submit(&t).await.unwrap();
    t.id
}

/// The prompt of a job (the tests' fake upstreams steer by it).
pub fn prompt(job: &switchyard_worker::Job) -> String {
    job.body.input["prompt"].as_str().unwrap_or("").to_string()
}

/// Wait (async) until `cond` holds, or panic with `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A task's stored fields (empty when gone).
pub async fn fields(
    s: &Scheduler,
    tenant: &str,
    id: &str,
) -> std::collections::HashMap<String, String> {
    s.get_task(tenant, id)
        .await
        .unwrap()
        .map(|r| r.fields)
        .unwrap_or_default()
}

/// A `redis-server` this test starts, stops (SIGKILL) and restarts on the same port and
/// directory, with an append-only file synced on every write, so its data survives.
/// Watched like the test-support servers: it dies with the test process.
pub struct OwnRedis {
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    /// Extra `redis-server` arguments.
    extra: String,
}

impl OwnRedis {
    /// A server on a free port (not started).
    pub fn new(tag: &str, extra: &str) -> OwnRedis {
        let port = switchyard_test_support::free_port();
        let dir = std::env::temp_dir().join(format!(
            "switchyard-worker-{tag}-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        OwnRedis {
            port,
            dir,
            extra: extra.to_string(),
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start it (again) and wait until it answers PING.
    pub fn start(&self) {
        self.spawn();
        self.wait_ping();
    }

    /// Start it without waiting.
    pub fn spawn(&self) {
        let me = std::process::id();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --dir '{dir}' --save '' \
             --appendonly yes --appendfsync always --maxmemory-policy noeviction \
             --loglevel warning --logfile '{dir}/redis.log' {extra} & \
             rpid=$!; while kill -0 {me} 2>/dev/null && kill -0 $rpid 2>/dev/null; do sleep 0.5; done; \
             kill $rpid 2>/dev/null; wait $rpid 2>/dev/null",
            port = self.port,
            dir = self.dir.display(),
            extra = self.extra,
        );
        let mut watcher = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        std::thread::spawn(move || watcher.wait());
    }

    fn cli(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let mut all = vec!["-p", port.as_str()];
        all.extend_from_slice(args);
        Command::new("redis-cli")
            .args(&all)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }

    /// Whether it answers PING.
    pub fn answers(&self) -> bool {
        self.cli(&["ping"]).contains("PONG")
    }

    fn wait_ping(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the server (no shutdown, no save) and wait until the port is dead.
    pub fn kill(&self) {
        let info = self.cli(&["info", "server"]);
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .map(|p| p.trim().to_string())
            .expect("redis-server's pid");
        let ok = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -9 {pid}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.answers() {
            assert!(Instant::now() < deadline, "redis-server survived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.cli(&["shutdown", "nosave"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `Value` shorthand for the fake upstreams' outputs.
pub fn out(tag: &str) -> Value {
    json!({ "done": tag })
}
