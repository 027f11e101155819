//! The versions this host must not apply again automatically: those whose deployment failed
//! its required health checks, did not boot within its attempts, or that an administrator
//! rolled away from with `cairn rollback`. Kept in `/var/lib/cairn/failed.json` (the host's
//! `/var` outlives deployments). The agent skips a listed release and takes the next newer one;
//! `cairn upgrade` and `cairn deploy` by hand still may (the operator decides).

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::host::state;
use crate::release::Release;

/// File name under `<var>/lib/cairn/`.
pub const FILE: &str = "failed.json";

/// Why a version is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A required health check failed on it.
    HealthCheck,
    /// It did not come up within its boot attempts; GRUB went back to the previous one.
    BootAttempts,
    /// An administrator rolled back from it.
    RolledBack,
}

impl Reason {
    /// A phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::HealthCheck => "failed its required health checks",
            Reason::BootAttempts => "did not boot within its boot attempts",
            Reason::RolledBack => "was rolled back by an administrator",
        }
    }
}

/// One remembered release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedVersion {
    /// Its version, if it has one.
    pub version: Option<String>,
    /// Its commit.
    pub commit: String,
    /// Why.
    pub reason: Reason,
    /// Details (which checks failed, how many attempts).
    pub detail: String,
    /// When, seconds since the epoch.
    pub at: u64,
}

/// The remembered releases of the host whose `/var` is `var` (none if the file is missing).
pub fn load(var: &Path) -> Vec<FailedVersion> {
    state::load_json(var, FILE).unwrap_or_default()
}

/// The entry for `release` (same commit, or same version), if any.
pub fn find<'a>(list: &'a [FailedVersion], release: &Release) -> Option<&'a FailedVersion> {
    list.iter().find(|f| {
        f.commit == release.commit
            || (f.version.is_some() && f.version.as_deref() == release.version.as_deref())
    })
}

/// Takes `commit` off the list; returns whether it was on it.
pub fn forget(var: &Path, commit: &str) -> Result<bool> {
    let mut list = load(var);
    let before = list.len();
    list.retain(|f| f.commit != commit);
    if list.len() == before {
        return Ok(false);
    }
    state::save_json(var, FILE, &list)?;
    Ok(true)
}

/// Remembers `release` (replacing an earlier entry for it) and logs why.
pub fn record(var: &Path, release: &Release, reason: Reason, detail: &str) -> Result<()> {
    let mut list = load(var);
    list.retain(|f| f.commit != release.commit);
    list.push(FailedVersion {
        version: release.version.clone(),
        commit: release.commit.clone(),
        reason,
        detail: detail.to_string(),
        at: state::now(),
    });
    state::save_json(var, FILE, &list)?;
    log::warn!(
        "{} {}: {detail}; it will not be applied again automatically",
        release.describe(),
        reason.describe()
    );
    Ok(())
}
