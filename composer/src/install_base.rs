//! Cached fresh installs, so a recompose pays for what changed rather than for the whole tree.
//!
//! After a from-scratch install the composer keeps the raw tree (before post-processing) with
//! the package set it holds, and post-processes an overlayfs view of it. The next compose of the
//! same ref mounts such a view of it too and lets apt install, upgrade, downgrade and purge only
//! the packages whose locked version differs; the base itself is never written to.
//!
//! The base is always a *fresh* install, never the result of an earlier transition: a tree
//! therefore depends on two package sets (the base's and its own, both recorded in the commit),
//! not on the chain of composes before it. When the difference grows past a quarter of the
//! packages, or cannot be expressed to apt, the compose installs from scratch and that install
//! becomes the new base.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::CommandExt;
use crate::lockfile::LockedPackage;
use crate::workdir::remove_tree;

/// The package changes that turn a base install into the locked set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Packages to install at their locked version (new, upgraded or downgraded).
    pub install: Vec<LockedPackage>,
    /// Packages of the base to purge.
    pub purge: Vec<String>,
}

impl Transition {
    /// Number of packages touched.
    pub fn len(&self) -> usize {
        self.install.len() + self.purge.len()
    }

    /// True when the base already is the locked set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a compose installs from scratch instead of from the kept base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoTransition {
    /// A package has the same version in both sets but a different `.deb`: apt would keep the
    /// installed one.
    Rebuilt(String),
    /// More than a quarter of the packages change: a fresh install is the better base.
    TooMany {
        /// Packages to install, upgrade, downgrade or purge.
        changes: usize,
        /// Packages in the locked set.
        packages: usize,
    },
}

/// The changes from `base` to `target`, or why there should be none.
pub fn plan(
    base: &[LockedPackage],
    target: &[LockedPackage],
) -> std::result::Result<Transition, NoTransition> {
    let mut install = Vec::new();
    for t in target {
        match base
            .iter()
            .find(|b| b.name == t.name && b.architecture == t.architecture)
        {
            Some(b) if b.version == t.version && b.sha256 == t.sha256 => {}
            Some(b) if b.version == t.version => {
                return Err(NoTransition::Rebuilt(format!("{} {}", t.name, t.version)))
            }
            _ => install.push(t.clone()),
        }
    }
    let purge: Vec<String> = base
        .iter()
        .filter(|b| {
            !target
                .iter()
                .any(|t| t.name == b.name && t.architecture == b.architecture)
        })
        .map(|b| format!("{}:{}", b.name, b.architecture))
        .collect();
    let transition = Transition { install, purge };
    if transition.len() * 4 > target.len() {
        return Err(NoTransition::TooMany {
            changes: transition.len(),
            packages: target.len(),
        });
    }
    Ok(transition)
}

/// sha256 of a package set (name, version, architecture and `.deb` hash of each), the base's
/// name in commit metadata.
pub fn set_sha256(packages: &[LockedPackage]) -> String {
    let mut sorted: Vec<&LockedPackage> = packages.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for p in sorted {
        h.update(format!(
            "{} {} {} {}\n",
            p.name, p.version, p.architecture, p.sha256
        ));
    }
    hex::encode(h.finalize())
}

/// What `base.json` says about a cached install.
#[derive(Debug, Serialize, Deserialize)]
struct BaseInfo {
    #[serde(rename = "ref")]
    osref: String,
    recipe: String,
    packages: Vec<LockedPackage>,
}

/// A cached fresh install.
pub struct Base {
    /// Its raw tree (never written to: mount a view of it with [`mount_overlay`]).
    pub tree: PathBuf,
    /// The package set installed in it.
    pub packages: Vec<LockedPackage>,
}

/// The cached installs, one per ref and install recipe, under `cache/installs`.
pub struct BaseStore {
    root: PathBuf,
}

impl BaseStore {
    /// The store in a compose cache directory.
    pub fn new(cache: &Path) -> BaseStore {
        BaseStore {
            root: cache.join("installs"),
        }
    }

    fn slot(&self, osref: &str, recipe: &str) -> PathBuf {
        let id = hex::encode(Sha256::digest(format!("{osref}\n{recipe}").as_bytes()));
        self.root.join(&id[..16])
    }

