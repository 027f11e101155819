//! `cairn pin` and `cairn unpin`: keep a deployment through cleanups and upgrades (libostree's
//! pinned flag).

use anyhow::{bail, Result};
use fn_error_context::context;

use crate::host::sysroot::{DeploymentInfo, Host};

/// Pins (`pinned` true) or unpins the deployment at `index`.
#[context("Changing the pin of deployment {index}")]
pub fn set_pinned(host: &Host, index: usize, pinned: bool, wait: bool) -> Result<DeploymentInfo> {
    let lock = host.lock(wait)?;
    let all = host.deployments();
    let Some(d) = all.get(index) else {
        bail!(
            "there is no deployment {index} (there are {}; see `cairn status`)",
            all.len()
        );
    };
    if d.staged {
        bail!("deployment {index} is staged; it can be pinned once it has booted");
    }
    if d.pinned == pinned {
        return Ok(d.clone());
    }
    host.set_pinned(&lock, index, pinned)?;
    host.reload()?;
    log::info!(
        "{} deployment {index} ({})",
        if pinned { "pinned" } else { "unpinned" },
        crate::release::describe(d.version.as_deref(), &d.commit)
    );
    let now = host.deployments();
    Ok(now.get(index).cloned().unwrap_or_else(|| d.clone()))
}
