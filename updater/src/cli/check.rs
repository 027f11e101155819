//! `cairn check`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::exit;
use crate::host::download_size::Measure;
use crate::host::progress::human_bytes;
use crate::ops::check::UpdateSize;

/// Arguments of `cairn check`.
#[derive(Debug, Args)]
#[command(
    after_help = "The download is measured from the static delta's superblock when the \
remote has a delta from a commit the host has, else from the commit's object sizes \
(ostree.sizes, or cairn.sizes-new joined along the parents) against the objects the host has; `upgrade` refuses before its pull when the \
repository's filesystem cannot hold the new objects.\n\n\
Exit codes: 0 an update is available, 77 up to date, 1 the check failed."
)]
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
        print_size(&r.size);
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

fn print_size(s: &UpdateSize) {
    let bytes = |b: Option<u64>| b.map_or("unknown".to_string(), human_bytes);
    let how = match s.download_measured_by {
        Some(Measure::Bundle) => " (delta bundle)",
        Some(Measure::Delta) => " (static delta)",
        Some(Measure::Objects) => " (objects the host lacks)",
        None => "",
    };
    println!("  download: {}{how}", bytes(s.download_bytes));
    println!(
        "  /boot: {} needed, {} free",
        bytes(s.boot_needed_bytes),
        bytes(s.boot_free_bytes)
    );
    let mount = s
        .root_mount
        .as_ref()
        .map_or("the repository's filesystem".to_string(), |m| {
            format!("filesystem at {}", m.display())
        });
    let freeable = match s.root_freeable_bytes {
        Some(f) if f > 0 => format!(" (+{} from deployments the update drops)", human_bytes(f)),
        _ => String::new(),
    };
    println!(
        "  {mount}: {} needed, {} free{freeable}",
        bytes(s.root_needed_bytes),
        bytes(s.root_free_bytes)
    );
}
