//! `SCENARIO=utilisation`: under a backlog, does the runtime keep every account as busy
//! as its pacing allows? Pool accounts on the simulator with the default Suno pacing
//! (a gap of 1–3 s between two submissions of one account), tasks of 1–2 s, the real
//! Suno adapter in the worker runtime. Each submission's allowed gap (the account's next
//! allowed time, read from Redis right after the submission) is set against the time to
//! the account's next submission: utilisation = Σ allowed / Σ actual, over every pair of
//! consecutive submissions while the backlog lasts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::config::PacingDefaults;
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::Harness;
use switchyard_scheduler::{Owner, Scheduler};
use switchyard_worker::{Control, Job, LeaseLost, Upstream, UpstreamError};

/// (submitted at, allowed next at), ms, per account.
type Log = Arc<Mutex<BTreeMap<String, Vec<(u64, u64)>>>>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The real adapter, with each submission's time and allowed gap written down.
struct Recording {
    inner: Arc<dyn Upstream>,
    sched: Scheduler,
    log: Log,
}

struct RecordingControl<'a> {
    inner: &'a dyn Control,
    sched: &'a Scheduler,
    account: &'a str,
    log: &'a Log,
}

#[async_trait::async_trait]
impl Control for RecordingControl<'_> {
    async fn reference(&self, upstream_ref: &str) -> Result<(), LeaseLost> {
        self.inner.reference(upstream_ref).await
    }
    async fn progress(&self, percent: u8, partial: Option<&Value>) -> Result<(), LeaseLost> {
        self.inner.progress(percent, partial).await
    }
    async fn pace(&self) -> Result<(), LeaseLost> {
        self.inner.pace().await?;
        let at = now_ms();
        if let Ok(Some(a)) = self
            .sched
            .get_account(Provider::Suno, &Owner::Pool, self.account)
            .await
            && let Some(next) = a.next_allowed_ms
        {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.entry(self.account.to_string())
                .or_default()
                .push((at, next));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Upstream for Recording {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    async fn run(&self, job: &Job, ctl: &dyn Control) -> Result<Value, UpstreamError> {
        let ctl = RecordingControl {
            inner: ctl,
            sched: &self.sched,
            account: &job.account_id,
            log: &self.log,
        };
        self.inner.run(job, &ctl).await
    }
    async fn probe(&self, account: &str, credentials: &Value) -> Result<(), UpstreamError> {
        self.inner.probe(account, credentials).await
    }
    fn attach(&self, sched: &Scheduler) {
        self.inner.attach(sched)
    }
    fn files(&self, output: &Value) -> Vec<switchyard_worker::OutputFile> {
        self.inner.files(output)
    }
    fn objects(&self, output: &Value) -> Vec<String> {
        self.inner.objects(output)
    }
}

/// Runs the scenario; its RESULT line, or why it failed.
pub async fn run() -> Result<String, String> {
    let accounts: usize = crate::env_or("ACCOUNTS", 6)?;
    let secs: u64 = crate::env_or("WINDOW_S", 60)?;
    let h = Harness::with("bench_util", |c| {
        c.scheduler.pacing = PacingDefaults::default();
    })
    .await;
    let pacing = h.config.scheduler.pacing.of(Provider::Suno);
    h.tenant("t_util", Plan::Enterprise).await;
    h.upsert_uncapped("t_util").await;
    h.fund("t_util", QuotaKind::SunoQuota, 1_000_000_000).await;
    for i in 0..accounts {
        h.account(
            Provider::Suno,
            &Owner::Pool,
            &format!("util{i}"),
            &format!("sim:ok:util{i}"),
            [10, 0, 0],
        )
        .await;
    }
    // More than the accounts can take in the window at their fastest (a gap of min_gap_s).
    let backlog = (accounts as f64 * secs as f64 / pacing.min_gap_s.max(0.1)) as usize + 10;
    for i in 0..backlog {
        let ms = 1000 + (i * 7919) % 1001;
        h.submit(
            "t_util",
            ServiceMode::Ppu,
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": format!("song {i} [sim:ms={ms}]")}),
        )
        .await;
    }
    let log: Log = Arc::default();
    let upstream = Arc::new(Recording {
        inner: Arc::new(switchyard_worker_suno::Suno::new(&h.config)),
        sched: h.sched.clone(),
        log: log.clone(),
    });
    let worker = h.start_worker(upstream);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let left = h
        .sched
        .provider_load(Provider::Suno)
        .await
        .map_err(|e| e.to_string())?;
    worker.stop().await;
    let elapsed = t0.elapsed().as_secs_f64();
    if left.queued <= 0 {
        return Err("the backlog ran out before the window ended; raise it".into());
    }
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (mut allowed, mut actual, mut pairs) = (0u64, 0u64, 0usize);
    let mut waste = Vec::new();
    for subs in log.values() {
        for w in subs.windows(2) {
            let ((s0, next0), (s1, _)) = (w[0], w[1]);
            if s1 < s0 {
                return Err(format!("submissions out of order: {s0} then {s1}"));
            }
            allowed += next0.saturating_sub(s0);
            actual += s1 - s0;
            waste.push(s1.saturating_sub(next0));
            pairs += 1;
        }
    }
    // The simulator's own record: no two submissions of an account closer than the
    // smallest gap (less the few ms a request takes on its way).
    let min_gap_ms = (pacing.min_gap_s * 1000.0) as u64;
    for (acc, times) in &h.sim.stats().submitted_ms {
        if let Some(w) = times.windows(2).find(|w| w[1] - w[0] + 20 < min_gap_ms) {
            return Err(format!(
                "the simulator saw {acc} submit twice {} ms apart (pacing {min_gap_ms} ms)",
                w[1] - w[0]
            ));
        }
    }
    if pairs == 0 {
        return Err("no account submitted twice".into());
    }
    waste.sort_unstable();
    let pct = |p: f64| waste[((waste.len() - 1) as f64 * p).round() as usize];
    let util = allowed as f64 / actual as f64;
    Ok(format!(
        "RESULT scenario=utilisation accounts={accounts} pacing_s={}-{} task_s=1-2 window_s={elapsed:.1} submissions={} utilisation={util:.3} late_ms_p50={} late_ms_p99={} late_ms_max={}",
        pacing.min_gap_s,
        pacing.max_gap_s,
        pairs + log.len(),
        pct(0.5),
        pct(0.99),
        waste.last().copied().unwrap_or(0)
    ))
}
