//! `SCENARIO=latency`: dispatch latency with idle capacity. The saturation rate is
//! measured first (tasks submitted one by one, by 64 submitters at once, while the worker
//! runtime runs them over an upstream that answers at once: the rate at which all are
//! done); then tasks are submitted one by one, on a fixed schedule at `LOAD` (default
//! 0.5) of that rate, and each task's time from its submit's reply to the upstream call
//! is taken. Same tenants, accounts and plan limits as the peer workload; pacing off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_worker::Worker;

use crate::{NoOp, Params};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

/// Runs the scenario; its RESULT line, or why it failed.
pub async fn run(p: &Params, prefix: &str) -> Result<String, String> {
    let load: f64 = crate::env_or("LOAD", 0.5)?;
    let (b, tasks) = crate::setup(p, prefix).await?;
    let upstream = Arc::new(NoOp::new(true));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = Worker::new(
        b.sched.clone(),
        upstream.clone(),
        &b.config,
        b.secrets.clone(),
    );
    let (warm, open) = tasks.split_at(tasks.len() / 2);
    // Saturation, on the same path as the open loop below: the first half submitted one
    // by one by 64 submitters at once while the worker runs, until all are done.
    let t0 = Instant::now();
    let running = tokio::spawn(worker.run(stopped));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm = Arc::new(warm.to_vec());
    let mut submitters = Vec::new();
    for _ in 0..64 {
        let (s, next, warm) = (b.sched.clone(), next.clone(), warm.clone());
        submitters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(t) = warm.get(i) else {
                    return Ok::<(), String>(());
                };
                s.submit(t)
                    .await
                    .map_err(|e| format!("task {} was refused: {e}", t.id))?;
            }
        }));
    }
    for s in submitters {
        s.await.map_err(|e| e.to_string())??;
    }
    crate::drained(&b.sched, t0 + crate::STALL).await?;
    let saturation = warm.len() as f64 / t0.elapsed().as_secs_f64();
    // Open loop: one submit per task, on a fixed schedule, whatever the replies do.
    let rate = saturation * load;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let replied: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = tokio::time::Instant::now();
    let mut submits = Vec::with_capacity(open.len());
    for (i, t) in open.iter().enumerate() {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (s, t, replied) = (b.sched.clone(), t.clone(), replied.clone());
        submits.push(tokio::spawn(async move {
            s.submit(&t)
                .await
                .map_err(|e| format!("task {} was refused: {e}", t.id))?;
            replied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(t.id.clone(), Instant::now());
            Ok::<(), String>(())
        }));
    }
    for s in submits {
        s.await.map_err(|e| e.to_string())??;
    }
    crate::drained(&b.sched, Instant::now() + crate::STALL).await?;
    let _ = stop.send(true);
    running.await.map_err(|e| e.to_string())?;
    crate::check_balances(&b, tasks.len()).await?;
    let reached = upstream.reached();
    let replied = replied.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lat: Vec<Duration> = Vec::with_capacity(open.len());
    for t in open {
        let (Some(r), Some(u)) = (replied.get(&t.id), reached.get(&t.id)) else {
            return Err(format!("task {} never reached the upstream", t.id));
        };
        // A task can reach the upstream before its submit's reply is read back.
        lat.push(u.saturating_duration_since(*r));
    }
    lat.sort_unstable();
    Ok(format!(
        "RESULT scenario=latency n={} saturation_jps={saturation:.0} load={load} rate_jps={rate:.0} dispatch_ms_p50={:.2} dispatch_ms_p99={:.2} dispatch_ms_max={:.2}",
        open.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    ))
}
