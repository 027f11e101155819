//! `cairn-compose log`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use cairn_release::history::ref_history;
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
    /// Incremental installs: the package-set hash of the fresh install they started from.
    install_base: Option<String>,
    /// How the tree was installed, for the table: `fresh`, `on BASE`, or `-` (not composed
    /// by cairn-compose).
    #[serde(skip)]
    install: String,
}

/// Prints the log.
pub fn run(a: LogArgs) -> Result<()> {
    let repo = crate::repo::open_repo(&a.repo)?;
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
            install: match (&c.install_base, &c.inputs_sha256) {
                (Some(base), _) => format!("on {}", &base[..base.len().min(12)]),
                (None, Some(_)) => "fresh".to_string(),
                (None, None) => "-".to_string(),
            },
            install_base: c.install_base,
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<24} {:>8}  {:<20} commit",
        "version", "date", "packages", "install"
    );
    for e in entries {
        println!(
            "{:<14} {:<24} {:>8}  {:<20} {}",
            e.version.as_deref().unwrap_or("-"),
            e.date,
            e.packages,
            e.install,
            e.commit
        );
    }
    Ok(())
}
