//! `GET /metrics`: Prometheus text. Counters and histograms are recorded where things
//! happen (task creation, webhook deliveries here; claims and outcomes in the worker
//! runtime, when it runs in the same process); gauges of queue depth, tasks in flight
//! and pool account states are read from Redis at each scrape.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use switchyard_core::Provider;
use switchyard_scheduler::Owner;

use crate::Shared;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder (installed on first use).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// Refresh the gauges and render everything.
pub async fn render(state: &Shared) -> String {
    for p in Provider::ALL {
        let name = p.as_str();
        if let Ok(load) = state.sched.provider_load(p).await {
            metrics::gauge!("switchyard_queue_depth", "provider" => name)
                .set(load.queued.max(0) as f64);
            metrics::gauge!("switchyard_in_flight", "provider" => name).set(load.in_flight as f64);
        }
        if let Ok(pool) = state.sched.list_accounts(p, &Owner::Pool).await {
            const STATES: [&str; 5] = ["active", "checking", "cooling_down", "resting", "disabled"];
            let mut counts = [0usize; STATES.len()];
            let mut capacity = 0u32;
            let mut busy = 0u32;
            for a in &pool {
                let state = crate::view::account_state(a).0;
                if let Some(i) = STATES.iter().position(|s| *s == state) {
                    counts[i] += 1;
                }
                capacity += a.capacity.iter().sum::<u32>();
                busy += a.in_flight.iter().sum::<u32>();
                metrics::gauge!("switchyard_account_in_flight", "provider" => name, "account" => a.id.clone())
                    .set(f64::from(a.in_flight.iter().sum::<u32>()));
            }
            for (state_name, n) in STATES.iter().zip(counts) {
                metrics::gauge!("switchyard_pool_accounts", "provider" => name, "state" => *state_name).set(n as f64);
            }
            metrics::gauge!("switchyard_pool_capacity", "provider" => name)
                .set(f64::from(capacity));
            metrics::gauge!("switchyard_pool_in_flight", "provider" => name).set(f64::from(busy));
        }
    }
    // Per tenant: tasks in flight and quota held / captured / refunded (first 500 tenants).
    if let Ok(all) = crate::tenants::list(&state.sched).await {
        let ids: Vec<String> = all.iter().take(500).map(|t| t.tenant_id.clone()).collect();
        if let Ok(loads) = state.sched.tenant_loads(&ids).await {
            for (id, per_provider) in ids.iter().zip(loads) {
                for l in per_provider {
                    metrics::gauge!("switchyard_tenant_in_flight", "tenant" => id.clone(), "provider" => l.provider.as_str())
                        .set((l.ppu_in_flight + l.byoa_in_flight) as f64);
                }
            }
        }
        for id in &ids {
            if let Ok(b) = state.sched.balances(id).await {
                for (kind, bal) in b {
                    for (what, v) in [
                        ("held", bal.held),
                        ("captured", bal.captured),
                        ("refunded", bal.refunded),
                    ] {
                        metrics::gauge!("switchyard_quota", "tenant" => id.clone(), "kind" => kind.as_str(), "ledger" => what)
                            .set(v as f64);
                    }
                }
            }
        }
    }
    handle().map(PrometheusHandle::render).unwrap_or_default()
}
