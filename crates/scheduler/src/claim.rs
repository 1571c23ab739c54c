//! `claim.lua`: take up to n tasks in fair rotation, with account and lease.

use std::time::{Duration, Instant};

use switchyard_core::{ProcessMode, Provider, ServiceMode};

use crate::connection::{Blocked, Conn};
use crate::lease::Lease;
use crate::{MAX_PER_CALL, Scheduler, SchedulerError, invoke, keys};

/// A task leased to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    /// The lease: task id, fencing token, and where it lives.
    pub lease: Lease,
    /// The account to run it on.
    pub account: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// PPU (pool account) or BYOA (the tenant's account).
    pub pool: ServiceMode,
    /// The capacity mode.
    pub mode: ProcessMode,
    /// The opaque body the dispatcher stored.
    pub body: String,
    /// The upstream reference stored by an earlier run: resume, do not resubmit.
    pub upstream_ref: Option<String>,
    /// The account's stored secret (encrypted credentials).
    pub account_secret: String,
    /// The tenant the task belongs to.
    pub tenant: String,
    /// Pacing: how long after this task's submission the account takes its next (the
    /// worker keeps it with [`Scheduler::pace`]); zero without pacing.
    pub gap: Duration,
}

/// What [`Scheduler::try_claim_due`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The tasks claimed.
    pub tasks: Vec<ClaimedTask>,
    /// When it claimed fewer than asked: how soon time-driven work next falls due on
    /// the shards it looked at (`None`: nothing is, another claimer watches for it, or
    /// it claimed all it asked for).
    pub next_due: Option<Duration>,
}

const FIELDS: usize = 11;
/// Longest single block on the wake-up list; below the client's response timeout, and
/// short enough that cool-downs and retry delays that fall due are seen promptly.
const WAKE_SLICE: Duration = Duration::from_millis(400);
/// A wait this short is slept through without blocking on the wake-up list.
const SHORT_WAIT: Duration = Duration::from_millis(20);

impl Scheduler {
    /// Claim up to `n` tasks of `provider` from any shard, once, without waiting.
    ///
    /// When a call fails after earlier calls (other shards, earlier batches) leased
    /// tasks, those tasks are returned (the error is logged, and the next call meets it
    /// again): they are the caller's now, and dropping them would leave them leased to
    /// nobody until their leases expire.
    pub async fn try_claim(
        &self,
        provider: Provider,
        n: usize,
    ) -> Result<Vec<ClaimedTask>, SchedulerError> {
        Ok(self.try_claim_due(provider, n, "").await?.tasks)
    }

    /// As [`Scheduler::try_claim`], and, when it claimed fewer than `n`, how soon
    /// time-driven work falls due on the shards it looked at (a paced account's next
    /// allowed time, a cool-down's end, a delayed retry): an idle worker looks again then.
    ///
    /// One claimer of all is told, `watcher` (an id of the caller's own, the same on each
    /// call): the one told before, or the first to ask once that watch ended. A timer
    /// wakes one claimer, not every one; the others are told `None`. An empty `watcher`
    /// asks for no watch.
    pub async fn try_claim_due(
        &self,
        provider: Provider,
        n: usize,
        watcher: &str,
    ) -> Result<Claimed, SchedulerError> {
        let mut got = Claimed {
            tasks: Vec::new(),
            next_due: None,
        };
        let mut conn = self.conn().await?;
        for base in self.bases(provider) {
            while got.tasks.len() < n {
                // Bounded calls: one script call holds Redis for its whole batch.
                let want = (n - got.tasks.len()).min(MAX_PER_CALL);
                let before = got.tasks.len();
                if let Err(e) = self
                    .claim_once(&mut conn, provider, &base, want, watcher, &mut got)
                    .await
                {
                    if got.tasks.is_empty() {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, claimed = got.tasks.len(), "claim stopped part-way; keeping what was claimed");
                    return Ok(got);
                }
                if got.tasks.len() - before < want {
                    break; // this shard has no more claimable work now
                }
            }
        }
        Ok(got)
    }

    async fn claim_once(
        &self,
        conn: &mut crate::connection::Conn,
        provider: Provider,
        base: &str,
        want: usize,
        watcher: &str,
        got: &mut Claimed,
    ) -> Result<(), SchedulerError> {
        let lease_ms = self.inner.cfg.lease_ms;
        let mut inv = self.inner.scripts.claim.prepare_invoke();
        // The gaps' randomness (scripts have none of their own): a seed in 1 … 2^31 - 2.
        let seed = (uuid::Uuid::new_v4().as_u128() % 2_147_483_646) as u64 + 1;
        let (gap_lo, gap_hi) = self.inner.cfg.pacing.of(provider).as_ms();
        inv.key(base)
            .arg(want)
            .arg(lease_ms)
            .arg(want * 8 + 32)
            .arg(seed)
            .arg(gap_lo)
            .arg(gap_hi)
            .arg(watcher);
        let flat: Vec<String> = invoke(&inv, conn).await?;
        // Fewer than asked for: the last value says when the shard's timers fall due.
        if flat.len() % FIELDS == 1
            && let Some(ms) = flat
                .last()
                .and_then(|v| u64::try_from(v.parse::<i64>().ok()?).ok())
        {
            let due = Duration::from_millis(ms);
            got.next_due = Some(got.next_due.map_or(due, |d| d.min(due)));
        }
        for chunk in flat.chunks_exact(FIELDS) {
            got.tasks.push(ClaimedTask {
                lease: Lease {
                    provider,
                    base: base.to_string(),
                    id: chunk[0].clone(),
                    token: chunk[1].clone(),
                },
                account: chunk[2].clone(),
                attempt: chunk[3].parse().unwrap_or(1),
                pool: if chunk[4] == "ppu" {
                    ServiceMode::Ppu
                } else {
                    ServiceMode::Byoa
                },
                mode: chunk[5].parse().unwrap_or_default(),
                body: chunk[6].clone(),
                upstream_ref: Some(chunk[7].clone()).filter(|s| !s.is_empty()),
                account_secret: chunk[8].clone(),
                tenant: chunk[9].clone(),
                gap: Duration::from_millis(chunk[10].parse().unwrap_or(0)),
            });
        }
        Ok(())
    }

