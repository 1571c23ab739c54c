//! `cancel.lua`: cancel a queued task.

use crate::submit::protocol;
use crate::{Scheduler, SchedulerError, invoke};

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

impl Scheduler {
    /// Cancel a tenant's task while it is queued (staged or pending) or waiting to retry.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<CancelOutcome, SchedulerError> {
        let Some(rec) = self.get_task(tenant, id).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        let mut inv = self.inner.scripts.cancel.prepare_invoke();
        inv.key(&rec.base).arg(id).arg(tenant);
        let mut conn = self.conn().await?;
        let v: String = invoke(&inv, &mut conn).await?;
        match v.as_str() {
            "ok" => Ok(CancelOutcome::Cancelled),
            "already" => Ok(CancelOutcome::AlreadyCancelled),
            "not_found" => Ok(CancelOutcome::NotFound),
            s if s.starts_with("not_cancellable:") => Ok(CancelOutcome::NotCancellable(
                s.trim_start_matches("not_cancellable:").to_string(),
            )),
            _ => protocol("cancel", &[v]),
        }
    }
}
