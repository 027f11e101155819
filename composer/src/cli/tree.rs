//! `cairn-compose tree`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::compose::{compose, ComposeOptions, Outcome};
use crate::interrupt;
use crate::progress::Progress;

/// Compose a manifest into a new version on its ref (nothing is written if nothing changed).
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// The manifest (TOML).
    manifest: PathBuf,
    /// The OSTree archive repository; created if missing.
    #[arg(long)]
    repo: PathBuf,
    /// Package cache and work area [default: `cache` beside the repository].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Install exactly the packages of this lockfile (sha256-checked).
    #[arg(long)]
    lockfile: Option<PathBuf>,
    /// Where to write this compose's lockfile [default: OS-VERSION.lock.json beside the repository].
    #[arg(long)]
    write_lockfile: Option<PathBuf>,
    /// An apt sources file (one-line `.list` or deb822 `.sources`) used instead of the
    /// manifest's mirrors and the machine's apt sources; repeat for several.
    #[arg(long)]
    sources: Vec<PathBuf>,
    /// Copy the post-processed tree into this (new) directory after committing, for
    /// inspection or benchmarks.
    #[arg(long)]
    keep_tree: Option<PathBuf>,
    /// Sign the new commit with this ed25519 secret key (from `cairn-compose keygen`), in the
    /// commit's own transaction: the ref never points at an unsigned commit.
    #[arg(long, value_name = "KEYFILE")]
    sign_key: Option<PathBuf>,
    /// Write static deltas to the new commit from this many previous versions (0: none), and
    /// beside each the delta bundle Cairn hosts fetch instead (REPO/cairn-deltas/).
    #[arg(long, value_name = "K", default_value_t = 2)]
    deltas: usize,
    /// Commit even when the inputs did not change.
    #[arg(long)]
    force: bool,
    /// Install every package from scratch (mmdebstrap) instead of applying the package changes
    /// to the ref's cached fresh install; the result becomes the new cached install.
    #[arg(long)]
    fresh_install: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the compose and prints its outcome.
pub fn run(a: TreeArgs) -> Result<()> {
    interrupt::install()?;
    let progress = Progress::new();
    let outcome = compose(
        &ComposeOptions {
            manifest: a.manifest,
            repo: a.repo,
            cache_dir: a.cache_dir,
            lockfile: a.lockfile,
            lockfile_out: a.write_lockfile,
            sources: a.sources,
            force: a.force,
            keep_tree: a.keep_tree,
            sign_key: a.sign_key,
            deltas: a.deltas,
            fresh_install: a.fresh_install,
        },
        &progress,
    )?;
    let elapsed = progress.elapsed();
    progress.finish();
    if a.json {
        let mut value = serde_json::to_value(&outcome)?;
        let timings: serde_json::Map<String, serde_json::Value> = progress
            .timings()
            .into_iter()
            .map(|(step, secs)| (step, serde_json::json!((secs * 1000.0).round() / 1000.0)))
            .collect();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("seconds".into(), serde_json::json!(elapsed));
            obj.insert("steps".into(), serde_json::Value::Object(timings));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match outcome {
        Outcome::Unchanged {
            osref,
            version,
            commit,
        } => println!(
            "No change: {osref} is already {} ({commit}); nothing written ({elapsed:.1}s)",
            version.as_deref().unwrap_or("unversioned")
        ),
        Outcome::Committed {
            osref,
            version,
            commit,
            lockfile,
            packages,
            kernel,
            signed,
            deltas_from,
            install,
        } => {
            println!("Committed {osref} {version}");
            println!("  commit:   {commit}");
            println!("  packages: {packages}");
            if let Some(k) = kernel {
                println!("  kernel:   {k}");
            }
            println!(
                "  signed:   {}",
                if signed { "yes (ed25519)" } else { "no" }
            );
            if !deltas_from.is_empty() {
                println!("  deltas:   from {}", deltas_from.join(", "));
            }
            match install.fresh_because {
                Some(why) => println!("  install:  from scratch ({why})"),
                None => println!(
                    "  install:  {} changed and {} purged on the cached fresh install",
                    install.changed, install.purged
                ),
            }
            println!("  lockfile: {}", lockfile.display());
            println!("  took:     {elapsed:.1}s");
        }
    }
    Ok(())
}
