//! `cairn-compose prune`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::prune::{prune, PruneOptions};

/// Keep the newest N versions of each ref (and --keep-version ones); remove older commits,
/// the objects only they used and the static deltas that touch them; regenerate the summary.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The OSTree repository.
    #[arg(long)]
    repo: PathBuf,
    /// How many versions to keep per ref.
    #[arg(long, value_name = "N")]
    keep: usize,
    /// Prune only this ref's history [default: every ref].
    #[arg(long = "ref")]
    osref: Option<String>,
    /// Keep this version (or commit) too; repeat for several.
    #[arg(long = "keep-version", value_name = "V")]
    keep_versions: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs prune.
pub fn run(a: PruneArgs) -> Result<()> {
    let p = prune(&PruneOptions {
        repo: a.repo,
        keep: a.keep,
        osref: a.osref,
        keep_versions: a.keep_versions,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    for r in &p.removed {
        println!(
            "removed {} ({})",
            r.version.as_deref().unwrap_or("unversioned"),
            r.commit
        );
    }
    println!(
        "{} commits, {} objects ({} bytes), {} static deltas removed",
        p.removed.len(),
        p.objects_deleted,
        p.bytes_freed,
        p.deltas_removed.len()
    );
    Ok(())
}
