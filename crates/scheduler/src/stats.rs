//! Load reads for `me`, admin stats, metrics and autoscaling (no script: reads only).

use switchyard_core::Provider;

use crate::{Scheduler, SchedulerError, keys};

/// A tenant's load on one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLoad {
    /// The provider.
    pub provider: Provider,
    /// The tenant's PPU cap (`None`: no cap).
    pub cap: Option<u32>,
    /// PPU tasks processing.
    pub ppu_in_flight: u64,
    /// BYOA tasks processing.
    pub byoa_in_flight: u64,
    /// Tasks queued (staged + pending).
    pub queued: i64,
}

/// One provider's totals across its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderLoad {
    /// The provider.
    pub provider: Provider,
    /// Tasks queued (the autoscaling signal).
    pub queued: i64,
    /// Tasks processing (leases held).
    pub in_flight: u64,
}

fn int(v: &redis::Value) -> i64 {
    redis::from_redis_value::<Option<i64>>(v.clone())
        .ok()
        .flatten()
        .unwrap_or(0)
}

impl Scheduler {
    /// A tenant's load on every provider, one round trip (per shard on a cluster).
    pub async fn tenant_load(&self, tenant: &str) -> Result<Vec<TenantLoad>, SchedulerError> {
        Ok(self
            .tenant_loads(&[tenant.to_string()])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// Several tenants' loads in one round trip (per shard on a cluster), in order.
    pub async fn tenant_loads(
        &self,
        tenants: &[String],
    ) -> Result<Vec<Vec<TenantLoad>>, SchedulerError> {
        let mut cmds = Vec::new();
        for tenant in tenants {
            for p in Provider::ALL {
                let base = self.base_for(p, tenant);
                let mut a = redis::cmd("HGET");
                a.arg(keys::tenant(&base, tenant)).arg("cap");
                let mut b = redis::cmd("HGET");
                b.arg(keys::tenant(&base, tenant)).arg("queued");
                let mut c = redis::cmd("SCARD");
                c.arg(keys::tenant_ppu_in_flight(&base, tenant));
                let mut d = redis::cmd("SCARD");
                d.arg(keys::tenant_byoa_in_flight(&base, tenant));
                for cmd in [a, b, c, d] {
                    cmds.push((base.clone(), cmd));
                }
            }
        }
        let v = self.query_grouped(cmds).await?;
        Ok(v.chunks(4 * Provider::ALL.len())
            .map(|row| {
                Provider::ALL
                    .iter()
                    .zip(row.chunks(4))
                    .map(|(p, f)| TenantLoad {
                        provider: *p,
                        // Absent (no such tenant here) or -1 (no cap): None.
                        cap: redis::from_redis_value::<Option<i64>>(f[0].clone())
                            .ok()
                            .flatten()
                            .and_then(|c| u32::try_from(c).ok()),
                        queued: int(&f[1]),
                        ppu_in_flight: int(&f[2]).max(0) as u64,
                        byoa_in_flight: int(&f[3]).max(0) as u64,
                    })
                    .collect()
            })
            .collect())
    }

    /// Queue depth and tasks in flight of a provider, summed over its shards.
    pub async fn provider_load(&self, provider: Provider) -> Result<ProviderLoad, SchedulerError> {
        let mut cmds = Vec::new();
        for base in self.bases(provider) {
            let mut a = redis::cmd("GET");
            a.arg(keys::depth(&base));
            let mut b = redis::cmd("ZCARD");
            b.arg(keys::leases(&base));
            cmds.push((base.clone(), a));
            cmds.push((base, b));
        }
        let v = self.query_grouped(cmds).await?;
        let mut load = ProviderLoad {
            provider,
            queued: 0,
            in_flight: 0,
        };
        for pair in v.chunks(2) {
            load.queued += int(&pair[0]);
            load.in_flight += int(&pair[1]).max(0) as u64;
        }
        Ok(load)
    }

    /// Lease terms a provider's shards hold (entries of their `running` hashes), summed:
    /// equal to [`ProviderLoad::in_flight`] while every lease has its terms.
    pub async fn lease_terms_held(&self, provider: Provider) -> Result<u64, SchedulerError> {
        let mut cmds = Vec::new();
        for base in self.bases(provider) {
            let mut c = redis::cmd("HLEN");
            c.arg(keys::running(&base));
            cmds.push((base, c));
        }
        let v = self.query_grouped(cmds).await?;
        Ok(v.iter().map(|n| int(n).max(0) as u64).sum())
    }
}
