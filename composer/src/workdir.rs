//! Temporary build trees that never outlive the compose, even after a failure.
//!
//! mmdebstrap bind-mounts `/dev`, `/proc` and local mirrors into the tree; deleting a tree with
//! a mount still inside it would delete through the mount. So removal first unmounts
//! everything below the tree (deepest first), then deletes. A compose killed with SIGKILL leaves
//! its tree behind; the next compose removes trees whose process is gone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

const PREFIX: &str = "work-";

/// A scratch directory removed (mounts first) on drop.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `parent/work-PID`, after removing stale ones.
    pub fn create(parent: &Path) -> Result<WorkDir> {
        fs::create_dir_all(parent).with_context(|| format!("Creating {}", parent.display()))?;
        remove_stale(parent);
        let path = parent.join(format!("{PREFIX}{}", std::process::id()));
        if path.exists() {
            remove_tree(&path)?;
        }
        fs::create_dir(&path).with_context(|| format!("Creating {}", path.display()))?;
        Ok(WorkDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.path) {
            eprintln!("warning: could not remove {}: {e:#}", self.path.display());
        }
    }
}

fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            if let Err(e) = remove_tree(&entry.path()) {
                eprintln!(
                    "warning: could not remove stale {}: {e:#}",
                    entry.path().display()
                );
            }
        }
    }
}

/// Mount points at or below `path`, deepest first.
fn mounts_below(path: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(path))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// Unmounts everything below `path`, then deletes it.
pub fn remove_tree(path: &Path) -> Result<()> {
    let path = match path.canonicalize() {
        Ok(p) => p,
        Err(_) => return Ok(()),
    };
    for m in mounts_below(&path) {
        let _ = Command::new("umount").arg("--lazy").arg(&m).status();
    }
    if !mounts_below(&path).is_empty() {
        anyhow::bail!("{} still has mounts below it; not deleting", path.display());
    }
    fs::remove_dir_all(&path).with_context(|| format!("Removing {}", path.display()))
}
