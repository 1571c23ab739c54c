//! `claim.lua`: take up to n tasks in fair rotation, with account and lease.

use std::time::{Duration, Instant};

use switchyard_core::{ProcessMode, Provider, ServiceMode};

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
}

const FIELDS: usize = 10;
/// Longest single block on the wake-up list; below the client's response timeout, and
/// short enough that cool-downs and retry delays that fall due are seen promptly.
const WAKE_SLICE: Duration = Duration::from_millis(400);

impl Scheduler {
    /// Claim up to `n` tasks of `provider` from any shard, once, without waiting.
    pub async fn try_claim(
        &self,
        provider: Provider,
        n: usize,
    ) -> Result<Vec<ClaimedTask>, SchedulerError> {
        let mut out = Vec::new();
        let mut conn = self.conn().await?;
        for base in self.bases(provider) {
            while out.len() < n {
                // Bounded calls: one script call holds Redis for its whole batch.
                let want = (n - out.len()).min(MAX_PER_CALL);
                let before = out.len();
                self.claim_once(&mut conn, provider, &base, want, &mut out)
                    .await?;
                if out.len() - before < want {
                    break; // this shard has no more claimable work now
                }
            }
        }
        Ok(out)
    }

    async fn claim_once(
        &self,
        conn: &mut crate::connection::Conn,
        provider: Provider,
        base: &str,
        want: usize,
        out: &mut Vec<ClaimedTask>,
    ) -> Result<(), SchedulerError> {
        let lease_ms = self.inner.cfg.lease_ms;
        let mut inv = self.inner.scripts.claim.prepare_invoke();
        inv.key(base).arg(want).arg(lease_ms).arg(want * 8 + 32);
        let flat: Vec<String> = invoke(&inv, conn).await?;
        for chunk in flat.chunks_exact(FIELDS) {
            out.push(ClaimedTask {
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
            });
        }
        Ok(())
    }

    /// Claim up to `n` tasks, blocking on the wake-up signal up to `wait` while nothing is
    /// claimable. Returns an empty vector when `wait` passes with nothing to do.
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
            let slice = left.min(WAKE_SLICE).as_secs_f64().max(0.01);
            let mut conn = self.conn().await?;
            // One shard's list per block (a multi-key BLPOP would cross slots).
            let base = self.bases(provider).swap_remove(0);
            let _: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(keys::wake(&base))
                .arg(slice)
                .query_async(&mut conn)
                .await?;
        }
    }
}
