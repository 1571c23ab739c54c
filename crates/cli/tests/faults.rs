//! Fault injection, the way an operator runs Switchyard: real processes, real signals.
//!
//! One test, `faults_under_chaos`, starts its own `redis-server` (AOF, `appendfsync
//! always`), `switchyard sim`, `switchyard serve` and two `switchyard worker --provider X`
//! processes per provider; seeds five tenants (Hobbyist ×2, Developer ×2, Premium) with
//! balances, hosted accounts and a PPU pool over the admin and tenant HTTP API; submits
//! bursts of tasks over all four providers, PPU and BYOA, past every cap, 3% of them asking
//! the simulator to fail; and meanwhile SIGKILLs a random worker every few seconds (and
//! restarts it), SIGKILLs Redis once (and restarts it on its AOF, same port and dir) and
//! SIGTERMs one worker once (graceful hand-back). At the end it checks, over the HTTP API
//! and the simulator's witness: every task terminal; failures exactly where asked; money
//! per tenant and quota kind equal to the prices of completed PPU tasks; concurrency
//! within every cap and account capacity; exactly one upstream job per task.
//!
//! Size and chaos are parameters (see `docs/reliability.md`): `SWITCHYARD_FAULTS_TASKS`
//! (300 by default, 10000 for the full run), `SWITCHYARD_FAULTS_RATE`,
//! `SWITCHYARD_FAULTS_KILL_EVERY_MS`, `SWITCHYARD_FAULTS_OUTAGE_MS`,
//! `SWITCHYARD_FAULTS_DRAIN_S`, `SWITCHYARD_FAULTS_SEED`, `SWITCHYARD_FAULTS_MAX_ATTEMPTS`,
//! `SWITCHYARD_FAULTS_KEEP`.
//!
//! Every child process is watched by a small shell loop that SIGKILLs it when this test
//! process is gone (`switchyard_test_support::watch_child`; Redis is a
//! `switchyard_test_support::DurableRedis`), and killed on drop, so nothing outlives the
//! test, even on panic or abort.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use switchyard_core::{Config, Plan, PlanTable, Provider, ServiceMode, TaskSpec};
use switchyard_test_support::{DurableRedis, free_port, watch_child};

use common::{signal, switchyard};

const ADMIN_TOKEN: &str = "faults-admin-token";
const MASTER_KEY: &str = "switchyard-faults-master-key";
const PROVIDERS: [Provider; 4] = [
    Provider::Midjourney,
    Provider::Suno,
    Provider::Luma,
    Provider::Gpts,
];

// ---------------------------------------------------------------------------------------
// Parameters

#[derive(Debug, Clone)]
struct Params {
    tasks: usize,
    rate: f64,
    kill_every_ms: (u64, u64),
    outage_ms: u64,
    drain_s: u64,
    seed: u64,
    max_attempts: u32,
    lease_ms: u64,
    task_timeout_s: u64,
    keep: bool,
    /// Most submits in flight at once (0: a burst is sent all at once).
    client_concurrency: usize,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
    )
}

