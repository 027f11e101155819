//! `cairn rollback`, `cairn pin`/`unpin`, `cairn cleanup`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::ops::report::{Change, PinResult};
use crate::release::describe;

/// Arguments of `cairn rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Reboot (`systemctl reboot`) afterwards.
    #[arg(long)]
    pub reboot: bool,
    /// Print one JSON object (see README) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `cairn pin` and `cairn unpin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The deployment's index as `cairn status` shows it (0 boots next).
    #[arg(value_name = "INDEX")]
    pub index: usize,
    /// Print one JSON object (see README) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `cairn cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Print one JSON object (see README) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn rollback(ctx: &Context, args: &RollbackArgs) -> Result<ExitCode> {
    let before = ctx.host.deployments();
    let o = crate::ops::rollback::rollback(&ctx.host, ctx.wait)?;
    if args.json {
        super::print_json(&Change::new(&ctx.host, "rollback", before, &o)?)?;
    } else {
        println!(
            "Rolled back: {} boots next (was {})",
            o.to.describe(),
            o.from.describe()
        );
    }
    if args.reboot {
        crate::agent::manners::warn_present();
        crate::host::reboot::reboot(&ctx.host)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn pin(ctx: &Context, args: &PinArgs, pinned: bool) -> Result<ExitCode> {
    let before = ctx.host.deployments();
    let d = crate::ops::pin::set_pinned(&ctx.host, args.index, pinned, ctx.wait)?;
    if args.json {
        let was = before.get(args.index).map(|b| b.pinned);
        let result = PinResult {
            index: d.index,
            pinned: d.pinned,
            changed: was != Some(d.pinned),
            deployment: d,
        };
        let command = if pinned { "pin" } else { "unpin" };
        super::print_json(&Change::new(&ctx.host, command, before, result)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Deployment {} ({}) is {}",
        d.index,
        describe(d.version.as_deref(), &d.commit),
        if d.pinned { "pinned" } else { "not pinned" }
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn cleanup(ctx: &Context, args: &CleanupArgs) -> Result<ExitCode> {
    let before = ctx.host.deployments();
    let o = crate::ops::cleanup::cleanup(&ctx.host, ctx.wait)?;
    if args.json {
        super::print_json(&Change::new(&ctx.host, "cleanup", before, &o)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if o.removed.is_empty() {
        println!("No deployment to remove.");
    }
    for d in &o.removed {
        println!(
            "Removed deployment {} ({})",
            d.index,
            describe(d.version.as_deref(), &d.commit)
        );
    }
    println!(
        "Pruned {} objects, {}",
        o.objects_pruned,
        crate::host::progress::human_bytes(o.bytes_freed)
    );
    Ok(ExitCode::SUCCESS)
}
