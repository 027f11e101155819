//! Opening the archive repository a command works on: one place that says which path was
//! meant and what to do when it is not a repository.
//!
//! Only `cairn-compose tree` creates a repository; every other command refuses a path that is
//! not one, so that a mistyped `--repo` cannot leave an empty repository behind (tested on
//! `prune`, in prune.rs; `open_or_create` by every test that composes or signs).

use std::path::Path;

use anyhow::{bail, Context, Result};
use cairn_release::gio;
use cairn_release::ostree;

/// Opens the existing OSTree repository at `path`.
pub fn open_repo(path: &Path) -> Result<ostree::Repo> {
    if !path.join("config").is_file() {
        bail!(
            "{}: not an OSTree repository (no {} file); check --repo, or compose into it first \
             with `cairn-compose tree`",
            path.display(),
            path.join("config").display()
        );
    }
    let repo = ostree::Repo::new(&gio::File::for_path(path));
    repo.open(gio::Cancellable::NONE)
        .with_context(|| format!("Opening OSTree repository {}", path.display()))?;
    Ok(repo)
}

/// Opens the archive repository at `path`, creating it if it does not exist (`tree` only).
pub fn open_or_create(path: &Path) -> Result<ostree::Repo> {
    if path.join("config").exists() {
        return open_repo(path);
    }
    std::fs::create_dir_all(path).with_context(|| format!("Creating {}", path.display()))?;
    let repo = ostree::Repo::new(&gio::File::for_path(path));
    repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
        .with_context(|| format!("Creating OSTree repository {}", path.display()))?;
    Ok(repo)
}
