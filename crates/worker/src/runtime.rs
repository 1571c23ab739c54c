//! The claim loop, heartbeats, the per-task pipeline, the reaper and shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use switchyard_core::secrets::SecretBox;
use switchyard_core::{Config, ParseOptions, TaskBody};
use switchyard_scheduler::connection::Backoff;
use switchyard_scheduler::{
    ClaimedTask, Completion, FailKind, Lease, ProbeOutcome, Scheduler, SchedulerError,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::acks::Acks;
use crate::host::Hosting;
use crate::lease::{LeaseClock, LeaseControl, persist};
use crate::outcome::{Outcome, Settlement};
use crate::{Job, Upstream, UpstreamError};

/// A running worker for one provider.
pub struct Worker {
    sched: Scheduler,
    upstream: Arc<dyn Upstream>,
    config: Config,
    secrets: SecretBox,
    parse: ParseOptions,
    running: Mutex<HashMap<String, Running>>,
    hosting: Hosting,
    /// Completions batched per call; started by `run`.
    acks: std::sync::OnceLock<Acks>,
}

struct Running {
    lease: Lease,
    clock: Arc<LeaseClock>,
    handle: JoinHandle<()>,
}

/// Sleep for `delay`, or less if shutdown begins meanwhile.
async fn sleep_unless_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = shutdown.changed() => {}
    }
}

/// Logs a loop's Redis trouble once when it starts, then every 30 s, and once when it ends.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    said: Option<Instant>,
}

impl Outage {
    fn failed(&mut self, what: &'static str, e: &SchedulerError) {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if self
            .said
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30))
        {
            warn!(what, error = %e, for_s = now.duration_since(since).as_secs(), "Redis call failed; backing off");
            self.said = Some(now);
        }
    }

    fn recovered(&mut self, what: &'static str) {
        if let Some(t) = self.since.take() {
            info!(
                what,
                after_ms = Instant::now().duration_since(t).as_millis() as u64,
                "Redis answered again"
            );
        }
        self.said = None;
    }
}

/// Unregisters a run when it ends however it ends (returns, panics, is aborted), if the
/// registered run is still this one (same lease token).
struct Deregister {
    worker: Arc<Worker>,
    lease: Lease,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut running = self.worker.running();
        if running
            .get(&self.lease.id)
            .is_some_and(|r| r.lease.token == self.lease.token)
        {
            running.remove(&self.lease.id);
        }
    }
}

/// Longest an idle claimer waits before it looks again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Claim calls a worker keeps in flight at once.
const CLAIMERS: usize = 2;

/// Longest a probe of an account may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

