//! `cairn check`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::exit;

/// Arguments of `cairn check`.
#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 an update is available, 77 up to date, 1 the check failed.")]
pub struct CheckArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(ctx: &Context, args: &CheckArgs) -> Result<ExitCode> {
    let r = crate::ops::check::check(&ctx.host, &ctx.settings, ctx.wait)?;
    if args.json {
        super::print_json(&r)?;
    } else if r.update_available {
        println!(
            "Update available on {}: {} (now {}); run `cairn upgrade`",
            r.refspec,
            r.remote.describe(),
            r.current
                .as_ref()
                .map_or("nothing".into(), |c| c.describe())
        );
    } else {
        println!(
            "Up to date on {}: the remote offers {}, {} boots next",
            r.refspec,
            r.remote.describe(),
            r.current
                .as_ref()
                .map_or("nothing".into(), |c| c.describe())
        );
    }
    if let (Some(rollout), false) = (&r.rollout, args.json) {
        println!("Rollout: {}", rollout.describe());
    }
    if let (Some(why), false) = (&r.halted, args.json) {
        println!("Not taken: {why}");
    }
    Ok(ExitCode::from(if r.update_available {
        exit::OK
    } else {
        exit::UP_TO_DATE
    }))
}
