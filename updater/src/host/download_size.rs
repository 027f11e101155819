//! How much an update will download and write, worked out before its tree is fetched, from
//! what libostree knows once the commit object is in the repository (a commit-only pull):
//!
//! - **bundle**: when the remote has a delta bundle from a commit the host has
//!   ([`remote_delta`]), its length, which is what the upgrade fetches;
//! - **delta**: otherwise, when the remote has a static delta to the commit from a commit the host has,
//!   the delta superblock's part sizes (a libostree dry-run pull, [`pull::delta_size`]) are
//!   what the pull downloads;
//! - **objects**: otherwise the commit's object list with sizes against the objects the
//!   host's repository already has: the archived sizes of the missing ones are what an object
//!   pull downloads. The list is in the commit metadata ([`object_sizes`]): every object
//!   (`ostree.sizes`, from `ostree commit --generate-sizes` or the composer's first commit),
//!   or the objects new over the parent (`cairn.sizes-new`, the composer's later commits),
//!   joined along the parents — their commit objects fetched as needed — down to a commit
//!   the host holds whole.
//!
//! The same object list gives what the new objects take on the repository's filesystem and
//! which objects the new commit needs ([`Missing`], used by [`crate::host::root_space`]). A
//! commit without a list (or whose chain of lists ends before a commit the host holds) cannot
//! be measured without fetching its trees: the numbers are then unknown (`null`), never
//! guessed.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use cairn_release::object_sizes::{self, Listed, ObjectSize};
use cairn_release::{gio, ostree};
use fn_error_context::context;
use serde::Serialize;

use crate::host::source::Source;
use crate::host::sysroot::Host;
use crate::host::{pull, remote_delta};

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
    /// The length of the remote's delta bundle from a commit the host has.
    Bundle,
}

/// The objects of a commit the host's repository lacks, from the commit's object list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// How many objects are missing.
    pub objects: u64,
    /// Their archived (compressed) size: what an object pull downloads.
    pub archived: u64,
    /// What they take in the host's repository: each unpacked size rounded up to [`BLOCK`],
    /// plus one block per directory of the new checkout.
    pub on_disk: u64,
    /// The objects the commit's lists name (present or not), as `(type, checksum)`: with
    /// `base`, the commit's objects beyond those of `base`.
    pub listed: HashSet<(ostree::ObjectType, String)>,
    /// The commit the host holds whole that the lists were joined down to, whose objects are
    /// the rest of the commit's (not listed one by one: ~30,000 entries for an OS tree, which
    /// set the updater's peak memory).
    pub base: Option<String>,
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
    let fetch = |c: &str| pull::fetch_commit_object(host, source, c).map(|_| ());
    let missing = missing_objects(&host.repo(), commit, Some(&fetch))?;
    if let Some(found) = remote_delta::find(host, source, commit) {
        log::debug!(
            "delta bundle to {commit}: {} ({:?} bytes)",
            found.url,
            found.bytes
        );
        if let Some(bytes) = found.bytes {
            return Ok(DownloadSize {
                bytes: Some(bytes),
                measured: Some(Measure::Bundle),
                missing,
            });
        }
    }
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

/// How many parents a chain of [`object_sizes::NEW_KEY`] lists is followed, at most, to a
/// commit the host holds whole: a host many releases behind fetches that many commit objects
/// (each a few KB) before it can size the update.
const MAX_PARENTS: usize = 64;

/// A commit's objects with their sizes, as its metadata lists them.
#[derive(Debug, Default)]
pub struct ObjectList {
    /// The listed objects (the union along the chain; may repeat).
    pub listed: Vec<ObjectSize>,
    /// The commit the repository holds whole where a chain of "new over the parent" lists
    /// ended: the listed commit has no object beyond it and `listed`.
    pub base: Option<String>,
}

/// Fetches a commit object (by checksum) into the repository.
pub type FetchCommit<'a> = &'a dyn Fn(&str) -> Result<()>;

