//! What the checks mean for the deployment that ran them.

use super::checks::{CheckResult, Kind};
use super::report::HealthState;
use crate::failed;
use crate::host::sysroot::{DeploymentInfo, Host};
use crate::release::Release;

/// What the checks mean for the deployment.
pub(super) enum Verdict {
    /// Every required check passed.
    Healthy,
    /// A required check failed on a deployment on trial (it never passed before), and another
    /// deployment not known to fail is there to go back to.
    RollBack {
        /// Which checks failed.
        detail: String,
        /// Where to go back to.
        to: Box<DeploymentInfo>,
    },
    /// A required check failed on a deployment on trial, with nowhere to go back to.
    Stuck {
        /// Which checks failed.
        detail: String,
    },
    /// A required check failed on a deployment that passed before: rolling back from it
    /// automatically could loop.
    Regressed {
        /// Which checks failed.
        detail: String,
    },
}

/// Judges `checks` of `cur`, given what passed before and what failed before.
pub(super) fn judge(
    host: &Host,
    state: &HealthState,
    cur: &DeploymentInfo,
    checks: &[CheckResult],
) -> Verdict {
    let failed_names: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok && c.kind == Kind::Required)
        .map(|c| c.name.as_str())
        .collect();
    if failed_names.is_empty() {
        return Verdict::Healthy;
    }
    let detail = format!("required health checks failed: {}", failed_names.join(", "));
    if state.known_good.contains(&cur.commit) {
        return Verdict::Regressed { detail };
    }
    let failed_list = failed::load(&host.var_dir());
    let to = host.own_deployments().into_iter().find(|d| {
        d.commit != cur.commit && failed::find(&failed_list, &Release::from(d)).is_none()
    });
    match to {
        Some(to) => Verdict::RollBack {
            detail,
            to: Box::new(to),
        },
        None => Verdict::Stuck { detail },
    }
}
