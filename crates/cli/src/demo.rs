//! `switchyard demo`: the whole system in one process against the simulated upstreams.
//!
//! Redis from `REDIS_URL`, or a private `redis-server` on a free port (stopped on exit);
//! the simulator; the dispatcher; the four workers; three seeded tenants (Hobbyist,
//! Developer, Premium) with balances, a PPU pool larger than the sum of their caps, and
//! sample hosted accounts. Prints everything needed to drive it, optionally runs a
//! sample workload with live progress, and serves until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rand::RngCore;
use serde_json::{Value, json};
use switchyard_core::config::{StorageConfig, StorageKind, UpstreamsConfig};
use switchyard_core::secrets::SecretBox;
use switchyard_core::{Config, Plan, PlanTable, Provider, TaskStatus};
use switchyard_dispatcher::client::{Client, ClientError};
use switchyard_worker::{Upstream, Worker};

use crate::redis_server::PrivateRedis;
use crate::tables::CliError;

/// Flags of `switchyard demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Admin token (default: a random one, printed).
    #[arg(long)]
    admin_token: Option<String>,
    /// Do not submit the sample workload.
    #[arg(long)]
    no_workload: bool,
    /// Allow webhook endpoints on private and loopback addresses.
    #[arg(long)]
    allow_private_webhooks: bool,
    /// Logs on stderr (warnings and up unless RUST_LOG says otherwise): text or json.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The plans of the seeded tenants, in the order they are printed.
const DEMO_PLANS: [Plan; 3] = [Plan::Hobbyist, Plan::Developer, Plan::Premium];

/// One account of the demo's PPU pool: provider, name, credentials, capacity.
struct PoolAccount {
    provider: Provider,
    name: &'static str,
    credentials: Value,
    /// Midjourney: the same capacity in relax, fast and turbo; the others: concurrency.
    capacity: u32,
}

/// The demo's PPU pool: two simulated accounts per provider, more than the sum of the
/// seeded tenants' caps.
fn pool() -> Vec<PoolAccount> {
    let account = |provider, name, credentials, capacity| PoolAccount {
        provider,
        name,
        credentials,
        capacity,
    };
    vec![
        account(
            Provider::Midjourney,
            "pool midjourney 1",
            json!({"token": "sim:ok:pool-mj-1"}),
            30,
        ),
        account(
            Provider::Midjourney,
            "pool midjourney 2",
            json!({"token": "sim:ok:pool-mj-2"}),
            30,
        ),
        account(
            Provider::Suno,
            "pool suno 1",
            json!({"cookie": "sim:ok:pool-suno-1"}),
            30,
        ),
        account(
            Provider::Suno,
            "pool suno 2",
            json!({"cookie": "sim:ok:pool-suno-2"}),
            30,
        ),
        account(
            Provider::Luma,
            "pool luma 1",
            json!({"cookie": "sim:ok:pool-luma-1"}),
            20,
        ),
        account(
            Provider::Luma,
            "pool luma 2",
            json!({"cookie": "sim:ok:pool-luma-2"}),
            20,
        ),
        account(
            Provider::Gpts,
            "pool gpts 1",
            json!({"access_token": "sim:ok:pool-gpts-1"}),
            120,
        ),
        account(
            Provider::Gpts,
            "pool gpts 2",
            json!({"access_token": "sim:ok:pool-gpts-2"}),
            120,
        ),
    ]
}

/// The `PPU pool` line: the pool's capacity per provider, then the seeded plans' PPU caps
/// from the plan table (a plan without a cap for a provider is left out; a provider no
/// seeded plan caps is not listed).
fn pool_line(pool: &[PoolAccount], plans: &PlanTable) -> String {
    let capacity = |p: Provider| -> u32 {
        pool.iter()
            .filter(|a| a.provider == p)
            .map(|a| a.capacity)
            .sum()
    };
    let mut sizes = Vec::new();
    let mut caps = Vec::new();
    for p in Provider::ALL {
        let modes = if p == Provider::Midjourney {
            " fast/relax/turbo"
        } else {
            ""
        };
        sizes.push(format!("{p} {}{modes}", capacity(p)));
        let per_plan: Vec<String> = DEMO_PLANS
            .iter()
            .filter_map(|plan| plans.get(*plan).ppu_cap(p))
            .map(|c| c.to_string())
            .collect();
        if !per_plan.is_empty() {
            let short = if p == Provider::Midjourney {
                "mj".to_string()
            } else {
                p.to_string()
            };
            caps.push(format!("{short} {}", per_plan.join("/")));
        }
    }
    format!("{} (caps: {})", sizes.join(", "), caps.join(", "))
}

