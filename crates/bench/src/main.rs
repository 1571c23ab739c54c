//! `switchyard-peer-bench`: the bench-peers kit's workload through Switchyard.
//!
//! N no-op tasks (Suno `generate_music`, PPU, priced, held and captured) are submitted in
//! bulk batches of `BATCH` by `TENANTS` Premium tenants (caps and retention from the plan
//! table; its queue bound raised, as an operator may, when a tenant's share of the
//! backlog would not fit) to a pool of 10 accounts × 10; one worker with `CONCURRENCY` slots runs them:
//! `RUNTIME=1` the real worker runtime (`switchyard_worker::Worker`) over an upstream that
//! answers at once, `RUNTIME=0` a minimal claim loop over the scheduler (claim, then
//! complete the batch). `MODE=separate` enqueues everything then drains it; `concurrent`
//! starts the worker first. Pacing is off (the workload measures the queue, not an
//! upstream's manners). Prints the kit's `RESULT` line; exits 1, saying why, when a task
//! was refused, not every task completed, or a balance does not add up. Its keys live
//! under a fresh prefix, deleted at the end. Logs and metrics are a worker process's: the
//! level from `RUST_LOG` (default info) on stderr, a Prometheus recorder installed.
//!
//! Environment: `N` (20000), `BATCH` (1000), `CONCURRENCY` (50), `MODE` (separate),
//! `RUNTIME` (1), `TENANTS` (10), `REDIS_URL` (redis://127.0.0.1:6379/).
//!
//! Two more scenarios, by `SCENARIO`: `latency` (dispatch latency with idle capacity,
//! [`latency`]) and `utilisation` (accounts kept busy under realistic pacing, on the
//! simulator, [`utilisation`]).

mod latency;
mod utilisation;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::secrets::SecretBox;
use switchyard_core::{Config, Plan, Provider, QuotaKind, ServiceMode, TaskSpec};
use switchyard_scheduler::{AccountSpec, NewTask, Owner, Scheduler, TaskRequest, TenantSettings};
use switchyard_worker::{Control, Job, Upstream, UpstreamError, Worker};

pub(crate) const PROVIDER: Provider = Provider::Suno;
const POOL_ACCOUNTS: usize = 10;
const ACCOUNT_CAPACITY: u32 = 10;
/// A stalled run ends here (the kit's own timeout is 300 s).
pub(crate) const STALL: Duration = Duration::from_secs(240);

pub(crate) struct Params {
    n: usize,
    batch: usize,
    conc: usize,
    tenants: usize,
    concurrent: bool,
    runtime: bool,
    url: String,
}

pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not a valid value")),
        _ => Ok(default),
    }
}

impl Params {
    fn from_env() -> Result<Params, String> {
        let mode = env_or("MODE", "separate".to_string())?;
        let concurrent = match mode.as_str() {
            "separate" => false,
            "concurrent" => true,
            other => return Err(format!("MODE={other}: use separate or concurrent")),
        };
        let p = Params {
            n: env_or("N", 20_000)?,
            batch: env_or("BATCH", 1000)?,
            conc: env_or("CONCURRENCY", 50)?,
            tenants: env_or("TENANTS", 10)?,
            concurrent,
            runtime: env_or("RUNTIME", 1u8)? == 1,
            url: env_or("REDIS_URL", "redis://127.0.0.1:6379/".to_string())?,
        };
        if p.n == 0 || p.batch == 0 || p.conc == 0 || p.tenants == 0 {
            return Err("N, BATCH, CONCURRENCY and TENANTS must be at least 1".into());
        }
        Ok(p)
    }
}

/// An upstream that answers at once (the no-op job of the kit), counting its runs and,
/// when asked to, noting when each task reached it.
pub(crate) struct NoOp {
    runs: AtomicUsize,
    reached: Option<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
}

impl NoOp {
    pub(crate) fn new(stamp: bool) -> NoOp {
        NoOp {
            runs: AtomicUsize::new(0),
            reached: stamp.then(Default::default),
        }
    }

