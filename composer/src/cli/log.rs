//! `cairn-compose log`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use cairn_release::gio;
use cairn_release::history::ref_history;
use cairn_release::ostree;
use clap::Args;
use serde::Serialize;

/// List a ref's versions, newest first.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The ref, e.g. cairn/bookworm/x86_64/stable.
    #[arg(value_name = "REF")]
    osref: String,
    /// The OSTree repository.
    #[arg(long)]
    repo: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry {
    version: Option<String>,
    commit: String,
    timestamp: u64,
    date: String,
    packages: usize,
    kernel: Option<String>,
}

/// Prints the log.
pub fn run(a: LogArgs) -> Result<()> {
    let repo = ostree::Repo::new(&gio::File::for_path(&a.repo));
    repo.open(gio::Cancellable::NONE)
        .map_err(|e| anyhow::anyhow!("Opening repository {}: {e}", a.repo.display()))?;
    let history = ref_history(&repo, &a.osref)?;
    if history.is_empty() {
        bail!("ref {} does not exist in {}", a.osref, a.repo.display());
    }
    let entries: Vec<Entry> = history
        .into_iter()
        .map(|c| Entry {
            date: super::format_time(c.timestamp),
            version: c.version,
            commit: c.commit,
            timestamp: c.timestamp,
            packages: c.packages.len(),
            kernel: c.linux,
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    println!("{:<14} {:<24} {:>8}  commit", "version", "date", "packages");
    for e in entries {
        println!(
            "{:<14} {:<24} {:>8}  {}",
            e.version.as_deref().unwrap_or("-"),
            e.date,
            e.packages,
            e.commit
        );
    }
    Ok(())
}
