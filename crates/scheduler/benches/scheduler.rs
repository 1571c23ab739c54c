//! Scheduler benchmark: `cargo bench -p switchyard-scheduler`.
//!
//! On a private `redis-server`, in one run: the raw `EVALSHA` rate from `redis-benchmark`
//! (the yardstick), then for 10 and 100,000 tenants × 10 and 10,000 pool accounts:
//! batched and single submit rates, claim+complete throughput at 64 claimers with no-op
//! work, claim latency p50/p99 at saturation; single-task claim latency back to back and
//! in an open loop at 80% of saturation; then Redis memory per queued task and claim
//! latency with a deep backlog. Every rate is printed next to the EVALSHA rate as a ratio.
//!
//! `SWITCHYARD_BENCH_SCALE` (default 1.0) scales task counts; `SWITCHYARD_BENCH_DEEP`
//! (default 1,000,000) is the deep backlog size; `SWITCHYARD_BENCH_COSTS` prints Redis's
//! busy time and command costs of each claim+complete phase; `SWITCHYARD_BENCH_SPLIT`
//! first times 100 claims of 16 alone, then their completes alone, from one caller.
//! `SWITCHYARD_BENCH_COUNT_URL=redis://127.0.0.1:<port>` runs only a fixed workload
//! against that Redis, for counting (see `count_run` and docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchyard_core::{Config, Cost, ProcessMode, Provider, QuotaKind, ServiceMode};
use switchyard_scheduler::{AccountSpec, NewTask, Owner, Scheduler, TenantSettings};

