//! Room in the repository's filesystem (the root, on a host) for a new commit's objects,
//! checked after the commit-only pull and before the tree is fetched.
//!
//! - *Needed*: the commit's missing objects as they land in the host's repository
//!   ([`download_size::Missing::on_disk`]: unpacked sizes in whole blocks, plus a block per
//!   directory of the new checkout). A commit without an object list is not checked: its
//!   objects cannot be sized before they are fetched (logged).
//! - *Free*: the filesystem's free space minus the reserve libostree keeps for itself
//!   (`core.min-free-space-size`, else `core.min-free-space-percent` of the filesystem,
//!   default 3%): a pull that would eat into it fails half-way.
//! - *Freeable*: the deploy drops this stateroot's deployments that are neither booted, the
//!   merge deployment, pinned nor staged (libostree's `simple_write_deployment`, and the
//!   finalization of a staged one, keep only those). The objects only they reach — not
//!   reached by a kept deployment, by a ref other than the deployments' own, or by the new
//!   commit — are what pruning them frees. That space is only there once they are gone, so
//!   when the new objects fit only with it, those deployments are dropped and the repository
//!   pruned *before* the pull (the update would remove them anyway), and the room is measured
//!   again. When even that is not enough, nothing is changed and the error says how many
//!   bytes are missing on which mount.
//!
//! A bundle (offline, or a delta bundle fetched over HTTP) also needs scratch room there: the
//! file fetched, its members, and its delta decompressed ([`ensure_bundle_room`]); one that
//! does not fit is refused before anything is written (a delta bundle then falls back to the
//! pull, which needs none of it).
//!
//! Not counted: the static delta parts a pull keeps in the repository's `tmp/` while it
//! applies them, and the copy of `/etc` in the new deployment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::gio::prelude::*;
use cairn_release::{gio, ostree};
use fn_error_context::context;

use crate::host::download_size::{self, round_up, Missing};
use crate::host::progress::human_bytes;
use crate::host::pull;
use crate::host::source::Source;
use crate::host::sysroot::{DeploymentInfo, Host, SysrootLock};

/// libostree's default `core.min-free-space-percent`.
const DEFAULT_RESERVE_PERCENT: u64 = 3;

/// The room for a commit's objects in the repository's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRoom {
    /// The repository.
    pub repo: PathBuf,
    /// The mount point of the filesystem holding it.
    pub mount: PathBuf,
    /// Bytes the new objects need.
    pub needed: u64,
    /// Bytes free for the repository (after libostree's reserve).
    pub free: u64,
    /// The reserve libostree keeps free.
    pub reserve: u64,
    /// Bytes dropping the deployments this update removes anyway would free (`None`: could
    /// not be computed, so not counted).
    pub freeable: Option<u64>,
    /// Those deployments.
    pub dropped: Vec<DeploymentInfo>,
}

impl RootRoom {
    /// Bytes missing even with what dropping those deployments frees (0: it fits).
    pub fn missing(&self) -> u64 {
        self.needed
            .saturating_sub(self.free + self.freeable.unwrap_or(0))
    }
}

/// Measures the room for the objects `missing` (of `commit`) lacks.
#[context("Measuring the room for new objects in {}", host.path().join("ostree/repo").display())]
pub fn root_room(host: &Host, missing: &Missing) -> Result<RootRoom> {
    let repo_path = host.path().join("ostree/repo");
    let (free, size) = filesystem_space(&repo_path)?;
    let reserve = reserve(&host.repo(), size);
    let all = host.deployments();
    let merge = host.merge_deployment();
    let (dropped, kept): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|d| dropped_by_deploy(host.osname(), merge.as_ref(), d));
    let freeable = if dropped.is_empty() {
        Some(0)
    } else {
        match freeable(&host.repo(), &dropped, &kept, missing) {
            Ok(f) => Some(f),
            Err(e) => {
                log::warn!("not counting what dropping old deployments frees: {e:#}");
                None
            }
        }
    };
    Ok(RootRoom {
        mount: mount_point(&repo_path),
        repo: repo_path,
        needed: missing.on_disk,
        free: free.saturating_sub(reserve),
        reserve,
        freeable,
        dropped,
    })
}

