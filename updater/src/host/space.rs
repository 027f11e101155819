//! Room in `/boot` for a new deployment: its kernel and initramfs against the free space of
//! the sysroot's `/boot` filesystem. `cairn check` measures it before the tree is fetched
//! (after a pull of the directory metadata down to `usr/lib/modules/*`, [`fetch_boot_metadata`],
//! with file sizes from the commit's object lists); `apply` refuses after the tree is
//! fetched and before anything is written there, so that a full `/boot` fails with a message
//! instead of half a boot entry.
//!
//! A kernel and initramfs identical to those of a deployment already on the host need no room:
//! libostree shares one boot directory per boot checksum. What a later cleanup would free is
//! not counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::gio::prelude::*;
use cairn_release::{gio, glib, ostree};
use fn_error_context::context;

use crate::host::download_size;
use crate::host::progress::human_bytes;
use crate::host::pull;
use crate::host::source::Source;
use crate::host::sysroot::Host;

/// The directory of a tree that holds one directory per kernel.
const MODULES: [&str; 3] = ["usr", "lib", "modules"];

/// A boot file of a commit: its content checksum and size (`None`: unknown, neither in the
/// repository nor in the commit's object lists).
#[derive(Debug, Clone, PartialEq, Eq)]
struct BootFile {
    checksum: String,
    size: Option<u64>,
}

/// What a commit's kernel and initramfs need in `/boot`, and what is free there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRoom {
    /// The sysroot's `/boot`.
    pub path: PathBuf,
    /// Bytes the new boot files need (`None`: a size is unknown).
    pub needed: Option<u64>,
    /// Bytes free there (`None`: could not be read).
    pub free: Option<u64>,
}

/// Fetches the directory metadata of `commit` down to each kernel directory in
/// `usr/lib/modules` (no file content), so that [`boot_room`] can find its boot files before
/// the tree is fetched.
#[context("Fetching the kernel directories' metadata of {commit}")]
pub fn fetch_boot_metadata(host: &Host, source: &Source, commit: &str) -> Result<()> {
    let modules = format!("/{}", MODULES.join("/"));
    pull::fetch_dir_metadata(host, source, commit, std::slice::from_ref(&modules))?;
    let repo = host.repo();
    let Some(dirs) = modules_dir(&repo, commit)? else {
        return Ok(());
    };
    let kernels: Vec<String> = dirs
        .dirs
        .iter()
        .map(|(name, _)| format!("{modules}/{name}"))
        .collect();
    if kernels.is_empty() {
        return Ok(());
    }
    pull::fetch_dir_metadata(host, source, commit, &kernels)
}

/// What the boot files of `commit` (its directory metadata in the repository) need in the
/// sysroot's `/boot` beyond those of the deployments on the host, and what is free there.
#[context("Measuring the room in /boot for commit {commit}")]
pub fn boot_room(host: &Host, commit: &str) -> Result<BootRoom> {
    let repo = host.repo();
    let sizes = download_size::unpacked_sizes(&repo, commit)?;
    let new = boot_files(&repo, commit, &sizes)?;
    let mut have = Vec::new();
    for d in host.deployments() {
        match boot_files(&repo, &d.commit, &HashMap::new()) {
            Ok(files) => have.extend(files),
            Err(e) => log::debug!("{e:#}"),
        }
    }
    let path = host.path().join("boot");
    let free = match free_bytes(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            log::warn!("{e:#}");
            None
        }
    };
    Ok(BootRoom {
        needed: needed(&new, &have),
        free,
        path,
    })
}

/// Refuses when the sysroot's `/boot` cannot hold the boot files of `commit` (in the
/// repository). A free space that cannot be read is logged and not refused.
#[context("Checking the room in /boot for commit {commit}")]
pub fn check_boot_room(host: &Host, commit: &str) -> Result<()> {
    let room = boot_room(host, commit)?;
    match (room.needed, room.free) {
        (Some(need), Some(free)) => refuse_if_short(&room.path, need, free),
        _ => {
            log::warn!("not checking the room in /boot: a size is unknown");
            Ok(())
        }
    }
}