/// The objects `commit` (its commit object in `repo`) lists with sizes: its own full list
/// ([`object_sizes::ALL_KEY`]), or its new objects joined with its parent's list, and so on
/// down to a commit `repo` holds whole. A parent's commit object missing from `repo` is
/// fetched with `fetch` (when given). `None` when the commit lists nothing, or the chain
/// cannot be followed (logged).
pub fn object_list(
    repo: &ostree::Repo,
    commit: &str,
    fetch: Option<FetchCommit<'_>>,
) -> Result<Option<ObjectList>> {
    let mut out = ObjectList::default();
    let mut at = commit.to_string();
    for _ in 0..=MAX_PARENTS {
        let variant = match repo.load_variant(ostree::ObjectType::Commit, &at) {
            Ok(v) => v,
            Err(e) => {
                if at == commit {
                    return Err(e).with_context(|| format!("Loading commit {at}"));
                }
                let Some(fetch) = fetch else {
                    log::debug!("cannot size {commit}: its ancestor {at} is not here");
                    return Ok(None);
                };
                if let Err(e) = fetch(&at) {
                    log::info!("cannot size {commit}: its ancestor {at} is not there: {e:#}");
                    return Ok(None);
                }
                repo.load_variant(ostree::ObjectType::Commit, &at)
                    .with_context(|| format!("Loading commit {at}"))?
            }
        };
        match object_sizes::listed(&variant).with_context(|| format!("Commit {at}"))? {
            Listed::Nothing => {
                log::debug!("commit {at} lists no object sizes");
                return Ok(None);
            }
            Listed::All(objects) => {
                out.listed.extend(objects);
                return Ok(Some(out));
            }
            Listed::NewOverParent { parent, objects } => {
                out.listed.extend(objects);
                if holds_whole(repo, &parent) {
                    out.base = Some(parent);
                    return Ok(Some(out));
                }
                at = parent;
            }
        }
    }
    log::info!("cannot size {commit}: more than {MAX_PARENTS} releases behind the host's");
    Ok(None)
}

/// Whether `repo` has `commit` and every object it reaches (not a commit-only pull).
fn holds_whole(repo: &ostree::Repo, commit: &str) -> bool {
    repo.load_commit(commit)
        .map(|(_, state)| !state.contains(ostree::RepoCommitState::PARTIAL))
        .unwrap_or(false)
}

/// The objects of `commit` that `repo` lacks, from the object lists of `commit` and, for a
/// list of new objects, its parents' (fetched with `fetch` when missing); `None` when they
/// cannot be known. Conservative where the lists are: an object a parent added that `commit`
/// dropped again counts as needed.
#[context("Reading the object sizes of commit {commit}")]
pub fn missing_objects(
    repo: &ostree::Repo,
    commit: &str,
    fetch: Option<FetchCommit<'_>>,
) -> Result<Option<Missing>> {
    let Some(list) = object_list(repo, commit, fetch)? else {
        return Ok(None);
    };
    let mut out = Missing {
        base: list.base.clone(),
        ..Missing::default()
    };
    // The directories of the new checkout: the base's, and the listed ones.
    let mut dirs = match &list.base {
        Some(base) => dirtrees_of(repo, base)?,
        None => HashSet::new(),
    };
    for entry in list.listed {
        let key = (entry.objtype, entry.checksum);
        if out.listed.contains(&key) {
            continue;
        }
        // The base's objects are all here: only the listed ones can be missing.
        let have = repo
            .has_object(key.0, &key.1, gio::Cancellable::NONE)
            .with_context(|| format!("Looking up object {}", key.1))?;
        if !have {
            out.objects += 1;
            out.archived += entry.archived;
            out.on_disk += round_up(entry.unpacked);
        }
        if key.0 == ostree::ObjectType::DirTree {
            dirs.insert(key.1.clone());
        }
        out.listed.insert(key);
    }
    // A block for each directory of the new checkout.
    out.on_disk += dirs.len() as u64 * BLOCK;
    Ok(Some(out))
}

/// The dirtree checksums of `commit`'s tree (in `repo`, whole).
fn dirtrees_of(repo: &ostree::Repo, commit: &str) -> Result<HashSet<String>> {
    let v = repo
        .load_variant(ostree::ObjectType::Commit, commit)
        .with_context(|| format!("Loading commit {commit}"))?;
    let mut seen = HashSet::new();
    let mut stack = vec![hex::encode(v.child_value(6).data())];
    while let Some(tree) = stack.pop() {
        if !seen.insert(tree.clone()) {
            continue;
        }
        let t = repo
            .load_variant(ostree::ObjectType::DirTree, &tree)
            .with_context(|| format!("Loading dirtree {tree}"))?;
        // `(a(say)a(sayay))`: the directories are (name, dirtree, dirmeta).
        for d in t.child_value(1).iter() {
            stack.push(hex::encode(d.child_value(1).data()));
        }
    }
    Ok(seen)
}

/// The unpacked size (checksum → bytes) of each object `commit` lists along its chain of
/// lists, as far as the commit objects in `repo` go (nothing is fetched); empty when the
/// commit lists none.
pub fn unpacked_sizes(repo: &ostree::Repo, commit: &str) -> Result<HashMap<String, u64>> {
    Ok(object_list(repo, commit, None)?
        .map(|list| {
            list.listed
                .into_iter()
                .map(|e| (e.checksum, e.unpacked))
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
