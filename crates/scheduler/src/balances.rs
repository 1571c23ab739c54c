//! `topup.lua` and balance reads. Each provider's quota lives in that provider's shard
//! with the tenant's scheduling state, so a hold is part of the submit script; credits
//! live with Midjourney, whose automatic conversion is their only automatic use.

use std::collections::HashMap;

use switchyard_core::{Provider, QuotaKind};

use crate::submit::protocol;
use crate::{Scheduler, SchedulerError, invoke, keys};

/// One balance of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Available now (holds already taken off).
    pub available: i64,
    /// Held by queued and running tasks.
    pub held: i64,
    /// Charged for completed tasks.
    pub captured: i64,
    /// Returned from failed and cancelled tasks.
    pub refunded: i64,
}

fn where_of(kind: QuotaKind) -> (Provider, &'static str) {
    match kind {
        QuotaKind::Credits => (Provider::Midjourney, "credits"),
        QuotaKind::MjQuota => (Provider::Midjourney, "avail"),
        QuotaKind::SunoQuota => (Provider::Suno, "avail"),
        QuotaKind::LumaQuota => (Provider::Luma, "avail"),
        QuotaKind::GptsQuota => (Provider::Gpts, "avail"),
    }
}

impl Scheduler {
    /// Credit `amount` of `kind` once per `key`. Returns the new value and whether this
    /// call was a replay (nothing credited).
    pub async fn top_up(
        &self,
        tenant: &str,
        kind: QuotaKind,
        amount: i64,
        key: &str,
    ) -> Result<(i64, bool), SchedulerError> {
        let (provider, field) = where_of(kind);
        let mut inv = self.inner.scripts.top_up.prepare_invoke();
        inv.key(self.base_for(provider, tenant))
            .arg(tenant)
            .arg(field)
            .arg(amount)
            .arg(key)
            .arg(self.inner.cfg.idempotency_ttl_s);
        let mut conn = self.conn().await?;
        let v: Vec<String> = invoke(&inv, &mut conn).await?;
        match v.first().map(String::as_str) {
            Some("ok") | Some("dup") => Ok((
                v.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
                v[0] == "dup",
            )),
            _ => protocol("top_up", &v),
        }
    }

    /// Every balance of a tenant, one round trip.
    pub async fn balances(
        &self,
        tenant: &str,
    ) -> Result<HashMap<QuotaKind, Balance>, SchedulerError> {
        let cmds = Provider::ALL
            .iter()
            .map(|p| {
                let base = self.base_for(*p, tenant);
                let mut c = redis::cmd("HGETALL");
                c.arg(keys::balance(&base, tenant));
                (base, c)
            })
            .collect();
        let rows = self
            .query_grouped(cmds)
            .await?
            .into_iter()
            .map(redis::from_redis_value::<HashMap<String, String>>)
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = HashMap::new();
        for (p, h) in Provider::ALL.iter().zip(rows) {
            let n = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            out.insert(
                QuotaKind::of(*p),
                Balance {
                    available: n("avail"),
                    held: n("held"),
                    captured: n("captured"),
                    refunded: n("refunded"),
                },
            );
            if *p == Provider::Midjourney {
                out.insert(
                    QuotaKind::Credits,
                    Balance {
                        available: n("credits"),
                        ..Balance::default()
                    },
                );
            }
        }
        Ok(out)
    }
}
