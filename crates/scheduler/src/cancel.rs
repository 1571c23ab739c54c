//! `cancel.lua`: cancel queued tasks, one by id or a tenant's in bulk.

use std::collections::HashSet;

use switchyard_core::{ProcessMode, Provider, ServiceMode};

use crate::submit::protocol;
use crate::{Scheduler, SchedulerError, invoke, keys};

/// What `cancel` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled now; its hold was refunded.
    Cancelled,
    /// It was cancelled before.
    AlreadyCancelled,
    /// No such task for this tenant.
    NotFound,
    /// It is processing or finished (the status).
    NotCancellable(String),
}

/// Ids read from a queue per round trip, and cancelled per script call.
const PAGE: isize = 500;

impl Scheduler {
    /// Cancel a tenant's task while it is queued (staged or pending) or waiting to retry.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<CancelOutcome, SchedulerError> {
        let Some(rec) = self.get_task(tenant, id).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        let answers = self.cancel_ids(&rec.base, tenant, 0, &[id]).await?;
        match answers.first().map(String::as_str) {
            Some("ok") => Ok(CancelOutcome::Cancelled),
            Some("already") => Ok(CancelOutcome::AlreadyCancelled),
            Some("not_found") => Ok(CancelOutcome::NotFound),
            Some(s) if s.starts_with("not_cancellable:") => Ok(CancelOutcome::NotCancellable(
                s.trim_start_matches("not_cancellable:").to_string(),
            )),
            _ => protocol("cancel", &answers),
        }
    }

    /// Cancel every task of `tenant` for `provider` that is still queued (staged or
    /// pending) or waiting to retry and was created before `before_ms` (Unix ms). Returns
    /// the ids cancelled. It reads the tenant's lanes (every pool, mode and pin) and the
    /// shard's retry set a page at a time; each task is cancelled by the same script as a
    /// single cancel, so a task claimed meanwhile is left running.
    pub async fn cancel_created_before(
        &self,
        tenant: &str,
        provider: Provider,
        before_ms: u64,
    ) -> Result<Vec<String>, SchedulerError> {
        let base = self.base_for(provider, tenant);
        let mut conn = self.conn().await?;
        let (own, pool): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("SMEMBERS")
            .arg(keys::accounts_of(&base, tenant))
            .cmd("SMEMBERS")
            .arg(keys::accounts_of(&base, "pool"))
            .query_async(&mut conn)
            .await?;
        let pins: Vec<&str> = std::iter::once("")
            .chain(own.iter().chain(&pool).map(String::as_str))
            .collect();
        let mut queues = Vec::new();
        for svc in ServiceMode::ALL {
            for mode in ProcessMode::ALL {
                for pin in &pins {
                    let lane = keys::lane_id(tenant, svc.as_str(), mode.as_str(), pin);
                    queues.push(keys::lane_queue(&base, &lane));
                }
            }
        }
        let mut pipe = redis::pipe();
        for q in &queues {
            pipe.cmd("LLEN").arg(q);
        }
        let lens: Vec<isize> = pipe.query_async(&mut conn).await?;
        let mut seen = HashSet::new();
        let mut candidates: Vec<String> = Vec::new();
        let mut add = |ids: Vec<String>| {
            for id in ids {
                if seen.insert(id.clone()) {
                    candidates.push(id);
                }
            }
        };
        for (q, len) in queues.iter().zip(lens) {
            let mut at = 0;
            while at < len {
                let ids: Vec<String> = redis::cmd("LRANGE")
                    .arg(q)
                    .arg(at)
                    .arg(at + PAGE - 1)
                    .query_async(&mut conn)
                    .await?;
                add(ids);
                at += PAGE;
            }
        }
        let delayed = keys::delayed(&base);
        let mut at = 0;
        loop {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&delayed)
                .arg(at)
                .arg(at + PAGE - 1)
                .query_async(&mut conn)
                .await?;
            let n = ids.len() as isize;
            add(ids);
            if n < PAGE {
                break;
            }
            at += PAGE;
        }
        drop(conn);
        let mut cancelled = Vec::new();
        for chunk in candidates.chunks(PAGE as usize) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let answers = self.cancel_ids(&base, tenant, before_ms, &ids).await?;
            for (id, a) in chunk.iter().zip(&answers) {
                if a == "ok" {
                    cancelled.push(id.clone());
                }
            }
        }
        Ok(cancelled)
    }

    /// One `cancel.lua` call: an answer per id.
    async fn cancel_ids(
        &self,
        base: &str,
        tenant: &str,
        before_ms: u64,
        ids: &[&str],
    ) -> Result<Vec<String>, SchedulerError> {
        let mut inv = self.inner.scripts.cancel.prepare_invoke();
        inv.key(base).arg(tenant).arg(before_ms);
        for id in ids {
            inv.arg(*id);
        }
        let mut conn = self.conn().await?;
        let answers: Vec<String> = invoke(&inv, &mut conn).await?;
        if answers.len() != ids.len() {
            return protocol("cancel", &answers);
        }
        Ok(answers)
    }
}
