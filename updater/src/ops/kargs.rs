//! `cairn kargs`: kernel arguments of the deployment that boots next.
//!
//! Like `rpm-ostree kargs`, a change never edits a running deployment: if the default
//! deployment is booted (or the sysroot is not booted at all), a new deployment of the same
//! commit is written with the new arguments, so the change can be rolled back. A pending
//! deployment that has not booted yet is changed in place (a staged one is staged again).
//! libostree manages the `ostree=` argument itself; it is neither shown nor editable.

use anyhow::{Context, Result};
use fn_error_context::context;
use serde::Serialize;

use crate::host::kargs::{user_kargs, Edit};
use crate::host::sysroot::{DeployMode, Host, Kargs};

/// The kernel arguments the next boot uses.
pub fn current(host: &Host) -> Result<Vec<String>> {
    let d = host
        .own_deployments()
        .into_iter()
        .next()
        .context("the stateroot has no deployment")?;
    Ok(user_kargs(&d.kargs))
}

/// What a kargs change did.
#[derive(Debug, Clone, Serialize)]
pub struct KargsOutcome {
    /// Arguments before.
    pub before: Vec<String>,
    /// Arguments now (for the next boot).
    pub after: Vec<String>,
    /// `None` if nothing changed; else whether a deployment was staged or written.
    pub mode: Option<DeployMode>,
    /// Whether the pending deployment was changed in place rather than a new one written.
    pub in_place: bool,
}

/// Applies `edit` to the next boot's kernel arguments.
#[context("Changing kernel arguments of stateroot {}", host.osname())]
pub fn change(host: &Host, edit: &Edit, wait: bool) -> Result<KargsOutcome> {
    let lock = host.lock(wait)?;
    let d = host
        .own_deployments()
        .into_iter()
        .next()
        .context("the stateroot has no deployment")?;
    let before = user_kargs(&d.kargs);
    let after = edit.apply(&before)?;
    if after == before {
        return Ok(KargsOutcome {
            before,
            after,
            mode: None,
            in_place: false,
        });
    }
    let (mode, in_place) = if d.pending && !d.staged {
        host.set_kargs_in_place(&lock, d.index, &after)?;
        (DeployMode::Written, true)
    } else {
        let refspec = d
            .refspec
            .clone()
            .with_context(|| format!("deployment {} has no origin refspec", d.index))?;
        let mode = host.deploy(&lock, &d.commit, &refspec, &Kargs::Replace(after.clone()))?;
        (mode, d.pending)
    };
    log::info!(
        "kernel arguments for the next boot of {}: {:?} -> {:?}",
        host.osname(),
        before.join(" "),
        after.join(" ")
    );
    Ok(KargsOutcome {
        before,
        after,
        mode: Some(mode),
        in_place,
    })
}