    /// The base for `osref` made with `recipe`, if one was kept. A base written by another
    /// recipe (composer version, suite, architecture, initramfs settings) is not used.
    pub fn load(&self, osref: &str, recipe: &str) -> Result<Option<Base>> {
        let slot = self.slot(osref, recipe);
        let info_path = slot.join("base.json");
        let text = match fs::read_to_string(&info_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("Reading {}", info_path.display())),
        };
        let info: BaseInfo = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a kept install's description (it is replaced by this compose's)",
                info_path.display()
            )
        })?;
        if info.osref != osref || info.recipe != recipe {
            return Ok(None);
        }
        Ok(Some(Base {
            tree: slot.join("tree"),
            packages: info.packages,
        }))
    }

    /// Moves the freshly installed `tree` into the store as the base of `osref` (replacing the
    /// old one) and returns where it now is. `base.json` is written last: a slot without it is
    /// never used.
    pub fn adopt(
        &self,
        osref: &str,
        recipe: &str,
        packages: &[LockedPackage],
        tree: &Path,
    ) -> Result<PathBuf> {
        let slot = self.slot(osref, recipe);
        let staging = slot.with_extension(format!("new-{}", std::process::id()));
        let old = slot.with_extension(format!("old-{}", std::process::id()));
        remove_leftovers(&slot)?;
        fs::create_dir_all(&staging).with_context(|| format!("Creating {}", staging.display()))?;
        forget_build(tree)?;
        fs::rename(tree, staging.join("tree"))
            .with_context(|| format!("Moving {} into {}", tree.display(), staging.display()))?;
        let info = BaseInfo {
            osref: osref.to_string(),
            recipe: recipe.to_string(),
            packages: packages.to_vec(),
        };
        fs::write(staging.join("base.json"), serde_json::to_vec_pretty(&info)?)
            .with_context(|| format!("Writing {}", staging.join("base.json").display()))?;
        if slot.exists() {
            fs::rename(&slot, &old).with_context(|| format!("Moving {}", slot.display()))?;
        }
        fs::rename(&staging, &slot).with_context(|| format!("Moving {}", staging.display()))?;
        remove_tree(&old)?;
        Ok(slot.join("tree"))
    }
}

/// Mounts at `at` a writable view of `base` whose changes go to `scratch` (overlayfs): the
/// compose changes its tree freely, the base stays as it is, and nothing is copied.
/// `redirect_dir` lets post-processing rename directories that come from the base (`/etc` to
/// `/usr/etc`). Unmounted by `workdir::remove_tree` of `at` or of a directory above it.
pub fn mount_overlay(base: &Path, scratch: &Path, at: &Path) -> Result<()> {
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    for dir in [&upper, &work, &at.to_path_buf()] {
        fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    }
    Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=on",
            base.display(),
            upper.display(),
            work.display()
        ))
        .arg(at)
        .output_checked()
        .with_context(|| {
            format!(
                "Mounting a writable view of {} at {}",
                base.display(),
                at.display()
            )
        })?;
    Ok(())
}

/// Undoes [`mount_overlay`]: unmounts `at`, forgets the changes.
pub fn unmount_overlay(scratch: &Path, at: &Path) -> Result<()> {
    remove_tree(at)?;
    remove_tree(scratch)
}

/// Staging and replaced copies a killed compose left beside `slot`.
fn remove_leftovers(slot: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (slot.parent(), slot.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// A full copy. `cp -a` keeps hardlinks, modes, owners, xattrs and device nodes.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(from)
        .arg(to)
        .output_checked()
        .with_context(|| format!("Copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Takes out of a kept install what belongs to the compose that made it: `/dev`'s nodes and
/// links (mmdebstrap makes them and fails if they exist) and the apt sources naming that
/// compose's package pool (mmdebstrap writes the next compose's own).
fn forget_build(tree: &Path) -> Result<()> {
    clear_dir(&tree.join("dev"))?;
    clear_dir(&tree.join("etc/apt/sources.list.d"))?;
    match fs::remove_file(tree.join("etc/apt/sources.list")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("Removing the kept install's etc/apt/sources.list")
        }
        _ => Ok(()),
    }
}

/// Removes what `dir` holds (if it exists).
fn clear_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let result = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.with_context(|| format!("Removing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, version: &str, sha: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            sha256: sha.into(),
        }
    }

    fn set(extra: &[LockedPackage]) -> Vec<LockedPackage> {
        let mut v: Vec<LockedPackage> = (0..20)
            .map(|i| p(&format!("pkg{i}"), "1", &format!("h{i}")))
            .collect();
        v.extend(extra.iter().cloned());
        v
    }

    #[test]
    fn plans_adds_version_changes_and_purges() {
        let base = set(&[p("old", "1", "o"), p("up", "1", "u1"), p("down", "2", "d2")]);
        let target = set(&[p("new", "1", "n"), p("up", "2", "u2"), p("down", "1", "d1")]);
        let t = plan(&base, &target).unwrap();
        let names: Vec<&str> = t.install.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["new", "up", "down"]);
        assert_eq!(t.purge, ["old:amd64"]);
        assert!(plan(&target, &target).unwrap().is_empty());
    }

    #[test]
    fn same_version_with_another_deb_needs_a_fresh_install() {
        let base = set(&[p("x", "1", "a")]);
        let target = set(&[p("x", "1", "b")]);
        assert_eq!(
            plan(&base, &target),
            Err(NoTransition::Rebuilt("x 1".into()))
        );
    }

    #[test]
    fn large_changes_need_a_fresh_install() {
        let base = set(&[]);
        let mut target = set(&[]);
        for t in target.iter_mut().take(6) {
            t.version = "2".into();
        }
        assert_eq!(
            plan(&base, &target),
            Err(NoTransition::TooMany {
                changes: 6,
                packages: 20
            })
        );
        target[5].version = "1".into();
        assert_eq!(plan(&base, &target).unwrap().len(), 5);
    }

    #[test]
    fn set_hash_ignores_order_and_sees_debs() {
        let a = set(&[p("x", "1", "a")]);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(set_sha256(&a), set_sha256(&b));
        let c = set(&[p("x", "1", "other")]);
        assert_ne!(set_sha256(&a), set_sha256(&c));
    }
}
