//! Start-up of a worker process: arguments, config, logs, the metrics endpoint, waiting
//! for Redis, and the signals that begin a graceful shutdown.

use std::sync::Arc;

use switchyard_core::Config;
use switchyard_scheduler::Scheduler;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{Upstream, Worker, config_load};

/// The `main` of a provider binary: config (`--config FILE` or `SWITCHYARD_CONFIG`, then
/// `SWITCHYARD_*`), the master key, logs, Redis, and the worker until SIGTERM or SIGINT.
pub async fn run_main(make: impl FnOnce(&Config) -> Arc<dyn Upstream>) -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var("SWITCHYARD_CONFIG").ok();
    let mut json_logs = std::env::var("SWITCHYARD_LOG_FORMAT").ok().as_deref() == Some("json");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => path = args.next(),
            "--log-format" => json_logs = args.next().as_deref() == Some("json"),
            "-h" | "--help" => {
                println!(
                    "usage: {} [--config FILE] [--log-format text|json]\n\
                     Runs this provider's worker. Needs SWITCHYARD_MASTER_KEY (the key the \
                     dispatcher seals account credentials with) and Redis (redis.url / REDIS_URL).",
                    std::env::args().next().unwrap_or_default()
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument `{other}`; see --help"),
        }
    }
    // Caught from here on: a SIGTERM during start-up ends the process cleanly (exit 0).
    let mut stop = shutdown_signal();
    init_logs(json_logs);
    let config = config_load::load(path.as_deref().map(std::path::Path::new))?;
    let secrets = config_load::secret_box()?;
    // A result store that cannot be used is a start-up error, not a task failure later.
    crate::host::open_files(&config.storage).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The process is alive while it waits for Redis: `/healthz` answers meanwhile.
    if !config.worker.metrics_listen.is_empty() {
        serve_metrics(&config.worker.metrics_listen).await?;
    }
    // Redis may not be up yet (or be restarting): wait for it, saying where.
    let sched = tokio::select! {
        s = Scheduler::connect_waiting(&config) => s?,
        _ = stop.wait_for(|s| *s) => {
            info!("stopped before Redis could be reached");
            return Ok(());
        }
    };
    let upstream = make(&config);
    let worker = Worker::new(sched, upstream, &config, secrets);
    worker.run(stop).await;
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment this returns (a signal during start-up
/// cannot kill the process before it has stopped what it started): the value turns true
/// at the first one. Call it within a Tokio runtime.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let announce = move || {
        info!("shutting down: no new claims; running tasks get the grace period");
        let _ = tx.send(true);
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered here, before the task that waits on them is first polled.
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                announce();
            });
            return rx;
        }
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        announce();
    });
    rx
}

/// Serve `/metrics` (Prometheus) and `/healthz` for this worker process.
pub async fn serve_metrics(listen: &str) -> anyhow::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("worker.metrics_listen {listen}: {e}"))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let h = handle.clone();
                async move { h.render() }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(())
}

/// SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Human-readable logs by default, JSON with `json`; level from `RUST_LOG` (default info).
pub fn init_logs(json: bool) {
    init_logs_at(json, "info");
}

/// As [`init_logs`], with another default level.
pub fn init_logs_at(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
