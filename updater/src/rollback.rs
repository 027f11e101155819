//! `cairn rollback`: make the previous deployment boot next, by reordering libostree's
//! deployment list in one `write_deployments` (the bootloader switch is atomic). Running it
//! twice restores the first order.
//!
//! Which deployment: on a booted host with a pending deployment ahead of the booted one, the
//! booted one (the pending deployment is dropped — libostree keeps a staged deployment only
//! at the head of the list); otherwise the next deployment of the stateroot after the default.

use anyhow::{Context, Result};
use fn_error_context::context;
use serde::Serialize;

use crate::deploy::Release;
use crate::sysroot::Host;

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
    let mut order = vec![target.index];
    order.extend(all.iter().map(|d| d.index).filter(|&i| i != target.index));
    host.write_order(&lock, &order)?;
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
    Ok(outcome)
}
