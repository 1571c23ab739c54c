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
