//! Installing a locked package set into a fresh tree with mmdebstrap.
//!
//! mmdebstrap runs Debian's own installation (maintainer scripts, triggers, essential-first
//! ordering) but reads only a local flat repository holding exactly the locked `.deb`s, so the
//! tree gets those versions and nothing else, without touching the network.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_release::metadata::Package;

use crate::command::CommandExt;
use crate::lockfile::LockedPackage;
use crate::progress::Progress;

/// Set before any package is configured, so the initramfs dracut makes when the kernel is
/// installed is generic (not host-only) and boots with ostree-prepare-root. zstd at a low level
/// instead of dracut's default `gzip -9`: the generic initramfs is ~130 MB uncompressed and gzip
/// was the slowest single step of a compose (the kernel has CONFIG_RD_ZSTD; the `zstd` package
/// must be in the tree, which `base.toml` ensures).
const DRACUT_CONF: &str =
    "hostonly=\"no\"\nadd_dracutmodules+=\" ostree \"\ncompress=\"zstd -q -3 -T0\"\n";

/// dpkg without an fsync per unpacked file, for the install only (the customize hook removes
/// it, so the OS's own dpkg stays safe). Nothing is lost: a tree whose compose did not finish is
/// thrown away, and the commit writes (and syncs) every object into the repository anyway.
const UNSAFE_IO: &str = "etc/dpkg/dpkg.cfg.d/50-cairn-compose-unsafe-io";

/// Installs `packages` from the flat repository `pool` into `tree` (which must not exist).
pub fn install(
    pool: &Path,
    packages: &[LockedPackage],
    suite: &str,
    architecture: &str,
    source_date_epoch: u64,
    tree: &Path,
    progress: &Progress,
) -> Result<()> {
    let sources = pool.join("pool.list");
    std::fs::write(
        &sources,
        format!("deb [trusted=yes] file:{} ./\n", pool.display()),
    )
    .context("Writing the pool's sources")?;
    let include: Vec<String> = packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    let setup = format!(
        "mkdir -p \"$1/etc/dracut.conf.d\" \"$1/etc/dpkg/dpkg.cfg.d\" \
         && printf '{}' > \"$1/etc/dracut.conf.d/50-cairn.conf\" \
         && echo force-unsafe-io > \"$1/{UNSAFE_IO}\"",
        DRACUT_CONF.replace('\n', "\\n")
    );
    Command::new("mmdebstrap")
        .args(["--variant=custom", "--mode=root", "--format=directory"])
        .arg(format!("--architectures={architecture}"))
        .arg("--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount")
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--setup-hook={setup}"))
        .arg(format!("--customize-hook=rm \"$1/{UNSAFE_IO}\""))
        .arg(format!("--include={}", include.join(",")))
        .arg(suite)
        .arg(tree)
        .arg(&sources)
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run_streaming(&mut |line| progress.detail(line))
        .context("Installing packages with mmdebstrap")?;
    remove_mount_point(tree, pool)?;
    verify_installed(tree, packages)
}

/// mmdebstrap's file-mirror hook bind-mounts the pool at its own path inside the tree and
/// leaves the empty directories behind; they are the build machine's paths, not the OS's.
fn remove_mount_point(tree: &Path, pool: &Path) -> Result<()> {
    let rel = pool.strip_prefix("/").unwrap_or(pool);
    let mut dir = tree.join(rel);
    while dir != tree && dir.starts_with(tree) {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            // Not empty (a directory the OS has, like /tmp) or already gone: stop there.
            Err(_) => break,
        }
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    Ok(())
}

/// Checks that dpkg installed exactly the locked set, fully configured.
fn verify_installed(tree: &Path, packages: &[LockedPackage]) -> Result<()> {
    let installed = installed_packages(tree, "var/lib/dpkg")?;
    let want: BTreeSet<Package> = packages.iter().map(LockedPackage::package).collect();
    let have: BTreeSet<Package> = installed.into_iter().collect();
    let missing: Vec<String> = want
        .difference(&have)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let extra: Vec<String> = have
        .difference(&want)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "the installed packages differ from the resolved set; missing: [{}], unexpected: [{}]",
            missing.join(", "),
            extra.join(", ")
        );
    }
    Ok(())
}

/// The fully installed packages of the dpkg database at `tree/admindir`.
pub fn installed_packages(tree: &Path, admindir: &str) -> Result<Vec<Package>> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", tree.join(admindir).display()))
        .args([
            "-W",
            "-f",
            "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n",
        ])
        .output_checked()
        .context("Listing installed packages")?;
    let mut packages = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 4 {
            continue;
        }
        if f[3].trim() != "ii" {
            bail!(
                "package {} is not fully installed (dpkg status {:?})",
                f[0],
                f[3].trim()
            );
        }
        packages.push(Package {
            name: f[0].into(),
            version: f[1].into(),
            architecture: f[2].into(),
        });
    }
    packages.sort();
    Ok(packages)
}
