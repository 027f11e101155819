//! Benchmark case 7: checking a bundle against the machine's limit.
//!
//!     cargo bench -p cairn-release --bench verify -- BUNDLE WORKDIR [--reference-first]
//!
//! Two pairs, each side run on the same bytes in this one process:
//! - `hash`: sha256 of the payload members as `bundle::open` checks them / `sha256sum` of the
//!   same files, and / `openssl dgst -sha256` (which uses the CPU's SHA instructions where
//!   coreutils does not: the machine's limit); the files are in the page cache for all three;
//! - `open`: `bundle::open` (zstd decompress, untar, check every member) / `zstd -dc | tar -x`
//!   then `sha256sum` of the members, the shell's way to the same result.
//!
//! Prints one JSON object of wall seconds and the payload's bytes. Run by `bench/run.py`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cairn_release::bundle::{self, PAYLOAD};
use cairn_release::signature::TrustedKeys;

fn main() -> Result<()> {
    // `cargo bench` passes `--bench` to every target; it is not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [bundle_path, work, ..] = args.as_slice() else {
        bail!("usage: verify BUNDLE WORKDIR [--reference-first]");
    };
    let reference_first = args.iter().any(|a| a == "--reference-first");
    let (bundle_path, work) = (Path::new(bundle_path), PathBuf::from(work));
    let ours_dir = fresh_dir(&work.join("ours"))?;
    let shell_dir = fresh_dir(&work.join("shell"))?;

    let open_ours = || -> Result<f64> {
        let t = Instant::now();
        bundle::open(bundle_path, &ours_dir, &TrustedKeys::default(), false)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let open_shell = || -> Result<f64> {
        let t = Instant::now();
        sh(&format!(
            "zstd -qdc '{}' | tar -x -C '{}'",
            bundle_path.display(),
            shell_dir.display()
        ))?;
        sha256sum(&shell_dir)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let (open, open_reference) = pair(reference_first, open_ours, open_shell)?;

    let hash_ours = || -> Result<f64> {
        let t = Instant::now();
        for name in PAYLOAD {
            bundle::hash_file(&ours_dir.join(name))?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let hash_shell = || -> Result<f64> {
        let t = Instant::now();
        sha256sum(&ours_dir)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let (hash, hash_reference) = pair(reference_first, hash_ours, hash_shell)?;
    let t = Instant::now();
    let mut openssl = Command::new("openssl");
    openssl
        .current_dir(&ours_dir)
        .args(["dgst", "-sha256"])
        .args(PAYLOAD);
    run(&mut openssl)?;
    let hash_openssl = t.elapsed().as_secs_f64();

    let mut bytes = 0;
    for name in PAYLOAD {
        bytes += std::fs::metadata(ours_dir.join(name))?.len();
    }
    println!(
        "{}",
        serde_json::json!({
            "open": open, "open_reference": open_reference,
            "hash": hash, "hash_reference": hash_reference, "hash_openssl": hash_openssl,
            "payload_bytes": bytes,
        })
    );
    Ok(())
}

/// Runs both sides in the asked order; returns (ours, reference).
fn pair(
    reference_first: bool,
    ours: impl Fn() -> Result<f64>,
    reference: impl Fn() -> Result<f64>,
) -> Result<(f64, f64)> {
    if reference_first {
        let r = reference()?;
        Ok((ours()?, r))
    } else {
        let o = ours()?;
        Ok((o, reference()?))
    }
}

fn fresh_dir(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("Removing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("Creating {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn sha256sum(dir: &Path) -> Result<()> {
    let mut cmd = Command::new("sha256sum");
    cmd.current_dir(dir).args(PAYLOAD);
    run(&mut cmd)
}

fn sh(script: &str) -> Result<()> {
    run(Command::new("sh").args(["-ec", script]))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("Running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
