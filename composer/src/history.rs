//! What changed between two commits (`cairn-compose diff`) and a ref's versions
//! (`cairn-compose log`).
//!
//! The file diff walks both commits' dirtree objects and descends only into directories whose
//! checksums differ, so its cost follows the size of the change, not of the tree.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result};
use cairn_release::glib;
use cairn_release::metadata::{CommitInfo, Package};
use cairn_release::ostree;
use serde::Serialize;

/// A package whose version changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionChange {
    /// Name.
    pub name: String,
    /// Version in the first commit.
    pub from: String,
    /// Version in the second commit.
    pub to: String,
}

/// The difference between two commits.
#[derive(Debug, Clone, Serialize)]
pub struct CommitDiff {
    /// First commit.
    pub from: CommitRef,
    /// Second commit.
    pub to: CommitRef,
    /// Packages only in the second.
    pub added: Vec<Package>,
    /// Packages only in the first.
    pub removed: Vec<Package>,
    /// Packages with a newer version in the second.
    pub upgraded: Vec<VersionChange>,
    /// Packages with an older version in the second.
    pub downgraded: Vec<VersionChange>,
    /// File counts.
    pub files: FileChanges,
}

/// A commit named in a diff.
#[derive(Debug, Clone, Serialize)]
pub struct CommitRef {
    /// Checksum.
    pub commit: String,
    /// Version.
    pub version: Option<String>,
}

/// Counts of changed paths (files, symlinks; directories only when their metadata changed).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FileChanges {
    /// Paths only in the second commit.
    pub added: usize,
    /// Paths only in the first commit.
    pub removed: usize,
    /// Paths whose content or metadata differ.
    pub changed: usize,
}

/// Diffs two commits.
pub fn diff(repo: &ostree::Repo, a: &CommitInfo, b: &CommitInfo) -> Result<CommitDiff> {
    let before: BTreeMap<&str, &Package> =
        a.packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let after: BTreeMap<&str, &Package> = b.packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut d = CommitDiff {
        from: CommitRef {
            commit: a.commit.clone(),
            version: a.version.clone(),
        },
        to: CommitRef {
            commit: b.commit.clone(),
            version: b.version.clone(),
        },
        added: after
            .iter()
            .filter(|(n, _)| !before.contains_key(*n))
            .map(|(_, p)| (*p).clone())
            .collect(),
        removed: before
            .iter()
            .filter(|(n, _)| !after.contains_key(*n))
            .map(|(_, p)| (*p).clone())
            .collect(),
        upgraded: Vec::new(),
        downgraded: Vec::new(),
        files: FileChanges::default(),
    };
    for (name, old) in &before {
        let Some(new) = after.get(name) else { continue };
        if old.version == new.version {
            continue;
        }
        let change = VersionChange {
            name: name.to_string(),
            from: old.version.clone(),
            to: new.version.clone(),
        };
        if debian_version_less(&old.version, &new.version)? {
            d.upgraded.push(change);
        } else {
            d.downgraded.push(change);
        }
    }
    let (ta, ma) = root_of(repo, &a.commit)?;
    let (tb, mb) = root_of(repo, &b.commit)?;
    diff_dirs(repo, (&ta, &ma), (&tb, &mb), &mut d.files)?;
    Ok(d)
}

/// Debian version ordering, as dpkg defines it.
fn debian_version_less(a: &str, b: &str) -> Result<bool> {
    let status = Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .status()
        .context("Running dpkg --compare-versions")?;
    Ok(status.success())
}

fn hex_of(v: &glib::Variant) -> String {
    hex::encode(v.data())
}

fn root_of(repo: &ostree::Repo, commit: &str) -> Result<(String, String)> {
    let v = repo
        .load_variant(ostree::ObjectType::Commit, commit)
        .with_context(|| format!("Loading commit {commit}"))?;
    Ok((hex_of(&v.child_value(6)), hex_of(&v.child_value(7))))
}

/// A dirtree's entries: files (name → content checksum) and directories (name → tree, meta).
type DirTree = (BTreeMap<String, String>, BTreeMap<String, (String, String)>);

fn load_dirtree(repo: &ostree::Repo, checksum: &str) -> Result<DirTree> {
    let v = repo
        .load_variant(ostree::ObjectType::DirTree, checksum)
        .with_context(|| format!("Loading directory {checksum}"))?;
    let mut files = BTreeMap::new();
    for f in v.child_value(0).iter() {
        let name: String = f.child_value(0).get().unwrap_or_default();
        files.insert(name, hex_of(&f.child_value(1)));
    }
    let mut dirs = BTreeMap::new();
    for d in v.child_value(1).iter() {
        let name: String = d.child_value(0).get().unwrap_or_default();
        dirs.insert(name, (hex_of(&d.child_value(1)), hex_of(&d.child_value(2))));
    }
    Ok((files, dirs))
}

fn count_all(repo: &ostree::Repo, tree: &str) -> Result<usize> {
    let (files, dirs) = load_dirtree(repo, tree)?;
    let mut n = files.len();
    for (t, _) in dirs.values() {
        n += 1 + count_all(repo, t)?;
    }
    Ok(n)
}

fn diff_dirs(
    repo: &ostree::Repo,
    a: (&str, &str),
    b: (&str, &str),
    out: &mut FileChanges,
) -> Result<()> {
    if a.1 != b.1 {
        out.changed += 1;
    }
    if a.0 == b.0 {
        return Ok(());
    }
    let (fa, da) = load_dirtree(repo, a.0)?;
    let (fb, db) = load_dirtree(repo, b.0)?;
    for (name, sum) in &fa {
        match fb.get(name) {
            Some(other) if other != sum => out.changed += 1,
            Some(_) => {}
            None => out.removed += 1,
        }
    }
    out.added += fb.keys().filter(|n| !fa.contains_key(*n)).count();
    for (name, (t, m)) in &da {
        match db.get(name) {
            Some((t2, m2)) => diff_dirs(repo, (t, m), (t2, m2), out)?,
            None => out.removed += 1 + count_all(repo, t)?,
        }
    }
    for (name, (t, _)) in &db {
        if !da.contains_key(name) {
            out.added += 1 + count_all(repo, t)?;
        }
    }
    Ok(())
}
