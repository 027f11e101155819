//! What a health run found and did ([`HealthReport`], [`Outcome`]), and what is kept between
//! runs in `/var/lib/cairn/health.json` ([`HealthState`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checks::CheckResult;
use crate::host::state;
use crate::release::Release;

/// File name of the health state under `<var>/lib/cairn/`.
pub const FILE: &str = "health.json";

/// What one `cairn health run` found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// When, seconds since the epoch.
    pub at: u64,
    /// The deployment checked.
    pub release: Release,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// Whether all required checks passed.
    pub healthy: bool,
    /// Names of failed wanted checks.
    pub warnings: Vec<String>,
    /// What happened: marked good, rolled back, …
    pub action: String,
}

/// What `/var/lib/cairn/health.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// Commits that passed their required checks on this host (newest last, at most 16).
    pub known_good: Vec<String>,
    /// The last report.
    pub last: Option<HealthReport>,
}

/// The health state of the host whose `/var` is `var`.
pub fn load_state(var: &Path) -> HealthState {
    state::load_json(var, FILE).unwrap_or_default()
}

/// What `cairn health run` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// Required checks passed; the boot is marked good.
    Healthy {
        /// The report.
        report: HealthReport,
    },
    /// A required check failed on a new version: recorded, rolled back, (rebooting).
    RolledBack {
        /// The report.
        report: HealthReport,
        /// What boots next now.
        to: Release,
        /// Whether a reboot was started.
        rebooting: bool,
    },
    /// A required check failed, and rolling back is not possible or not safe.
    Unhealthy {
        /// The report.
        report: HealthReport,
    },
}