impl Params {
    fn from_env() -> Params {
        let tasks: usize = env_num("SWITCHYARD_FAULTS_TASKS").unwrap_or(300);
        let full = tasks >= 2000;
        let kill_every_ms = match std::env::var("SWITCHYARD_FAULTS_KILL_EVERY_MS") {
            Ok(v) => {
                let (a, b) = v.split_once('-').unwrap_or((&v, &v));
                let a: u64 = a
                    .trim()
                    .parse()
                    .expect("SWITCHYARD_FAULTS_KILL_EVERY_MS=A-B");
                let b: u64 = b
                    .trim()
                    .parse()
                    .expect("SWITCHYARD_FAULTS_KILL_EVERY_MS=A-B");
                (a.min(b), a.max(b))
            }
            // The small run's chaos lasts ~20 s: kill more often to get several kills in.
            Err(_) if full => (3000, 6000),
            Err(_) => (1500, 3000),
        };
        let seed = env_num("SWITCHYARD_FAULTS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                % 1_000_000
        });
        Params {
            tasks,
            rate: env_num("SWITCHYARD_FAULTS_RATE").unwrap_or(if full { 30.0 } else { 15.0 }),
            kill_every_ms,
            outage_ms: env_num("SWITCHYARD_FAULTS_OUTAGE_MS").unwrap_or(if full {
                4000
            } else {
                2000
            }),
            drain_s: env_num("SWITCHYARD_FAULTS_DRAIN_S").unwrap_or(120 + (tasks as u64) / 20),
            seed,
            max_attempts: env_num("SWITCHYARD_FAULTS_MAX_ATTEMPTS").unwrap_or(5),
            lease_ms: 2500,
            task_timeout_s: 20,
            keep: std::env::var("SWITCHYARD_FAULTS_KEEP").is_ok_and(|v| v != "0"),
            client_concurrency: env_num("SWITCHYARD_FAULTS_CLIENT_CONCURRENCY").unwrap_or(0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Processes

fn log_file(dir: &Path, name: &str) -> (File, File) {
    let path = dir.join(format!("{name}.log"));
    let f = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    (f.try_clone().unwrap(), f)
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n    ")
}

struct Proc {
    name: String,
    child: Child,
    started: Instant,
}

/// What the chaos did and saw.
#[derive(Default)]
struct ChaosLog {
    kills: Vec<String>,
    sigterm: Option<String>,
    sigterm_exit_ms: Option<u128>,
    sigterm_ok: Option<bool>,
    outage: Option<(u128, u128)>, // (redis down ms, until PONG ms)
    unexpected_exits: Vec<String>,
    restarts: usize,
    events: Vec<String>,
    /// When the chaos ended (submissions done, outage and SIGTERM done).
    calm_at: Duration,
}

struct Fleet {
    logs: PathBuf,
    env: Vec<(String, String)>,
    redis: DurableRedis,
    sim: Option<Proc>,
    serve: Option<Proc>,
    serve_listen: String,
    workers: Vec<(Provider, usize, Option<Proc>, Instant)>,
    t0: Instant,
}

impl Fleet {
    fn elapsed(&self) -> String {
        format!("{:>6.1}s", self.t0.elapsed().as_secs_f64())
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        let (out, err) = log_file(&self.logs, name);
        let child = switchyard()
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        watch_child(child.id());
        Proc {
            name: name.to_string(),
            child,
            started: Instant::now(),
        }
    }

    fn start_sim(&mut self, listen: &str) {
        self.sim = Some(self.spawn("sim", &["sim", "--listen", listen]));
    }

    fn start_serve(&mut self) {
        let listen = self.serve_listen.clone();
        self.serve = Some(self.spawn("serve", &["serve", "--listen", &listen]));
    }

    fn start_worker(&mut self, i: usize) {
        let (p, n, _, _) = &self.workers[i];
        let name = format!("worker-{}-{n}", p.as_str());
        let proc = self.spawn(&name, &["worker", "--provider", p.as_str()]);
        self.workers[i].2 = Some(proc);
        self.workers[i].3 = Instant::now();
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    fn kill_all(&mut self) {
        let mut kids: Vec<&mut Child> = Vec::new();
        for (_, _, p, _) in &mut self.workers {
            if let Some(p) = p {
                kids.push(&mut p.child);
            }
        }
        if let Some(p) = &mut self.serve {
            kids.push(&mut p.child);
        }
        if let Some(p) = &mut self.sim {
            kids.push(&mut p.child);
        }
        for c in kids {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.redis.kill();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill_all();
    }
}

// ---------------------------------------------------------------------------------------
// Tenants, accounts, lanes

struct TenantDef {
    name: &'static str,
    plan: Plan,
    /// Hosted accounts: provider → capacity (relax, fast, turbo) / (n, 0, 0).
    hosted: &'static [(Provider, [u32; 3])],
}

const TENANTS: [TenantDef; 5] = [
    TenantDef {
        name: "h1",
        plan: Plan::Hobbyist,
        hosted: &[
            (Provider::Midjourney, [2, 1, 0]),
            (Provider::Gpts, [3, 0, 0]),
        ],
    },
    TenantDef {
        name: "h2",
        plan: Plan::Hobbyist,
        hosted: &[(Provider::Suno, [2, 0, 0]), (Provider::Luma, [2, 0, 0])],
    },
    TenantDef {
        name: "d1",
        plan: Plan::Developer,
        hosted: &[
            (Provider::Midjourney, [3, 3, 0]),
            (Provider::Suno, [3, 0, 0]),
        ],
    },
    TenantDef {
        name: "d2",
        plan: Plan::Developer,
        hosted: &[(Provider::Gpts, [5, 0, 0]), (Provider::Luma, [3, 0, 0])],
    },
    TenantDef {
        name: "p1",
        plan: Plan::Premium,
        hosted: &[
            (Provider::Midjourney, [4, 4, 0]),
            (Provider::Suno, [4, 0, 0]),
            (Provider::Luma, [4, 0, 0]),
            (Provider::Gpts, [8, 0, 0]),
        ],
    },
];

/// The PPU pool: two accounts per provider, together larger than the sum of the caps.
const POOL: [(Provider, &str, [u32; 3]); 8] = [
    (Provider::Midjourney, "pool-mj-1", [40, 40, 0]),
    (Provider::Midjourney, "pool-mj-2", [40, 40, 0]),
    (Provider::Suno, "pool-suno-1", [40, 0, 0]),
    (Provider::Suno, "pool-suno-2", [40, 0, 0]),
    (Provider::Luma, "pool-luma-1", [30, 0, 0]),
    (Provider::Luma, "pool-luma-2", [30, 0, 0]),
    (Provider::Gpts, "pool-gpts-1", [150, 0, 0]),
    (Provider::Gpts, "pool-gpts-2", [150, 0, 0]),
];

fn hosted_sim_name(tenant: &str, p: Provider) -> String {
    format!("{tenant}-{}", p.as_str())
}

fn credentials(p: Provider, cred: &str) -> Value {
    match p {
        Provider::Midjourney => json!({"token": cred}),
        Provider::Suno | Provider::Luma => json!({"cookie": cred}),
        Provider::Gpts => json!({"access_token": cred}),
    }
}

fn account_body(p: Provider, name: &str, cap: [u32; 3]) -> Value {
    let total: u32 = cap.iter().sum();
    // The simulated account refuses more than the sum of its modes at once.
    let cred = format!("sim:ok:{name}:{total}");
    let mut b = json!({"provider": p.as_str(), "name": name, "credentials": credentials(p, &cred)});
    if p == Provider::Midjourney {
        b["capacity"] = json!({"relax": cap[0], "fast": cap[1], "turbo": cap[2]});
    } else {
        b["concurrency"] = json!(cap[0]);
    }
    b
}

#[derive(Debug, Clone)]
struct Lane {
    tenant: usize,
    provider: Provider,
    ppu: bool,
    mj_mode: Option<&'static str>,
    /// What bounds its concurrency: the plan's cap (PPU) or the account's capacity in the
    /// mode (BYOA); None: no cap (Luma PPU).
    bound: Option<u32>,
    /// At most this many tasks (Hobbyist Luma PPU: the 150-quota free trial, 5 videos).
    limit: Option<usize>,
}

fn lanes(plans: &PlanTable) -> Vec<Lane> {
    let mut out = Vec::new();
    for (ti, t) in TENANTS.iter().enumerate() {
        let limits = plans.get(t.plan);
        for p in PROVIDERS {
            let modes: &[Option<&'static str>] = if p == Provider::Midjourney {
                &[Some("fast"), Some("relax")]
            } else {
                &[None]
            };
            for m in modes {
                // PPU, where the plan entitles it.
                let (ppu_ok, limit) = match p {
                    Provider::Gpts => (limits.gpts_ppu, None),
                    Provider::Luma if !limits.luma_ppu.beyond_free_trial => (true, Some(4)),
                    _ => (true, None),
                };
                if ppu_ok {
                    out.push(Lane {
                        tenant: ti,
                        provider: p,
                        ppu: true,
                        mj_mode: *m,
                        bound: limits.ppu_cap(p),
                        limit,
                    });
                }
                // BYOA, where the tenant has an account.
                if let Some((_, cap)) = t.hosted.iter().find(|(hp, _)| *hp == p) {
                    let c = match *m {
                        Some("fast") => cap[1],
                        Some(_) => cap[0],
                        None => cap[0],
                    };
                    if c > 0 {
                        out.push(Lane {
                            tenant: ti,
                            provider: p,
                            ppu: false,
                            mj_mode: *m,
                            bound: Some(c),
                            limit: None,
                        });
                    }
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Planned {
    n: usize,
    lane: usize,
    marker: String,
    tag: String,
    fail: bool,
    body: Value,
    /// The PPU price (kind, amount) from the price table.
    price: (String, u64),
}

fn text_field(p: Provider) -> (&'static str, &'static str) {
    match p {
        Provider::Midjourney => ("imagine", "prompt"),
        Provider::Suno => ("generate_music", "gpt_description_prompt"),
        Provider::Luma => ("video_generation", "prompt"),
        Provider::Gpts => ("create_conversation", "message"),
    }
}

/// The workload: bursts, each on one lane, sized past the lane's bound.
fn plan_tasks(params: &Params, lanes: &[Lane], rng: &mut StdRng) -> Vec<Vec<Planned>> {
    let config = Config::default();
    let mut used: HashMap<usize, usize> = HashMap::new();
    let mut bursts = Vec::new();
    let mut n = 0;
    let max_burst = (params.tasks / 8).max(8);
    while n < params.tasks {
        let li = rng.random_range(0..lanes.len());
        let lane = &lanes[li];
        let room = lane
            .limit
            .map_or(usize::MAX, |l| l - used.get(&li).copied().unwrap_or(0));
        if room == 0 {
            continue;
        }
        let past = match lane.bound {
            Some(b) => b as usize + 1 + rng.random_range(0..=(b as usize / 2).max(2)),
            None => rng.random_range(5..=20),
        };
        let size = past.min(max_burst).min(room).min(params.tasks - n);
        *used.entry(li).or_default() += size;
        let t = &TENANTS[lane.tenant];
        let mut burst = Vec::new();
        for _ in 0..size {
            let marker = format!("f{}n{n}", params.seed);
            let tag = format!(
                "{}-{}-{}",
                t.name,
                lane.provider.as_str(),
                if lane.ppu { "ppu" } else { "byoa" }
            );
            let fail = rng.random_range(0..100) < 3;
            let ms = rng.random_range(300..=2000);
            let (task_type, field) = text_field(lane.provider);
            let text = format!(
                "fault test {n} [sim:task={marker}] [sim:tag={tag}] [sim:ms={ms}]{}",
                if fail { " [sim:fail]" } else { "" }
            );
            let mut input = json!({ field: text });
            if let Some(m) = lane.mj_mode {
                input["process_mode"] = json!(m);
            }
            let spec = TaskSpec::parse(
                lane.provider.as_str(),
                task_type,
                &input,
                &config.parse_options(),
            )
            .unwrap_or_else(|e| panic!("{input}: {e}"));
            let cost = config.prices.price(ServiceMode::Ppu, &spec);
            let body = json!({
                "model": lane.provider.as_str(),
                "task_type": task_type,
                "input": input,
                "config": {"service_mode": if lane.ppu { "public" } else { "private" }},
            });
            burst.push(Planned {
                n,
                lane: li,
                marker,
                tag,
                fail,
                body,
                price: (cost.kind.as_str().to_string(), cost.amount),
            });
            n += 1;
        }
        bursts.push(burst);
    }
    bursts
}

// ---------------------------------------------------------------------------------------
// HTTP

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

/// One API request: method, path, credentials, JSON body, Idempotency-Key.
struct Req<'a> {
    method: reqwest::Method,
    path: &'a str,
    auth: Auth<'a>,
    body: Option<&'a Value>,
    idem: Option<&'a str>,
}

impl<'a> Req<'a> {
    fn new(method: reqwest::Method, path: &'a str, auth: Auth<'a>) -> Req<'a> {
        Req {
            method,
            path,
            auth,
            body: None,
            idem: None,
        }
    }

    fn body(self, body: &'a Value) -> Req<'a> {
        Req {
            body: Some(body),
            ..self
        }
    }

    fn idem(self, key: &'a str) -> Req<'a> {
        Req {
            idem: Some(key),
            ..self
        }
    }
}

impl Api {
    async fn call(&self, r: &Req<'_>) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .request(r.method.clone(), format!("{}{}", self.base, r.path));
        req = match r.auth {
            Auth::Admin => req.bearer_auth(ADMIN_TOKEN),
            Auth::Key(k) => req.header("x-api-key", k),
        };
        if let Some(b) = r.body {
            req = req.json(b);
        }
        if let Some(k) = r.idem {
            req = req.header("idempotency-key", k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request: {}", chain(&e)))?;
        let status = resp.status().as_u16();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let text = resp
            .text()
            .await
            .map_err(|e| format!("reading the reply: {}", chain(&e)))?;
        let mut v: Value = serde_json::from_str(&text).unwrap_or(json!({ "raw": text }));
        if replayed {
            v["replayed"] = json!(true);
        }
        Ok((status, v))
    }

    /// Retry through 5xx, 429 and connection errors (the Redis outage, a restarting
    /// dispatcher) until `within` passes; anything else answers.
    async fn call_retrying(
        &self,
        req: &Req<'_>,
        within: Duration,
        retries: &AtomicU64,
    ) -> Result<(u16, Value), String> {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(100);
        loop {
            let r = self.call(req).await;
            let again = match &r {
                Ok((s, _)) => *s >= 500 || *s == 429,
                Err(_) => true,
            };
            if !again || Instant::now() > deadline {
                return r;
            }
            retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn ok(&self, method: reqwest::Method, path: &str, auth: Auth<'_>, body: Value) -> Value {
        let idem = format!("seed-{}", uuid::Uuid::now_v7());
        let req = Req::new(method.clone(), path, auth).body(&body).idem(&idem);
        let r = self
            .call_retrying(&req, Duration::from_secs(20), &AtomicU64::new(0))
            .await;
        match r {
            Ok((s, v)) if s < 300 => v["data"].clone(),
            other => panic!("{method} {path} {body}: {other:?}"),
        }
    }

    async fn get(&self, path: &str, auth: Auth<'_>) -> Result<Value, String> {
        let req = Req::new(reqwest::Method::GET, path, auth);
        match self
            .call_retrying(&req, Duration::from_secs(30), &AtomicU64::new(0))
            .await
        {
            Ok((200, v)) => Ok(v["data"].clone()),
            Ok((s, v)) => Err(format!("HTTP {s}: {v}")),
            Err(e) => Err(e),
        }
    }

    /// Submit a planned task with its tenant's key and its marker as Idempotency-Key,
    /// retrying as [`Api::call_retrying`] does.
    async fn submit(
        &self,
        key: &str,
        p: &Planned,
        within: Duration,
        retries: &AtomicU64,
    ) -> Result<(u16, Value), String> {
        let req = Req::new(reqwest::Method::POST, "/api/v1/task", Auth::Key(key))
            .body(&p.body)
            .idem(&p.marker);
        self.call_retrying(&req, within, retries).await
    }
}

/// An error with its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Admin,
    Key(&'a str),
}

fn terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

// ---------------------------------------------------------------------------------------
// Chaos

fn chaos(
    fleet: Arc<Mutex<Fleet>>,
    log: Arc<Mutex<ChaosLog>>,
    params: Params,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    expected: Duration,
) {
    let mut rng = StdRng::seed_from_u64(params.seed ^ 0x5eed);
    let start = Instant::now();
    let between = |rng: &mut StdRng| {
        Duration::from_millis(rng.random_range(params.kill_every_ms.0..=params.kill_every_ms.1))
    };
    let mut next_kill = start + between(&mut rng);
    let outage_at = start + expected.mul_f64(0.35);
    let term_at = start + expected.mul_f64(0.65);
    let (mut outage_done, mut term_done) = (false, false);
    let mut last_restart: HashMap<String, Instant> = HashMap::new();
    let note = |log: &Arc<Mutex<ChaosLog>>, f: &Fleet, s: String| {
        eprintln!("[faults {}] {s}", f.elapsed());
        log.lock()
            .unwrap()
            .events
            .push(format!("{} {s}", f.elapsed()));
    };
    loop {
        if done.load(Ordering::Relaxed) {
            break;
        }
        // After the submissions (and the one outage and SIGTERM), only supervise.
        let calm = stop.load(Ordering::Relaxed) && outage_done && term_done;
        if calm && log.lock().unwrap().calm_at.is_zero() {
            log.lock().unwrap().calm_at = fleet.lock().unwrap().t0.elapsed();
        }
        let now = Instant::now();
        if !calm && now >= next_kill {
            let mut f = fleet.lock().unwrap();
            let alive: Vec<usize> = (0..f.workers.len())
                .filter(|i| f.workers[*i].2.is_some())
                .collect();
            if !alive.is_empty() {
                let i = alive[rng.random_range(0..alive.len())];
                let mut p = f.workers[i].2.take().unwrap();
                let _ = p.child.kill();
                let _ = p.child.wait();
                let up = p.started.elapsed().as_secs_f64();
                let name = p.name.clone();
                let s = format!("SIGKILL {name} (up {up:.1}s); restarting it");
                log.lock()
                    .unwrap()
                    .kills
                    .push(format!("{} {name}", f.elapsed()));
                note(&log, &f, s);
                std::thread::sleep(Duration::from_millis(100));
                f.start_worker(i);
                log.lock().unwrap().restarts += 1;
            }
            next_kill = Instant::now() + between(&mut rng);
        }
        if !outage_done && now >= outage_at {
            let f = fleet.lock().unwrap();
            f.redis.kill();
            let down = Instant::now();
            note(
                &log,
                &f,
                format!("SIGKILL redis-server (port {})", f.redis.port),
            );
            drop(f);
            std::thread::sleep(Duration::from_millis(params.outage_ms));
            let f = fleet.lock().unwrap();
            f.redis.spawn();
            let up = f.redis.wait_answering(Duration::from_secs(30));
            let total = down.elapsed().as_millis();
            note(
                &log,
                &f,
                format!(
                    "redis-server restarted on its AOF: {} after {total} ms",
                    if up { "answers PING" } else { "NOT answering" }
                ),
            );
            log.lock().unwrap().outage = Some((params.outage_ms as u128, total));
            outage_done = true;
            next_kill = Instant::now() + between(&mut rng);
        }
        if !term_done && now >= term_at {
            let mut f = fleet.lock().unwrap();
            // A running worker: one up for a second at least (not one still starting).
            let alive: Vec<usize> = (0..f.workers.len())
                .filter(|i| {
                    f.workers[*i]
                        .2
                        .as_ref()
                        .is_some_and(|p| p.started.elapsed() >= Duration::from_secs(1))
                })
                .collect();
            if let Some(&i) = alive.get(rng.random_range(0..alive.len().max(1))) {
                let mut p = f.workers[i].2.take().unwrap();
                if let Some(s) = p.child.try_wait().unwrap() {
                    let msg = format!(
                        "{} {} exited on its own ({s}) after {:.1}s, found when about to SIGTERM it; log tail:\n    {}",
                        f.elapsed(),
                        p.name,
                        p.started.elapsed().as_secs_f64(),
                        tail(&f.log_path(&p.name), 5)
                    );
                    log.lock().unwrap().unexpected_exits.push(msg);
                }
                signal(p.child.id(), "-TERM");
                let t = Instant::now();
                let within = Duration::from_secs(2 + 15);
                let status = loop {
                    if let Some(s) = p.child.try_wait().unwrap() {
                        break Some(s);
                    }
                    if t.elapsed() > within {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                let ms = t.elapsed().as_millis();
                let s = match status {
                    Some(s) => format!("SIGTERM {}: exited {s} after {ms} ms", p.name),
                    None => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        format!("SIGTERM {}: still running after {ms} ms, SIGKILLed", p.name)
                    }
                };
                {
                    let mut l = log.lock().unwrap();
                    l.sigterm = Some(s.clone());
                    l.sigterm_exit_ms = Some(ms);
                    l.sigterm_ok = Some(status.is_some_and(|s| s.success()));
                }
                note(&log, &f, s);
                f.start_worker(i);
                log.lock().unwrap().restarts += 1;
                term_done = true;
            }
        }
        // Anything that died without being told to is a finding; restart it (at most once
        // a second per process) so the run goes on.
        {
            let mut f = fleet.lock().unwrap();
            for i in 0..f.workers.len() {
                let exited = f.workers[i]
                    .2
                    .as_mut()
                    .and_then(|p| p.child.try_wait().unwrap());
                if let Some(s) = exited {
                    let p = f.workers[i].2.take().unwrap();
                    let lp = f.log_path(&p.name);
                    let msg = format!(
                        "{} {} exited on its own ({s}) after {:.1}s; log tail:\n    {}",
                        f.elapsed(),
                        p.name,
                        p.started.elapsed().as_secs_f64(),
                        tail(&lp, 5)
                    );
                    eprintln!("[faults] {msg}");
                    log.lock().unwrap().unexpected_exits.push(msg);
                }
                if f.workers[i].2.is_none() {
                    let key = format!("w{i}");
                    if last_restart
                        .get(&key)
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
                    {
                        last_restart.insert(key, Instant::now());
                        f.start_worker(i);
                        log.lock().unwrap().restarts += 1;
                    }
                }
            }
            let serve_exit = f.serve.as_mut().and_then(|p| p.child.try_wait().unwrap());
            if let Some(s) = serve_exit {
                let p = f.serve.take().unwrap();
                let msg = format!(
                    "{} serve exited on its own ({s}) after {:.1}s; log tail:\n    {}",
                    f.elapsed(),
                    p.started.elapsed().as_secs_f64(),
                    tail(&f.log_path("serve"), 5)
                );
                eprintln!("[faults] {msg}");
                log.lock().unwrap().unexpected_exits.push(msg);
            }
            if f.serve.is_none()
                && last_restart
                    .get("serve")
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
            {
                last_restart.insert("serve".into(), Instant::now());
                f.start_serve();
                log.lock().unwrap().restarts += 1;
            }
            let sim_exit = f.sim.as_mut().and_then(|p| p.child.try_wait().unwrap());
            if let Some(s) = sim_exit {
                let msg = format!("{} the simulator exited ({s})", f.elapsed());
                f.sim = None;
                log.lock().unwrap().unexpected_exits.push(msg);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// The test

struct Accepted {
    planned: Planned,
    task_id: String,
}

#[test]
fn faults_under_chaos() {
    let params = Params::from_env();
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("switchyard-faults-{}", std::process::id()));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    eprintln!(
        "[faults] {params:?}\n[faults] logs and redis data in {}",
        dir.display()
    );

    let redis_port = free_port();
    let sim_listen = format!("127.0.0.1:{}", free_port());
    let serve_listen = format!("127.0.0.1:{}", free_port());
    let sim_url = format!("http://{sim_listen}");
    let ws = sim_url.replacen("http", "ws", 1);
    let env: Vec<(String, String)> = [
        (
            "SWITCHYARD_REDIS__URL",
            format!("redis://127.0.0.1:{redis_port}"),
        ),
        ("SWITCHYARD_REDIS__KEY_PREFIX", "faults".to_string()),
        (
            "SWITCHYARD_STORAGE__DIR",
            dir.join("files").display().to_string(),
        ),
        ("SWITCHYARD_MASTER_KEY", MASTER_KEY.to_string()),
        (
            "SWITCHYARD_DISPATCHER__ADMIN_TOKEN",
            ADMIN_TOKEN.to_string(),
        ),
        (
            "SWITCHYARD_DISPATCHER__RATE_LIMIT_PER_S",
            "100000".to_string(),
        ),
        (
            "SWITCHYARD_DISPATCHER__RATE_LIMIT_BURST",
            "100000".to_string(),
        ),
        (
            "SWITCHYARD_SCHEDULER__LEASE_MS",
            params.lease_ms.to_string(),
        ),
        (
            "SWITCHYARD_SCHEDULER__MAX_ATTEMPTS",
            params.max_attempts.to_string(),
        ),
        ("SWITCHYARD_SCHEDULER__RETRY_BACKOFF_MS", "100".to_string()),
        (
            "SWITCHYARD_SCHEDULER__RETRY_BACKOFF_MAX_MS",
            "1000".to_string(),
        ),
        (
            "SWITCHYARD_WORKER__TASK_TIMEOUT_S",
            params.task_timeout_s.to_string(),
        ),
        ("SWITCHYARD_WORKER__POLL_INTERVAL_MS", "100".to_string()),
        ("SWITCHYARD_WORKER__SHUTDOWN_GRACE_S", "2".to_string()),
        ("SWITCHYARD_WORKER__REAP_INTERVAL_MS", "250".to_string()),
        ("SWITCHYARD_UPSTREAMS__DISCORD_API", sim_url.clone()),
        (
            "SWITCHYARD_UPSTREAMS__DISCORD_GATEWAY",
            format!("{ws}/gateway"),
        ),
        ("SWITCHYARD_UPSTREAMS__SUNO_API", sim_url.clone()),
        ("SWITCHYARD_UPSTREAMS__SUNO_CLERK", sim_url.clone()),
        ("SWITCHYARD_UPSTREAMS__LUMA_API", sim_url.clone()),
        ("SWITCHYARD_UPSTREAMS__CHATGPT_API", sim_url.clone()),
        (
            "RUST_LOG",
            std::env::var("SWITCHYARD_FAULTS_LOG").unwrap_or_else(|_| "warn".to_string()),
        ),
        ("NO_COLOR", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    // Pacing of a few milliseconds on every account: kept across the killed processes.
    .chain(PROVIDERS.iter().flat_map(|p| {
        let key = |f: &str| {
            format!(
                "SWITCHYARD_SCHEDULER__PACING__{}__{f}",
                p.as_str().to_uppercase()
            )
        };
        [
            (key("MIN_GAP_S"), "0.002".to_string()),
            (key("MAX_GAP_S"), "0.02".to_string()),
        ]
    }))
    .collect();

    let mut workers = Vec::new();
    for p in PROVIDERS {
        for n in 1..=2 {
            workers.push((p, n, None, Instant::now()));
        }
    }
    let fleet = Arc::new(Mutex::new(Fleet {
        logs: logs.clone(),
        env,
        redis: DurableRedis::in_dir(&dir.join("redis"), redis_port),
        sim: None,
        serve: None,
        serve_listen: serve_listen.clone(),
        workers,
        t0,
    }));
    {
        let mut f = fleet.lock().unwrap();
        f.redis.spawn();
        assert!(
            f.redis.wait_answering(Duration::from_secs(10)),
            "redis-server on port {redis_port} did not answer; log:\n{}",
            tail(&f.redis.log_path(), 20)
        );
        f.start_sim(&sim_listen);
        f.start_serve();
        for i in 0..f.workers.len() {
            f.start_worker(i);
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        base: format!("http://{serve_listen}"),
    };
    let plans = PlanTable::seed();
    let lanes = lanes(&plans);
    let mut rng = StdRng::seed_from_u64(params.seed);
    let bursts = plan_tasks(&params, &lanes, &mut rng);

    // Wait for the simulator and the dispatcher.
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sim_ok = api
                .http
                .get(format!("{sim_url}/_sim/stats"))
                .send()
                .await
                .is_ok();
            let api_ok = api
                .http
                .get(format!("{}/readyz", api.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if sim_ok && api_ok {
                break;
            }
            if Instant::now() > deadline {
                let f = fleet.lock().unwrap();
                panic!(
                    "sim ({sim_ok}) or serve ({api_ok}) not up within 30 s; serve log:\n{}\nsim log:\n{}",
                    tail(&f.log_path("serve"), 20),
                    tail(&f.log_path("sim"), 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Seed over HTTP: the pool, the tenants, their balances and hosted accounts.
    let keys: Vec<String> = rt.block_on(seed(&api));
    let before: Vec<Value> = rt.block_on(async {
        let mut v = Vec::new();
        for k in &keys {
            v.push(api.get("/api/v1/me", Auth::Key(k)).await.unwrap());
        }
        v
    });
    eprintln!(
        "[faults {:>6.1}s] seeded; submitting {} tasks in {} bursts at ~{}/s",
        t0.elapsed().as_secs_f64(),
        params.tasks,
        bursts.len(),
        params.rate
    );

    // Chaos runs while tasks are submitted.
    let chaos_log = Arc::new(Mutex::new(ChaosLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let expected = Duration::from_secs_f64(params.tasks as f64 / params.rate);
    let chaos_thread = {
        let (f, l, p, s, d) = (
            fleet.clone(),
            chaos_log.clone(),
            params.clone(),
            stop.clone(),
            done.clone(),
        );
        std::thread::spawn(move || chaos(f, l, p, s, d, expected))
    };

    // The API's health as a client sees it: GET /readyz (one Redis round trip) every
    // second, with its latency.
    let probes: Arc<Mutex<Vec<(f64, u128, bool)>>> = Arc::new(Mutex::new(Vec::new()));
    {
        let (api, probes, done) = (api.clone(), probes.clone(), done.clone());
        rt.spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let at = t0.elapsed().as_secs_f64();
                let t = Instant::now();
                let ok = api
                    .http
                    .get(format!("{}/readyz", api.base))
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                probes
                    .lock()
                    .unwrap()
                    .push((at, t.elapsed().as_millis(), ok));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    let submit_retries = Arc::new(AtomicU64::new(0));
    let (mut accepted, unanswered) = rt.block_on(submit_all(
        &api,
        &keys,
        bursts,
        &params,
        submit_retries.clone(),
    ));
    let submitted_at = t0.elapsed();
    eprintln!(
        "[faults {:>6.1}s] submitted: {} accepted, {} without an answer or refused",
        submitted_at.as_secs_f64(),
        accepted.len(),
        unanswered.len()
    );
    stop.store(true, Ordering::Relaxed);
    // A submit that got no answer may still have created its task: ask once more with the
    // same Idempotency-Key (it answers the first task, or creates it now), so that every
    // task that exists is followed and counted.
    let mut refused = Vec::new();
    for (p, e) in unanswered {
        if e.starts_with("HTTP 4") {
            refused.push((p, e));
            continue;
        }
        let key = keys[lanes[p.lane].tenant].clone();
        let r = rt.block_on(api.submit(&key, &p, Duration::from_secs(60), &AtomicU64::new(0)));
        let fate = match r {
            Ok((200, v)) if v["data"]["task_id"].is_string() => {
                let fate = if v["replayed"] == true {
                    "it had been created: asked again with its Idempotency-Key, the API answers task"
                } else {
                    "it had not been created: asked again, the API creates task"
                };
                let id = v["data"]["task_id"].as_str().unwrap_or("").to_string();
                let fate = format!("{fate} {id}");
                accepted.push(Accepted {
                    planned: p.clone(),
                    task_id: id,
                });
                fate
            }
            Ok((s, v)) => format!("asked again: HTTP {s}: {v}"),
            Err(e) => format!("asked again: {e}"),
        };
        refused.push((p, format!("{e}; {fate}")));
    }
    accepted.sort_by_key(|a| a.planned.n);
    // Drain: wait until every accepted task is terminal, or the drain time passes (the
    // chaos thread finishes its outage and SIGTERM if they are still due, then only
    // restarts what dies on its own).
    let drain_deadline = Instant::now() + Duration::from_secs(params.drain_s);
    rt.block_on(drain(&api, &keys, &accepted, drain_deadline, &fleet));
    let drained_at = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    chaos_thread.join().expect("chaos thread");
    let chaos_end = chaos_log.lock().unwrap().calm_at;

    // Final reads: every task by GET with its tenant's key, the balances, the witness.
    let finals: Vec<Result<Value, String>> = rt.block_on(read_all(&api, &keys, &accepted));
    let after: Vec<Value> = rt.block_on(async {
        let mut v = Vec::new();
        for k in &keys {
            v.push(api.get("/api/v1/me", Auth::Key(k)).await.unwrap());
        }
        v
    });
    let stats: Value = rt.block_on(async {
        // Jobs made twice upstream end on their own within their [sim:ms]; give the
        // witness's `current` time to come back down before reading it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s: Value = api
                .http
                .get(format!("{sim_url}/_sim/stats"))
                .send()
                .await
                .expect("witness")
                .json()
                .await
                .expect("witness json");
            let busy = s["accounts"]
                .as_object()
                .is_some_and(|m| m.values().any(|c| c["current"].as_u64() != Some(0)));
            if !busy || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let log = chaos_log.lock().unwrap();
    let report = check(
        &params,
        &lanes,
        &accepted,
        &refused,
        &finals,
        &before,
        &after,
        &stats,
        &log,
        [submitted_at, chaos_end, drained_at, t0.elapsed()],
        submit_retries.load(Ordering::Relaxed),
    );
    eprintln!("{}", report.summary);
    {
        let p = probes.lock().unwrap();
        let slow: Vec<&(f64, u128, bool)> =
            p.iter().filter(|(_, ms, ok)| *ms > 1000 || !ok).collect();
        let max = p.iter().max_by_key(|(_, ms, _)| *ms);
        eprintln!(
            "API health (GET /readyz every second, {} probes): slowest {}; {} slower than 1 s or failed{}",
            p.len(),
            max.map_or("-".to_string(), |(at, ms, _)| format!(
                "{ms} ms at {at:.1}s"
            )),
            slow.len(),
            match (slow.first(), slow.last()) {
                (Some(a), Some(b)) => format!(", from {:.1}s to {:.1}s", a.0, b.0),
                _ => String::new(),
            }
        );
    }
    {
        let mut f = fleet.lock().unwrap();
        f.kill_all();
    }
    if report.failures.is_empty() {
        if !params.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    } else {
        eprintln!("[faults] logs and redis data kept in {}", dir.display());
        panic!(
            "{} assertion group(s) failed:\n\n{}",
            report.failures.len(),
            report.failures.join("\n\n")
        );
    }
}

async fn seed(api: &Api) -> Vec<String> {
    use reqwest::Method;
    for (p, name, cap) in POOL {
        api.ok(
            Method::POST,
            "/admin/v1/pool/accounts",
            Auth::Admin,
            account_body(p, name, cap),
        )
        .await;
    }
    let mut keys = Vec::new();
    for t in &TENANTS {
        let v = api
            .ok(
                Method::POST,
                "/admin/v1/tenants",
                Auth::Admin,
                json!({"name": format!("faults {}", t.name), "plan": t.plan.as_str()}),
            )
            .await;
        let id = v["tenant_id"].as_str().unwrap().to_string();
        let key = v["api_key"].as_str().unwrap().to_string();
        for (kind, amount) in [
            ("mj_quota", 200_000),
            ("suno_quota", 100_000),
            ("gpts_quota", 200_000),
            ("luma_quota", 100_000),
        ] {
            if t.plan == Plan::Hobbyist && kind == "luma_quota" {
                continue; // the free trial only (a top-up is refused for Hobbyist)
            }
            api.ok(
                Method::POST,
                &format!("/admin/v1/tenants/{id}/credits"),
                Auth::Admin,
                json!({"kind": kind, "amount": amount}),
            )
            .await;
        }
        for (p, cap) in t.hosted {
            api.ok(
                Method::POST,
                "/api/v1/accounts",
                Auth::Key(&key),
                account_body(*p, &hosted_sim_name(t.name, *p), *cap),
            )
            .await;
        }
        keys.push(key);
    }
    // Hosted accounts are probed by their provider's worker before they take work.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (t, key) in TENANTS.iter().zip(&keys) {
        loop {
            let v = api.get("/api/v1/accounts", Auth::Key(key)).await.unwrap();
            let accts = v.as_array().cloned().unwrap_or_default();
            let all_active =
                accts.len() == t.hosted.len() && accts.iter().all(|a| a["state"] == "active");
            if all_active {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: hosted accounts not active within 30 s: {v}",
                t.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    keys
}

async fn submit_all(
    api: &Api,
    keys: &[String],
    bursts: Vec<Vec<Planned>>,
    params: &Params,
    retries: Arc<AtomicU64>,
) -> (Vec<Accepted>, Vec<(Planned, String)>) {
    let start = Instant::now();
    let lanes = lanes(&PlanTable::seed());
    let mut set = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    let gate = Arc::new(tokio::sync::Semaphore::new(
        if params.client_concurrency == 0 {
            tokio::sync::Semaphore::MAX_PERMITS
        } else {
            params.client_concurrency
        },
    ));
    for burst in bursts {
        let at = start + Duration::from_secs_f64(sent as f64 / params.rate);
        tokio::time::sleep_until(at.into()).await;
        sent += burst.len();
        for p in burst {
            let api = api.clone();
            let key = keys[lanes[p.lane].tenant].clone();
            let retries = retries.clone();
            let gate = gate.clone();
            set.spawn(async move {
                let _permit = gate.acquire().await.expect("gate");
                let r = api
                    .submit(&key, &p, Duration::from_secs(120), &retries)
                    .await;
                match r {
                    Ok((200, v)) => match v["data"]["task_id"].as_str() {
                        Some(id) => Ok(Accepted {
                            task_id: id.to_string(),
                            planned: p,
                        }),
                        None => Err((p, format!("200 without a task_id: {v}"))),
                    },
                    Ok((s, v)) => Err((p, format!("HTTP {s}: {v}"))),
                    Err(e) => Err((p, e)),
                }
            });
        }
    }
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    while let Some(r) = set.join_next().await {
        match r.expect("submit task") {
            Ok(a) => ok.push(a),
            Err(e) => refused.push(e),
        }
    }
    ok.sort_by_key(|a| a.planned.n);
    (ok, refused)
}

async fn drain(
    api: &Api,
    keys: &[String],
    accepted: &[Accepted],
    deadline: Instant,
    fleet: &Arc<Mutex<Fleet>>,
) {
    let lanes = lanes(&PlanTable::seed());
    let mut open: Vec<usize> = (0..accepted.len()).collect();
    let mut last_print = Instant::now();
    let t0 = fleet.lock().unwrap().t0;
    loop {
        let mut still = Vec::new();
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        for (ti, key) in keys.iter().enumerate() {
            let mine: Vec<usize> = open
                .iter()
                .copied()
                .filter(|i| lanes[accepted[*i].planned.lane].tenant == ti)
                .collect();
            for chunk in mine.chunks(100) {
                let ids: Vec<&str> = chunk
                    .iter()
                    .map(|i| accepted[*i].task_id.as_str())
                    .collect();
                let body = json!({ "task_ids": ids });
                let req = Req::new(reqwest::Method::POST, "/api/v1/task/fetch", Auth::Key(key))
                    .body(&body);
                let r = api.call(&req).await;
                let status: HashMap<String, String> = match r {
                    Ok((200, v)) => v["data"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| {
                            (
                                t["task_id"].as_str().unwrap_or("").to_string(),
                                t["status"].as_str().unwrap_or("?").to_string(),
                            )
                        })
                        .collect(),
                    _ => HashMap::new(),
                };
                for i in chunk {
                    let s = status
                        .get(&accepted[*i].task_id)
                        .cloned()
                        .unwrap_or_else(|| "unknown".into());
                    if !terminal(&s) {
                        *by_status.entry(s).or_default() += 1;
                        still.push(*i);
                    }
                }
            }
        }
        open = still;
        if open.is_empty() || Instant::now() > deadline {
            return;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            last_print = Instant::now();
            eprintln!(
                "[faults {:>6.1}s] waiting for {} tasks: {by_status:?}",
                t0.elapsed().as_secs_f64(),
                open.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn read_all(api: &Api, keys: &[String], accepted: &[Accepted]) -> Vec<Result<Value, String>> {
    let lanes = lanes(&PlanTable::seed());
    let mut out = Vec::with_capacity(accepted.len());
    // A few at a time: reading back is not what is under test.
    for chunk in accepted.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for (j, a) in chunk.iter().enumerate() {
            let api = api.clone();
            let key = keys[lanes[a.planned.lane].tenant].clone();
            let id = a.task_id.clone();
            set.spawn(async move {
                (
                    j,
                    api.get(&format!("/api/v1/task/{id}"), Auth::Key(&key))
                        .await,
                )
            });
        }
        let mut got: Vec<(usize, Result<Value, String>)> = Vec::new();
        while let Some(r) = set.join_next().await {
            got.push(r.expect("read task"));
        }
        got.sort_by_key(|(j, _)| *j);
        out.extend(got.into_iter().map(|(_, r)| r));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Assertions and the summary

struct Report {
    summary: String,
    failures: Vec<String>,
}

fn describe(a: &Accepted, lanes: &[Lane], t: Option<&Value>, sim_jobs: u64) -> String {
    let lane = &lanes[a.planned.lane];
    let mut s = format!(
        "task {} [{} {}] {}/{}{} {} tenant {}",
        a.task_id,
        a.planned.marker,
        a.planned.tag,
        lane.provider.as_str(),
        if lane.ppu { "PPU" } else { "BYOA" },
        lane.mj_mode.map(|m| format!(" {m}")).unwrap_or_default(),
        if a.planned.fail {
            "asked to fail"
        } else {
            "should complete"
        },
        TENANTS[lane.tenant].name,
    );
    if let Some(t) = t {
        let e = &t["error"];
        let _ = write!(
            s,
            ": status {} attempts {} account {} failover {} upstream jobs {sim_jobs}",
            t["status"].as_str().unwrap_or("?"),
            t["meta"]["attempts"],
            t["meta"]["account_id"].as_str().unwrap_or("-"),
            t["meta"]["failover_triggered"],
        );
        if t["status"] != "completed" {
            let _ = write!(s, "; error {e}");
        }
        let logs = t["logs"].as_array().map(|l| l.len()).unwrap_or(0);
        if logs > 0 {
            let last = &t["logs"][logs - 1];
            let _ = write!(s, "; last log {last}");
        }
    }
    s
}

fn group(failures: &mut Vec<String>, title: &str, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let mut s = format!("ASSERTION FAILED: {title} ({} case(s))", lines.len());
    for l in lines.iter().take(40) {
        let _ = write!(s, "\n  - {l}");
    }
    if lines.len() > 40 {
        let _ = write!(s, "\n  … and {} more", lines.len() - 40);
    }
    failures.push(s);
}

#[allow(clippy::too_many_arguments)]
fn check(
    params: &Params,
    lanes: &[Lane],
    accepted: &[Accepted],
    refused: &[(Planned, String)],
    finals: &[Result<Value, String>],
    before: &[Value],
    after: &[Value],
    stats: &Value,
    log: &ChaosLog,
    times: [Duration; 4],
    submit_retries: u64,
) -> Report {
    let mut failures = Vec::new();
    let sim_jobs = |marker: &str| stats["tasks"][marker].as_u64().unwrap_or(0);

    // 0. Every planned task was accepted (each is entitled and funded).
    group(
        &mut failures,
        "every submit is answered and accepted (each task is entitled and funded; 5xx, 429, timeouts (30 s) and connection errors retried for 120 s with its Idempotency-Key)",
        refused
            .iter()
            .map(|(p, e)| {
                let l = &lanes[p.lane];
                format!(
                    "[{}] {}/{} tenant {}: {e}",
                    p.marker,
                    l.provider.as_str(),
                    if l.ppu { "PPU" } else { "BYOA" },
                    TENANTS[l.tenant].name
                )
            })
            .collect(),
    );

    // 1. Terminal; 2. failures exactly where asked; 3. one upstream job per task;
    //    4. consume = price for completed PPU tasks.
    let (mut not_terminal, mut unreadable, mut wrong_outcome, mut dup, mut charge) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut by_provider: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    let mut spent_expected: BTreeMap<(usize, String), i64> = BTreeMap::new();
    let mut failovers = 0;
    let mut multi_attempt = 0;
    for (a, f) in accepted.iter().zip(finals) {
        let lane = &lanes[a.planned.lane];
        let jobs = sim_jobs(&a.planned.marker);
        let t = match f {
            Ok(t) => t,
            Err(e) => {
                unreadable.push(format!(
                    "{}: GET failed: {e}",
                    describe(a, lanes, None, jobs)
                ));
                continue;
            }
        };
        let status = t["status"].as_str().unwrap_or("?").to_string();
        *by_provider
            .entry(lane.provider.as_str())
            .or_default()
            .entry(format!(
                "{}{}",
                status,
                if a.planned.fail {
                    " (asked to fail)"
                } else {
                    ""
                }
            ))
            .or_default() += 1;
        if t["meta"]["failover_triggered"] == true {
            failovers += 1;
        }
        if t["meta"]["attempts"].as_u64().unwrap_or(0) > 1 {
            multi_attempt += 1;
        }
        let d = || describe(a, lanes, Some(t), jobs);
        if !terminal(&status) {
            not_terminal.push(d());
            continue;
        }
        let want = if a.planned.fail {
            "failed"
        } else {
            "completed"
        };
        if status != want {
            wrong_outcome.push(d());
        }
        let jobs_ok = match (status.as_str(), a.planned.fail) {
            ("completed", _) | ("failed", true) => jobs == 1,
            _ => jobs <= 1,
        };
        if !jobs_ok {
            dup.push(d());
        }
        let ran_ppu = t["meta"]["is_using_private_pool"] == false;
        let consume = t["meta"]["usage"]["consume"].as_i64().unwrap_or(-1);
        let kind = t["meta"]["usage"]["type"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let expect = if status == "completed" && ran_ppu {
            a.planned.price.1 as i64
        } else {
            0
        };
        if consume != expect || (ran_ppu && kind != a.planned.price.0) {
            charge.push(format!(
                "{}: consume {consume} {kind}, expected {expect} {} (ran on {})",
                d(),
                a.planned.price.0,
                if ran_ppu {
                    "the PPU pool"
                } else {
                    "a hosted account"
                }
            ));
        }
        if status == "completed" && ran_ppu {
            *spent_expected
                .entry((lane.tenant, a.planned.price.0.clone()))
                .or_default() += a.planned.price.1 as i64;
        }
    }
    group(
        &mut failures,
        "every accepted task can be read back (GET /api/v1/task/{id} with its tenant's key)",
        unreadable,
    );
    group(
        &mut failures,
        &format!(
            "every accepted task reaches a terminal status (within the drain time of {} s)",
            params.drain_s
        ),
        not_terminal,
    );
    group(
        &mut failures,
        "tasks fail exactly where [sim:fail] asked (completed otherwise)",
        wrong_outcome,
    );
    group(
        &mut failures,
        "exactly one upstream job per task (witness tasks[marker]: 1 for completed and asked-to-fail, ≤ 1 otherwise)",
        dup,
    );
    group(
        &mut failures,
        "each task's meta.usage.consume is its PPU price when it completed on the pool, 0 otherwise",
        charge,
    );

    // 5. Money per tenant and quota kind.
    let mut money_lines = Vec::new();
    let mut money_fail = Vec::new();
    for (ti, t) in TENANTS.iter().enumerate() {
        for kind in [
            "credits",
            "mj_quota",
            "suno_quota",
            "luma_quota",
            "gpts_quota",
        ] {
            let b = before[ti]["balances"][kind].as_i64().unwrap_or(0);
            let a = after[ti]["balances"][kind].as_i64().unwrap_or(0);
            let held = after[ti]["held"][kind].as_i64().unwrap_or(0);
            let exp = spent_expected
                .get(&(ti, kind.to_string()))
                .copied()
                .unwrap_or(0);
            if b != 0 || a != 0 || exp != 0 {
                money_lines.push(format!(
                    "  {:<3} {:<10} before {b:>7} after {a:>7} spent {:>6} = prices of completed PPU tasks {exp:>6}{}",
                    t.name,
                    kind,
                    b - a,
                    if b - a == exp && held == 0 { "" } else { "   <-- MISMATCH" }
                ));
            }
            if b - a != exp {
                money_fail.push(format!(
                    "tenant {} {kind}: before {b} − after {a} = {} but completed PPU tasks cost {exp} (difference {})",
                    t.name,
                    b - a,
                    b - a - exp
                ));
            }
            if held != 0 {
                money_fail.push(format!(
                    "tenant {} {kind}: {held} still held after every task ended",
                    t.name
                ));
            }
        }
    }
    group(
        &mut failures,
        "per tenant and quota kind: balance before − after = sum of prices of completed PPU tasks, nothing left held",
        money_fail,
    );

    // 6. The witness: maxima within caps and capacities, nothing still running.
    let mut cap_lines = Vec::new();
    let mut cap_fail = Vec::new();
    let tags = stats["tags"].as_object().cloned().unwrap_or_default();
    for t in &TENANTS {
        for p in PROVIDERS {
            for ppu in [true, false] {
                let tag = format!(
                    "{}-{}-{}",
                    t.name,
                    p.as_str(),
                    if ppu { "ppu" } else { "byoa" }
                );
                let Some(c) = tags.get(&tag) else { continue };
                let bound: Option<u64> = if ppu {
                    PlanTable::seed().get(t.plan).ppu_cap(p).map(u64::from)
                } else {
                    t.hosted
                        .iter()
                        .find(|(hp, _)| *hp == p)
                        .map(|(_, c)| c.iter().map(|x| u64::from(*x)).sum())
                };
                let max = c["max"].as_u64().unwrap_or(0);
                let cur = c["current"].as_u64().unwrap_or(0);
                cap_lines.push(format!(
                    "  {tag:<22} max {max:>4} / {:<14} jobs {:>5} current {cur}{}",
                    bound.map_or("no cap".to_string(), |b| format!(
                        "{} {b}",
                        if ppu { "plan cap" } else { "accounts" }
                    )),
                    c["submissions"],
                    if bound.is_some_and(|b| max > b) || cur != 0 {
                        "   <-- VIOLATION"
                    } else if bound == Some(max) {
                        "   (reached)"
                    } else {
                        ""
                    }
                ));
                if let Some(b) = bound
                    && max > b
                {
                    cap_fail.push(format!(
                        "tag {tag}: {max} jobs at once upstream, {} {b}",
                        if ppu {
                            "plan cap"
                        } else {
                            "hosted account capacity"
                        }
                    ));
                }
                if cur != 0 {
                    cap_fail.push(format!(
                        "tag {tag}: {cur} jobs still running upstream at the end"
                    ));
                }
            }
        }
    }
    let accts = stats["accounts"].as_object().cloned().unwrap_or_default();
    let mut acct_lines = Vec::new();
    let all_accounts: Vec<(String, u64)> = POOL
        .iter()
        .map(|(_, n, c)| (n.to_string(), c.iter().map(|x| u64::from(*x)).sum()))
        .chain(TENANTS.iter().flat_map(|t| {
            t.hosted.iter().map(|(p, c)| {
                (
                    hosted_sim_name(t.name, *p),
                    c.iter().map(|x| u64::from(*x)).sum(),
                )
            })
        }))
        .collect();
    for (name, capacity) in all_accounts {
        let c = accts.get(&name).cloned().unwrap_or(json!({}));
        let max = c["max"].as_u64().unwrap_or(0);
        let cur = c["current"].as_u64().unwrap_or(0);
        let refused = c["refused"].as_u64().unwrap_or(0);
        acct_lines.push(format!(
            "  {name:<14} max {max:>4} / capacity {capacity:<4} jobs {:>5} refused {refused} current {cur}{}",
            c["submissions"],
            if max > capacity || cur != 0 || refused != 0 { "   <-- VIOLATION" } else { "" }
        ));
        if max > capacity {
            cap_fail.push(format!(
                "account {name}: {max} jobs at once, capacity {capacity}"
            ));
        }
        if refused != 0 {
            cap_fail.push(format!(
                "account {name}: the upstream refused {refused} submission(s) (more than its capacity {capacity} sent to it at once)"
            ));
        }
        if cur != 0 {
            cap_fail.push(format!(
                "account {name}: {cur} jobs still running upstream at the end"
            ));
        }
    }
    group(
        &mut failures,
        "witness: per-tag maxima ≤ plan caps (PPU) / account capacity (BYOA); per-account maxima ≤ capacity with no refusal; current back to 0",
        cap_fail,
    );
    group(
        &mut failures,
        "no process exits unless the test killed it",
        log.unexpected_exits.clone(),
    );
    if log.sigterm_ok == Some(false) {
        failures.push(format!(
            "ASSERTION FAILED: a SIGTERMed worker exits 0 within its grace\n  - {}",
            log.sigterm.clone().unwrap_or_default()
        ));
    }

    // Summary.
    let mut s = String::new();
    let [submitted, chaos_end, drained, total] = times;
    let _ = writeln!(
        s,
        "\n==================== fault-injection summary ===================="
    );
    let _ = writeln!(
        s,
        "tasks {} (accepted {}, submits unanswered or refused {}), seed {}, rate {}/s, lease {} ms, max_attempts {}, task timeout {} s",
        params.tasks,
        accepted.len(),
        refused.len(),
        params.seed,
        params.rate,
        params.lease_ms,
        params.max_attempts,
        params.task_timeout_s
    );
    let _ = writeln!(
        s,
        "time: submitted {:.1}s, chaos ended {:.1}s, drained {:.1}s, total {:.1}s",
        submitted.as_secs_f64(),
        chaos_end.as_secs_f64(),
        drained.as_secs_f64(),
        total.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "chaos: {} worker SIGKILLs (every {}–{} ms), {} restarts, SIGTERM: {}",
        log.kills.len(),
        params.kill_every_ms.0,
        params.kill_every_ms.1,
        log.restarts,
        log.sigterm.clone().unwrap_or_else(|| "none".into())
    );
    match log.outage {
        Some((down, total)) => {
            let _ = writeln!(
                s,
                "redis outage: SIGKILL, restarted after {down} ms, answering after {total} ms; submit retries (5xx/429/connection) {submit_retries}"
            );
        }
        None => {
            let _ = writeln!(s, "redis outage: none");
        }
    }
    let _ = writeln!(
        s,
        "unexpected process exits: {}; tasks with more than one attempt: {multi_attempt}; failovers: {failovers}",
        log.unexpected_exits.len()
    );
    let _ = writeln!(s, "tasks by provider and status:");
    for (p, m) in &by_provider {
        let _ = writeln!(s, "  {p:<10} {m:?}");
    }
    let _ = writeln!(s, "concurrency by the witness (per tag):");
    for l in &cap_lines {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s, "concurrency by the witness (per account):");
    for l in &acct_lines {
        let _ = writeln!(s, "{l}");
    }
    let dups = stats["tasks"]
        .as_object()
        .map(|m| m.values().filter(|v| v.as_u64().unwrap_or(0) > 1).count())
        .unwrap_or(0);
    let _ = writeln!(s, "markers with more than one upstream job: {dups}");
    let _ = writeln!(s, "money:");
    for l in &money_lines {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s, "chaos events:");
    for e in &log.events {
        let _ = writeln!(s, "  {e}");
    }
    let _ = write!(
        s,
        "result: {}",
        if failures.is_empty() {
            "all assertions hold".to_string()
        } else {
            format!("{} assertion group(s) failed", failures.len())
        }
    );
    Report {
        summary: s,
        failures,
    }
}
