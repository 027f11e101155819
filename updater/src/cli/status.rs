//! `cairn status`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Context;

/// Arguments of `cairn status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (the `HostStatus` structure) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(ctx: &Context, args: &StatusArgs) -> Result<ExitCode> {
    let status = crate::ops::status::collect(&ctx.host, &ctx.settings);
    if args.json {
        super::print_json(&status)?;
    } else {
        print!("{}", crate::ops::status::render(&status));
    }
    Ok(ExitCode::SUCCESS)
}
