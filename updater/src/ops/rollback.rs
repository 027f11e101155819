//! `cairn rollback`: make the previous deployment boot next, by reordering libostree's
//! deployment list in one `write_deployments` (the bootloader switch is atomic). Running it
//! twice restores the first order.
//!
//! Which deployment: on a booted host with a pending deployment ahead of the booted one, the
//! booted one (the pending deployment is dropped — libostree keeps a staged deployment only
//! at the head of the list); otherwise the next deployment of the stateroot after the default.
//!
//! Rolling back from a newer release records it in [`crate::failed`], so that the automatic
//! update agent does not upgrade right back into it.

use anyhow::{Context, Result};
use fn_error_context::context;
use serde::Serialize;

use crate::failed;
use crate::host::sysroot::Host;
use crate::release::{is_older, Release};

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    /// What booted next before.
    pub from: Release,
    /// What boots next now.
    pub to: Release,
}

/// Makes the rollback deployment the default.
#[context("Rolling back stateroot {}", host.osname())]
pub fn rollback(host: &Host, wait: bool) -> Result<RollbackOutcome> {
    let lock = host.lock(wait)?;
    let all = host.deployments();
    let target = all
        .iter()
        .find(|d| d.rollback)
        .context("there is no deployment to roll back to (see `cairn status`)")?;
    let from = all
        .iter()
        .find(|d| d.osname == host.osname())
        .context("the stateroot has no deployment")?;
    host.make_default(&lock, target.index)?;
    let outcome = RollbackOutcome {
        from: Release::from(from),
        to: Release::from(target),
    };
    log::info!(
        "rolled back {}: {} now boots next instead of {}",
        host.osname(),
        outcome.to.describe(),
        outcome.from.describe()
    );
    remember(host, &outcome);
    Ok(outcome)
}

/// The automatic update agent must not undo an administrator's rollback: going back from a
/// newer release puts it on the failed list ([`crate::failed`]); the release rolled back to is
/// taken off it (the administrator chose it). Failures here are logged, not fatal.
fn remember(host: &Host, o: &RollbackOutcome) {
    let var = host.var_dir();
    if let Err(e) = failed::forget(&var, &o.to.commit) {
        log::warn!("{e:#}");
    }
    if o.from.commit != o.to.commit && is_older(&o.to, &o.from) {
        let detail = format!("`cairn rollback` to {}", o.to.describe());
        if let Err(e) = failed::record(&var, &o.from, failed::Reason::RolledBack, &detail) {
            log::warn!("{e:#}");
        }
    }
}
