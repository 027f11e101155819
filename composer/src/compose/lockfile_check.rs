//! `--lockfile`: the `.deb`s downloaded must be the very files the lockfile names (sha256), or
//! the compose stops before installing anything.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::lockfile::{LockedPackage, Lockfile};

/// Fails on the first downloaded package whose sha256 is not the lockfile's.
pub fn check_downloads(lock: &Lockfile, downloaded: &[(LockedPackage, PathBuf)]) -> Result<()> {
    for (got, _) in downloaded {
        let want = lock
            .packages
            .iter()
            .find(|p| p.name == got.name && p.version == got.version);
        if want.map(|w| &w.sha256) != Some(&got.sha256) {
            bail!(
                "{} {}: the downloaded .deb has sha256 {}, the lockfile says {}; the archive changed this package, refusing",
                got.name,
                got.version,
                got.sha256,
                want.map_or("nothing", |w| w.sha256.as_str())
            );
        }
    }
    Ok(())
}