    /// Pacing at submission: wait until the account's previous submission's gap has
    /// passed, then record this one (with the gap drawn for it at claim). Call it right
    /// before the request that makes a new job upstream; a task without pacing (`gap`
    /// zero) passes at once.
    pub async fn pace(
        &self,
        lease: &Lease,
        account: &str,
        gap: Duration,
    ) -> Result<(), SchedulerError> {
        if gap.is_zero() {
            return Ok(());
        }
        loop {
            let mut inv = self.inner.scripts.pace.prepare_invoke();
            inv.key(&lease.base)
                .arg(account)
                .arg(gap.as_millis() as u64);
            let mut conn = self.conn().await?;
            let wait: u64 = invoke(&inv, &mut conn).await?;
            drop(conn);
            if wait == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Claim up to `n` tasks, blocking on the wake-up signal up to `wait` while nothing is
    /// claimable. Returns an empty vector when `wait` passes with nothing to do.
    ///
    /// Dropping the future while a claim script runs may lose the tasks it leased (until
    /// their leases expire): a caller that must stop promptly should call
    /// [`Scheduler::try_claim`] to its end and race only [`Scheduler::wait_for_work`].
    pub async fn claim(
        &self,
        provider: Provider,
        n: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedTask>, SchedulerError> {
        let deadline = Instant::now() + wait;
        loop {
            let got = self.try_claim(provider, n).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            self.wait_for_work(provider, left).await?;
        }
    }

    /// Block until a wake-up token arrives on any of `provider`'s shards, or for at most
    /// `wait` (capped at a short slice, so that work falling due by time is looked at
    /// promptly). Returns whether a token came. Safe to drop at any point: it changes
    /// nothing but the wake-up lists, and a connection left blocked is closed, not pooled.
    ///
    /// A single node blocks on every shard's list with one `BLPOP`; a cluster (where one
    /// command must not cross slots) blocks on each shard's list on its own connection at
    /// once and returns on the first token.
    pub async fn wait_for_work(
        &self,
        provider: Provider,
        wait: Duration,
    ) -> Result<bool, SchedulerError> {
        if wait <= SHORT_WAIT {
            // Too short to be worth a blocked connection.
            tokio::time::sleep(wait).await;
            return Ok(false);
        }
        if wait < WAKE_SLICE {
            // Redis ends a blocked command's timeout on its own clock tick (up to 100 ms
            // late at the default `hz`); a short wait (until a timer falls due) ends on
            // time here instead (the blocked connection is then closed, not pooled).
            return match tokio::time::timeout(wait, self.block_for_work(provider, WAKE_SLICE)).await
            {
                Ok(r) => r,
                Err(_) => Ok(false),
            };
        }
        self.block_for_work(provider, wait).await
    }

    async fn block_for_work(
        &self,
        provider: Provider,
        wait: Duration,
    ) -> Result<bool, SchedulerError> {
        let slice = wait.min(WAKE_SLICE).as_secs_f64().max(0.01);
        let wakes: Vec<String> = self.bases(provider).iter().map(|b| keys::wake(b)).collect();
        if matches!(self.inner.pool, crate::RedisPool::Single(_)) {
            return blpop(self.conn().await?, wakes, slice).await;
        }
        let mut set = tokio::task::JoinSet::new();
        for key in wakes {
            let me = self.clone();
            set.spawn(async move { blpop(me.conn().await?, vec![key], slice).await });
        }
        let mut woke = Ok(false);
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(true)) => {
                    woke = Ok(true);
                    break;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    woke = Err(e);
                    break;
                }
                Err(e) => {
                    woke = Err(SchedulerError::Pool(format!("wake-up wait: {e}")));
                    break;
                }
            }
        }
        // The others are still blocked: dropping them closes their connections.
        set.abort_all();
        woke
    }
}

/// `BLPOP keys… slice` on `conn`; the connection goes back to the pool only when the
/// command ended (if this future is dropped first, it is closed instead).
async fn blpop(conn: Conn, keys: Vec<String>, slice: f64) -> Result<bool, SchedulerError> {
    let mut guard = Blocked(Some(conn));
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg(keys).arg(slice);
    let r: Result<Option<(String, String)>, redis::RedisError> = match guard.0.as_mut() {
        Some(c) => cmd.query_async(c).await,
        None => Ok(None),
    };
    guard.finish(r.is_ok());
    Ok(r?.is_some())
}
