//! `cairn-compose prune`: retention. Keeps the newest N versions of each ref (or of one ref),
//! plus versions named with `--keep-version`; removes the other commits of those refs'
//! histories, the objects only they used, and the static deltas that start or end at a removed
//! commit; regenerates the summary.
//!
//! How: the commit objects to drop are deleted, then libostree prunes every object no
//! remaining commit reaches (all commits count as roots, so kept versions off the ref's
//! remaining history survive). A ref's history then ends at its oldest kept commit: hosts pull
//! commits by checksum and never need the parents, so a host on a removed version still
//! updates (with a full pull, no delta fits).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cairn_release::history::ref_history;
use cairn_release::metadata::CommitInfo;
use cairn_release::{gio, ostree};
use fn_error_context::context;
use serde::Serialize;

use crate::{commit, delta};

/// What to keep.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The repository.
    pub repo: PathBuf,
    /// Versions to keep per ref (at least 1).
    pub keep: usize,
    /// Only this ref (default: every ref).
    pub osref: Option<String>,
    /// Versions (or commits) to keep whatever their age.
    pub keep_versions: Vec<String>,
}

/// A removed commit.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The commit.
    pub commit: String,
    /// Its version.
    pub version: Option<String>,
}

/// What prune did.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// Commits removed.
    pub removed: Vec<Removed>,
    /// Objects deleted.
    pub objects_deleted: i32,
    /// Bytes freed by deleted objects.
    pub bytes_freed: u64,
    /// Static deltas removed, as `FROM-TO` (FROM empty for a full delta).
    pub deltas_removed: Vec<String>,
}

/// Prunes the repository.
#[context("Pruning {}", opts.repo.display())]
pub fn prune(opts: &PruneOptions) -> Result<Pruned> {
    if opts.keep == 0 {
        bail!("--keep must be at least 1: a ref's newest commit is always kept");
    }
    let repo = crate::repo::open_repo(&opts.repo)?;
    let refs = repo
        .list_refs(None, gio::Cancellable::NONE)
        .context("Listing refs")?;
    let mut names: Vec<String> = refs.keys().map(|k| k.to_string()).collect();
    names.sort();
    if let Some(r) = &opts.osref {
        if !names.contains(r) {
            bail!("ref {r} does not exist in {}", opts.repo.display());
        }
    }
    let mut keep = BTreeSet::new();
    let mut candidates: Vec<CommitInfo> = Vec::new();
    for name in &names {
        let history = ref_history(&repo, name)?;
        let pruned_ref = opts.osref.as_deref().is_none_or(|r| r == name);
        let kept = if pruned_ref { opts.keep } else { usize::MAX };
        for (i, c) in history.into_iter().enumerate() {
            if i < kept {
                keep.insert(c.commit.clone());
            } else {
                candidates.push(c);
            }
        }
    }
    for v in &opts.keep_versions {
        let found: Vec<&CommitInfo> = candidates
            .iter()
            .filter(|c| c.version.as_deref() == Some(v.as_str()) || c.commit == *v)
            .collect();
        if found.is_empty() && !keep.iter().any(|c| c == v) {
            let on_refs = names
                .iter()
                .map(|n| ref_history(&repo, n))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .any(|c| c.version.as_deref() == Some(v.as_str()));
            if !on_refs {
                bail!("--keep-version {v}: no such version or commit on the pruned refs");
            }
        }
        for c in found {
            keep.insert(c.commit.clone());
        }
    }
    let mut removed = Vec::new();
    for c in candidates {
        if keep.contains(&c.commit) || removed.iter().any(|r: &Removed| r.commit == c.commit) {
            continue;
        }
        repo.delete_object(
            ostree::ObjectType::Commit,
            &c.commit,
            gio::Cancellable::NONE,
        )
        .with_context(|| format!("Deleting commit {}", c.commit))?;
        removed.push(Removed {
            commit: c.commit,
            version: c.version,
        });
    }
    let (_, objects_deleted, bytes_freed) = repo
        .prune(ostree::RepoPruneFlags::NONE, 0, gio::Cancellable::NONE)
        .context("Pruning unreachable objects")?;
    let deltas_removed = delta::remove_dangling(&repo, &opts.repo)?
        .into_iter()
        .map(|(f, t)| format!("{}-{t}", f.unwrap_or_default()))
        .collect();
    commit::regenerate_summary(&repo)?;
    Ok(Pruned {
        removed,
        objects_deleted,
        bytes_freed,
        deltas_removed,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_mistyped_repository_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("biuld/repo");
        let err = prune(&PruneOptions {
            repo: typo.clone(),
            keep: 1,
            osref: None,
            keep_versions: Vec::new(),
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&typo.display().to_string()), "{msg}");
        assert!(msg.contains("not an OSTree repository"), "{msg}");
        assert!(!typo.exists(), "prune must not create a repository");
    }
}