const P: Provider = Provider::Suno;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn evalsha_rate(port: u16) -> f64 {
    let sha = redis_cli(port, &["SCRIPT", "LOAD", "return 1"])
        .trim()
        .to_string();
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-n",
            "300000",
            "-c",
            "64",
            "-q",
            "EVALSHA",
            &sha,
            "0",
        ])
        .output()
        .expect("redis-benchmark (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress lines end in \r; the last one reads
    // "EVALSHA ...: 123456.79 requests per second, p50=0.2 msec".
    let last = text
        .split('\r')
        .rfind(|l| l.contains("requests per second"))
        .unwrap_or("");
    last.rsplit(": ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("could not read redis-benchmark output: {text}"))
}

fn no_caps() -> TenantSettings {
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

fn new_task(tenant: &str, n: usize) -> NewTask {
    NewTask {
        id: format!("{n:x}-{}", uuid::Uuid::now_v7().simple()),
        tenant: tenant.to_string(),
        provider: P,
        service_mode: ServiceMode::Ppu,
        process_mode: ProcessMode::Relax,
        pin: None,
        pin_holds: None,
        ppu_price: Cost {
            kind: QuotaKind::SunoQuota,
            amount: 10,
        },
        body: r#"{"model":"suno","task_type":"generate_music","input":{"gpt_description_prompt":"a song about the sea"}}"#.to_string(),
        extra: vec![],
        idempotency: None,
        log: vec![],
    }
}

async fn scheduler(url: &str, prefix: &str) -> Scheduler {
    let mut c = Config::default();
    c.scheduler.pacing =
        switchyard_core::config::PacingDefaults::all(switchyard_core::config::Pacing::NONE);
    c.redis.url = url.to_string();
    c.redis.key_prefix = prefix.to_string();
    c.redis.pool_size = 80;
    c.scheduler.lease_ms = 60_000;
    Scheduler::connect(&c).await.unwrap()
}

async fn setup(s: &Scheduler, tenants: usize, accounts: usize, capacity_total: u32) -> Vec<String> {
    let names: Vec<String> = (0..tenants).map(|i| format!("t{i}")).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut handles = Vec::new();
    for t in names.clone() {
        let (s, sem) = (s.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            s.upsert_tenant(&t, &no_caps()).await.unwrap();
            s.top_up(&t, QuotaKind::SunoQuota, 1_000_000_000, "bench")
                .await
                .unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let per = (capacity_total / accounts as u32).max(1);
    for a in 0..accounts {
        s.add_account(
            P,
            &Owner::Pool,
            &format!("acc{a}"),
            &AccountSpec {
                capacity: Some([per, 0, 0]),
                weight: Some(1),
                ..AccountSpec::default()
            },
        )
        .await
        .unwrap();
    }
    names
}

async fn submit_all(s: &Scheduler, batch: &[NewTask]) {
    for chunk in batch.chunks(1000) {
        for r in s.submit_batch(chunk).await.unwrap() {
            r.unwrap();
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Row {
    label: String,
    batched_submit: f64,
    single_submit: f64,
    claim_complete: f64,
    p50: f64,
    p99: f64,
}

async fn scenario(url: &str, port: u16, tenants: usize, accounts: usize, tasks: usize) -> Row {
    let prefix = format!("bench{}x{}", tenants, accounts);
    let s = scheduler(url, &prefix).await;
    let names = setup(&s, tenants, accounts, 2_000_000).await;

    // Batched submit: 1000 tasks per round trip, tenants round robin.
    let batch: Vec<NewTask> = (0..tasks)
        .map(|i| new_task(&names[i % names.len()], i))
        .collect();
    let t0 = Instant::now();
    submit_all(&s, &batch).await;
    let batched_submit = tasks as f64 / t0.elapsed().as_secs_f64();

    // Single submit: 64 concurrent submitters, one script call each.
    let singles = (tasks / 5).max(1000);
    let counter = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for _ in 0..64 {
        let (s, counter, names) = (s.clone(), counter.clone(), names.clone());
        hs.push(tokio::spawn(async move {
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= singles {
                    break;
                }
                s.submit(&new_task(&names[i % names.len()], tasks + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    let single_submit = singles as f64 / t0.elapsed().as_secs_f64();

    let mut total = tasks + singles;
    if std::env::var("SWITCHYARD_BENCH_SPLIT").is_ok() {
        // Diagnostic: one claimer, claims alone then completes alone.
        reset_stats(port);
        let mut leases = Vec::new();
        for _ in 0..100 {
            let got = s.try_claim(P, 16).await.unwrap();
            leases.extend(got.into_iter().map(|c| (c.lease, String::new())));
        }
        println!("claim x16: {}", command_costs(port));
        reset_stats(port);
        for chunk in leases.chunks(16) {
            s.complete_many(chunk).await.unwrap();
        }
        println!("complete x16: {}", command_costs(port));
        total -= leases.len();
    }
    // Claim + complete with no-op work: 64 claimers, 16 per claim, completes pipelined.
    let done = Arc::new(AtomicUsize::new(0));
    let costs = std::env::var("SWITCHYARD_BENCH_COSTS").is_ok();
    if costs {
        reset_stats(port);
    }
    let cpu0 = redis_cpu(port);
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for _ in 0..64 {
        let (s, done) = (s.clone(), done.clone());
        hs.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while done.load(Ordering::Relaxed) < total {
                let c0 = Instant::now();
                let got = s.try_claim(P, 16).await.unwrap();
                lat.push(c0.elapsed());
                if got.is_empty() {
                    if done.load(Ordering::Relaxed) >= total {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let acks: Vec<_> = got.into_iter().map(|c| (c.lease, String::new())).collect();
                let n = acks.len();
                s.complete_many(&acks).await.unwrap();
                done.fetch_add(n, Ordering::Relaxed);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in hs {
        lat.extend(h.await.unwrap());
    }
    let wall = t0.elapsed().as_secs_f64();
    let claim_complete = total as f64 / wall;
    if costs {
        println!(
            "{tenants}x{accounts} claim+complete: redis main thread busy {:.0}% of {wall:.2}s; {}",
            100.0 * (redis_cpu(port) - cpu0) / wall,
            command_costs(port)
        );
    }
    lat.sort();
    Row {
        label: format!("{tenants} tenants, {accounts} accounts"),
        batched_submit,
        single_submit,
        claim_complete,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
    }
}

/// Single-task claims on 10 tenants × 10 accounts: first closed loop (64 claimers, each
/// claim(1) then complete, back to back: the saturation rate), then open loop: claims
/// arriving at 80% of that rate, each then completed. Returns (saturation rate, closed
/// p50, closed p99, open p50, open p99) in tasks/s and ms.
async fn latency_at_load(url: &str, tasks: usize) -> (f64, f64, f64, f64, f64) {
    let s = scheduler(url, "benchlat").await;
    let names = setup(&s, 10, 10, 2_000_000).await;
    let batch: Vec<NewTask> = (0..tasks)
        .map(|i| new_task(&names[i % names.len()], i))
        .collect();
    submit_all(&s, &batch).await;
    let closed_n = tasks / 2;
    let counter = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for _ in 0..64 {
        let (s, counter) = (s.clone(), counter.clone());
        hs.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while counter.fetch_add(1, Ordering::Relaxed) < closed_n {
                let c0 = Instant::now();
                let got = s.try_claim(P, 1).await.unwrap();
                lat.push(c0.elapsed());
                let acks: Vec<_> = got.into_iter().map(|c| (c.lease, String::new())).collect();
                s.complete_many(&acks).await.unwrap();
            }
            lat
        }));
    }
    let mut closed = Vec::new();
    for h in hs {
        closed.extend(h.await.unwrap());
    }
    let rate = closed_n as f64 / t0.elapsed().as_secs_f64();
    closed.sort();

    // Open loop: arrivals on a fixed schedule, whatever the replies do.
    let open_n = tasks - closed_n;
    let interval = Duration::from_secs_f64(1.0 / (0.8 * rate));
    let t0 = tokio::time::Instant::now();
    let mut hs = Vec::with_capacity(open_n);
    for i in 0..open_n {
        tokio::time::sleep_until(t0 + interval * i as u32).await;
        let s = s.clone();
        hs.push(tokio::spawn(async move {
            let c0 = Instant::now();
            let got = s.try_claim(P, 1).await.unwrap();
            let l = c0.elapsed();
            let acks: Vec<_> = got.into_iter().map(|c| (c.lease, String::new())).collect();
            s.complete_many(&acks).await.unwrap();
            l
        }));
    }
    let mut open = Vec::new();
    for h in hs {
        open.push(h.await.unwrap());
    }
    open.sort();
    (
        rate,
        pct(&closed, 0.5),
        pct(&closed, 0.99),
        pct(&open, 0.5),
        pct(&open, 0.99),
    )
}

async fn used_memory(port: u16) -> u64 {
    info_field(port, "memory", "used_memory") as u64
}

async fn deep_backlog(url: &str, port: u16, deep: usize) -> (f64, f64, f64, f64) {
    let s = scheduler(url, "benchdeep").await;
    let names = setup(&s, 1001, 10, 100_000_000).await;
    let before = used_memory(port).await;
    // 1,000 other tenants with one task each, then the deep tenant.
    let others: Vec<NewTask> = (1..=1000).map(|i| new_task(&names[i], i)).collect();
    for r in s.submit_batch(&others).await.unwrap() {
        r.unwrap();
    }
    let mut early = Vec::new();
    let mut n = 0;
    while n < deep {
        let k = (deep - n).min(2000);
        let chunk: Vec<NewTask> = (0..k)
            .map(|i| new_task(&names[0], 10_000 + n + i))
            .collect();
        for r in s.submit_batch(&chunk).await.unwrap() {
            r.unwrap();
        }
        n += k;
        if n == 20_000 {
            // Claim cost with a short backlog, for comparison.
            early = claim_latencies(&s, 200).await;
        }
    }
    let after = used_memory(port).await;
    let per_task = (after.saturating_sub(before)) as f64 / (deep + 1000) as f64;
    let late = claim_latencies(&s, 200).await;
    (
        pct(&early, 0.5),
        pct(&late, 0.5),
        pct(&late, 0.99),
        per_task,
    )
}

async fn claim_latencies(s: &Scheduler, n: usize) -> Vec<Duration> {
    let mut lat = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let got = s.try_claim(P, 1).await.unwrap();
        lat.push(t0.elapsed());
        let acks: Vec<_> = got.into_iter().map(|c| (c.lease, String::new())).collect();
        s.complete_many(&acks).await.unwrap();
    }
    lat.sort();
    lat
}

/// Per-call cost of the scripts and of the commands they run, from INFO commandstats.
fn command_costs(port: u16) -> String {
    let text = redis_cli(port, &["INFO", "commandstats"]);
    let mut rows: Vec<(f64, String)> = text
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let get = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            Some((
                get("usec="),
                format!(
                    "{name} {:.0} calls {:.1} us/call",
                    get("calls="),
                    get("usec_per_call=")
                ),
            ))
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    rows.into_iter()
        .take(14)
        .map(|r| r.1)
        .collect::<Vec<_>>()
        .join("; ")
}

/// CPU seconds used by the Redis main thread so far.
fn redis_cpu(port: u16) -> f64 {
    info_field(port, "cpu", "used_cpu_sys_main_thread")
        + info_field(port, "cpu", "used_cpu_user_main_thread")
}

/// One numeric field of `INFO <section>` (0 when absent).
fn info_field(port: u16, section: &str, name: &str) -> f64 {
    redis_cli(port, &["INFO", section])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Run `redis-cli -p <port> <args>`; its standard output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn reset_stats(port: u16) {
    redis_cli(port, &["CONFIG", "RESETSTAT"]);
}

/// A fixed workload for counting instead of timing: 10 tenants × 10 accounts (or
/// `SWITCHYARD_BENCH_COUNT_SHAPE=<tenants>,<accounts>`), 1,616
/// tasks submitted, 16 claimed and completed to warm up, then 1,600 claimed 16 at a time
/// by one caller, then completed 16 at a time.
/// With `CALLGRIND_PID` (a `redis-server` run under `valgrind --tool=callgrind`), the
/// counters are zeroed before and dumped after each phase, so the dumps hold Redis's
/// instructions per phase: the same figure whatever else the machine is doing.
async fn count_run(url: &str, port: u16) {
    let callgrind = |args: &[&str]| {
        if let Ok(pid) = std::env::var("CALLGRIND_PID") {
            Command::new("callgrind_control")
                .args(args)
                .arg(&pid)
                .output()
                .expect("callgrind_control");
        }
    };
    let shape = std::env::var("SWITCHYARD_BENCH_COUNT_SHAPE").unwrap_or_default();
    let (tenants, accounts) = shape
        .split_once(',')
        .and_then(|(t, a)| Some((t.parse().ok()?, a.parse().ok()?)))
        .unwrap_or((10, 10));
    let s = scheduler(url, "count").await;
    let names = setup(&s, tenants, accounts, 2_000_000).await;
    let batch: Vec<NewTask> = (0..1616)
        .map(|i| new_task(&names[i % names.len()], i))
        .collect();
    // Warm up the submit script, then count a batched submit of 1,600. (A server started
    // with `--instr-atstart=no`, so that a large setup runs fast, is instrumented from here.)
    submit_all(&s, &batch[..16]).await;
    callgrind(&["-i", "on"]);
    callgrind(&["-z"]);
    submit_all(&s, &batch[16..]).await;
    callgrind(&["--dump=submit"]);
    // Warm up: scripts loaded, first reads done; then 100 claims of 16.
    let warm: Vec<_> = s.try_claim(P, 16).await.unwrap();
    let warm: Vec<_> = warm.into_iter().map(|c| (c.lease, String::new())).collect();
    s.complete_many(&warm).await.unwrap();
    reset_stats(port);
    callgrind(&["-z"]);
    let mut leases = Vec::new();
    for _ in 0..100 {
        let got = s.try_claim(P, 16).await.unwrap();
        leases.extend(got.into_iter().map(|c| (c.lease, String::new())));
    }
    callgrind(&["--dump=claim"]);
    println!("claim x16: {}", command_costs(port));
    reset_stats(port);
    callgrind(&["-z"]);
    for chunk in leases.chunks(16) {
        s.complete_many(chunk).await.unwrap();
    }
    callgrind(&["--dump=complete"]);
    println!("complete x16: {}", command_costs(port));
    println!("claimed and completed: {}", leases.len());
}

fn main() {
    if let Ok(url) = std::env::var("SWITCHYARD_BENCH_COUNT_URL") {
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .expect("SWITCHYARD_BENCH_COUNT_URL=redis://127.0.0.1:<port>");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(count_run(&url, port));
        return;
    }
    let scale = env_f64("SWITCHYARD_BENCH_SCALE", 1.0);
    let deep = env_f64("SWITCHYARD_BENCH_DEEP", 1_000_000.0) as usize;
    let redis = switchyard_test_support::redis();
    let port = redis.ports[0];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let raw = evalsha_rate(port);
    println!("redis-benchmark EVALSHA (return 1), 64 clients: {raw:.0}/s\n");
    let tasks = ((50_000.0 * scale) as usize).max(2000);
    let mut rows = Vec::new();
    for (t, a) in [(10, 10), (10, 10_000), (100_000, 10), (100_000, 10_000)] {
        let t = ((t as f64 * scale.min(1.0)) as usize).max(10);
        // Each scenario starts from an empty Redis: the comparison is between tenant and
        // account counts, not between keyspaces grown by earlier scenarios.
        redis_cli(port, &["FLUSHALL"]);
        rows.push(rt.block_on(scenario(&redis.url, port, t, a, tasks)));
    }
    println!(
        "{:<32} {:>14} {:>14} {:>16} {:>9} {:>9}",
        "scenario", "batch submit/s", "submit/s", "claim+complete/s", "p50 ms", "p99 ms"
    );
    for r in &rows {
        println!(
            "{:<32} {:>8.0} ({:>3.0}%) {:>7.0} ({:>3.0}%) {:>9.0} ({:>3.0}%) {:>9.3} {:>9.3}",
            r.label,
            r.batched_submit,
            100.0 * r.batched_submit / raw,
            r.single_submit,
            100.0 * r.single_submit / raw,
            r.claim_complete,
            100.0 * r.claim_complete / raw,
            r.p50,
            r.p99
        );
    }
    let base = rows[0].claim_complete;
    let worst = rows
        .iter()
        .map(|r| (r.claim_complete - base).abs() / base)
        .fold(0.0, f64::max);
    println!(
        "\nclaim+complete spread across tenants/accounts: {:.0}% (target ≤ 20%)",
        worst * 100.0
    );
    redis_cli(port, &["FLUSHALL"]);
    let (rate, c50, c99, o50, o99) = rt.block_on(latency_at_load(&redis.url, tasks / 2));
    println!(
        "single-task claims, 10 tenants x 10 accounts: saturation {rate:.0} tasks/s ({:.0}% of EVALSHA) with 64 claimers back to back: claim p50 {c50:.3} ms p99 {c99:.3} ms; \
         at 80% of it (open loop): claim p50 {o50:.3} ms p99 {o99:.3} ms",
        100.0 * rate / raw
    );
    redis_cli(port, &["FLUSHALL"]);
    let (early, late, late99, mem) = rt.block_on(deep_backlog(&redis.url, port, deep));
    println!(
        "deep backlog: {deep} queued for one tenant + 1,000 tenants: claim p50 {late:.3} ms (p99 {late99:.3}) vs {early:.3} ms at 20,000 queued"
    );
    println!("Redis memory per queued task: {mem:.0} bytes (target < 1024)");
}
