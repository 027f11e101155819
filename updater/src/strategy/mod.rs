//! Update strategies: when the agent may stage an update and when it may reboot into it.
//!
//! One file per strategy behind the [`Strategy`] enum (as Zincati lays them out):
//! [`immediate`] reboots as soon as an update is staged, [`periodic`] only inside weekly
//! maintenance windows, [`fleet_lock`] after taking a slot from a FleetLock server,
//! [`download_only`] never; `off` does nothing at all. The agent ([`crate::agent`]) asks the
//! strategy, records the answer and its reason, and acts on it.
//!
//! `[update]` in `/etc/cairn/config.toml` is validated into a [`Strategy`] once, by
//! [`crate::config::settings`]; a bad value is reported as `FILE:LINE:COL`.

pub mod download_only;
pub mod fleet_lock;
pub mod immediate;
pub mod periodic;

use anyhow::Result;
use serde::Serialize;

/// What the strategy says about rebooting now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "kebab-case")]
pub enum Decision {
    /// Reboot into the staged deployment; why.
    Reboot(String),
    /// Not now; why.
    Postpone(String),
}

/// What a strategy decides from.
#[derive(Debug, Clone)]
pub struct Moment {
    /// Now, seconds since the epoch (the system clock).
    pub now: u64,
    /// Commit time of the running release (a clock earlier than this is wrong).
    pub booted_timestamp: Option<u64>,
}

/// A validated strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// No automatic updates.
    Off,
    /// Stage and reboot at once.
    Immediate,
    /// Stage at once, reboot inside maintenance windows.
    Periodic(periodic::Periodic),
    /// Stage at once, reboot holding a FleetLock slot.
    FleetLock(fleet_lock::FleetLock),
    /// Stage, never reboot.
    DownloadOnly,
}

impl Strategy {
    /// The name as configured.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Off => "off",
            Strategy::Immediate => "immediate",
            Strategy::Periodic(_) => "periodic",
            Strategy::FleetLock(_) => "fleet-lock",
            Strategy::DownloadOnly => "download-only",
        }
    }

    /// Whether the agent fetches and stages updates at all.
    pub fn stages(&self) -> bool {
        !matches!(self, Strategy::Off)
    }

    /// Whether the agent ever reboots by itself.
    pub fn reboots(&self) -> bool {
        !matches!(self, Strategy::Off | Strategy::DownloadOnly)
    }

    /// Whether the agent may reboot into the staged deployment of commit `target` now.
    pub fn decide(&self, moment: &Moment, target: &str) -> Result<Decision> {
        Ok(match self {
            Strategy::Off => Decision::Postpone("automatic updates are off".into()),
            Strategy::Immediate => immediate::decide(),
            Strategy::Periodic(p) => p.decide(moment),
            Strategy::FleetLock(f) => f.decide(target)?,
            Strategy::DownloadOnly => download_only::decide(),
        })
    }

    /// Called once the running deployment is healthy and nothing is staged: a FleetLock
    /// strategy gives its slot back (idempotent on the server). Others do nothing.
    pub fn report_steady(&self) -> Result<()> {
        match self {
            Strategy::FleetLock(f) => f.report_steady(),
            _ => Ok(()),
        }
    }

    /// A one-line description for `cairn status`.
    pub fn describe(&self) -> String {
        match self {
            Strategy::Periodic(p) => format!("periodic ({})", p.describe()),
            Strategy::FleetLock(f) => format!("fleet-lock ({})", f.describe()),
            other => other.name().to_string(),
        }
    }
}
