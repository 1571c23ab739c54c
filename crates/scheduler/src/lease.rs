//! `heartbeat.lua`, `report.lua`, `complete.lua`, `fail.lua`: what a lease holder may do.
//! Each is fenced by the lease token: a worker whose lease expired and was re-claimed
//! changes nothing.

use std::collections::BTreeMap;

use switchyard_core::Provider;

use crate::submit::protocol;
use crate::{MAX_PER_CALL, Scheduler, SchedulerError, invoke};

/// A claimed task's identity and fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The provider.
    pub provider: Provider,
    /// The shard base the task lives in.
    pub base: String,
    /// The task id.
    pub id: String,
    /// The fencing token of this claim.
    pub token: String,
}

/// How a run failed; decides retry, cool-down, disable or fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailKind {
    /// Network trouble, 5xx, timeout: retry with backoff within the attempt budget.
    Transient,
    /// 429 or a usage limit: cool the account down, requeue the task at once.
    RateLimited {
        /// How long the account rests, in milliseconds (0: the configured default).
        retry_after_ms: u64,
    },
    /// 401, ban, captcha, subscription gone: disable the account with the reason,
    /// requeue the task (failing over to PPU where the plan allows).
    AccountDead {
        /// Why, for the tenant (never a secret).
        reason: String,
    },
    /// The account's fast hours ran out (Midjourney's "Credits exhausted"): it takes no
    /// fast or turbo work for `retry_after_ms` (0: an hour) but
    /// keeps serving relax; the task is requeued at once.
    NoFastHours {
        /// How long fast and turbo stay off, in milliseconds.
        retry_after_ms: u64,
    },
    /// The upstream refused the task itself (banned prompt, invalid parameter): fail it,
    /// refund, no retry.
    BadRequest,
    /// The worker is stopping: requeue at once, the attempt does not count.
    Handback,
}

impl FailKind {
    fn wire(&self) -> (&'static str, u64, Option<&str>) {
        match self {
            FailKind::Transient => ("transient", 0, None),
            FailKind::RateLimited { retry_after_ms } => ("rate_limited", *retry_after_ms, None),
            FailKind::AccountDead { reason } => ("account_dead", 0, Some(reason)),
            FailKind::NoFastHours { retry_after_ms } => ("no_fast", *retry_after_ms, None),
            FailKind::BadRequest => ("bad_request", 0, None),
            FailKind::Handback => ("handback", 0, None),
        }
    }
}

/// What `complete` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// Completed now; the hold was captured.
    Completed,
    /// It was completed before; nothing was charged again.
    AlreadyCompleted,
    /// The lease is not this worker's any more; nothing changed.
    Stale,
}

/// A finished run to complete (see [`Scheduler::complete_owning`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The run's lease.
    pub lease: Lease,
    /// Its output (JSON text).
    pub output: String,
    /// The upstream objects it produced (follow-ups naming them run on its account).
    pub objects: Vec<String>,
    /// Its result files are hosted (deleted when its retention ends).
    pub hosted_files: bool,
}

/// What complete.lua records besides the output: `h` when the task has hosted files
/// (deleted at the end of its retention), then the objects' ids, newline-separated.
fn products(objects: &[String], hosted_files: bool) -> String {
    let objects = objects
        .iter()
        .filter(|o| !o.is_empty() && !o.contains('\n'))
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    match (hosted_files, objects.is_empty()) {
        (false, true) => String::new(),
        (true, _) => format!("h{objects}"),
        (false, false) => format!("-{objects}"),
    }
}

/// What `fail` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The task failed for good; the hold was refunded.
    Failed,
    /// It will be retried after a backoff.
    Retry,
    /// It went back to the front of its queue.
    Requeued,
    /// It moved to the PPU pool with a quota hold.
    FailedOver,
    /// The lease is not this worker's any more; nothing changed.
    Stale,
}

/// The calls for a batch of leases, given each lease's shard base: the indices of the
/// leases of one shard, at most `MAX_PER_CALL` per call.
fn per_call<'a>(bases: impl Iterator<Item = &'a str>) -> Vec<(&'a str, Vec<usize>)> {
    let mut by_base: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, b) in bases.enumerate() {
        by_base.entry(b).or_default().push(i);
    }
    let mut calls = Vec::new();
    for (base, idx) in by_base {
        for chunk in idx.chunks(MAX_PER_CALL) {
            calls.push((base, chunk.to_vec()));
        }
    }
    calls
}

impl Scheduler {
    /// Extend leases; one script call per shard and per 256 leases. Returns, per lease,
    /// whether it is still ours.
    pub async fn heartbeat(&self, leases: &[Lease]) -> Result<Vec<bool>, SchedulerError> {
        let mut out = vec![false; leases.len()];
        let mut conn = self.conn().await?;
        for (base, idx) in per_call(leases.iter().map(|l| l.base.as_str())) {
            let mut inv = self.inner.scripts.heartbeat.prepare_invoke();
            inv.key(base).arg(self.inner.cfg.lease_ms);
            for &i in &idx {
                inv.arg(&leases[i].id).arg(&leases[i].token);
            }
            let ok: Vec<i64> = invoke(&inv, &mut conn).await?;
            for (i, v) in idx.iter().zip(ok) {
                out[*i] = v == 1;
            }
        }
        Ok(out)
    }