impl Worker {
    /// A worker over `sched` running `upstream`'s tasks.
    pub fn new(
        sched: Scheduler,
        upstream: Arc<dyn Upstream>,
        config: &Config,
        secrets: SecretBox,
    ) -> Arc<Worker> {
        upstream.attach(&sched);
        Arc::new(Worker {
            sched,
            upstream,
            config: config.clone(),
            secrets,
            parse: config.parse_options(),
            running: Mutex::new(HashMap::new()),
            hosting: Hosting::open(config),
            acks: std::sync::OnceLock::new(),
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
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let provider = self.upstream.provider();
        let wc = &self.config.worker;
        let slots = Arc::new(Semaphore::new(wc.concurrency));
        let heartbeat = tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        let reaper = tokio::spawn(self.clone().reap_loop(shutdown.clone()));
        self.acks.get_or_init(|| Acks::start(self.sched.clone()));
        info!(%provider, concurrency = wc.concurrency, "worker started");
        // Claims pipelined: while one claimer waits on its round trip, another claims
        // for the slots that freed meanwhile.
        let claimers: Vec<_> = (0..CLAIMERS)
            .map(|_| tokio::spawn(self.clone().claim_loop(slots.clone(), shutdown.clone())))
            .collect();
        for c in claimers {
            let _ = c.await;
        }
        self.drain().await;
        heartbeat.abort();
        reaper.abort();
        self.upstream.stopped().await;
        info!(%provider, "worker stopped");
    }

    /// One claimer: take at least one free slot (and as many more as are free, up to
    /// `worker.claim_batch`), claim that many tasks, run each on its slot; until
    /// `shutdown`.
    async fn claim_loop(
        self: Arc<Self>,
        slots: Arc<Semaphore>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let provider = self.upstream.provider();
        let batch = self.config.worker.claim_batch.max(1);
        let lease = Duration::from_millis(self.config.scheduler.lease_ms);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut outage = Outage::default();
        // This claimer's name when the scheduler asks one claimer to watch for a timer.
        let watcher = uuid::Uuid::new_v4().simple().to_string();
        while !*shutdown.borrow() {
            let mut permits = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return, // closed: the worker is gone
                },
                _ = shutdown.changed() => continue,
            };
            if slots.available_permits() < batch - 1 {
                // Slots free in bursts (a batch of completions wakes its runs together):
                // let the rest of the burst free theirs, so one claim takes them all.
                tokio::task::yield_now().await;
            }
            let more = slots.available_permits().min(batch - 1);
            if more > 0
                && let Ok(p) = slots.clone().try_acquire_many_owned(more as u32)
            {
                permits.merge(p);
            }
            let n = permits.num_permits();
            let started = Instant::now();
            // Never raced against shutdown: a claim script that ran has leased its tasks
            // to this worker, so its answer is always taken (and the tasks run or handed
            // back). Only the wait for work below is cancelled.
            let (tasks, next_due) = match self.sched.try_claim_due(provider, n, &watcher).await {
                Ok(c) => {
                    outage.recovered("claim");
                    backoff.reset();
                    (c.tasks, c.next_due)
                }
                Err(e) => {
                    drop(permits);
                    outage.failed("claim", &e);
                    sleep_unless_shutdown(backoff.next_delay(), &mut shutdown).await;
                    continue;
                }
            };
            if tasks.is_empty() {
                drop(permits);
                // Nothing claimable: block until a wake-up on any shard, a timer falls
                // due (a paced account's next allowed time: it takes its next task on
                // time), a short slice, or shutdown (dropping the wait leaves nothing
                // behind). Not less than 10 ms: a timer left due (more fell due than
                // one claim handles) is looked at again soon, not in a spin.
                let wait =
                    next_due.map_or(IDLE_WAIT, |d| d.clamp(Duration::from_millis(10), IDLE_WAIT));
                let woke = tokio::select! {
                    r = self.sched.wait_for_work(provider, wait) => r,
                    _ = shutdown.changed() => Ok(false),
                };
                if let Err(e) = woke {
                    outage.failed("claim", &e);
                    sleep_unless_shutdown(backoff.next_delay(), &mut shutdown).await;
                }
                continue;
            }
            metrics::histogram!("switchyard_claim_seconds", "provider" => provider.as_str())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("switchyard_claimed_total", "provider" => provider.as_str())
                .increment(tasks.len() as u64);
            let lease_deadline = started + lease;
            if *shutdown.borrow() {
                // Claimed as shutdown began: hand them back at once rather than start
                // upstream work that would have to be handed back anyway.
                let clock = LeaseClock::new(lease_deadline);
                for task in tasks {
                    self.hand_back(&task.lease, &clock, lease_deadline).await;
                }
                continue;
            }
            for task in tasks {
                let clock = LeaseClock::new(lease_deadline);
                match permits.split(1) {
                    Some(permit) => self.launch(task, clock, permit),
                    // Cannot happen (it claimed at most one task per slot held).
                    None => self.hand_back(&task.lease, &clock, lease_deadline).await,
                }
            }
            // Slots left over (fewer tasks than asked for) go back with `permits`.
        }
    }

