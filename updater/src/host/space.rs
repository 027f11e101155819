//! Room in `/boot` for a new deployment: its kernel and initramfs against the free space of
//! the sysroot's `/boot` filesystem, checked after the tree is fetched and before anything
//! is written there, so that a full `/boot` fails with a message instead of half a boot entry.
//!
//! A kernel and initramfs identical to those of a deployment already on the host need no room:
//! libostree shares one boot directory per boot checksum. What a later cleanup would free is
//! not counted.

use std::path::Path;

use anyhow::{bail, Context, Result};
use cairn_release::gio::prelude::*;
use cairn_release::{gio, ostree};
use fn_error_context::context;

use crate::host::progress::human_bytes;
use crate::host::sysroot::Host;

/// A boot file of a commit: its content checksum and size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BootFile {
    checksum: String,
    size: u64,
}

/// Refuses when the sysroot's `/boot` cannot hold the boot files of `commit` (in the
/// repository). A free space that cannot be read is logged and not refused.
#[context("Checking the room in /boot for commit {commit}")]
pub fn check_boot_room(host: &Host, commit: &str) -> Result<()> {
    let repo = host.repo();
    let new = boot_files(&repo, commit)?;
    let mut have = Vec::new();
    for d in host.deployments() {
        match boot_files(&repo, &d.commit) {
            Ok(files) => have.extend(files),
            Err(e) => log::debug!("{e:#}"),
        }
    }
    let need = needed(&new, &have);
    let boot = host.path().join("boot");
    let free = match free_bytes(&boot) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("not checking the room in /boot: {e:#}");
            return Ok(());
        }
    };
    refuse_if_short(&boot, need, free)
}

fn needed(new: &[BootFile], have: &[BootFile]) -> u64 {
    new.iter()
        .filter(|f| !have.iter().any(|h| h.checksum == f.checksum))
        .map(|f| f.size)
        .sum()
}

fn refuse_if_short(boot: &Path, need: u64, free: u64) -> Result<()> {
    if need > free {
        bail!(
            "{} has {} free but the new kernel and initramfs need {}: {} ({need} bytes) \
             missing; free space there (`cairn cleanup` removes rollback deployments' boot \
             files) and try again",
            boot.display(),
            human_bytes(free),
            human_bytes(need),
            human_bytes(need - free)
        );
    }
    log::debug!("{}: {need} bytes needed, {free} free", boot.display());
    Ok(())
}

/// The kernel and initramfs of `commit`: `usr/lib/modules/*/{vmlinuz,initramfs.img}`.
fn boot_files(repo: &ostree::Repo, commit: &str) -> Result<Vec<BootFile>> {
    let (root, _) = repo
        .read_commit(commit, gio::Cancellable::NONE)
        .with_context(|| format!("Reading commit {commit}"))?;
    let modules = root.resolve_relative_path("usr/lib/modules");
    let mut out = Vec::new();
    let children = match modules.enumerate_children(
        "standard::name,standard::type",
        gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
        gio::Cancellable::NONE,
    ) {
        Ok(c) => c,
        Err(_) => return Ok(out),
    };
    while let Some(info) = children
        .next_file(gio::Cancellable::NONE)
        .context("Listing usr/lib/modules")?
    {
        if info.file_type() != gio::FileType::Directory {
            continue;
        }
        let dir = modules.child(info.name());
        for name in ["vmlinuz", "initramfs.img"] {
            let f = dir.child(name);
            let Ok(meta) = f.query_info(
                "standard::size",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                gio::Cancellable::NONE,
            ) else {
                continue;
            };
            let checksum = f
                .downcast_ref::<ostree::RepoFile>()
                .map(|r| r.checksum().to_string())
                .unwrap_or_default();
            out.push(BootFile {
                checksum,
                size: u64::try_from(meta.size()).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

fn free_bytes(dir: &Path) -> Result<u64> {
    let info = gio::File::for_path(dir)
        .query_filesystem_info("filesystem::free", gio::Cancellable::NONE)
        .with_context(|| format!("Reading the free space of {}", dir.display()))?;
    Ok(info.attribute_uint64("filesystem::free"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn f(c: &str, size: u64) -> BootFile {
        BootFile {
            checksum: c.into(),
            size,
        }
    }

    #[test]
    fn shared_boot_files_need_no_room() {
        let new = [f("k2", 100), f("i2", 50)];
        assert_eq!(needed(&new, &[f("k1", 90), f("i1", 40)]), 150);
        assert_eq!(needed(&new, &[f("k2", 100), f("i1", 40)]), 50);
        assert_eq!(needed(&new, &new), 0);
    }

    #[test]
    fn short_boot_names_the_bytes_missing() {
        let boot = Path::new("/sysroot/boot");
        refuse_if_short(boot, 100, 100).unwrap();
        let err = refuse_if_short(boot, 5000, 1000).unwrap_err().to_string();
        assert!(err.contains("/sysroot/boot"), "{err}");
        assert!(
            err.contains("4000 bytes") || err.contains("(5000 bytes)"),
            "{err}"
        );
        assert!(err.contains("missing"), "{err}");
    }
}
