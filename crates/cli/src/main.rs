//! `switchyard`: the operator's command line.
//!
//! Commands print tables for people and JSON with `--json` for scripts. Errors say what
//! to do next and exit with status 2 (bad arguments) or 1 (anything else).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

fn run_sim(listen: &str) -> Result<(), tables::CliError> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| tables::CliError::Other(e.into()))?;
    rt.block_on(async {
        let sim = switchyard_provider_sim::Sim::start(listen).await.map_err(|e| {
            tables::CliError::Usage(format!(
                "cannot listen on {listen} ({e}); pick a free address with --listen"
            ))
        })?;
        println!("simulated upstreams at {} (witness: {}/_sim/stats)", sim.url(), sim.url());
        println!(
            "workers: SWITCHYARD_UPSTREAMS__DISCORD_API={0} SWITCHYARD_UPSTREAMS__DISCORD_GATEWAY={1}/gateway \\\n  SWITCHYARD_UPSTREAMS__SUNO_API={0} SWITCHYARD_UPSTREAMS__SUNO_CLERK={0} \\\n  SWITCHYARD_UPSTREAMS__LUMA_API={0} SWITCHYARD_UPSTREAMS__CHATGPT_API={0}",
            sim.url(),
            sim.url().replacen("http", "ws", 1)
        );
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match switchyard_core::Config::load(cli.config.as_deref()) {
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