    /// Start the run of one claimed task, holding `permit` (its local slot) until it
    /// ends. The run starts only once it is registered, and unregisters itself
    /// (token-checked) however it ends, so a finished run never lingers in the map or the
    /// in-flight count.
    fn launch(
        self: &Arc<Self>,
        task: ClaimedTask,
        clock: Arc<LeaseClock>,
        permit: OwnedSemaphorePermit,
    ) {
        let lease = task.lease.clone();
        let me = self.clone();
        let span = debug_span!("task", task_id = %lease.id, tenant = %task.tenant, account = %task.account, attempt = task.attempt);
        let run_clock = clock.clone();
        let (registered, gate) = tokio::sync::oneshot::channel::<()>();
        let guard = Deregister {
            worker: self.clone(),
            lease: lease.clone(),
        };
        let handle = tokio::spawn(
            async move {
                let _registered = guard;
                let _ = gate.await;
                me.run_one(task, run_clock).await;
                drop(permit);
            }
            .instrument(span),
        );
        self.running().insert(
            lease.id.clone(),
            Running {
                lease,
                clock,
                handle,
            },
        );
        let _ = registered.send(());
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
        // Through a Redis outage, hand-backs are retried for at most a few seconds in all;
        // what is left the reaper requeues when its lease expires.
        let stop_by = Instant::now() + Duration::from_secs(5);
        for r in left {
            r.handle.abort();
            self.hand_back(&r.lease, &r.clock, stop_by).await;
        }
    }

    /// Hand a task back (requeued at once, attempt not counted), retrying through a Redis
    /// outage while its lease lasts and until `stop_by`.
    async fn hand_back(&self, lease: &Lease, clock: &LeaseClock, stop_by: Instant) {
        let r = persist(
            "hand_back",
            || clock.deadline().min(stop_by),
            || self.sched.fail(lease, &FailKind::Handback, "", ""),
        )
        .await;
        if let Err(e) = r {
            warn!(task_id = %lease.id, error = %e, "hand-back failed; the reaper will requeue it");
        }
    }

