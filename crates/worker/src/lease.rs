//! A run's lease as this worker sees it: the local clock that says how long it lives,
//! Redis calls about the task retried through an outage while it does, and the
//! [`Control`] an adapter reports through.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use switchyard_scheduler::connection::Backoff;
use switchyard_scheduler::{Lease, Scheduler, SchedulerError};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{Control, LeaseLost};

/// When a lease runs out as far as this worker can tell: the time its claim (or its last
/// successful heartbeat) was sent, plus `scheduler.lease_ms`. Redis calls about the task
/// are retried until then; after it the reaper may requeue the task.
pub(crate) struct LeaseClock(Mutex<Instant>);

impl LeaseClock {
    pub(crate) fn new(deadline: Instant) -> Arc<LeaseClock> {
        Arc::new(LeaseClock(Mutex::new(deadline)))
    }

    pub(crate) fn deadline(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn extend(&self, to: Instant) {
        let mut d = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if to > *d {
            *d = to;
        }
    }
}

/// Run `op` until it succeeds, retrying errors that say Redis is away (50 ms doubling to
/// 1 s, with jitter) for as long as `deadline()` is ahead; other errors, and the last
/// error once the deadline would pass, are returned.
pub(crate) async fn persist<T, F, Fut>(
    what: &'static str,
    deadline: impl Fn() -> Instant,
    mut op: F,
) -> Result<T, SchedulerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SchedulerError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let mut failures = 0u32;
    let mut since = None;
    loop {
        match op().await {
            Ok(v) => {
                if let Some(t) = since {
                    info!(
                        what,
                        failures,
                        waited_ms = Instant::now().duration_since(t).as_millis() as u64,
                        "Redis answered again"
                    );
                }
                return Ok(v);
            }
            Err(e) if e.is_transient() => {
                let delay = backoff.next_delay();
                if Instant::now() + delay >= deadline() {
                    warn!(what, error = %e, failures, "Redis still unavailable and the lease is running out; giving up");
                    return Err(e);
                }
                // Once per call: the loops say every 30 s that Redis is still away.
                if failures == 0 {
                    warn!(what, error = %e, "Redis unavailable; retrying while the lease lasts");
                }
                failures += 1;
                since.get_or_insert_with(Instant::now);
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The [`Control`] of one run: reports under its lease, retried while its clock runs.
pub(crate) struct LeaseControl {
    pub(crate) sched: Scheduler,
    pub(crate) lease: Lease,
    pub(crate) clock: Arc<LeaseClock>,
    /// The account and the gap drawn for this run's submission (zero: no pacing).
    pub(crate) account: String,
    pub(crate) gap: std::time::Duration,
}

#[async_trait]
impl Control for LeaseControl {
    async fn reference(&self, upstream_ref: &str) -> Result<(), LeaseLost> {
        match persist(
            "reference",
            || self.clock.deadline(),
            || {
                self.sched
                    .report(&self.lease, Some(upstream_ref), None, None)
            },
        )
        .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(LeaseLost),
            // Redis stayed away until the lease ran out: the reference must be stored
            // before going on, or the next run would submit twice. Treat as lost; the
            // reaper requeues the task.
            Err(e) => {
                warn!(error = %e, "could not store the upstream reference before the lease ran out");
                Err(LeaseLost)
            }
        }
    }

    async fn pace(&self) -> Result<(), LeaseLost> {
        match persist(
            "pacing",
            || self.clock.deadline(),
            || self.sched.pace(&self.lease, &self.account, self.gap),
        )
        .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                warn!(error = %e, "could not keep the account's pacing before the lease ran out");
                Err(LeaseLost)
            }
        }
    }

    async fn progress(&self, percent: u8, partial: Option<&Value>) -> Result<(), LeaseLost> {
        let out = partial.map(Value::to_string);
        match persist(
            "progress",
            || self.clock.deadline(),
            || {
                self.sched
                    .report(&self.lease, None, Some(percent.min(100)), out.as_deref())
            },
        )
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