/// Run the demo until a signal; then stop the workers, the API and the private Redis,
/// and return only once its watcher is gone too.
pub fn run(mut config: Config, args: DemoArgs) -> Result<(), CliError> {
    switchyard_worker::init_logs_at(args.log_format == "json", "warn");
    let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Other(e.into()))?;
    let signal = {
        let _entered = rt.enter();
        switchyard_worker::shutdown_signal()
    };
    // Redis: REDIS_URL, or our own.
    let own_redis = match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            config.redis.url = url;
            config.redis.key_prefix = format!("sydemo{}", &random_hex(3));
            None
        }
        None => {
            let r = PrivateRedis::start().map_err(CliError::Usage)?;
            config.redis.url = r.url();
            Some(r)
        }
    };
    // Hosted results: the configured store, or (by default) a directory of this run's own.
    let own_files = (config.storage == StorageConfig::default()).then(|| {
        let dir = std::env::temp_dir().join(format!("switchyard-demo-files-{}", random_hex(4)));
        config.storage.dir = dir.display().to_string();
        dir
    });
    let result = rt.block_on(run_async(
        config,
        args,
        own_redis.as_ref().map(|r| r.port),
        signal,
    ));
    if let Some(r) = &own_redis {
        if r.stop() {
            println!("stopped the private redis-server on port {}", r.port);
        } else {
            eprintln!(
                "warning: the private redis-server on port {} did not stop within 10 s",
                r.port
            );
        }
    }
    if let Some(dir) = own_files {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn run_async(
    mut config: Config,
    args: DemoArgs,
    own_port: Option<u16>,
    mut signal: tokio::sync::watch::Receiver<bool>,
) -> Result<(), CliError> {
    let other = |e: anyhow::Error| CliError::Other(e);
    let sim = switchyard_provider_sim::Sim::start("127.0.0.1:0")
        .await
        .map_err(|e| other(e.into()))?;
    let secrets = match switchyard_worker::config_load::secret_box() {
        Ok(s) => s,
        Err(_) => SecretBox::new(&random_hex(32)).map_err(|e| other(e.into()))?,
    };
    let admin_token = args
        .admin_token
        .clone()
        .unwrap_or_else(|| format!("demo-admin-{}", random_hex(12)));
    config.upstreams = UpstreamsConfig::all_at(&sim.url());
    config.dispatcher.admin_token = admin_token.clone();
    config.dispatcher.allow_private_webhooks = args.allow_private_webhooks;
    config.worker.poll_interval_ms = 100;
    // Pacing of a few hundred milliseconds: the demo's accounts are simulated.
    config.scheduler.pacing =
        switchyard_core::config::PacingDefaults::all(switchyard_core::config::Pacing {
            min_gap_s: 0.05,
            max_gap_s: 0.3,
        });
    config.worker.shutdown_grace_s = 2;
    config.worker.reap_interval_ms = 500;
    // The demo's files (the simulator's images) are on loopback.
    config.worker.allow_private_inputs = true;
    config.scheduler.lease_ms = 10_000;
    let sched = switchyard_scheduler::Scheduler::connect(&config)
        .await
        .map_err(|e| {
            other(anyhow::anyhow!(
                "cannot reach Redis at {}: {e}",
                config.redis.url
            ))
        })?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot listen on {} ({e}); pick another with --listen",
                args.listen
            ))
        })?;
    let addr = listener.local_addr().map_err(|e| other(e.into()))?;
    let base = format!("http://{addr}");
    let state = switchyard_dispatcher::AppState::new(sched.clone(), secrets.clone());
    if let Some(why) = state.files.problem() {
        return Err(CliError::Usage(format!(
            "{why}; fix the [storage] section (or set storage.kind = \"off\")"
        )));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(switchyard_dispatcher::serve(state, listener, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    let upstreams: Vec<Arc<dyn Upstream>> = vec![
        Arc::new(switchyard_worker_midjourney::Midjourney::new(&config)),
        Arc::new(switchyard_worker_suno::Suno::new(&config)),
        Arc::new(switchyard_worker_luma::Luma::new(&config)),
        Arc::new(switchyard_worker_gpts::Gpts::new(&config)),
    ];
    let mut workers = Vec::new();
    for u in upstreams {
        let w = Worker::new(sched.clone(), u, &config, secrets.clone());
        workers.push(tokio::spawn(w.run(stop_rx.clone())));
    }

    let admin = Client::admin(&base, &admin_token);
    let pool = pool();
    let seeded = tokio::select! {
        r = seed(&admin, &pool) => r.map_err(other)?,
        _ = signal.wait_for(|s| *s) => return shutdown(stop_tx, workers, server).await,
    };

    println!("\nSwitchyard demo is running.");
    println!("  API           {base}   (X-API-Key: <key>)");
    println!("  admin token   {admin_token}   (Authorization: Bearer …)");
    println!("  dashboard     {base}/dashboard#token={admin_token}");
    println!(
        "  stats         {base}/admin/v1/stats   (or: switchyard stats --url {base} --admin-token …)"
    );
    println!(
        "  simulator     {}   (witness: {}/_sim/stats)",
        sim.url(),
        sim.url()
    );
    match own_port {
        Some(p) => {
            println!("  redis         private redis-server on 127.0.0.1:{p} (stopped on exit)")
        }
        None => println!(
            "  redis         {} (key prefix {})",
            config.redis.url, config.redis.key_prefix
        ),
    }
    match config.storage.kind {
        StorageKind::Local => println!("  results       hosted in {}", config.storage.dir),
        StorageKind::S3 => println!(
            "  results       hosted in the S3 bucket {}",
            config.storage.s3_bucket
        ),
        StorageKind::Off => println!("  results       not hosted (storage.kind = off)"),
    }
    println!("  PPU pool      {}", pool_line(&pool, &config.plans));
    for (plan, key) in &seeded {
        println!("  tenant {plan:<10} key {key}");
    }
    let example_key = &seeded[1].1;
    println!("\nTry it:");
    println!(
        "  curl -s {base}/api/v1/task -H 'X-API-Key: {example_key}' -H 'content-type: application/json' \\"
    );
    println!(
        "    -d '{{\"model\":\"midjourney\",\"task_type\":\"imagine\",\"input\":{{\"prompt\":\"a red fox --v 6\",\"process_mode\":\"fast\"}}}}'"
    );
    println!("  curl -s '{base}/api/v1/task/<task_id>?wait=30' -H 'X-API-Key: {example_key}'");
    println!("Ctrl-C to stop.\n");

    if !args.no_workload {
        tokio::select! {
            r = workload(&base, &seeded) => if let Err(e) = r { eprintln!("workload: {e:#}"); },
            _ = signal.wait_for(|s| *s) => return shutdown(stop_tx, workers, server).await,
        }
    }
    let _ = signal.wait_for(|s| *s).await;
    shutdown(stop_tx, workers, server).await
}

async fn shutdown(
    stop: tokio::sync::watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), CliError> {
    println!("\nstopping: running tasks are handed back to the queue");
    let _ = stop.send(true);
    let all = async {
        for w in workers {
            let _ = w.await;
        }
        let _ = server.await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(6), all).await;
    Ok(())
}

async fn seed(admin: &Client, pool: &[PoolAccount]) -> anyhow::Result<Vec<(String, String)>> {
    for a in pool {
        let mut body =
            json!({"provider": a.provider.as_str(), "name": a.name, "credentials": a.credentials});
        if a.provider == Provider::Midjourney {
            body["capacity"] =
                json!({"relax": a.capacity, "fast": a.capacity, "turbo": a.capacity});
        } else {
            body["concurrency"] = json!(a.capacity);
        }
        admin.add_pool_account(&body).await?;
    }
    let mut out = Vec::new();
    for plan in DEMO_PLANS {
        let t = admin
            .create_tenant(&format!("{plan} demo"), plan.as_str())
            .await?;
        let id = t["tenant_id"].as_str().unwrap_or("").to_string();
        for (kind, amount) in [
            ("credits", 7000),
            ("mj_quota", 2000),
            ("suno_quota", 1000),
            ("gpts_quota", 5000),
            ("luma_quota", 600),
        ] {
            if plan == Plan::Hobbyist && kind == "luma_quota" {
                continue; // Hobbyist: Luma's free trial only
            }
            admin
                .top_up(&id, kind, amount, &format!("seed-{id}-{kind}"))
                .await?;
        }
        out.push((
            plan.to_string(),
            t["api_key"].as_str().unwrap_or("").to_string(),
        ));
    }
    // Premium brings its own Midjourney and Suno accounts (BYOA).
    let premium = Client::new(admin.base(), &out[2].1);
    for body in [
        json!({"provider": "midjourney", "name": "my discord", "credentials": {"token": "sim:ok:premium-mj"}, "capacity": {"relax": 3, "fast": 3, "turbo": 0}}),
        json!({"provider": "suno", "name": "my suno", "credentials": {"cookie": "sim:flaky:premium-suno"}, "concurrency": 2}),
    ] {
        premium.add_account(&body).await?;
    }
    Ok(out)
}

async fn workload(base: &str, tenants: &[(String, String)]) -> anyhow::Result<()> {
    let clients: Vec<Client> = tenants
        .iter()
        .map(|(_, key)| Client::new(base, key))
        .collect();
    let mut ids: Vec<(usize, String)> = Vec::new();
    let jobs: Vec<(usize, Value)> = vec![
        (
            0,
            json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a lighthouse at dawn [sim:ms=3000]", "process_mode": "relax"}}),
        ),
        (
            0,
            json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": "a calm piano piece [sim:ms=2500]"}}),
        ),
        (
            0,
            json!({"model": "luma", "task_type": "video_generation", "input": {"prompt": "waves on a beach [sim:ms=3000]"}}),
        ),
        (
            1,
            json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a red fox --v 6 [sim:ms=2000]", "process_mode": "fast"}}),
        ),
        (
            1,
            json!({"model": "gpts", "task_type": "create_conversation", "input": {"message": "Say hello [sim:ms=1000]"}}),
        ),
        (
            1,
            json!({"model": "suno", "task_type": "lyrics", "input": {"prompt": "the sea"}}),
        ),
        (
            2,
            json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a castle in the clouds [sim:ms=2500]", "process_mode": "fast"}, "config": {"service_mode": "private"}}),
        ),
        (
            2,
            json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": "upbeat synthwave [sim:ms=2000]"}, "config": {"service_mode": "private"}}),
        ),
        (
            2,
            json!({"model": "luma", "task_type": "video_generation", "input": {"prompt": "a cat surfing [sim:ms=2500]"}}),
        ),
        (
            2,
            json!({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "forbidden thing [sim:fail] [sim:ms=800]", "process_mode": "fast"}}),
        ),
    ];
    for round in 0..3 {
        for (t, body) in &jobs {
            let mut body = body.clone();
            if round > 0
                && let Some(p) = body["input"]["prompt"].as_str()
            {
                body["input"]["prompt"] = json!(format!("{p} #{round}"));
            }
            let created = clients[*t]
                .create_task(
                    body["model"].as_str().unwrap_or(""),
                    body["task_type"].as_str().unwrap_or(""),
                    body["input"].clone(),
                    body.get("config").cloned(),
                )
                .await;
            match created {
                Ok(v) => ids.push((*t, v["task_id"].as_str().unwrap_or("").to_string())),
                Err(e) if unreachable(&e) => return Err(e.into()),
                Err(e) => eprintln!("  not accepted: {}", e.message),
            }
        }
    }
    println!(
        "sample workload: {} tasks over three tenants and four providers",
        ids.len()
    );
    let start = Instant::now();
    loop {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for (t, id) in &ids {
            let status = match clients[*t].get_task(id, 0).await {
                Ok(v) => v["status"].as_str().unwrap_or("?").to_string(),
                Err(e) if unreachable(&e) => return Err(e.into()),
                Err(_) => "?".to_string(),
            };
            *counts.entry(status).or_default() += 1;
        }
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        print!(
            "\r  [{:>4.1}s] {:<70}",
            start.elapsed().as_secs_f64(),
            line.join(" · ")
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let open = counts
            .iter()
            .filter(|(k, _)| !k.parse().is_ok_and(TaskStatus::is_terminal))
            .map(|(_, v)| v)
            .sum::<usize>();
        if open == 0 {
            println!(
                "\n  done: every task finished (the [sim:fail] ones were rejected upstream on purpose, and refunded).\n"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the API did not answer at all (as opposed to refusing the request).
fn unreachable(e: &ClientError) -> bool {
    e.status == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_line_prints_the_caps_of_the_config_plan_table() {
        let mut plans = PlanTable::seed();
        plans.hobbyist.ppu_caps.midjourney = Some(4);
        plans.developer.ppu_caps.midjourney = Some(12);
        plans.premium.ppu_caps.midjourney = Some(40);
        plans.hobbyist.ppu_caps.gpts = None;
        plans.developer.ppu_caps.luma = Some(7);
        let line = pool_line(&pool(), &plans);
        assert!(
            line.starts_with(
                "midjourney 60 fast/relax/turbo, suno 60, luma 40, gpts 240 (caps: mj 4/12/40, "
            ),
            "{line}"
        );
        assert!(line.contains(", luma 7, "), "{line}");
        let developer_gpts = plans.developer.ppu_caps.gpts.unwrap_or_default();
        let premium_gpts = plans.premium.ppu_caps.gpts.unwrap_or_default();
        assert!(
            line.ends_with(&format!("gpts {developer_gpts}/{premium_gpts})")),
            "{line}"
        );
    }
}
