//! How much an update will download and write, worked out before its tree is fetched, from
//! what libostree knows once the commit object is in the repository (a commit-only pull):
//!
//! - **delta**: when the remote has a static delta to the commit from a commit the host has,
//!   the delta superblock's part sizes (a libostree dry-run pull, [`pull::delta_size`]) are
//!   what the pull downloads;
//! - **objects**: otherwise the commit's own object list with sizes (`ostree.sizes` in the
//!   commit metadata, written by `ostree commit --generate-sizes` and by the composer) against
//!   the objects the host's repository already has: the archived sizes of the missing ones are
//!   what an object pull downloads.
//!
//! The same object list gives what the new objects take on the repository's filesystem and
//! which objects the new commit needs ([`Missing`], used by [`crate::host::root_space`]). A
//! commit without `ostree.sizes` cannot be measured without fetching its trees: the numbers are
//! then unknown (`null`), never guessed.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use cairn_release::{gio, ostree};
use fn_error_context::context;
use serde::Serialize;

use crate::host::pull;
use crate::host::source::Source;
use crate::host::sysroot::Host;

/// The block size new objects are rounded up to on disk (ext4's and xfs's default).
pub const BLOCK: u64 = 4096;

/// How a download size was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// From the static delta's superblock.
    Delta,
    /// From the commit's object sizes against the objects the host has.
    Objects,
}

/// The objects of a commit the host's repository lacks, from the commit's `ostree.sizes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// How many objects are missing.
    pub objects: u64,
    /// Their archived (compressed) size: what an object pull downloads.
    pub archived: u64,
    /// What they take in the host's repository: each unpacked size rounded up to [`BLOCK`],
    /// plus one block per directory of the new checkout.
    pub on_disk: u64,
    /// Every object of the commit (present or not), as `(type, checksum)`.
    pub all: HashSet<(ostree::ObjectType, String)>,
}

/// What pulling a commit will download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSize {
    /// Bytes, when measurable.
    pub bytes: Option<u64>,
    /// How `bytes` was measured (`None` with `bytes`).
    pub measured: Option<Measure>,
    /// The missing objects, when the commit lists its objects' sizes.
    pub missing: Option<Missing>,
}

/// Measures what pulling `commit` (its commit object already in the repository) from
/// `source` downloads. The caller holds the sysroot lock (the dry run uses the repository).
#[context("Measuring the download of {commit}")]
pub fn measure(host: &Host, source: &Source, commit: &str) -> Result<DownloadSize> {
    let missing = missing_objects(&host.repo(), commit)?;
    if let Some(delta) = pull::delta_size(host, source, commit)? {
        log::debug!(
            "static delta to {commit}: {} parts, {} bytes ({} unpacked)",
            delta.parts,
            delta.bytes,
            delta.unpacked
        );
        return Ok(DownloadSize {
            bytes: Some(delta.bytes),
            measured: Some(Measure::Delta),
            missing,
        });
    }
    Ok(DownloadSize {
        bytes: missing.as_ref().map(|m| m.archived),
        measured: missing.as_ref().map(|_| Measure::Objects),
        missing,
    })
}

/// The objects of `commit` that `repo` lacks, from the commit's `ostree.sizes`; `None` when
/// the commit carries no such list.
#[context("Reading the object sizes of commit {commit}")]
pub fn missing_objects(repo: &ostree::Repo, commit: &str) -> Result<Option<Missing>> {
    let variant = repo
        .load_variant(ostree::ObjectType::Commit, commit)
        .with_context(|| format!("Loading commit {commit}"))?;
    let entries = match ostree::commit_get_object_sizes(&variant) {
        Ok(e) => e,
        Err(e) => {
            log::debug!("commit {commit} lists no object sizes: {e}");
            return Ok(None);
        }
    };
    if entries.is_empty() {
        log::debug!("commit {commit} lists no object sizes");
        return Ok(None);
    }
    let mut out = Missing::default();
    for entry in &entries {
        let objtype = entry.objtype();
        let checksum = entry.checksum().to_string();
        if objtype == ostree::ObjectType::DirTree {
            out.on_disk += BLOCK;
        }
        let have = repo
            .has_object(objtype, &checksum, gio::Cancellable::NONE)
            .with_context(|| format!("Looking up object {checksum}"))?;
        if !have {
            out.objects += 1;
            out.archived += entry.archived();
            out.on_disk += round_up(entry.unpacked());
        }
        out.all.insert((objtype, checksum));
    }
    Ok(Some(out))
}

/// Every object's unpacked size (checksum → bytes) from the `ostree.sizes` of `commit`; empty
/// when the commit carries none.
pub fn unpacked_sizes(repo: &ostree::Repo, commit: &str) -> Result<HashMap<String, u64>> {
    let variant = repo
        .load_variant(ostree::ObjectType::Commit, commit)
        .with_context(|| format!("Loading commit {commit}"))?;
    Ok(ostree::commit_get_object_sizes(&variant)
        .map(|entries| {
            entries
                .iter()
                .map(|e| (e.checksum().to_string(), e.unpacked()))
                .collect()
        })
        .unwrap_or_default())
}

/// `bytes` rounded up to whole [`BLOCK`]s (an empty file still takes an inode, no block).
pub fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK) * BLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_blocks() {
        assert_eq!(round_up(0), 0);
        assert_eq!(round_up(1), BLOCK);
        assert_eq!(round_up(BLOCK), BLOCK);
        assert_eq!(round_up(BLOCK + 1), 2 * BLOCK);
    }
}