fn needed(new: &[BootFile], have: &[BootFile]) -> Option<u64> {
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

/// A directory's entries, from its dirtree object: files and subdirectories with their
/// checksums (content; dirtree).
struct DirTree {
    files: Vec<(String, String)>,
    dirs: Vec<(String, String)>,
}

fn checksum_of(v: &glib::Variant) -> Result<String> {
    let bytes = v
        .fixed_array::<u8>()
        .map_err(|e| anyhow::anyhow!("a checksum that is not a byte array: {e}"))?;
    Ok(hex::encode(bytes))
}

fn load_dirtree(repo: &ostree::Repo, checksum: &str) -> Result<DirTree> {
    let v = repo
        .load_variant(ostree::ObjectType::DirTree, checksum)
        .with_context(|| format!("Loading directory metadata {checksum}"))?;
    let entries = |i: usize| -> Result<Vec<(String, String)>> {
        let list = v.try_child_value(i).context("a dirtree without entries")?;
        let mut out = Vec::new();
        for e in list.iter() {
            let name = e
                .try_child_value(0)
                .and_then(|n| n.str().map(str::to_string))
                .context("a dirtree entry without a name")?;
            let sum = e
                .try_child_value(1)
                .context("a dirtree entry without a checksum")?;
            out.push((name, checksum_of(&sum)?));
        }
        Ok(out)
    };
    Ok(DirTree {
        files: entries(0)?,
        dirs: entries(1)?,
    })
}

/// The `usr/lib/modules` directory of `commit`, if the tree has one.
fn modules_dir(repo: &ostree::Repo, commit: &str) -> Result<Option<DirTree>> {
    let v = repo
        .load_variant(ostree::ObjectType::Commit, commit)
        .with_context(|| format!("Loading commit {commit}"))?;
    let root = v
        .try_child_value(6)
        .context("a commit without a root tree")?;
    let mut dir = load_dirtree(repo, &checksum_of(&root)?)?;
    for name in MODULES {
        let Some((_, sum)) = dir.dirs.iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        dir = load_dirtree(repo, sum)?;
    }
    Ok(Some(dir))
}

/// The kernel and initramfs of `commit`: `usr/lib/modules/*/{vmlinuz,initramfs.img}`, sized
/// from the repository, else from `sizes` (checksum → unpacked size).
fn boot_files(
    repo: &ostree::Repo,
    commit: &str,
    sizes: &HashMap<String, u64>,
) -> Result<Vec<BootFile>> {
    let mut out = Vec::new();
    let Some(modules) = modules_dir(repo, commit)? else {
        return Ok(out);
    };
    for (_, sum) in &modules.dirs {
        let kernel = load_dirtree(repo, sum)?;
        for (name, checksum) in &kernel.files {
            if name != "vmlinuz" && name != "initramfs.img" {
                continue;
            }
            let size = match repo.load_file(checksum, gio::Cancellable::NONE) {
                Ok((_, info, _)) => u64::try_from(info.size()).ok(),
                _ => sizes.get(checksum).copied(),
            };
            out.push(BootFile {
                checksum: checksum.clone(),
                size,
            });
        }
    }
    Ok(out)
}

/// Bytes free on the filesystem holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> Result<u64> {
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
            size: Some(size),
        }
    }

    #[test]
    fn shared_boot_files_need_no_room() {
        let new = [f("k2", 100), f("i2", 50)];
        assert_eq!(needed(&new, &[f("k1", 90), f("i1", 40)]), Some(150));
        assert_eq!(needed(&new, &[f("k2", 100), f("i1", 40)]), Some(50));
        assert_eq!(needed(&new, &new), Some(0));
        let unknown = [BootFile {
            checksum: "k3".into(),
            size: None,
        }];
        assert_eq!(needed(&unknown, &new), None);
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