/// Refuses when the repository's filesystem cannot hold the new objects of `commit` (its
/// commit object in the repository), after dropping the deployments the update removes
/// anyway if that makes them fit. See the module documentation. Returns the bytes the new
/// objects need (`None`: the commit does not say).
#[context("Checking the room for commit {commit} in the repository")]
pub fn ensure_root_room(
    host: &Host,
    lock: &SysrootLock<'_>,
    source: &Source,
    commit: &str,
) -> Result<Option<u64>> {
    let fetch = |c: &str| pull::fetch_commit_object(host, source, c).map(|_| ());
    let Some(missing) = download_size::missing_objects(&host.repo(), commit, Some(&fetch))? else {
        log::info!(
            "not checking the room for {commit} in the repository: the commit lists no \
             object sizes (ostree.sizes or cairn.sizes-new down to a commit the host has)"
        );
        return Ok(None);
    };
    let room = root_room(host, &missing)?;
    log::debug!("{room:?}");
    if room.needed <= room.free {
        return Ok(Some(room.needed));
    }
    if room.missing() > 0 || room.dropped.is_empty() {
        return Err(refuse(&room));
    }
    for d in &room.dropped {
        log::info!(
            "removing deployment {} ({}) before the pull: the update removes it anyway and \
             the new objects need its space",
            d.index,
            crate::release::describe(d.version.as_deref(), &d.commit)
        );
    }
    let keep: Vec<usize> = host
        .deployments()
        .iter()
        .filter(|d| !room.dropped.iter().any(|x| x.path == d.path))
        .map(|d| d.index)
        .collect();
    host.write_order(lock, &keep)?;
    let (objects, bytes) = host.cleanup(lock)?;
    log::info!("pruned {objects} objects, {bytes} bytes");
    host.reload()?;
    if !host.has_commit(commit)? {
        // No ref kept the commit object (`deploy` of an older version): fetch it again, by
        // checksum, so it is the one whose signature was checked.
        pull::fetch_commit_object(host, source, commit)?;
    }
    let missing =
        download_size::missing_objects(&host.repo(), commit, Some(&fetch))?.unwrap_or(missing);
    let again = root_room(host, &missing)?;
    if again.needed > again.free {
        return Err(refuse(&RootRoom {
            freeable: Some(0),
            ..again
        }));
    }
    Ok(Some(again.needed))
}

/// Refuses when the repository's filesystem lacks room for `scratch` bytes of bundle files
/// beside `objects` bytes of new objects (what the bundle's objects take when `None`: its
/// unpacked delta's size, whose parts hold them uncompressed). `opened` is the bundle once its
/// members are extracted (they take space already); `None` before it is fetched.
pub fn ensure_bundle_room(
    host: &Host,
    opened: Option<&cairn_release::bundle::Opened>,
    scratch: u64,
    objects: Option<u64>,
) -> Result<()> {
    let repo_path = host.path().join("ostree/repo");
    let (free, size) = filesystem_space(&repo_path)?;
    let reserve = reserve(&host.repo(), size);
    let unpacked = opened.and_then(|o| o.unpacked_size());
    let unpacking = match opened {
        Some(o) if o.unpacks() => unpacked.unwrap_or(0),
        _ => 0,
    };
    let Some(objects) = objects.or(unpacked) else {
        log::info!("not checking the room for the bundle's objects: it does not say their size");
        return Ok(());
    };
    let needed = scratch + unpacking + objects;
    let free = free.saturating_sub(reserve);
    if needed <= free {
        return Ok(());
    }
    bail!(
        "the filesystem mounted at {} (holding {}) has {} free (beyond libostree's reserve of \
         {}) but the bundle needs {}: {} for its files, {} for its delta unpacked and {} for \
         the new objects; free space there (`cairn cleanup`) and try again",
        mount_point(&repo_path).display(),
        repo_path.display(),
        human_bytes(free),
        human_bytes(reserve),
        human_bytes(needed),
        human_bytes(scratch),
        human_bytes(unpacking),
        human_bytes(objects)
    )
}

/// The error for a release that does not fit.
fn refuse(room: &RootRoom) -> anyhow::Error {
    let missing = room.missing();
    let freed = match room.freeable {
        Some(0) => String::new(),
        Some(f) => format!(
            " even after removing the {} deployment(s) the update would drop ({} freed)",
            room.dropped.len(),
            human_bytes(f)
        ),
        None => String::new(),
    };
    anyhow::anyhow!(
        "the filesystem mounted at {} (holding {}) has {} free for new objects (beyond \
         libostree's reserve of {}) but the new release needs {}: {} ({missing} bytes) \
         missing{freed}; free space there (`cairn cleanup` removes rollback and pending \
         deployments and prunes the repository; `cairn unpin` lets it remove a pinned one) \
         and try again",
        room.mount.display(),
        room.repo.display(),
        human_bytes(room.free),
        human_bytes(room.reserve),
        human_bytes(room.needed),
        human_bytes(missing)
    )
}

/// Whether writing a new deployment of `osname` drops `d`: libostree keeps other
/// stateroots', the booted, the merge, pinned and staged deployments.
fn dropped_by_deploy(osname: &str, merge: Option<&DeploymentInfo>, d: &DeploymentInfo) -> bool {
    d.osname == osname
        && !d.booted
        && !d.pinned
        && !d.staged
        && merge.is_none_or(|m| m.path != d.path)
}

