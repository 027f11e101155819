//! Benchmark case 5, the bundle's "apply" row: what `cairn upgrade --bundle` does to a host's
//! repository before it deploys — open and check the bundle, decompress its delta against
//! the host's objects when it is compressed so, apply the delta in one transaction.
//!
//!     cargo bench -p cairn-release --bench bundle_apply -- BUNDLE REPO WORKDIR
//!
//! REPO holds the commit the bundle starts from. Prints one JSON object: wall seconds of the
//! whole, and of the decompression alone. Run by `bench/transport.sh`.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cairn_release::bundle;
use cairn_release::signature::TrustedKeys;
use cairn_release::{gio, ostree};

fn main() -> Result<()> {
    // `cargo bench` passes `--bench` to every target; it is not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [bundle_path, repo_path, work] = args.as_slice() else {
        bail!("usage: bundle_apply BUNDLE REPO WORKDIR");
    };
    let repo = ostree::Repo::new(&gio::File::for_path(repo_path));
    repo.open(gio::Cancellable::NONE)
        .with_context(|| format!("Opening {repo_path}"))?;
    std::fs::create_dir_all(work).with_context(|| format!("Creating {work}"))?;
    let t = Instant::now();
    // The signature is what `bundle::open` checks on a host; the bench's bundle is checked
    // for integrity (sizes, sha256) the same way, without a trusted key.
    let opened = bundle::open(
        Path::new(bundle_path),
        Path::new(work),
        &TrustedKeys::default(),
        false,
    )?;
    let d = Instant::now();
    let delta = opened.delta_file(&repo)?;
    let decompress = d.elapsed().as_secs_f64();
    repo.prepare_transaction(gio::Cancellable::NONE)?;
    repo.static_delta_execute_offline(&gio::File::for_path(&delta), false, gio::Cancellable::NONE)
        .context("Applying the delta")?;
    repo.commit_transaction(gio::Cancellable::NONE)?;
    let total = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"apply_s": total, "decompress_s": decompress, "format": opened.manifest.format})
    );
    Ok(())
}
