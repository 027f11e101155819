//! `cairn-compose diff`.

use std::path::PathBuf;

use anyhow::Result;
use cairn_release::history::find_revision;
use clap::Args;

use crate::history;

/// Show packages and files that changed between two revisions (versions, commits or refs).
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older revision: a version, a commit checksum or a ref.
    rev_a: String,
    /// The newer revision.
    rev_b: String,
    /// The OSTree repository.
    #[arg(long)]
    repo: PathBuf,
    /// Look versions up on this ref first.
    #[arg(long = "ref")]
    osref: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the diff.
pub fn run(a: DiffArgs) -> Result<()> {
    let repo = crate::repo::open_repo(&a.repo)?;
    let from = find_revision(&repo, a.osref.as_deref(), &a.rev_a)?;
    let to = find_revision(&repo, a.osref.as_deref(), &a.rev_b)?;
    let d = history::diff(&repo, &from, &to)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    let name = |v: &Option<String>, c: &str| {
        v.clone()
            .unwrap_or_else(|| c[..12.min(c.len())].to_string())
    };
    println!(
        "{} → {}",
        name(&d.from.version, &d.from.commit),
        name(&d.to.version, &d.to.commit)
    );
    for p in &d.added {
        println!("  added      {} {}", p.name, p.version);
    }
    for p in &d.removed {
        println!("  removed    {} {}", p.name, p.version);
    }
    for c in &d.upgraded {
        println!("  upgraded   {} {} → {}", c.name, c.from, c.to);
    }
    for c in &d.downgraded {
        println!("  downgraded {} {} → {}", c.name, c.from, c.to);
    }
    println!(
        "packages: {} added, {} removed, {} upgraded, {} downgraded",
        d.added.len(),
        d.removed.len(),
        d.upgraded.len(),
        d.downgraded.len()
    );
    println!(
        "files: {} added, {} removed, {} changed",
        d.files.added, d.files.removed, d.files.changed
    );
    Ok(())
}