    /// When each task reached it (empty unless made to stamp).
    pub(crate) fn reached(&self) -> std::collections::HashMap<String, Instant> {
        self.reached
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Upstream for NoOp {
    fn provider(&self) -> Provider {
        PROVIDER
    }
    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        ctl.pace().await?;
        if let Some(m) = &self.reached {
            let now = Instant::now();
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(job.task_id.clone(), now);
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        Ok(json!({"clips": []}))
    }
    async fn probe(&self, _account: &str, _credentials: &Value) -> Result<(), UpstreamError> {
        Ok(())
    }
}

pub(crate) struct Bench {
    sched: Scheduler,
    config: Config,
    secrets: SecretBox,
    tenants: Vec<String>,
    queue_bound: u32,
    price: u64,
    credit: u64,
}

pub(crate) async fn setup(p: &Params, prefix: &str) -> Result<(Bench, Vec<NewTask>), String> {
    let mut config = Config::default();
    config.redis.url = p.url.clone();
    config.redis.key_prefix = prefix.to_string();
    config.scheduler.pacing =
        switchyard_core::config::PacingDefaults::all(switchyard_core::config::Pacing::NONE);
    config.worker.concurrency = p.conc;
    // Premium as the plan table has it, but for the queue bound (an admission limit,
    // 10 × the cap by default): raised, as an operator may (`[plans.premium]
    // queue_per_cap`), when each tenant's share of the backlog would not fit.
    let per_tenant = p.n.div_ceil(p.tenants);
    let cap = config
        .plans
        .premium
        .ppu_cap(PROVIDER)
        .unwrap_or(u32::MAX)
        .max(1) as usize;
    if (config
        .plans
        .premium
        .max_queued(PROVIDER)
        .unwrap_or(u32::MAX) as usize)
        < per_tenant
    {
        config.plans.premium.queue_per_cap = per_tenant.div_ceil(cap) as u32;
    }
    let premium = config.plans.get(Plan::Premium).clone();
    let sched = Scheduler::connect(&config)
        .await
        .map_err(|e| format!("cannot reach Redis at {}: {e}", p.url))?;
    let tenants: Vec<String> = (0..p.tenants).map(|i| format!("bench-t{i}")).collect();

    // One real request through intake (prompt check, entitlement, price, stored body);
    // every task is a copy of it under its own id and tenant.
    let input =
        json!({"gpt_description_prompt": "a song about the sea", "make_instrumental": false});
    let spec = TaskSpec::parse("suno", "generate_music", &input, &config.parse_options())
        .map_err(|e| format!("the bench task does not parse: {e}"))?;
    let template = sched
        .intake(
            &tenants[0],
            Plan::Premium,
            TaskRequest {
                model: "suno".into(),
                task_type: "generate_music".into(),
                spec,
                input,
                service_mode: ServiceMode::Ppu,
                extra: vec![],
                idempotency: None,
            },
        )
        .await
        .map_err(|e| format!("intake refused the bench task: {e}"))?;
    let price = template.ppu_price.amount;
    let credit = price * per_tenant as u64 + 1000;
    let settings = TenantSettings::from_plan("premium", &premium, 0);
    for t in &tenants {
        sched
            .upsert_tenant(t, &settings)
            .await
            .map_err(|e| e.to_string())?;
        sched
            .top_up(t, QuotaKind::SunoQuota, credit as i64, "bench")
            .await
            .map_err(|e| e.to_string())?;
    }
    let secrets = SecretBox::new(&format!("peer-bench {}", uuid::Uuid::new_v4()))
        .map_err(|e| e.to_string())?;
    for a in 0..POOL_ACCOUNTS {
        sched
            .add_account(
                PROVIDER,
                &Owner::Pool,
                &format!("bench-acc{a}"),
                &AccountSpec {
                    capacity: Some([ACCOUNT_CAPACITY, 0, 0]),
                    weight: Some(1),
                    secret: Some(secrets.seal(r#"{"cookie":"bench"}"#)),
                    ..AccountSpec::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let tasks = (0..p.n)
        .map(|i| {
            let mut t = template.clone();
            t.id = format!("b{i:x}-{}", uuid::Uuid::now_v7().simple());
            t.tenant = tenants[i % tenants.len()].clone();
            t
        })
        .collect();
    Ok((
        Bench {
            sched,
            config,
            secrets,
            tenants,
            queue_bound: premium.max_queued(PROVIDER).unwrap_or(0),
            price,
            credit,
        },
        tasks,
    ))
}

/// Bulk-submit every task, `batch` per call; a refused task ends the run.
pub(crate) async fn enqueue(
    sched: &Scheduler,
    tasks: &[NewTask],
    batch: usize,
) -> Result<f64, String> {
    let t0 = Instant::now();
    for chunk in tasks.chunks(batch) {
        let replies = sched
            .submit_batch(chunk)
            .await
            .map_err(|e| format!("submit failed: {e}"))?;
        if let Some((t, Err(e))) = chunk.iter().zip(&replies).find(|(_, r)| r.is_err()) {
            return Err(format!("task {} was refused: {e}", t.id));
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// The minimal claim loop: two claimers (so one round trip never idles the slots), each
/// with half the slots, claim what fits and complete it at once.
async fn claim_loop(sched: Scheduler, conc: usize, n: usize) -> Result<(), String> {
    let done = Arc::new(AtomicUsize::new(0));
    let claimers = conc.min(2);
    let mut hs = Vec::new();
    for i in 0..claimers {
        let slots = conc / claimers + usize::from(i < conc % claimers);
        let (s, done) = (sched.clone(), done.clone());
        hs.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < n {
                let got = s
                    .try_claim(PROVIDER, slots)
                    .await
                    .map_err(|e| e.to_string())?;
                if got.is_empty() {
                    s.wait_for_work(PROVIDER, Duration::from_millis(50))
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                let acks: Vec<_> = got.into_iter().map(|c| (c.lease, "{}".into())).collect();
                let k = acks.len();
                s.complete_many(&acks).await.map_err(|e| e.to_string())?;
                done.fetch_add(k, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    for h in hs {
        h.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Wait until every task has left the queue and its lease.
pub(crate) async fn drained(sched: &Scheduler, deadline: Instant) -> Result<(), String> {
    loop {
        let load = sched
            .provider_load(PROVIDER)
            .await
            .map_err(|e| e.to_string())?;
        if load.queued == 0 && load.in_flight == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "stalled: {} tasks still queued and {} in flight after {} s",
                load.queued,
                load.in_flight,
                STALL.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Every tenant charged exactly its tasks' price, nothing left held or refunded.
pub(crate) async fn check_balances(b: &Bench, n: usize) -> Result<(), String> {
    let mut captured_total = 0;
    for (i, t) in b.tenants.iter().enumerate() {
        let tasks = (n / b.tenants.len() + usize::from(i < n % b.tenants.len())) as i64;
        let bal = b.sched.balances(t).await.map_err(|e| e.to_string())?;
        let s = bal.get(&QuotaKind::SunoQuota).copied().unwrap_or_default();
        let want = tasks * b.price as i64;
        if s.captured != want
            || s.held != 0
            || s.refunded != 0
            || s.available != b.credit as i64 - want
        {
            return Err(format!(
                "tenant {t}: balance does not add up for {tasks} tasks at {}: {s:?}",
                b.price
            ));
        }
        captured_total += s.captured;
    }
    if captured_total != n as i64 * b.price as i64 {
        return Err(format!(
            "captured {captured_total} in all, expected {}",
            n as i64 * b.price as i64
        ));
    }
    Ok(())
}

async fn run(p: &Params, prefix: &str) -> Result<String, String> {
    let (b, tasks) = setup(p, prefix).await?;
    let upstream = Arc::new(NoOp::new(false));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let start_worker = || -> tokio::task::JoinHandle<Result<(), String>> {
        if p.runtime {
            let w = Worker::new(
                b.sched.clone(),
                upstream.clone(),
                &b.config,
                b.secrets.clone(),
            );
            let stopped = stopped.clone();
            tokio::spawn(async move {
                w.run(stopped).await;
                Ok(())
            })
        } else {
            tokio::spawn(claim_loop(b.sched.clone(), p.conc, p.n))
        }
    };
    let redis0 = redis_usage(&p.url).await?;
    let t0 = Instant::now();
    let (enqueue_s, worker_t0, worker) = if p.concurrent {
        let worker = start_worker();
        let e = enqueue(&b.sched, &tasks, p.batch).await?;
        (e, t0, worker)
    } else {
        let e = enqueue(&b.sched, &tasks, p.batch).await?;
        let t1 = Instant::now();
        (e, t1, start_worker())
    };
    drained(&b.sched, worker_t0 + STALL).await?;
    let work_s = worker_t0.elapsed().as_secs_f64();
    let redis1 = redis_usage(&p.url).await?;
    let _ = stop.send(true);
    worker.await.map_err(|e| e.to_string())??;
    if p.runtime && upstream.runs.load(Ordering::Relaxed) != p.n {
        return Err(format!(
            "the upstream ran {} tasks, not {}",
            upstream.runs.load(Ordering::Relaxed),
            p.n
        ));
    }
    check_balances(&b, p.n).await?;
    let lib = format!(
        "switchyard@{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("SWITCHYARD_COMMIT")
    );
    let common = format!(
        "lib={lib} mode={} n={} conc={} enqueue_s={enqueue_s:.3} enqueue_jps={:.0}",
        if p.concurrent {
            "concurrent"
        } else {
            "separate"
        },
        p.n,
        p.conc,
        p.n as f64 / enqueue_s,
    );
    // What Redis spent, per task, on everything from the first submit to the last
    // completion (both its threads' CPU, and script calls).
    let tail = format!(
        "worker={} tenants={} queue_bound={} accounts={POOL_ACCOUNTS}x{ACCOUNT_CAPACITY} price={} redis_cpu_us_per_task={:.1} script_calls_per_task={:.3}",
        if p.runtime { "runtime" } else { "loop" },
        b.tenants.len(),
        b.queue_bound,
        b.price,
        (redis1.0 - redis0.0) * 1e6 / p.n as f64,
        (redis1.1 - redis0.1) as f64 / p.n as f64,
    );
    Ok(if p.concurrent {
        format!(
            "RESULT {common} total_s={work_s:.3} e2e_jps={:.0} {tail}",
            p.n as f64 / work_s
        )
    } else {
        format!(
            "RESULT {common} process_s={work_s:.3} process_jps={:.0} {tail}",
            p.n as f64 / work_s
        )
    })
}

/// Redis's CPU seconds so far (user + system, all threads) and its script calls.
async fn redis_usage(url: &str) -> Result<(f64, u64), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut cpu = 0.0;
    let mut calls = 0;
    for line in info.lines() {
        if let Some(v) = line
            .strip_prefix("used_cpu_user:")
            .or_else(|| line.strip_prefix("used_cpu_sys:"))
        {
            cpu += v.trim().parse::<f64>().unwrap_or(0.0);
        }
        if let Some(rest) = line
            .strip_prefix("cmdstat_evalsha:")
            .or_else(|| line.strip_prefix("cmdstat_eval:"))
            && let Some(n) = rest
                .strip_prefix("calls=")
                .and_then(|r| r.split(',').next())
        {
            calls += n.parse::<u64>().unwrap_or(0);
        }
    }
    Ok((cpu, calls))
}

/// Delete the run's keys (the kit's Redis is shared by every run).
async fn cleanup(url: &str, prefix: &str) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

#[tokio::main]
async fn main() {
    let p = match Params::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("switchyard-peer-bench: {e}");
            std::process::exit(2);
        }
    };
    // As a worker process runs: its logs (RUST_LOG, default info, on stderr) and its
    // metrics recorder.
    switchyard_worker::init_logs(false);
    if let Err(e) = switchyard_worker::serve_metrics("127.0.0.1:0").await {
        eprintln!("switchyard-peer-bench: {e}");
        std::process::exit(2);
    }
    let prefix = format!("peerbench-{}", uuid::Uuid::new_v4().simple());
    let scenario = std::env::var("SCENARIO").unwrap_or_default();
    let result = match scenario.as_str() {
        "" | "peer" => run(&p, &prefix).await,
        "latency" => latency::run(&p, &prefix).await,
        "utilisation" => utilisation::run().await,
        other => Err(format!(
            "SCENARIO={other}: use peer (the default), latency or utilisation"
        )),
    };
    if let Err(e) = cleanup(&p.url, &prefix).await {
        eprintln!("switchyard-peer-bench: could not delete the run's keys ({prefix}*): {e}");
    }
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("switchyard-peer-bench: FAILED: {e}");
            std::process::exit(1);
        }
    }
}
