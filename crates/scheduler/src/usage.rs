//! The plans' data report: per tenant, UTC day and provider, the tasks that ended (by
//! outcome), the quota they spent, and how long completed tasks took from creation.
//! `finish` (`lua/includes/tasks.lua`, through `lua/includes/usage.lua`) counts each task
//! once, when it ends, in the tenant's `usage:<tenant>:<day>` hash of the provider's shard:
//! `c:<bucket>` for completed tasks (count and quota spent packed in one integer,
//! `spent × 2^24 + count`, so a completion costs one command), `failed`, `cancelled`.

use std::collections::HashMap;

use switchyard_core::{Config, Plan, Provider};

use crate::{Scheduler, SchedulerError, keys};

/// Completion times are counted in buckets whose bounds grow by this ratio, so a
/// percentile is known to within it (±12%).
pub const BUCKET_RATIO: f64 = 1.25;

/// A completed bucket's value is `spent × SPENT_UNIT + count`.
pub const SPENT_UNIT: u64 = 1 << 24;

/// How long a day's counts are kept: the longest report any plan gives, plus the day
/// being counted.
pub fn keep_secs(config: &Config) -> u64 {
    let days = Plan::ALL
        .iter()
        .map(|p| u64::from(config.plans.get(*p).report_days))
        .max()
        .unwrap_or(0);
    (days + 1) * 86_400
}

/// One provider's day in a tenant's report.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDay {
    /// Days since the Unix epoch (UTC).
    pub day: u64,
    /// The provider.
    pub provider: Provider,
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Quota charged for them (in each provider's own quota kind).
    pub spent: u64,
    /// Median time from creation to completion, ms (the upper bound of its bucket).
    pub p50_ms: Option<u64>,
    /// 95th percentile of the same.
    pub p95_ms: Option<u64>,
}

impl UsageDay {
    /// Tasks that ended that day.
    pub fn tasks(&self) -> u64 {
        self.completed + self.failed + self.cancelled
    }

    fn from_hash(day: u64, provider: Provider, h: &HashMap<String, String>) -> Self {
        let n = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let mut buckets: Vec<(i64, u64)> = Vec::new();
        let mut spent = 0;
        for (k, v) in h {
            if let (Some(b), Ok(v)) = (
                k.strip_prefix("c:").and_then(|b| b.parse().ok()),
                v.parse::<u64>(),
            ) {
                buckets.push((b, v % SPENT_UNIT));
                spent += v / SPENT_UNIT;
            }
        }
        buckets.sort_unstable();
        UsageDay {
            day,
            provider,
            completed: buckets.iter().map(|b| b.1).sum(),
            failed: n("failed"),
            cancelled: n("cancelled"),
            spent,
            p50_ms: percentile(&buckets, 0.50),
            p95_ms: percentile(&buckets, 0.95),
        }
    }
}

/// The upper bound of the bucket holding the `q` quantile of counted times.
fn percentile(buckets: &[(i64, u64)], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, count) in buckets {
        seen += count;
        if seen >= rank {
            let upper = BUCKET_RATIO.powi(i32::try_from(*b + 1).unwrap_or(i32::MAX));
            return Some(upper.round() as u64);
        }
    }
    None
}

impl Scheduler {
    /// A tenant's report for the `days` UTC days up to and including `today` (days since
    /// the epoch), newest first, one row per day and provider (rows with nothing are
    /// included, so a day shows as a day).
    pub async fn usage(
        &self,
        tenant: &str,
        today: u64,
        days: u64,
    ) -> Result<Vec<UsageDay>, SchedulerError> {
        let mut conn = self.conn().await?;
        let wanted: Vec<(u64, Provider)> = (0..days)
            .map(|back| today.saturating_sub(back))
            .flat_map(|d| Provider::ALL.map(|p| (d, p)))
            .collect();
        let mut pipe = redis::pipe();
        for (day, p) in &wanted {
            pipe.cmd("HGETALL")
                .arg(keys::usage(&self.base_for(*p, tenant), tenant, *day));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(wanted
            .iter()
            .zip(&hashes)
            .map(|((day, p), h)| UsageDay::from_hash(*day, *p, h))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_the_upper_bound_of_their_bucket() {
        let b = |ms: f64| (ms.ln() / BUCKET_RATIO.ln()).floor() as i64;
        // 90 tasks near 100 ms, 10 near 10 s.
        let buckets = vec![(b(100.0), 90), (b(10_000.0), 10)];
        let p50 = percentile(&buckets, 0.5).unwrap();
        let p95 = percentile(&buckets, 0.95).unwrap();
        assert!((100..=125).contains(&p50), "{p50}");
        assert!((10_000..=12_500).contains(&p95), "{p95}");
        assert_eq!(percentile(&[], 0.5), None);
    }
}
