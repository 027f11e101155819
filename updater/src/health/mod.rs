//! Health checks after boot, and what follows from them: mark the boot good, or record the
//! failed version, roll back and reboot.
//!
//! Checks are executable files in `/usr/lib/cairn/health.d/{required,wanted}/` (shipped in the
//! tree) and `/etc/cairn/health.d/{required,wanted}/` (the host's own; a file there with the
//! same name as one in `/usr/lib` replaces it, an empty or non-executable one disables it),
//! run in name order, each with a timeout; plus built-in required checks: the container runtime
//! answers (`podman info`) and no unit in `[health] units` has failed. A failed *wanted* check
//! is a warning (journal and `cairn status`); a failed *required* check on a deployment that has
//! never passed before (a new version on trial) records the version as failed
//! ([`crate::failed`]), makes the previous deployment the default and reboots. A deployment
//! that passed once is never rolled back from by this module (that would loop): it is reported
//! unhealthy instead.
//!
//! Boot counting ([`crate::host::bootcount`]) is cleared when the required checks pass; a boot on
//! which GRUB ran out of attempts and fell back to entry 1 is noticed here first.
//!
//! `[health]` in the configuration, validated: [`HealthSettings`].
//!
//! One run ([`run`]) is three steps, one file each: [`checks`] runs them, `verdict` judges
//! what they found, `action` acts on the verdict; `fallback` handles a GRUB fallback first.
//! [`report`] is what a run found and what is kept between runs; [`settings`] the validated
//! `[health]`.

mod action;
pub mod checks;
mod fallback;
pub mod report;
pub mod runner;
pub mod settings;
mod verdict;

use anyhow::{Context, Result};
use fn_error_context::context;

use action::{act, Rebooting};
use checks::run_checks;
use fallback::handle_fallback;
use verdict::{judge, Verdict};

use crate::host::bootcount;
use crate::host::state;
use crate::host::sysroot::{DeploymentInfo, Host};
use crate::release::Release;

pub use checks::{check_dirs, discover, run_scripts, CheckResult, Kind};
pub use report::{load_state, HealthReport, HealthState, Outcome, FILE};
pub use settings::{HealthSettings, Runtime, DEFAULT_TIMEOUT_SECONDS};

/// The unit whose presence in a tree says it runs these checks after boot.
pub const UNIT: &str = "usr/lib/systemd/system/cairn-health.service";

/// The deployment whose health is checked: the booted one, or (a sysroot that is not booted:
/// tests, images) the default one.
fn current(host: &Host) -> Option<DeploymentInfo> {
    let own = host.own_deployments();
    own.iter()
        .find(|d| d.booted)
        .cloned()
        .or_else(|| own.into_iter().next())
}

/// `cairn health run`: notice a GRUB fallback, run the checks, judge them, then act on the
/// verdict: mark the boot good, or record the version and roll back (and reboot when `reboot`
/// and the host is booted), or report it unhealthy.
#[context("Checking the health of stateroot {}", host.osname())]
pub fn run(host: &Host, settings: &HealthSettings, wait: bool, reboot: bool) -> Result<Outcome> {
    let grubenv = bootcount::path(host.path());
    handle_fallback(host, &grubenv, wait)?;
    let cur = current(host).context("the stateroot has no deployment")?;
    let checks = run_checks(host, settings, &cur);
    let state = load_state(&host.var_dir());
    let verdict = judge(host, &state, &cur, &checks);
    let report = HealthReport {
        at: state::now(),
        release: Release::from(&cur),
        healthy: matches!(verdict, Verdict::Healthy),
        warnings: checks
            .iter()
            .filter(|c| !c.ok && c.kind == Kind::Wanted)
            .map(|c| c.name.clone())
            .collect(),
        checks,
        action: String::new(),
    };
    act(
        host,
        &grubenv,
        state,
        report,
        verdict,
        Rebooting { wait, reboot },
    )
}
