//! `cairn-compose bundle`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::bundle::{write, BundleOptions};

/// Write an offline update bundle: what a host on --from needs to reach --to (a static delta,
/// the commit and its signatures, a signed manifest), zstd-compressed. Apply it on the host
/// with `cairn upgrade --bundle FILE`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The OSTree repository.
    #[arg(long)]
    repo: PathBuf,
    /// The version or commit hosts start from [default: none, a full bundle].
    #[arg(long)]
    from: Option<String>,
    /// The version, commit or ref to reach.
    #[arg(long)]
    to: String,
    /// The ref of both versions [default: the ref whose history holds --to].
    #[arg(long = "ref")]
    osref: Option<String>,
    /// The bundle file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Sign the bundle's manifest with this ed25519 secret key.
    #[arg(long, value_name = "KEYFILE")]
    sign_key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs bundle.
pub fn run(a: BundleArgs) -> Result<()> {
    let w = write(&BundleOptions {
        repo: a.repo,
        osref: a.osref,
        from: a.from,
        to: a.to,
        output: a.output,
        sign_key: a.sign_key,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&w)?);
        return Ok(());
    }
    let m = &w.manifest;
    println!(
        "Wrote {} ({} bytes): {} {} -> {}",
        w.output.display(),
        w.size,
        m.osref,
        m.from_version
            .as_deref()
            .or(m.from.as_deref())
            .unwrap_or("(full)"),
        m.to_version.as_deref().unwrap_or(&m.to)
    );
    println!(
        "  manifest signed: {}; commit signed: {}",
        if w.signed { "yes" } else { "no" },
        if w.commit_signed { "yes" } else { "no" }
    );
    Ok(())
}
