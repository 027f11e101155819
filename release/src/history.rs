//! Walking a ref's history and finding a version in it.

use anyhow::{bail, Context, Result};

use crate::metadata::CommitInfo;
use crate::ostree;

/// The commits of `rev`, newest first, following parents until one is missing (a pruned or
/// partial history ends there).
pub fn ref_history(repo: &ostree::Repo, rev: &str) -> Result<Vec<CommitInfo>> {
    let Some(mut commit) = resolve(repo, rev)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    loop {
        let Some(info) = load_if_present(repo, &commit)? else {
            break;
        };
        let parent = info.parent.clone();
        out.push(info);
        match parent {
            Some(p) => commit = p,
            None => break,
        }
    }
    Ok(out)
}

/// The commit checksum `rev` names, if the ref exists. `rev` is a ref or a checksum.
pub fn resolve(repo: &ostree::Repo, rev: &str) -> Result<Option<String>> {
    let resolved = repo
        .resolve_rev(rev, true)
        .with_context(|| format!("Resolving {rev:?}"))?;
    Ok(resolved.map(|s| s.to_string()))
}

fn load_if_present(repo: &ostree::Repo, commit: &str) -> Result<Option<CommitInfo>> {
    let present = repo
        .has_object(
            ostree::ObjectType::Commit,
            commit,
            ostree::gio::Cancellable::NONE,
        )
        .with_context(|| format!("Looking up commit {commit}"))?;
    if !present {
        return Ok(None);
    }
    CommitInfo::load(repo, commit).map(Some)
}

/// Finds a commit by version on `ref_`'s history, or by commit checksum (full or a unique
/// prefix of at least 8 characters), or as a ref name.
pub fn find_revision(repo: &ostree::Repo, ref_: Option<&str>, rev: &str) -> Result<CommitInfo> {
    if let Some(r) = ref_ {
        if let Some(found) = ref_history(repo, r)?
            .into_iter()
            .find(|c| c.version.as_deref() == Some(rev) || c.commit == rev)
        {
            return Ok(found);
        }
    }
    // A ref, a full checksum or a prefix libostree can expand.
    if let Ok(Some(commit)) = repo
        .resolve_rev(rev, true)
        .map(|o| o.map(|s| s.to_string()))
    {
        return CommitInfo::load(repo, &commit);
    }
    // A version on any ref.
    let refs = repo
        .list_refs(None, ostree::gio::Cancellable::NONE)
        .context("Listing refs")?;
    for name in refs.keys() {
        if let Some(found) = ref_history(repo, name)?
            .into_iter()
            .find(|c| c.version.as_deref() == Some(rev))
        {
            return Ok(found);
        }
    }
    bail!("{rev:?} is neither a version, a commit nor a ref in this repository")
}
