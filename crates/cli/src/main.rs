//! `switchyard`: the operator's command line.
//!
//! Commands print tables for people and JSON with `--json` for scripts. Errors say what
//! to do next and exit with status 2 (bad arguments) or 1 (anything else).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod demo;
mod redis_server;
mod tables;

/// Switchyard: a task queue and account load balancer for generative-AI providers.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    /// A TOML config file (defaults, then this file, then SWITCHYARD_* variables).
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the plan table: caps, retention, features per plan.
    Plans {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Price a task and show which plans may run it.
    ///
    /// Example: switchyard price --model midjourney --task imagine --mode fast --prompt "a fox --v 6"
    Price(tables::PriceArgs),
    /// Run everything in one process against simulated upstreams (Redis from REDIS_URL,
    /// or a private redis-server); serves until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run the dispatcher (the HTTP API and webhook delivery).
    ///
    /// Needs SWITCHYARD_MASTER_KEY (seals account credentials) and Redis
    /// (redis.url / REDIS_URL); the admin API needs dispatcher.admin_token.
    Serve {
        /// Address to listen on (default: dispatcher.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Logs on stderr: text or json.
        #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Run one provider's worker (the same as switchyard-worker-<provider>).
    Worker {
        /// midjourney | suno | luma | gpts
        #[arg(long)]
        provider: String,
        /// Logs on stderr: text or json.
        #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Tenants: create, list, set-plan, top-up (admin token).
    Tenant {
        #[command(subcommand)]
        cmd: admin::TenantCmd,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Hosted and pool accounts: add, list, disable.
    Account {
        #[command(subcommand)]
        cmd: admin::AccountCmd,
        #[command(flatten)]
        target: admin::Target,
    },
    /// A tenant's tasks: get, cancel (API key).
    Task {
        #[command(subcommand)]
        cmd: admin::TaskCmd,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Queue depth, in flight against caps per tenant, pool accounts by state and load.
    Stats {
        /// Refresh every 2 s.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Run the four simulated upstreams alone (for multi-process setups and tests).
    ///
    /// Point workers at it with SWITCHYARD_UPSTREAMS__* (or use the demo). Its witness of
    /// true concurrency is at GET /_sim/stats.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, tables::CliError> {
    tokio::runtime::Runtime::new().map_err(|e| tables::CliError::Other(e.into()))
}

fn master_key() -> Result<switchyard_core::secrets::SecretBox, tables::CliError> {
    switchyard_worker::config_load::secret_box().map_err(|e| tables::CliError::Usage(e.to_string()))
}

async fn connect(
    config: &switchyard_core::Config,
) -> Result<switchyard_scheduler::Scheduler, tables::CliError> {
    // Waits (logging the URL, password redacted) while Redis is down or starting.
    switchyard_scheduler::Scheduler::connect_waiting(config)
        .await
        .map_err(|e| {
            tables::CliError::Other(anyhow::anyhow!(
                "cannot use Redis at {} ({e}); set REDIS_URL or redis.url",
                switchyard_scheduler::connection::redact_url(&config.redis.url)
            ))
        })
}

fn serve(
    mut config: switchyard_core::Config,
    listen: Option<String>,
    log_format: &str,
) -> Result<(), tables::CliError> {
    if let Some(l) = listen {
        config.dispatcher.listen = l;
    }
    let secrets = master_key()?;
    switchyard_worker::init_logs(log_format == "json");
    runtime()?.block_on(async move {
        // Caught from here on, so a SIGTERM during start-up ends the process cleanly.
        let mut signal = switchyard_worker::shutdown_signal();
        let sched = tokio::select! {
            s = connect(&config) => s?,
            _ = signal.wait_for(|s| *s) => return Ok(()),
        };
        let listener = tokio::net::TcpListener::bind(&config.dispatcher.listen)
            .await
            .map_err(|e| {
                tables::CliError::Usage(format!(
                    "cannot listen on {} ({e}); use --listen",
                    config.dispatcher.listen
                ))
            })?;
        if config.dispatcher.admin_token.is_empty() {
            tracing::warn!(
                "the admin API is off; set SWITCHYARD_DISPATCHER__ADMIN_TOKEN to enable it"
            );
        }
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| config.dispatcher.listen.clone());
        tracing::info!(listen = %addr, "dispatcher listening");
        println!("switchyard dispatcher on http://{addr}");
        let state = switchyard_dispatcher::AppState::new(sched, secrets);
        if let Some(why) = state.files.problem() {
            return Err(tables::CliError::Other(anyhow::anyhow!(
                "{why}; fix the [storage] section (or set storage.kind = \"off\")"
            )));
        }
        switchyard_dispatcher::serve(state, listener, async move {
            let _ = signal.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| tables::CliError::Other(e.into()))
    })
}

fn worker(
    config: switchyard_core::Config,
    provider: &str,
    log_format: &str,
) -> Result<(), tables::CliError> {
    use std::sync::Arc;
    use switchyard_core::Provider;
    let provider: Provider = provider
        .parse()
        .map_err(|e| tables::CliError::Usage(format!("--provider: {e}")))?;
    let secrets = master_key()?;
    switchyard_worker::init_logs(log_format == "json");
    switchyard_worker::open_files(&config.storage).map_err(|e| {
        tables::CliError::Other(anyhow::anyhow!(
            "{e}; fix the [storage] section (or set storage.kind = \"off\")"
        ))
    })?;
    let upstream: Arc<dyn switchyard_worker::Upstream> = match provider {
        Provider::Midjourney => Arc::new(switchyard_worker_midjourney::Midjourney::new(&config)),
        Provider::Suno => Arc::new(switchyard_worker_suno::Suno::new(&config)),
        Provider::Luma => Arc::new(switchyard_worker_luma::Luma::new(&config)),
        Provider::Gpts => Arc::new(switchyard_worker_gpts::Gpts::new(&config)),
    };
    runtime()?.block_on(async move {
        // Caught from here on, so a SIGTERM during start-up ends the process cleanly.
        let mut stop = switchyard_worker::shutdown_signal();
        let sched = tokio::select! {
            s = connect(&config) => s?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let w = switchyard_worker::Worker::new(sched, upstream, &config, secrets);
        w.run(stop).await;
        Ok(())
    })
}

fn run_sim(listen: &str) -> Result<(), tables::CliError> {
    runtime()?.block_on(async {
        let sim = switchyard_provider_sim::Sim::start(listen).await.map_err(|e| {
            tables::CliError::Usage(format!(
                "cannot listen on {listen} ({e}); pick a free address with --listen"
            ))
        })?;
        println!("simulated upstreams at {} (witness: {}/_sim/stats)", sim.url(), sim.url());
        println!(
            "workers: SWITCHYARD_UPSTREAMS__DISCORD_API={0} SWITCHYARD_UPSTREAMS__DISCORD_GATEWAY={1}/gateway \\\n  SWITCHYARD_UPSTREAMS__SUNO_API={0} SWITCHYARD_UPSTREAMS__SUNO_CLERK={0} \\\n  SWITCHYARD_UPSTREAMS__LUMA_API={0} SWITCHYARD_UPSTREAMS__CHATGPT_API={0} \\\n  SWITCHYARD_UPSTREAMS__MIDJOURNEY_CDN={0}/_mjcdn SWITCHYARD_UPSTREAMS__DISCORD_INPAINT={0} \\\n  SWITCHYARD_WORKER__ALLOW_PRIVATE_INPUTS=true",
            sim.url(),
            sim.url().replacen("http", "ws", 1)
        );
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}

/// The sections of the config (`SWITCHYARD_<SECTION>__<KEY>`).
const CONFIG_SECTIONS: &[&str] = &[
    "REDIS",
    "SCHEDULER",
    "DEFAULTS",
    "DISPATCHER",
    "WORKER",
    "UPSTREAMS",
    "PLANS",
    "PRICES",
];

/// Say so when a variable looks like a config key written with one underscore where two
/// are needed (`SWITCHYARD_REDIS_URL` for `SWITCHYARD_REDIS__URL`): nothing reads it.
/// Other `SWITCHYARD_*` variables (the CLI's own, test and benchmark tooling) are not
/// config and are left alone.
fn warn_unread_env() {
    for (name, _) in std::env::vars_os() {
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("SWITCHYARD_")) else {
            continue;
        };
        let looks_like_config = CONFIG_SECTIONS
            .iter()
            .any(|s| rest.strip_prefix(s).is_some_and(|k| k.starts_with('_')));
        if looks_like_config && !rest.contains("__") {
            eprintln!(
                "warning: SWITCHYARD_{rest} is not read; config variables are SWITCHYARD_<SECTION>__<KEY> (e.g. SWITCHYARD_REDIS__URL)"
            );
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    warn_unread_env();
    let config = match switchyard_worker::config_load::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Plans { json } => tables::plans(&config, json),
        Command::Price(args) => tables::price(&config, &args),
        Command::Sim { listen } => run_sim(&listen),
        Command::Demo(args) => demo::run(config, args),
        Command::Tenant { cmd, target } => admin::tenant(&target, cmd),
        Command::Account { cmd, target } => admin::account(&target, cmd),
        Command::Task { cmd, target } => admin::task(&target, cmd),
        Command::Stats { watch, target } => admin::stats(&target, watch),
        Command::Serve { listen, log_format } => serve(config, listen, &log_format),
        Command::Worker {
            provider,
            log_format,
        } => worker(config, &provider, &log_format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(tables::CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(tables::CliError::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
