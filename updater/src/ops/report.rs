//! What the commands that change the host print with `--json`: one object per run, the
//! command's own result (flattened in) plus the deployment list before and after and whether a
//! reboot is pending. The shapes are documented in `updater/README.md` beside the exit codes;
//! `status` and `check` print their own structures ([`super::status::HostStatus`],
//! [`super::check::CheckResult`]).

use anyhow::Result;
use serde::Serialize;

use super::apply::Outcome;
use super::etc::EtcConflict;
use crate::host::sysroot::{DeployMode, DeploymentInfo, Host};
use crate::release::Release;

/// One `--json` object of a command that may change the host.
#[derive(Debug, Clone, Serialize)]
pub struct Change<T: Serialize> {
    /// The command (`upgrade`, `deploy`, `rebase`, `rollback`, `pin`, `unpin`, `cleanup`).
    pub command: &'static str,
    /// What the command did.
    #[serde(flatten)]
    pub result: T,
    /// The deployments when the command started (index 0 booted next).
    pub deployments_before: Vec<DeploymentInfo>,
    /// The deployments when it ended.
    pub deployments_after: Vec<DeploymentInfo>,
    /// Whether, on a booted host, the deployment that boots next is not the running one
    /// (always false for a sysroot that is not booted).
    pub reboot_pending: bool,
}

impl<T: Serialize> Change<T> {
    /// Reloads `host`'s deployment list and puts `result` beside `before` and the list now.
    pub fn new(
        host: &Host,
        command: &'static str,
        before: Vec<DeploymentInfo>,
        result: T,
    ) -> Result<Self> {
        host.reload()?;
        let after = host.deployments();
        let reboot_pending = host.is_booted()
            && after
                .iter()
                .find(|d| d.osname == host.osname())
                .is_some_and(|d| !d.booted);
        Ok(Change {
            command,
            result,
            deployments_before: before,
            deployments_after: after,
            reboot_pending,
        })
    }
}

/// The result of `upgrade`, `deploy` and `rebase` (and `upgrade --bundle`).
#[derive(Debug, Clone, Serialize)]
pub struct UpdateResult {
    /// `deployed` (a new deployment boots next) or `unchanged` (it already did).
    pub result: &'static str,
    /// `remote:ref` followed (after a rebase: the new one).
    pub refspec: String,
    /// What booted next before (for `unchanged`: the same as `to`).
    pub from: Option<Release>,
    /// What boots next now.
    pub to: Release,
    /// `staged` (booted host, written at shutdown) or `written`; `null` when unchanged.
    pub mode: Option<DeployMode>,
    /// Bytes downloaded; `null` when unchanged or taken from a bundle.
    pub bytes_fetched: Option<u64>,
    /// Locally modified `/etc` files whose new default was not applied.
    pub etc_conflicts: Vec<EtcConflict>,
}

impl From<&Outcome> for UpdateResult {
    fn from(o: &Outcome) -> Self {
        match o {
            Outcome::Unchanged { current, refspec } => UpdateResult {
                result: "unchanged",
                refspec: refspec.clone(),
                from: Some(current.clone()),
                to: current.clone(),
                mode: None,
                bytes_fetched: None,
                etc_conflicts: Vec::new(),
            },
            Outcome::Deployed {
                from,
                to,
                refspec,
                mode,
                bytes_fetched,
                etc_conflicts,
            } => UpdateResult {
                result: "deployed",
                refspec: refspec.clone(),
                from: from.clone(),
                to: to.clone(),
                mode: Some(*mode),
                bytes_fetched: *bytes_fetched,
                etc_conflicts: etc_conflicts.clone(),
            },
        }
    }
}

/// The result of `pin` and `unpin`.
#[derive(Debug, Clone, Serialize)]
pub struct PinResult {
    /// The deployment's index.
    pub index: usize,
    /// Whether it is pinned now.
    pub pinned: bool,
    /// Whether the flag changed (false: it was already so).
    pub changed: bool,
    /// The deployment, as it is now.
    pub deployment: DeploymentInfo,
}
