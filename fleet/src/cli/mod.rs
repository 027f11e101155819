//! The command line: argument parsing, one module per subcommand, each a thin shell over
//! [`crate::server`] and [`crate::coordinator`].

mod resume;
mod serve;
mod sim;
mod status;
mod unhalt;

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
    /// Show each group (slots, holders and since when, lost hosts, paused or not) and the
    /// halted releases.
    Status,
    /// Let a group paused by lost hosts grant slots again (forgets its lost hosts).
    Resume {
        /// The group.
        group: String,
    },
    /// Lift the automatic halt of a release (forgets its outcome reports).
    Unhalt {
        /// The release's commit checksum.
        commit: String,
    },
    /// Simulate a rollout on a virtual clock with the real policy code (needs no etcd and no
    /// configuration); fails when the updated share leaves its binomial bounds.
    Sim {
        /// Number of hosts.
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        /// Seed of the hosts' machine-ids.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The rollout's start percentage.
        #[arg(long, default_value_t = 5)]
        start_percentage: u8,
        /// The rollout's duration (e.g. 48h).
        #[arg(long, default_value = "48h", value_parser = parse_duration)]
        duration: u64,
        /// Virtual time between ticks (e.g. 30min).
        #[arg(long, default_value = "30min", value_parser = parse_duration)]
        tick: u64,
        /// Halt the release this long after its start.
        #[arg(long, value_parser = parse_duration)]
        halt_at: Option<u64>,
        /// The share of hosts (0-1) whose update fails its health checks.
        #[arg(long, default_value_t = 0.0)]
        failure_rate: f64,
        /// Halt the release automatically after this many reported failures (the fleet's
        /// `[halt] after`).
        #[arg(long)]
        halt_after: Option<u32>,
    },
}

fn parse_duration(text: &str) -> std::result::Result<u64, String> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{e} (e.g. 48h, 30min)"))
}

/// Runs the command.
pub fn run(cli: Cli) -> Result<()> {
    if let Command::Sim {
        hosts,
        seed,
        start_percentage,
        duration,
        tick,
        halt_at,
        failure_rate,
        halt_after,
    } = cli.command
    {
        let o = crate::sim::SimOptions {
            hosts,
            seed,
            start_percentage,
            duration_secs: duration,
            tick_secs: tick,
            halt_at,
            failure_rate,
            halt_after,
        };
        return sim::run(&cli.global, &o);
    }
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
            Command::Unhalt { commit } => unhalt::run(&cli.global, &settings, &commit).await,
            // Ran above, without configuration or runtime.
            Command::Sim { .. } => Ok(()),
        }
    })
}
