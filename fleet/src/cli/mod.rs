//! The command line: argument parsing, one module per subcommand, each a thin shell over
//! [`crate::server`] and [`crate::coordinator`].

mod resume;
mod serve;
mod status;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config;

/// cairn-fleet: a FleetLock reboot coordinator that keeps all of its state in etcd.
#[derive(Debug, Parser)]
#[command(name = "cairn-fleet", version)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// The configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log debug messages too.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve FleetLock (`POST /v1/pre-reboot`, `POST /v1/steady-state`) until SIGTERM.
    Serve,
    /// Show each group: slots, holders and since when, lost hosts, paused or not.
    Status,
    /// Let a group paused by lost hosts grant slots again (forgets its lost hosts).
    Resume {
        /// The group.
        group: String,
    },
}

/// Runs the command.
pub fn run(cli: Cli) -> Result<()> {
    let settings = config::load_or_explain(&cli.global.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("Starting the async runtime: {e}"))?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve => serve::run(&cli.global, settings).await,
            Command::Status => status::run(&cli.global, &settings).await,
            Command::Resume { group } => resume::run(&cli.global, &settings, &group).await,
        }
    })
}