    /// Extend every running lease each third of `scheduler.lease_ms`. A lease Redis says
    /// is lost aborts its run. When Redis cannot be reached the runs go on (their local
    /// lease clocks still run) and the heartbeat is retried with a short backoff.
    async fn heartbeat_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let lease_len = Duration::from_millis(self.config.scheduler.lease_ms);
        let every = Duration::from_millis((self.config.scheduler.lease_ms / 3).max(200));
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        let mut outage = Outage::default();
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            let leases: Vec<(Lease, Arc<LeaseClock>)> = {
                let mut r = self.running();
                r.retain(|_, t| !t.handle.is_finished());
                r.values()
                    .map(|t| (t.lease.clone(), t.clock.clone()))
                    .collect()
            };
            if leases.is_empty() {
                if *shutdown.borrow() {
                    return;
                }
                wait = every;
                continue;
            }
            let sent = Instant::now();
            let only: Vec<Lease> = leases.iter().map(|(l, _)| l.clone()).collect();
            match self.sched.heartbeat(&only).await {
                Ok(ok) => {
                    outage.recovered("heartbeat");
                    backoff.reset();
                    wait = every;
                    for ((lease, clock), alive) in leases.iter().zip(ok) {
                        if alive {
                            clock.extend(sent + lease_len);
                            continue;
                        }
                        let mut running = self.running();
                        if running
                            .get(&lease.id)
                            .is_some_and(|r| r.lease.token == lease.token)
                            && let Some(r) = running.remove(&lease.id)
                        {
                            warn!(task_id = %lease.id, "lease lost; stopping this run");
                            r.handle.abort();
                        }
                    }
                }
                Err(e) => {
                    outage.failed("heartbeat", &e);
                    wait = backoff.next_delay().min(every);
                }
            }
        }
    }

    async fn reap_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.worker.reap_interval_ms);
        let provider = self.upstream.provider();
        let mut outage = Outage::default();
        while !*shutdown.borrow() {
            match self.sched.reap(provider, 500).await {
                Ok(_) => outage.recovered("reap"),
                Err(e) => outage.failed("reap", &e),
            }
            self.sweep_files().await;
            self.probe_accounts().await;
            tokio::time::sleep(every).await;
        }
    }

    /// Probe the accounts whose probe is due (new credentials; accounts an upstream
    /// answer disabled, on their backoff), each on a task of its own, and record what
    /// each probe found.
    async fn probe_accounts(self: &Arc<Self>) {
        let due = match self
            .sched
            .due_probes(self.upstream.provider(), 8, PROBE_TIMEOUT * 2)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "could not read the accounts due for a probe");
                return;
            }
        };
        for probe in due {
            let me = self.clone();
            tokio::spawn(async move {
                let outcome = me.probe_one(&probe.account, &probe.secret).await;
                info!(account = %probe.account, outcome = ?outcome, "account probed");
                if let Err(e) = me.sched.probe_done(&probe, &outcome).await {
                    warn!(account = %probe.account, error = %e, "could not record a probe; it runs again later");
                }
            });
        }
    }

    /// One probe: the adapter's check of the account's credentials and standing.
    async fn probe_one(&self, account: &str, secret: &str) -> ProbeOutcome {
        let Ok(opened) = self.secrets.open(secret) else {
            return ProbeOutcome::Dead(
                "invalid credentials: they do not open with this master key".into(),
            );
        };
        let Ok(credentials) = serde_json::from_str::<Value>(&opened) else {
            return ProbeOutcome::Dead("invalid credentials: not valid JSON".into());
        };
        match tokio::time::timeout(PROBE_TIMEOUT, self.upstream.probe(account, &credentials)).await
        {
            Ok(Ok(())) => ProbeOutcome::Works,
            Ok(Err(UpstreamError::AccountDead { reason })) => ProbeOutcome::Dead(reason),
            Ok(Err(UpstreamError::NoFastHours { .. })) => ProbeOutcome::NoFastHours,
            Ok(Err(_)) | Err(_) => ProbeOutcome::Unknown,
        }
    }

    /// Delete the hosted files of tasks whose retention ended (a page per shard per
    /// round; a failure leaves them for a later round).
    async fn sweep_files(&self) {
        let Some(files) = self.hosting.files() else {
            return;
        };
        let due = match self
            .sched
            .due_files(self.upstream.provider(), 100, Duration::from_secs(60))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "could not read the hosted files due for deletion");
                return;
            }
        };
        let mut swept = Vec::with_capacity(due.len());
        for d in due {
            match files.delete_task(&d.task_id).await {
                Ok(n) => {
                    info!(task = %d.task_id, files = n, "hosted files deleted at the end of retention");
                    swept.push(d);
                }
                Err(e) => {
                    warn!(task = %d.task_id, error = %e, "could not delete hosted files; will try again")
                }
            }
        }
        if let Err(e) = self.sched.files_swept(&swept).await {
            warn!(error = %e, "could not record deleted hosted files; they will be deleted again");
        }
    }

    /// One task, in four steps: prepare the job, run it upstream (the adapter waits for
    /// the account's pacing, `Control::pace`, right before it submits), host its output
    /// files, settle the outcome with the scheduler.
    async fn run_one(&self, task: ClaimedTask, clock: Arc<LeaseClock>) {
        let result = match self.prepare(&task) {
            Ok(job) => match self.run_upstream(&job, &task, &clock).await {
                Ok(output) => self.host(&job, output).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        self.settle(&task.lease, &clock, result).await;
    }

    /// Host the output's files (API.md, "Results are hosted"), when the store is on.
    async fn host(&self, job: &Job, output: Value) -> Result<Value, UpstreamError> {
        let wanted = self.upstream.files(&output);
        if wanted.is_empty() {
            return Ok(output);
        }
        match &self.hosting {
            Hosting::Off => Ok(output),
            Hosting::On(host) => host.host(&job.task_id, wanted, output).await,
            Hosting::Broken(why) => Err(UpstreamError::Transient(format!(
                "upstream_timeout: the result store is unusable ({why})"
            ))),
        }
    }

    /// Run the adapter under the task timeout. Its reference and progress calls are
    /// retried through a Redis outage while the lease lasts.
    async fn run_upstream(
        &self,
        job: &Job,
        task: &ClaimedTask,
        clock: &Arc<LeaseClock>,
    ) -> Result<Value, UpstreamError> {
        let lease = &task.lease;
        let ctl = LeaseControl {
            sched: self.sched.clone(),
            lease: lease.clone(),
            clock: clock.clone(),
            account: task.account.clone(),
            gap: task.gap,
        };
        let timeout = Duration::from_secs(self.config.worker.task_timeout_s);
        // A panicking adapter is a transient failure of this run (retried within
        // the attempt budget), not a task left leased until its lease expires.
        let run = std::panic::AssertUnwindSafe(self.upstream.run(job, &ctl)).catch_unwind();
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(UpstreamError::Transient(
                "the adapter panicked (a bug in this worker)".into(),
            )),
            Err(_) => Err(UpstreamError::Transient(format!(
                "upstream_timeout: no result within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Count the outcome and record it with the scheduler, retrying through a Redis
    /// outage while the lease lasts.
    async fn settle(
        &self,
        lease: &Lease,
        clock: &LeaseClock,
        result: Result<Value, UpstreamError>,
    ) {
        let (objects, hosted) = match &result {
            Ok(output) => (
                self.upstream.objects(output),
                output.get(crate::HOSTED_FIELD).is_some(),
            ),
            Err(_) => (Vec::new(), false),
        };
        let Outcome { label, settlement } = Outcome::of(&result);
        metrics::counter!("switchyard_task_outcomes_total",
            "provider" => self.upstream.provider().as_str(), "outcome" => label)
        .increment(1);
        let deadline = || clock.deadline();
        let recorded = match settlement {
            Settlement::Complete { output } => {
                let done = Completion {
                    lease: lease.clone(),
                    output,
                    objects,
                    hosted_files: hosted,
                };
                // In the next batch; a batch that failed hands it back to be recorded on
                // its own, retried while the lease lasts.
                let batched = match self.acks.get() {
                    Some(acks) => acks.complete(done).await,
                    None => Err(done),
                };
                match batched {
                    Ok(o) => Ok(o),
                    Err(d) => {
                        persist("complete", deadline, || {
                            self.sched.complete_owning(
                                &d.lease,
                                &d.output,
                                &d.objects,
                                d.hosted_files,
                            )
                        })
                        .await
                    }
                }
                .map(|o| debug!(outcome = ?o, "completed"))
            }
            Settlement::Fail { kind, message, raw } => persist("fail", deadline, || {
                self.sched.fail(lease, &kind, &message, &raw)
            })
            .await
            .map(|o| {
                let error = result.as_ref().err().map(tracing::field::display);
                info!(outcome = ?o, error, "run failed")
            }),
            Settlement::Nothing => Ok(()),
        };
        if let Err(e) = recorded {
            warn!(error = %e, "could not record the outcome; the lease will expire and the task be retried");
        }
    }

    /// Read the body, parse its typed input, and open the account's
    /// credentials. A body or input that no longer reads is the task's fault; credentials
    /// that do not open are the account's.
    fn prepare(&self, task: &ClaimedTask) -> Result<Job, UpstreamError> {
        let bad = |m: String| UpstreamError::BadRequest {
            message: m,
            raw: String::new(),
        };
        let body = TaskBody::from_json(&task.body)
            .map_err(|e| bad(format!("the task body is unreadable: {e}")))?;
        let mut spec = body
            .spec(&self.parse)
            .map_err(|e| bad(format!("the task input is no longer valid: {e}")))?;
        // The mode it was claimed in (a fast task runs in relax when no account has fast
        // hours).
        spec.set_process_mode(task.mode);
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
            origin: body.origin,
            credentials,
            attempt: task.attempt,
            upstream_ref: task.upstream_ref.clone(),
        })
    }
}
