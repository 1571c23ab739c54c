//! `tenant.lua`: a tenant's scheduling settings in every provider shard.

use switchyard_core::{PlanLimits, Provider, QuotaKind};

use crate::{Scheduler, SchedulerError, invoke};

/// What the scheduler needs to know of a tenant, derived from its plan and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    /// The plan's name (for display and stats).
    pub plan: String,
    /// PPU caps per provider (`None`: no cap).
    pub caps: [(Provider, Option<u32>); 4],
    /// The plan fails BYOA tasks over to PPU.
    pub failover: bool,
    /// Fail over after a BYOA task waited this long for a busy account (0: only when no
    /// account can serve).
    pub failover_max_wait_ms: u64,
    /// Terminal tasks stay this long.
    pub retention_s: u64,
    /// Most tasks waiting per provider (`None`: no limit); more are refused `queue_full`.
    pub max_queued: [(Provider, Option<u32>); 4],
    /// A task still waiting this long after it was submitted fails `expired_in_queue`
    /// (0: never).
    pub max_pending_ms: u64,
    /// A fast or turbo task that no account can run for want of fast hours runs in
    /// relax (`downgrade_when_no_fast_hours`).
    pub downgrade: bool,
}

impl TenantSettings {
    /// Settings from a plan's limits.
    pub fn from_plan(plan: &str, limits: &PlanLimits, failover_max_wait_ms: u64) -> Self {
        TenantSettings {
            plan: plan.to_string(),
            caps: Provider::ALL.map(|p| (p, limits.ppu_cap(p))),
            failover: limits.auto_failover,
            failover_max_wait_ms,
            retention_s: limits.retention_secs(),
            max_queued: Provider::ALL.map(|p| (p, limits.max_queued(p))),
            max_pending_ms: 0,
            downgrade: true,
        }
    }

    /// The most tasks that may wait for `provider` (`None`: no limit).
    pub fn max_queued_for(&self, provider: Provider) -> Option<u32> {
        self.max_queued
            .iter()
            .find(|(p, _)| *p == provider)
            .and_then(|(_, m)| *m)
    }

    /// The same, with the tenant's limit on waiting (0: none).
    pub fn with_max_pending_ms(mut self, ms: u64) -> Self {
        self.max_pending_ms = ms;
        self
    }

    /// The same, with the fast → relax setting.
    pub fn with_downgrade(mut self, on: bool) -> Self {
        self.downgrade = on;
        self
    }

    /// The same, with the tenant's own lower queue limit (never above the plan's).
    pub fn with_max_queued(mut self, limit: Option<u32>) -> Self {
        if let Some(l) = limit {
            for (_, m) in &mut self.max_queued {
                *m = Some(m.map_or(l, |plan| plan.min(l)));
            }
        }
        self
    }
}

impl Scheduler {
    /// Create or update a tenant. On creation each provider's quota starts at the
    /// configured initial balance (Luma's free trial). Returns true when created.
    pub async fn upsert_tenant(
        &self,
        tenant: &str,
        settings: &TenantSettings,
    ) -> Result<bool, SchedulerError> {
        let mut conn = self.conn().await?;
        let mut created = false;
        for ((provider, cap), (_, max_queued)) in settings.caps.into_iter().zip(settings.max_queued)
        {
            let initial = match QuotaKind::of(provider) {
                QuotaKind::LumaQuota => self.inner.config.prices.luma.free_trial,
                _ => 0,
            };
            let mut inv = self.inner.scripts.tenant.prepare_invoke();
            inv.key(self.base_for(provider, tenant))
                .arg(tenant)
                .arg(initial)
                .arg("plan")
                .arg(&settings.plan)
                .arg("cap")
                .arg(cap.map_or(-1, i64::from))
                .arg("failover")
                .arg(u8::from(settings.failover))
                .arg("max_wait_ms")
                .arg(settings.failover_max_wait_ms)
                .arg("retention_s")
                .arg(settings.retention_s)
                .arg("max_queued")
                .arg(max_queued.map_or(-1, i64::from))
                .arg("max_pending_ms")
                .arg(settings.max_pending_ms)
                .arg("downgrade")
                .arg(u8::from(settings.downgrade));
            let v: String = invoke(&inv, &mut conn).await?;
            created |= v == "created";
        }
        Ok(created)
    }
}