    /// Store the upstream reference, progress (0–100) or partial output of a running
    /// task; an empty reference (`Some("")`) drops the stored one (the upstream has no
    /// job for the task, so a retry may submit afresh on any account). Returns false when
    /// the lease is stale.
    pub async fn report(
        &self,
        lease: &Lease,
        upstream_ref: Option<&str>,
        progress: Option<u8>,
        output: Option<&str>,
    ) -> Result<bool, SchedulerError> {
        let mut inv = self.inner.scripts.report.prepare_invoke();
        inv.key(&lease.base)
            .arg(&lease.id)
            .arg(&lease.token)
            .arg(upstream_ref.unwrap_or(""))
            .arg(progress.map_or(-1, i64::from))
            .arg(output.unwrap_or(""))
            .arg(if upstream_ref == Some("") { "1" } else { "" });
        let mut conn = self.conn().await?;
        let v: i64 = invoke(&inv, &mut conn).await?;
        Ok(v == 1)
    }

    /// Complete a task with its output (opaque JSON).
    pub async fn complete(
        &self,
        lease: &Lease,
        output: &str,
    ) -> Result<CompleteOutcome, SchedulerError> {
        self.complete_owning(lease, output, &[], false).await
    }

    /// Complete a task that produced upstream objects (a conversation, a clip, a
    /// generation…): follow-ups that name one of `objects` run on this task's account,
    /// in its pool, while the task is kept ([`Scheduler::owner_of`]). With
    /// `hosted_files`, its stored result files are deleted when its retention ends
    /// ([`Scheduler::due_files`]).
    pub async fn complete_owning(
        &self,
        lease: &Lease,
        output: &str,
        objects: &[String],
        hosted_files: bool,
    ) -> Result<CompleteOutcome, SchedulerError> {
        let products = products(objects, hosted_files);
        let mut out = self
            .complete_batch(&[(lease, output, products.as_str())])
            .await?;
        out.pop().ok_or_else(|| SchedulerError::Protocol {
            script: "complete",
            reply: "no answer".into(),
        })
    }

    /// Complete many tasks: one script call per shard and per 256 tasks (each task
    /// settled atomically and exactly as `complete` would).
    pub async fn complete_many(
        &self,
        done: &[(Lease, String)],
    ) -> Result<Vec<CompleteOutcome>, SchedulerError> {
        let done: Vec<(&Lease, &str, &str)> =
            done.iter().map(|(l, o)| (l, o.as_str(), "")).collect();
        self.complete_batch(&done).await
    }

    /// Complete many runs, each as [`Scheduler::complete_owning`] would, in one script
    /// call per shard and per 256 tasks.
    pub async fn complete_all(
        &self,
        done: &[Completion],
    ) -> Result<Vec<CompleteOutcome>, SchedulerError> {
        let products: Vec<String> = done
            .iter()
            .map(|c| products(&c.objects, c.hosted_files))
            .collect();
        let args: Vec<(&Lease, &str, &str)> = done
            .iter()
            .zip(&products)
            .map(|(c, p)| (&c.lease, c.output.as_str(), p.as_str()))
            .collect();
        self.complete_batch(&args).await
    }

    async fn complete_batch(
        &self,
        done: &[(&Lease, &str, &str)],
    ) -> Result<Vec<CompleteOutcome>, SchedulerError> {
        let mut out = vec![CompleteOutcome::Stale; done.len()];
        let mut conn = self.conn().await?;
        for (base, idx) in per_call(done.iter().map(|(l, _, _)| l.base.as_str())) {
            let mut inv = self.inner.scripts.complete.prepare_invoke();
            inv.key(base);
            for &i in &idx {
                let (l, o, objects) = done[i];
                inv.arg(&l.id).arg(&l.token).arg(o).arg(objects);
            }
            let replies: Vec<String> = invoke(&inv, &mut conn).await?;
            for (i, v) in idx.iter().zip(replies) {
                out[*i] = match v.as_str() {
                    "ok" => CompleteOutcome::Completed,
                    "already" => CompleteOutcome::AlreadyCompleted,
                    "stale" => CompleteOutcome::Stale,
                    _ => return protocol("complete", &[v]),
                };
            }
        }
        Ok(out)
    }

    /// Report a failed run. `message` is for the tenant; `raw` is the upstream's text.
    pub async fn fail(
        &self,
        lease: &Lease,
        kind: &FailKind,
        message: &str,
        raw: &str,
    ) -> Result<FailOutcome, SchedulerError> {
        let (wire, retry_after, reason) = kind.wire();
        let mut inv = self.inner.scripts.fail.prepare_invoke();
        inv.key(&lease.base)
            .arg(&lease.id)
            .arg(&lease.token)
            .arg(wire)
            .arg(retry_after)
            .arg(reason.unwrap_or(message))
            .arg(raw);
        let mut conn = self.conn().await?;
        let v: String = invoke(&inv, &mut conn).await?;
        match v.as_str() {
            "failed" => Ok(FailOutcome::Failed),
            "retry" => Ok(FailOutcome::Retry),
            "requeued" => Ok(FailOutcome::Requeued),
            "failover" => Ok(FailOutcome::FailedOver),
            "stale" => Ok(FailOutcome::Stale),
            _ => protocol("fail", &[v]),
        }
    }
}
