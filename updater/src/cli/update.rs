//! `cairn upgrade`, `cairn deploy`, `cairn rebase`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::ops::apply::Outcome;
use crate::ops::report::{Change, UpdateResult};
use crate::ops::update;

/// Arguments of `cairn upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Take the update from this bundle file (`cairn-compose bundle`) instead of the remote;
    /// it is checked whole (hashes, signatures) before anything is written.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<std::path::PathBuf>,
    /// Reboot (`systemctl reboot`) after a new deployment was staged.
    #[arg(long)]
    pub reboot: bool,
    /// Print one JSON object (see README) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `cairn deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A version (e.g. 2026.11.3) or commit checksum (or a unique prefix of 8+ characters)
    /// on the followed ref's history.
    #[arg(value_name = "VERSION|COMMIT")]
    pub revision: String,
    /// Reboot (`systemctl reboot`) after a new deployment was staged.
    #[arg(long)]
    pub reboot: bool,
    /// Print one JSON object (see README) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `cairn rebase`.
#[derive(Debug, Args)]
pub struct RebaseArgs {
    /// The ref to follow: `REMOTE:REF`, `REF` (same remote) or a stream name such as
    /// `testing` (same OS, suite and architecture).
    #[arg(value_name = "REF")]
    pub target: String,
    /// Reboot (`systemctl reboot`) after a new deployment was staged.
    #[arg(long)]
    pub reboot: bool,
    /// Print one JSON object (see README) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn upgrade(ctx: &Context, args: &UpgradeArgs) -> Result<ExitCode> {
    let before = ctx.host.deployments();
    let outcome = match &args.bundle {
        Some(file) => crate::ops::bundle::upgrade(&ctx.host, &ctx.settings, file, ctx.wait)?,
        None => update::upgrade(&ctx.host, &ctx.settings, ctx.wait)?,
    };
    finish(ctx, "upgrade", before, &outcome, args.reboot, args.json)
}

pub(super) fn deploy(ctx: &Context, args: &DeployArgs) -> Result<ExitCode> {
    let before = ctx.host.deployments();
    let outcome = update::deploy_revision(&ctx.host, &ctx.settings, &args.revision, ctx.wait)?;
    finish(ctx, "deploy", before, &outcome, args.reboot, args.json)
}

pub(super) fn rebase(ctx: &Context, args: &RebaseArgs) -> Result<ExitCode> {
    let before = ctx.host.deployments();
    let outcome = update::rebase(&ctx.host, &ctx.settings, &args.target, ctx.wait)?;
    finish(ctx, "rebase", before, &outcome, args.reboot, args.json)
}

fn finish(
    ctx: &Context,
    command: &'static str,
    before: Vec<crate::host::sysroot::DeploymentInfo>,
    outcome: &Outcome,
    reboot: bool,
    json: bool,
) -> Result<ExitCode> {
    if json {
        let change = Change::new(&ctx.host, command, before, UpdateResult::from(outcome))?;
        super::print_json(&change)?;
    }
    match outcome {
        Outcome::Unchanged { current, refspec } => {
            if !json {
                println!(
                    "Already at {} ({refspec}): it boots next; nothing to do",
                    current.describe()
                );
            }
        }
        Outcome::Deployed {
            from,
            to,
            refspec,
            mode,
            etc_conflicts,
            ..
        } => {
            if !json {
                println!(
                    "{} -> {} ({refspec}): {}",
                    from.as_ref().map_or("nothing".into(), |f| f.describe()),
                    to.describe(),
                    mode.describe()
                );
                for c in etc_conflicts {
                    println!(
                        "Kept your {} ({}): its default {} in {}; the new default was not applied",
                        c.path,
                        c.local,
                        c.default,
                        to.describe()
                    );
                }
            }
            if reboot {
                crate::agent::manners::warn_present();
                crate::host::reboot::reboot(&ctx.host)?;
            } else if ctx.host.is_booted() && !json {
                println!("Reboot to use it (`systemctl reboot`).");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
