//! A boot on which GRUB ran out of attempts for the new default deployment and booted the
//! previous one.

use std::path::Path;

use anyhow::Result;

use crate::failed::{self, Reason};
use crate::host::bootcount::{self, Counter};
use crate::host::sysroot::Host;
use crate::release::Release;

/// If GRUB ran out of boot attempts for the default deployment and booted another, record the
/// default as failed and make the booted one the default again.
pub(super) fn handle_fallback(host: &Host, grubenv: &Path, wait: bool) -> Result<()> {
    if bootcount::counter(grubenv)? != Counter::Exhausted {
        return Ok(());
    }
    let own = host.own_deployments();
    let Some(default) = own.first() else {
        return Ok(());
    };
    let booted = own.iter().find(|d| d.booted);
    match booted {
        Some(b) if b.index != default.index => {
            let bad = Release::from(default);
            failed::record(
                &host.var_dir(),
                &bad,
                Reason::BootAttempts,
                "it did not come up within its boot attempts; GRUB booted the previous deployment",
            )?;
            let lock = host.lock(wait)?;
            // The booted one first, the failed default left out (removed).
            let all = host.deployments();
            let mut order = vec![b.index];
            order.extend(
                all.iter()
                    .filter(|d| d.index != b.index && d.index != default.index)
                    .map(|d| d.index),
            );
            host.write_order(&lock, &order)?;
            log::error!(
                "GRUB fell back from {} to {} after its boot attempts ran out; {} is the default again",
                bad.describe(),
                Release::from(b).describe(),
                Release::from(b).describe()
            );
        }
        _ => {
            // Exhausted but the default booted (a manual choice in the menu): nothing failed.
            log::info!("boot counter exhausted but the default deployment booted");
        }
    }
    bootcount::clear(grubenv)?;
    Ok(())
}
