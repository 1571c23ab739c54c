//! Shared helpers for the worker runtime's tests: real Redis (private servers), a
//! scheduler under a fresh key prefix, tenants, accounts and well-formed tasks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::secrets::SecretBox;
use switchyard_core::task::SunoTask;
use switchyard_core::{Config, Provider, QuotaKind, ServiceMode, TaskBody, TaskSpec};
use switchyard_scheduler::{AccountSpec, NewTask, Owner, Scheduler, TaskRecord};

/// The master key the tests seal credentials with.
pub const MASTER_KEY: &str = "switchyard-worker-tests-master-key";

/// The provider the tests' fake upstreams claim to be.
pub const PROVIDER: Provider = Provider::Suno;

/// A config on `url` under a fresh prefix, with test-friendly timings.
pub fn config(url: &str, name: &str) -> Config {
    let mut c = switchyard_harness::test_config(url, name);
    c.redis.pool_size = 32;
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
    s.upsert_tenant(tenant, &switchyard_harness::uncapped_settings())
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
    NewTask {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.to_string(),
        provider: spec.provider(),
        service_mode: ServiceMode::Ppu,
        process_mode: spec.process_mode(),
        pin: None,
        pin_holds: None,
        ppu_price: config.prices.price(ServiceMode::Ppu, &spec),
        body: TaskBody::new(spec, input, None).to_json(),
        extra: vec![],
        idempotency: None,
        log: vec![],
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
    match &job.spec {
        TaskSpec::Suno(SunoTask::Lyrics(l)) => l.prompt.clone(),
        other => panic!("not a lyrics task: {other:?}"),
    }
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

/// A task as stored (panics when it is gone).
pub async fn record(s: &Scheduler, tenant: &str, id: &str) -> TaskRecord {
    s.get_task(tenant, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("task {id} is gone"))
}

/// `Value` shorthand for the fake upstreams' outputs.
pub fn out(tag: &str) -> Value {
    json!({ "done": tag })
}

/// An upstream that answers at once with `out(task id)`, or panics for the prompt
/// `panic`; it counts its runs.
#[derive(Default)]
pub struct Quick {
    pub runs: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl switchyard_worker::Upstream for Quick {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    async fn run(
        &self,
        job: &switchyard_worker::Job,
        _: &dyn switchyard_worker::Control,
    ) -> Result<Value, switchyard_worker::UpstreamError> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if prompt(job) == "panic" {
            panic!("the adapter panicked (on purpose)");
        }
        Ok(out(&job.task_id))
    }

    async fn probe(&self, _: &str, _: &Value) -> Result<(), switchyard_worker::UpstreamError> {
        Ok(())
    }
}

/// Wait until every one of `ids` (tasks of `tenant`) is completed.
pub async fn wait_all_completed(s: &Scheduler, tenant: &str, ids: &[String], timeout: Duration) {
    wait_for("every task to complete", timeout, || async {
        s.get_tasks(tenant, ids).await.unwrap().iter().all(|r| {
            r.as_ref()
                .is_some_and(|r| r.status == switchyard_scheduler::StoredStatus::Completed)
        })
    })
    .await;
}
