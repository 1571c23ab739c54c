//! `reap.lua`: requeue or fail tasks whose lease expired.

use switchyard_core::Provider;

use crate::{Scheduler, SchedulerError, invoke};

impl Scheduler {
    /// Reap up to `limit` expired leases per shard of `provider`; returns how many.
    /// Also promotes due retries and ends due cool-downs. Safe to run from many
    /// processes at once.
    pub async fn reap(&self, provider: Provider, limit: usize) -> Result<usize, SchedulerError> {
        let mut conn = self.conn().await?;
        let mut total = 0;
        for base in self.bases(provider) {
            let mut inv = self.inner.scripts.reap.prepare_invoke();
            inv.key(&base).arg(limit);
            let n: usize = invoke(&inv, &mut conn).await?;
            total += n;
        }
        Ok(total)
    }
}
