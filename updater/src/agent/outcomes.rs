//! Outcome reports to the fleet (`strategy = "fleet-lock"` against `cairn-fleet`): how each
//! update ended on this host, so that the fleet can halt a release that fails on too many.
//!
//! `ok` once the release the agent rebooted into is healthy; `rolled-back` and
//! `boot-attempts` for the releases the host remembers as failed ([`crate::failed`]; a
//! rollback by an administrator is not the release's failure and is not reported). The agent
//! sends what it has not sent yet on every run, so a report lost to a network error goes out
//! on a later run; the server keeps one report per host and release, so a repeat is harmless.

use crate::failed::{self, Reason};
use crate::fleet_lock::OutcomeReport;
use crate::host::sysroot::DeploymentInfo;
use crate::release::Release;
use crate::strategy::fleet_lock::FleetLock;

/// How many sent reports the agent remembers (newest last).
const REMEMBERED: usize = 64;

/// Sends the reports not sent yet; returns the updated list of sent ones (`commit:outcome`).
pub fn send(
    fleet: &FleetLock,
    var: &std::path::Path,
    stream: &str,
    healthy_release: Option<&DeploymentInfo>,
    sent: &[String],
) -> Vec<String> {
    let mut due: Vec<(Release, &'static str)> = Vec::new();
    if let Some(d) = healthy_release {
        due.push((Release::from(d), "ok"));
    }
    for f in failed::load(var) {
        let outcome = match f.reason {
            Reason::HealthCheck => "rolled-back",
            Reason::BootAttempts => "boot-attempts",
            Reason::RolledBack => continue,
        };
        due.push((
            Release {
                commit: f.commit.clone(),
                version: f.version.clone(),
                timestamp: 0,
            },
            outcome,
        ));
    }
    let mut sent = sent.to_vec();
    for (release, outcome) in due {
        let key = format!("{}:{outcome}", release.commit);
        if sent.contains(&key) {
            continue;
        }
        let report = OutcomeReport {
            stream: stream.to_string(),
            version: release.version.clone().unwrap_or_default(),
            commit: release.commit.clone(),
            outcome,
        };
        match fleet.report(&report) {
            Ok(_) => sent.push(key),
            Err(e) => log::warn!("{e:#}; the report is sent again on the next run"),
        }
    }
    let extra = sent.len().saturating_sub(REMEMBERED);
    sent.drain(..extra);
    sent
}
