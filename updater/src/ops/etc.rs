//! `/etc` files the three-way merge keeps although their default changed: reported, not
//! resolved. libostree merges `/etc` when it deploys (a locally changed file stays as the
//! administrator left it; everything else takes the new default); this module only works out
//! afterwards which kept files had a new default the host did not get, from three trees: the
//! merge deployment's `/usr/etc` (the old default), its `/etc` (local) and the new
//! deployment's `/usr/etc` (the new default). A file is listed where local ≠ old default and
//! old default ≠ new default (content, symlink target, mode or owner). Nothing here changes
//! the merge.
//!
//! The list of the last update is kept in `/var/lib/cairn/etc-conflicts.json` for
//! `cairn status` until the next update replaces it.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fn_error_context::context;
use serde::{Deserialize, Serialize};

use crate::host::state;
use crate::release::Release;

/// File name under `<var>/lib/cairn/`.
pub const FILE: &str = "etc-conflicts.json";

/// One `/etc` file whose new default was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcConflict {
    /// The path on the host, e.g. `/etc/ssh/sshd_config`.
    pub path: String,
    /// What the administrator did to it: `modified`, `added` (no old default) or `deleted`.
    pub local: String,
    /// What the new release did to its default: `changed`, `added` or `removed`.
    pub default: String,
    /// Always false: the local file was kept, the new default not applied.
    pub new_default_applied: bool,
}

/// The conflicts of the last update, as recorded for `cairn status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcConflicts {
    /// When the update ran, seconds since the epoch.
    pub at: u64,
    /// The release deployed.
    pub release: Release,
    /// The files, sorted by path.
    pub files: Vec<EtcConflict>,
}

/// One entry of a tree, as far as the merge compares it.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        content: Vec<u8>,
    },
    Symlink(PathBuf),
    Dir,
    Other,
}

/// The conflicts between `local` (a deployment's `/etc`), `old` (its `/usr/etc`) and `new`
/// (the new deployment's `/usr/etc`).
#[context("Comparing {} with its old default {} and the new default {}", local.display(), old.display(), new.display())]
pub fn conflicts(local: &Path, old: &Path, new: &Path) -> Result<Vec<EtcConflict>> {
    let mut names = BTreeSet::new();
    list(old, Path::new(""), &mut names)?;
    list(new, Path::new(""), &mut names)?;
    let mut out = Vec::new();
    for rel in names {
        let o = entry(&old.join(&rel))?;
        let n = entry(&new.join(&rel))?;
        if o == n || matches!((&o, &n), (Some(Entry::Dir), Some(Entry::Dir))) {
            continue;
        }
        let l = entry(&local.join(&rel))?;
        if l == o {
            continue;
        }
        let local_word = match (&o, &l) {
            (Some(_), None) => "deleted",
            (None, Some(_)) => "added",
            _ => "modified",
        };
        let default_word = match (&o, &n) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            _ => "changed",
        };
        out.push(EtcConflict {
            path: format!("/etc/{}", rel.display()),
            local: local_word.into(),
            default: default_word.into(),
            new_default_applied: false,
        });
    }
    Ok(out)
}

/// Every non-directory path below `dir` (relative), descending into directories but not
/// through symlinks. A missing `dir` has none.
fn list(dir: &Path, rel: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    let here = dir.join(rel);
    let entries = match std::fs::read_dir(&here) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("Reading directory {}", here.display())),
    };
    for e in entries {
        let e = e.with_context(|| format!("Reading directory {}", here.display()))?;
        let sub = rel.join(e.file_name());
        let ty = e
            .file_type()
            .with_context(|| format!("Reading {}", e.path().display()))?;
        if ty.is_dir() {
            list(dir, &sub, out)?;
        } else {
            out.insert(sub);
        }
    }
    Ok(())
}

fn entry(path: &Path) -> Result<Option<Entry>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("Reading {}", path.display())),
    };
    let ty = meta.file_type();
    Ok(Some(if ty.is_file() {
        Entry::File {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            content: std::fs::read(path).with_context(|| format!("Reading {}", path.display()))?,
        }
    } else if ty.is_symlink() {
        Entry::Symlink(
            std::fs::read_link(path).with_context(|| format!("Reading {}", path.display()))?,
        )
    } else if ty.is_dir() {
        Entry::Dir
    } else {
        Entry::Other
    }))
}

/// Records the conflicts of the update to `release` (replacing the previous update's).
pub fn save(var: &Path, release: &Release, files: &[EtcConflict]) -> Result<()> {
    state::save_json(
        var,
        FILE,
        &EtcConflicts {
            at: state::now(),
            release: release.clone(),
            files: files.to_vec(),
        },
    )
}

/// The conflicts of the last update, if recorded and there were any.
pub fn load(var: &Path) -> Option<EtcConflicts> {
    state::load_json::<EtcConflicts>(var, FILE).filter(|c| !c.files.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn only_kept_files_with_a_new_default_are_listed() {
        let t = tempfile::tempdir().unwrap();
        let (local, old, new) = (
            t.path().join("etc"),
            t.path().join("old"),
            t.path().join("new"),
        );
        for (rel, o, n, l) in [
            // unmodified, default changed: the merge takes the new default
            ("os-release", Some("v1"), Some("v2"), Some("v1")),
            // modified, default unchanged: nothing new was missed
            ("hostname", Some("a"), Some("a"), Some("mine")),
            // modified, default changed: conflict
            ("ssh/sshd_config", Some("old"), Some("new"), Some("mine")),
            // deleted, default changed: conflict
            ("motd", Some("old"), Some("new"), None),
            // added locally, and the new release ships a default for it: conflict
            ("local.conf", None, Some("new"), Some("mine")),
            // modified, default removed: conflict
            ("gone.conf", Some("old"), None, Some("mine")),
            // added locally only
            ("extra.conf", None, None, Some("mine")),
        ] {
            for (root, c) in [(&old, o), (&new, n), (&local, l)] {
                if let Some(c) = c {
                    write(root, rel, c);
                }
            }
        }
        let got = conflicts(&local, &old, &new).unwrap();
        let short: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|c| (c.path.as_str(), c.local.as_str(), c.default.as_str()))
            .collect();
        assert_eq!(
            short,
            [
                ("/etc/gone.conf", "modified", "removed"),
                ("/etc/local.conf", "added", "added"),
                ("/etc/motd", "deleted", "changed"),
                ("/etc/ssh/sshd_config", "modified", "changed"),
            ]
        );
        assert!(got.iter().all(|c| !c.new_default_applied));
    }

    #[test]
    fn records_round_trip_and_empty_lists_are_not_shown() {
        let t = tempfile::tempdir().unwrap();
        let rel = Release {
            commit: "c".into(),
            version: Some("1".into()),
            timestamp: 1,
        };
        assert!(load(t.path()).is_none());
        let one = EtcConflict {
            path: "/etc/a".into(),
            local: "modified".into(),
            default: "changed".into(),
            new_default_applied: false,
        };
        save(t.path(), &rel, std::slice::from_ref(&one)).unwrap();
        assert_eq!(load(t.path()).unwrap().files, [one]);
        save(t.path(), &rel, &[]).unwrap();
        assert!(load(t.path()).is_none());
    }
}