/// Bytes the objects reached only by `dropped` take (not by `kept`, by refs other than the
/// deployments' `ostree/…`, or by `new`).
fn freeable(
    repo: &ostree::Repo,
    dropped: &[DeploymentInfo],
    kept: &[DeploymentInfo],
    new: &Missing,
) -> Result<u64> {
    let reach = |commit: &str| {
        repo.traverse_commit(commit, 0, gio::Cancellable::NONE)
            .with_context(|| format!("Listing the objects of commit {commit}"))
    };
    let mut keep = HashSet::new();
    for d in kept {
        keep.extend(reach(&d.commit)?);
    }
    let refs = repo
        .list_refs(None, gio::Cancellable::NONE)
        .context("Listing refs")?;
    for (name, commit) in refs {
        if name.starts_with("ostree/") {
            continue;
        }
        match reach(&commit) {
            Ok(objects) => keep.extend(objects),
            // A partial commit (only its commit object, as after `cairn check`) reaches
            // little; what it would reach is in `new` when it is the new commit.
            Err(e) => log::debug!("ref {name}: {e:#}"),
        }
    }
    // The new commit's objects beyond its lists are those of the commit the lists end at.
    if let Some(base) = &new.base {
        if !kept.iter().any(|d| &d.commit == base) {
            keep.extend(reach(base)?);
        }
    }
    let mut gone = HashSet::new();
    for d in dropped {
        gone.extend(reach(&d.commit)?);
    }
    let mut bytes = 0;
    for o in gone.difference(&keep) {
        let key = (o.object_type(), o.checksum().to_string());
        if new.listed.contains(&key) {
            continue;
        }
        let size = repo
            .query_object_storage_size(o.object_type(), o.checksum(), gio::Cancellable::NONE)
            .with_context(|| format!("Sizing object {}", o.checksum()))?;
        bytes += round_up(size);
    }
    Ok(bytes)
}

/// (free, total) bytes of the filesystem holding `dir`.
fn filesystem_space(dir: &Path) -> Result<(u64, u64)> {
    let info = gio::File::for_path(dir)
        .query_filesystem_info("filesystem::free,filesystem::size", gio::Cancellable::NONE)
        .with_context(|| format!("Reading the free space of {}", dir.display()))?;
    Ok((
        info.attribute_uint64("filesystem::free"),
        info.attribute_uint64("filesystem::size"),
    ))
}

/// The space libostree keeps free in a repository on a filesystem of `size` bytes.
fn reserve(repo: &ostree::Repo, size: u64) -> u64 {
    let config = repo.config();
    if let Ok(v) = config.string("core", "min-free-space-size") {
        match parse_size(v.as_str()) {
            Some(bytes) => return bytes,
            None => log::warn!("ignoring core.min-free-space-size {v:?}: not NMB, NGB or NTB"),
        }
    }
    let percent = config
        .string("core", "min-free-space-percent")
        .ok()
        .and_then(|p| p.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_RESERVE_PERCENT);
    size / 100 * percent
}

/// libostree's `min-free-space-size` syntax: a number with `MB`, `GB` or `TB` (powers of 2).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = [("MB", 20), ("GB", 30), ("TB", 40)]
        .iter()
        .find_map(|(suffix, shift)| s.strip_suffix(suffix).map(|n| (n, *shift)))?;
    num.trim().parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// The mount point of the filesystem holding `path` (the longest mount point in
/// `/proc/self/mountinfo` that contains it; `/` when that cannot be read).
fn mount_point(path: &Path) -> PathBuf {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return PathBuf::from("/");
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_in_libostree_syntax() {
        assert_eq!(parse_size("500MB"), Some(500 << 20));
        assert_eq!(parse_size("2GB"), Some(2 << 30));
        assert_eq!(parse_size("1 TB"), Some(1 << 40));
        assert_eq!(parse_size("12"), None);
        assert_eq!(parse_size("xMB"), None);
    }

    fn room(needed: u64, free: u64, freeable: Option<u64>) -> RootRoom {
        RootRoom {
            repo: "/sysroot/ostree/repo".into(),
            mount: "/sysroot".into(),
            needed,
            free,
            reserve: 100,
            freeable,
            dropped: Vec::new(),
        }
    }

    #[test]
    fn missing_counts_what_dropping_frees() {
        assert_eq!(room(1000, 400, Some(0)).missing(), 600);
        assert_eq!(room(1000, 400, Some(500)).missing(), 100);
        assert_eq!(room(1000, 400, Some(700)).missing(), 0);
        assert_eq!(room(1000, 400, None).missing(), 600);
    }

    #[test]
    fn refusal_names_mount_and_bytes() {
        let err = refuse(&room(5000, 1000, Some(0))).to_string();
        assert!(err.contains("mounted at /sysroot"), "{err}");
        assert!(err.contains("(4000 bytes) missing"), "{err}");
        assert!(err.contains("cairn cleanup"), "{err}");
    }
}
