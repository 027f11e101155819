//! `cairn agent run-once`: the entry point of `cairn-agent.service` (at boot and from its
//! timer).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Context;
use crate::agent::run::{self, RunOptions};

/// Arguments of `cairn agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AgentCommand,
}

/// `cairn agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Check, stage and (as the strategy allows) reboot, once.
    RunOnce(RunOnceArgs),
}

/// Arguments of `cairn agent run-once`.
#[derive(Debug, Args)]
pub struct RunOnceArgs {
    /// Retries of a failed update check (delays 5 s, doubling up to 60 s): at boot the network
    /// may not be up yet.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub network_retries: u32,
    /// Print the run's record as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(ctx: &Context, args: &AgentArgs) -> Result<ExitCode> {
    match &args.command {
        AgentCommand::RunOnce(a) => {
            let opts = RunOptions {
                network_retries: a.network_retries,
                wait: ctx.wait,
            };
            let rec = run::run_once(&ctx.host, &ctx.settings, &opts)?;
            if a.json {
                super::print_json(&rec)?;
            } else {
                println!("{}", rec.message);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
