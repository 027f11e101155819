//! `cairn check`: is there something newer on the followed ref? Fetches commit metadata only,
//! checks the offered commit's signature the way `upgrade` would ([`crate::host::verify`]): a
//! forged or foreign-signed release is an error here too, and is not recorded as available.
//! Records the answer for `cairn status` (see [`crate::host::state`]). Under an update policy
//! the offer is the staged rollout's ([`crate::ops::rollout`]). For an update it would take,
//! it also says how much `upgrade` will download and how much room the new release needs in
//! `/boot` and in the repository's filesystem ([`UpdateSize`]), fetching for that only
//! directory metadata down to the kernel directories.

use std::path::PathBuf;

use anyhow::Result;
use fn_error_context::context;
use serde::Serialize;

use crate::config::Settings;
use crate::host::download_size::{self, Measure};
use crate::host::policy::RolloutView;
use crate::host::source::Source;
use crate::host::state::{self, LastCheck};
use crate::host::sysroot::Host;
use crate::host::verify::{self, Verdict};
use crate::host::{root_space, space};
use crate::ops::rollout;
use crate::release::{is_older, Release};

/// The answer of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// `remote:ref` checked.
    pub refspec: String,
    /// What boots next now.
    pub current: Option<Release>,
    /// What the remote offers this host: the tip of the ref, or what the update policy offers
    /// (the tip, when the policy offers nothing now).
    pub remote: Release,
    /// Whether `cairn upgrade` would deploy `remote`.
    pub update_available: bool,
    /// The trusted key that signed `remote`, or `null` when the host requires no signature.
    pub signed_by: Option<String>,
    /// The staged rollout, when the remote serves an update policy.
    pub rollout: Option<RolloutView>,
    /// Why `remote` is not taken although offered: the fleet halted it.
    pub halted: Option<String>,
    /// What taking the update costs (all `null` when no update is available).
    #[serde(flatten)]
    pub size: UpdateSize,
}

/// What taking an update costs in bytes; each `null` when it could not be measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateSize {
    /// Bytes `cairn upgrade` will download.
    pub download_bytes: Option<u64>,
    /// How `download_bytes` was measured: `delta` (the static delta's superblock) or
    /// `objects` (the commit's object sizes against the objects the host has).
    pub download_measured_by: Option<Measure>,
    /// Bytes the new kernel and initramfs need in `/boot` (0: shared with a deployment on
    /// the host).
    pub boot_needed_bytes: Option<u64>,
    /// Bytes free in `/boot`.
    pub boot_free_bytes: Option<u64>,
    /// Bytes the new objects need in the repository's filesystem.
    pub root_needed_bytes: Option<u64>,
    /// Bytes free there for the repository (beyond libostree's reserve).
    pub root_free_bytes: Option<u64>,
    /// Bytes dropping the deployments the update removes anyway would free.
    pub root_freeable_bytes: Option<u64>,
    /// The mount point of the repository's filesystem.
    pub root_mount: Option<PathBuf>,
}

/// Measures [`UpdateSize`] for `commit` (its commit object in the repository); what cannot be
/// measured is logged and left `null`. The caller holds the sysroot lock.
fn measure(host: &Host, source: &Source, commit: &str) -> UpdateSize {
    let mut size = UpdateSize::default();
    let boot = space::fetch_boot_metadata(host, source, commit)
        .and_then(|()| space::boot_room(host, commit));
    match boot {
        Ok(room) => {
            size.boot_needed_bytes = room.needed;
            size.boot_free_bytes = room.free;
        }
        Err(e) => log::warn!("not measuring the room in /boot: {e:#}"),
    }
    match download_size::measure(host, source, commit) {
        Ok(d) => {
            size.download_bytes = d.bytes;
            size.download_measured_by = d.measured;
            if let Some(missing) = &d.missing {
                match root_space::root_room(host, missing) {
                    Ok(room) => {
                        size.root_needed_bytes = Some(room.needed);
                        size.root_free_bytes = Some(room.free);
                        size.root_freeable_bytes = room.freeable;
                        size.root_mount = Some(room.mount);
                    }
                    Err(e) => log::warn!("not measuring the room for new objects: {e:#}"),
                }
            }
        }
        Err(e) => log::warn!("not measuring the download: {e:#}"),
    }
    size
}

/// The context of a check that failed because the offered release did not pass the signature
/// check: not worth retrying (the agent retries network errors only).
#[derive(Debug)]
pub struct Untrusted(String);

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the remote offers {}, which this host does not trust",
            self.0
        )
    }
}

/// Whether `err` is a check that failed on the signature ([`Untrusted`]).
pub fn is_untrusted(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Untrusted>().is_some()
}

/// Fetches the remote ref's commit metadata and compares it with the default deployment.
#[context("Checking for updates")]
pub fn check(host: &Host, settings: &Settings, wait: bool) -> Result<CheckResult> {
    let source = Source::for_host(host, &settings.source)?;
    let current = host.own_deployments().first().map(Release::from);
    let offered = {
        let _lock = host.lock(wait)?;
        rollout::offered(host, settings, &source, current.as_ref())?
    };
    let rollout = offered.rollout;
    let halted = offered.halted;
    let (remote, update_available) = match offered.release {
        Some(remote) => {
            let newer = match &current {
                Some(cur) => cur.commit != remote.commit && !is_older(&remote, cur),
                None => true,
            };
            (remote, newer)
        }
        // The policy offers nothing now: report the tip, not available.
        None => (Release::from(&offered.tip), false),
    };
    // Only an offer `upgrade` would take is checked: what boots next passed when it was deployed.
    let signed_by = if update_available {
        match verify::verify_commit(host, settings.require_signature, &remote.commit)
            .map_err(|e| e.context(Untrusted(remote.describe())))?
        {
            Verdict::Signed(key) => Some(key),
            Verdict::NotRequired => None,
        }
    } else {
        None
    };
    let size = if update_available {
        let _lock = host.lock(wait)?;
        measure(host, &source, &remote.commit)
    } else {
        UpdateSize::default()
    };
    let result = CheckResult {
        refspec: source.refspec(),
        current,
        remote,
        update_available,
        signed_by,
        rollout,
        halted,
        size,
    };
    let record = LastCheck {
        checked_at: state::now(),
        refspec: result.refspec.clone(),
        commit: result.remote.commit.clone(),
        version: result.remote.version.clone(),
        timestamp: result.remote.timestamp,
        update_available,
        rollout: result.rollout.clone(),
    };
    if let Err(e) = state::save_last_check(&host.var_dir(), &record) {
        log::warn!("{e:#}");
    }
    Ok(result)
}
