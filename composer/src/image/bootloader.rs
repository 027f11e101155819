//! GRUB for BIOS: `grub-install --target=i386-pc` from the build machine onto the disk, the
//! static `/boot/grub/grub.cfg`, and the menu generator the deployment writers share.
//!
//! The menu itself is written by libostree during the deploy, through the commit's own
//! `/usr/lib/cairn/grub-menu` (named by `OSTREE_GRUB2_EXEC`): the same program `cairn` and
//! `ostree-finalize-staged.service` run on the host, so the first menu and every later one
//! agree.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::command::CommandExt;

/// The generator's path in the tree.
pub const GRUB_MENU: &str = cairn_release::tree::GRUB_MENU;
/// The static `grub.cfg`'s path in trees that ship it.
pub const STATIC_GRUB_CFG: &str = cairn_release::tree::STATIC_GRUB_CFG;
/// The static `grub.cfg` of this source tree, for commits that predate shipping it.
const FALLBACK_GRUB_CFG: &str = include_str!("../../../updater/data/grub.cfg");

/// A file of `commit` in `repo`, or `None` when the commit does not have it.
pub fn commit_file(repo: &Path, commit: &str, path: &str) -> Result<Option<String>> {
    let out = Command::new("ostree")
        .arg("cat")
        .arg(format!("--repo={}", repo.display()))
        .arg(commit)
        .arg(path)
        .output()
        .context("Running ostree cat")?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such file") || err.contains("not found") {
        return Ok(None);
    }
    bail!("ostree cat {commit} {path} failed: {}", err.trim())
}

/// Copies the commit's GRUB menu generator to `dir/grub-menu` and returns its path.
pub fn extract_generator(repo: &Path, commit: &str, dir: &Path) -> Result<PathBuf> {
    let Some(script) = commit_file(repo, commit, GRUB_MENU)? else {
        bail!("commit {commit} has no {GRUB_MENU}; compose it from a manifest that includes manifests/base.toml");
    };
    let path = dir.join("grub-menu");
    fs::write(&path, script).with_context(|| format!("Writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("Making {} executable", path.display()))?;
    Ok(path)
}

/// Installs GRUB's boot code on `disk` (the whole-disk loop device), its modules into
/// `boot_fs/grub`, and the static `grub.cfg` (the commit's, else this source tree's).
pub fn install(disk: &Path, boot_fs: &Path, repo: &Path, commit: &str) -> Result<()> {
    Command::new("grub-install")
        .arg("--target=i386-pc")
        .arg(format!("--boot-directory={}", boot_fs.display()))
        // Everything needed to find and read /boot goes into core.img.
        .arg("--modules=part_gpt ext2 search_fs_uuid")
        .arg("--no-floppy")
        .arg(disk)
        .run_checked()
        .context("Installing GRUB")?;
    let cfg = commit_file(repo, commit, STATIC_GRUB_CFG)?
        .unwrap_or_else(|| FALLBACK_GRUB_CFG.to_string());
    let path = boot_fs.join("grub/grub.cfg");
    fs::write(&path, cfg).with_context(|| format!("Writing {}", path.display()))
}

/// The default entry (the first `menuentry`, since the generator sets `default=0`) of the GRUB
/// menu libostree's `loader` symlink points at.
pub fn default_entry(boot_fs: &Path) -> Result<String> {
    let path = boot_fs.join("loader/grub.cfg");
    let menu = fs::read_to_string(&path).with_context(|| format!("Reading {}", path.display()))?;
    menu.lines()
        .find(|l| l.starts_with("menuentry "))
        .map(str::to_string)
        .with_context(|| format!("{} has no menuentry", path.display()))
}
