//! Acting on a verdict: mark the boot good, or record the version, roll back and reboot, or
//! report it unhealthy; the report is saved in every case.

use std::path::Path;

use anyhow::Result;

use super::report::{HealthReport, HealthState, Outcome, FILE};
use super::verdict::Verdict;
use crate::failed::{self, Reason};
use crate::host::sysroot::Host;
use crate::host::{bootcount, reboot, state};
use crate::release::Release;

/// How [`act`] may take the sysroot lock and whether it may reboot.
pub(super) struct Rebooting {
    /// Wait for the sysroot lock.
    pub wait: bool,
    /// Reboot after a rollback (on a booted host).
    pub reboot: bool,
}

/// Acts on `verdict`, records `report` (with what was done) in the health state, and returns
/// the outcome.
pub(super) fn act(
    host: &Host,
    grubenv: &Path,
    mut st: HealthState,
    mut report: HealthReport,
    verdict: Verdict,
    how: Rebooting,
) -> Result<Outcome> {
    let var = host.var_dir();
    let release = report.release.clone();
    let commit = release.commit.clone();
    match verdict {
        Verdict::Healthy => {
            st.known_good.retain(|c| c != &commit);
            st.known_good.push(commit.clone());
            let excess = st.known_good.len().saturating_sub(16);
            st.known_good.drain(..excess);
            let is_default = host.own_deployments().first().map(|d| &d.commit) == Some(&commit);
            if is_default && bootcount::clear(grubenv)? {
                log::info!(
                    "boot of {} marked good (boot counter cleared)",
                    release.describe()
                );
            }
            if failed::forget(&var, &commit)? {
                log::info!(
                    "{} passed its health checks: taken off the failed list",
                    release.describe()
                );
            }
            report.action = format!(
                "{} is healthy{}",
                release.describe(),
                if report.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" (warnings: {})", report.warnings.join(", "))
                }
            );
            log::info!("{}", report.action);
            st.last = Some(report.clone());
            state::save_json(&var, FILE, &st)?;
            Ok(Outcome::Healthy { report })
        }
        Verdict::RollBack { detail, to } => {
            failed::record(&var, &release, Reason::HealthCheck, &detail)?;
            let to_release = Release::from(to.as_ref());
            {
                let lock = host.lock(how.wait)?;
                host.make_default(&lock, to.index)?;
            }
            bootcount::clear(grubenv)?;
            report.action = format!(
                "{detail}; {} recorded as failed, rolled back to {}",
                release.describe(),
                to_release.describe()
            );
            log::error!("{}", report.action);
            let rebooting = how.reboot && host.is_booted();
            st.last = Some(report.clone());
            state::save_json(&var, FILE, &st)?;
            if rebooting {
                reboot::reboot(host)?;
            }
            Ok(Outcome::RolledBack {
                report,
                to: to_release,
                rebooting,
            })
        }
        Verdict::Stuck { detail } => {
            failed::record(&var, &release, Reason::HealthCheck, &detail)?;
            report.action = format!("{detail}; no other deployment to roll back to");
            unhealthy(&var, st, report)
        }
        Verdict::Regressed { detail } => {
            report.action = format!(
                "{detail}; {} passed its checks before, so it is not rolled back from automatically",
                release.describe()
            );
            unhealthy(&var, st, report)
        }
    }
}

/// Logs and records a report whose required checks failed, without a rollback.
fn unhealthy(var: &Path, mut st: HealthState, report: HealthReport) -> Result<Outcome> {
    log::error!("{}", report.action);
    st.last = Some(report.clone());
    state::save_json(var, FILE, &st)?;
    Ok(Outcome::Unhealthy { report })
}
