//! `cairn check`: is there something newer on the followed ref? Fetches commit metadata only,
//! checks the offered commit's signature the way `upgrade` would ([`crate::host::verify`]): a
//! forged or foreign-signed release is an error here too, and is not recorded as available.
//! Records the answer for `cairn status` (see [`crate::host::state`]). Under an update policy
//! the offer is the staged rollout's ([`crate::ops::rollout`]).

use anyhow::Result;
use fn_error_context::context;
use serde::Serialize;

use crate::config::Settings;
use crate::host::policy::RolloutView;
use crate::host::source::Source;
use crate::host::state::{self, LastCheck};
use crate::host::sysroot::Host;
use crate::host::verify::{self, Verdict};
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
    let result = CheckResult {
        refspec: source.refspec(),
        current,
        remote,
        update_available,
        signed_by,
        rollout,
        halted,
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
