//! `cairn health run`: the entry point of `cairn-health.service`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Context;
use crate::health::{self, Outcome};

/// Arguments of `cairn health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HealthCommand,
}

/// `cairn health` subcommands.
#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// Run the health checks; mark the boot good, or record the version as failed, roll back
    /// and reboot.
    Run(RunArgs),
}

/// Arguments of `cairn health run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 healthy (wanted checks may have failed), 1 a required \
                        check failed (rolled back or not)."
)]
pub struct RunArgs {
    /// Roll back without rebooting.
    #[arg(long)]
    pub no_reboot: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(ctx: &Context, args: &HealthArgs) -> Result<ExitCode> {
    match &args.command {
        HealthCommand::Run(a) => {
            let outcome = health::run(&ctx.host, &ctx.settings.health, ctx.wait, !a.no_reboot)?;
            if a.json {
                super::print_json(&outcome)?;
            }
            let (report, code) = match &outcome {
                Outcome::Healthy { report } => (report, ExitCode::SUCCESS),
                Outcome::RolledBack { report, .. } | Outcome::Unhealthy { report } => {
                    (report, ExitCode::FAILURE)
                }
            };
            if !a.json {
                for c in &report.checks {
                    println!(
                        "{} {:<8} {} ({} ms): {}",
                        if c.ok { "ok  " } else { "FAIL" },
                        match c.kind {
                            health::Kind::Required => "required",
                            health::Kind::Wanted => "wanted",
                        },
                        c.name,
                        c.millis,
                        c.outcome
                    );
                }
                println!("{}", report.action);
            }
            Ok(code)
        }
    }
}
