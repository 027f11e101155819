//! The fresh-or-incremental decision: install the locked packages on a view of the ref's kept
//! fresh install (apt changes only) when few differ, else install all of them from scratch and
//! keep that install as the ref's new base. Why and how: `ARCHITECTURE.md`, "Incremental
//! installs".

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::install_base::{self, BaseStore, NoTransition};
use crate::progress::Progress;
use crate::{initramfs, install, interrupt};

/// How the tree's packages were installed.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// `fresh` (every package, by mmdebstrap) or `incremental` (package changes applied by apt
    /// to a copy of the ref's cached fresh install).
    pub mode: &'static str,
    /// Incremental: sha256 of the cached install's package set (also in the commit metadata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Incremental: packages installed, upgraded or downgraded on the base.
    pub changed: usize,
    /// Incremental: packages purged from the base.
    pub purged: usize,
    /// Incremental: the changed file inside (or feeding) the initramfs that made the compose
    /// make it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initramfs_remade_for: Option<String>,
    /// Fresh: why the cached install was not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh_because: Option<String>,
}

/// Installs the locked packages and mounts the result at `tree`, a writable overlay view of the
/// ref's cached fresh install: with apt's changes on it when few packages differ (see
/// `install_base`), else of a new install from scratch, which becomes the cached one. A failed
/// incremental install falls back to a fresh one. Dropping `work` unmounts the view.
pub fn install_packages(
    cache: &Path,
    osref: &str,
    work: &Path,
    tree: &Path,
    target: install::Target,
    fresh_only: bool,
    progress: &Progress,
) -> Result<InstallReport> {
    let store = BaseStore::new(cache);
    let recipe = install::recipe(target.suite, target.architecture);
    let scratch = work.join("overlay");
    let base = if fresh_only {
        Ok(None)
    } else {
        store.load(osref, &recipe)
    };
    let fresh_because = match base {
        // A cache: one that cannot be read is replaced by this compose's fresh install.
        Err(e) => format!("{e:#}"),
        Ok(None) if fresh_only => "--fresh-install".to_string(),
        Ok(None) => "no cached install of this ref yet".to_string(),
        Ok(Some(base)) => match install_base::plan(&base.packages, target.packages) {
            Err(NoTransition::Rebuilt(p)) => {
                format!("{p} is another .deb than the cached install's")
            }
            Err(NoTransition::TooMany { changes, packages }) => {
                format!("{changes} of {packages} packages differ from the cached install")
            }
            Ok(changes) => {
                progress.step(&format!(
                    "Installing packages: {} changed, {} purged on the cached install of {} packages",
                    changes.install.len(),
                    changes.purge.len(),
                    base.packages.len()
                ));
                let applied = install_base::mount_overlay(&base.tree, &scratch, tree)
                    .and_then(|()| {
                        install::apply(&install::Target { tree, ..target }, &changes, progress)
                    })
                    .and_then(|()| {
                        initramfs::refresh_if_stale(
                            tree,
                            &base.tree,
                            &changes,
                            target.source_date_epoch,
                        )
                    });
                match applied {
                    Ok(stale) => {
                        if let Some(path) = &stale {
                            progress.step(&format!(
                                "Made the initramfs again (a changed package owns /{path})"
                            ));
                        }
                        return Ok(InstallReport {
                            mode: "incremental",
                            base: Some(install_base::set_sha256(&base.packages)),
                            changed: changes.install.len(),
                            purged: changes.purge.len(),
                            initramfs_remade_for: stale,
                            fresh_because: None,
                        });
                    }
                    Err(e) => {
                        interrupt::check()?;
                        progress.step(&format!(
                            "warning: applying the changes to the cached install failed; installing from scratch: {e:#}"
                        ));
                        install_base::unmount_overlay(&scratch, tree)?;
                        format!("applying the changes failed: {e:#}")
                    }
                }
            }
        },
    };
    progress.step(&format!(
        "Installing packages (mmdebstrap, from scratch: {fresh_because})"
    ));
    let raw = target.tree;
    install::install(&target, progress)?;
    interrupt::check()?;
    // The install goes into the cache as it is; the compose goes on in a view of it.
    let lower = store.adopt(osref, &recipe, target.packages, raw)?;
    if let Err(e) = install_base::mount_overlay(&lower, &scratch, tree) {
        // Without overlayfs (some containers) the next compose installs from scratch too.
        progress.step(&format!(
            "warning: cannot mount a view of the kept install, copying it: {e:#}"
        ));
        install_base::unmount_overlay(&scratch, tree)?;
        install_base::copy_tree(&lower, tree)?;
    }
    Ok(InstallReport {
        mode: "fresh",
        base: None,
        changed: target.packages.len(),
        purged: 0,
        initramfs_remade_for: None,
        fresh_because: Some(fresh_because),
    })
}
