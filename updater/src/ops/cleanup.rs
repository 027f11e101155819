//! `cairn cleanup`: dropping deployments. It keeps the booted deployment (on a non-booted
//! sysroot: the default one), every pinned deployment and other stateroots' deployments; it drops the rest of this stateroot's
//! (rollback and pending ones), then removes their files and prunes repository objects that
//! no ref reaches any more.

use anyhow::Result;
use fn_error_context::context;
use serde::Serialize;

use crate::host::sysroot::{DeploymentInfo, Host};

/// What cleanup did.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupOutcome {
    /// The deployments removed.
    pub removed: Vec<DeploymentInfo>,
    /// Repository objects pruned.
    pub objects_pruned: i32,
    /// Bytes freed in the repository.
    pub bytes_freed: u64,
}

/// Which deployments cleanup keeps (indices, in order).
pub fn plan(host_os: &str, booted_system: bool, all: &[DeploymentInfo]) -> Vec<usize> {
    let first_own = all.iter().position(|d| d.osname == host_os);
    all.iter()
        .filter(|d| {
            d.osname != host_os
                || d.pinned
                || d.booted
                || (!booted_system && Some(d.index) == first_own)
        })
        .map(|d| d.index)
        .collect()
}

/// Drops rollback and pending deployments (except pinned and booted), then prunes.
#[context("Cleaning up stateroot {}", host.osname())]
pub fn cleanup(host: &Host, wait: bool) -> Result<CleanupOutcome> {
    let lock = host.lock(wait)?;
    let all = host.deployments();
    let booted_system = all.iter().any(|d| d.booted);
    let keep = plan(host.osname(), booted_system, &all);
    let removed: Vec<DeploymentInfo> = all
        .iter()
        .filter(|d| !keep.contains(&d.index))
        .cloned()
        .collect();
    if !removed.is_empty() {
        host.write_order(&lock, &keep)?;
    }
    let (objects_pruned, bytes_freed) = host.cleanup(&lock)?;
    for d in &removed {
        log::info!(
            "removed deployment {} ({})",
            d.index,
            crate::release::describe(d.version.as_deref(), &d.commit)
        );
    }
    log::info!("pruned {objects_pruned} objects, {bytes_freed} bytes");
    Ok(CleanupOutcome {
        removed,
        objects_pruned,
        bytes_freed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dep(index: usize, os: &str, booted: bool, pinned: bool) -> DeploymentInfo {
        DeploymentInfo {
            index,
            osname: os.into(),
            commit: format!("c{index}"),
            serial: 0,
            version: None,
            timestamp: None,
            time: None,
            refspec: None,
            booted,
            staged: false,
            pinned,
            default: index == 0,
            pending: false,
            rollback: false,
            kargs: vec![],
            path: PathBuf::new(),
        }
    }

    #[test]
    fn booted_hosts_keep_booted_and_pinned() {
        let all = [
            dep(0, "cairn", false, false),
            dep(1, "cairn", true, false),
            dep(2, "cairn", false, true),
            dep(3, "other", false, false),
            dep(4, "cairn", false, false),
        ];
        assert_eq!(plan("cairn", true, &all), vec![1, 2, 3]);
    }

    #[test]
    fn unbooted_sysroots_keep_the_default() {
        let all = [dep(0, "cairn", false, false), dep(1, "cairn", false, false)];
        assert_eq!(plan("cairn", false, &all), vec![0]);
    }
}
