//! Restarting the machine into what was staged (`--reboot`, the agent, a health rollback),
//! through systemd, and the warning to logged-in users before it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::host::sysroot::Host;

/// Where libostree marks a staged deployment on a booted host.
const STAGED_MARKER: &str = "/run/ostree/staged-deployment";

/// Makes sure the service that writes a staged deployment at shutdown is running before the
/// reboot is asked for. libostree 2022.7 leaves starting it to a path unit watching
/// [`STAGED_MARKER`]; a reboot requested right after staging can overtake that chain, and the
/// shutdown then drops the staged deployment without a word (seen once in the VM test:
/// the host came back on the old version with a single deployment; upstream ostree later made
/// staging start the service itself, ostreedev/ostree#3389).
fn finalize_before_reboot() -> Result<()> {
    if !Path::new(STAGED_MARKER).exists() {
        return Ok(());
    }
    let status = Command::new("systemctl")
        .args(["start", "ostree-finalize-staged.service"])
        .status()
        .context("Running systemctl start ostree-finalize-staged.service")?;
    if !status.success() {
        bail!(
            "ostree-finalize-staged.service did not start ({status}): the staged deployment \
             would not be written at shutdown; not rebooting (see `journalctl -u \
             ostree-finalize-staged.service`)"
        );
    }
    Ok(())
}

/// Sends `message` to the terminals of everyone logged in (`wall`). A failure is logged: the
/// warning is a courtesy, not a condition of the reboot.
pub fn announce(message: &str) {
    match Command::new("wall").arg(message).status() {
        Ok(s) if s.success() => log::info!("told logged-in users: {message}"),
        Ok(s) => log::warn!("wall failed ({s}); logged-in users were not warned"),
        Err(e) => log::warn!("cannot run wall ({e}); logged-in users were not warned"),
    }
}

/// Restarts the machine through systemd. Only meaningful on a booted host: elsewhere it warns
/// and does nothing.
///
/// Whoever asks has decided already: the agent held back for users and inhibitors itself
/// ([`crate::agent::manners`]), an administrator's `--reboot` is not held back, and a health
/// rollback must not wait. So systemctl is told not to check inhibitors (on a terminal it
/// would refuse the administrator while another user is logged in).
pub fn reboot(host: &Host) -> Result<()> {
    if !host.is_booted() {
        log::warn!(
            "not rebooting: {} is not the booted sysroot",
            host.path().display()
        );
        return Ok(());
    }
    finalize_before_reboot()?;
    log::info!("rebooting into the new deployment");
    let status = Command::new("systemctl")
        .args(["reboot", "--check-inhibitors=no"])
        .status()
        .context("Running systemctl reboot")?;
    if !status.success() {
        bail!("systemctl reboot failed: {status}");
    }
    Ok(())
}
