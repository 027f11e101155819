//! `cairn check`: is there something newer on the followed ref? Fetches commit metadata only,
//! records the answer for `cairn status` (see [`crate::host::state`]).

use anyhow::Result;
use fn_error_context::context;
use serde::Serialize;

use crate::config::Settings;
use crate::host::pull;
use crate::host::source::Source;
use crate::host::state::{self, LastCheck};
use crate::host::sysroot::Host;
use crate::release::{is_older, Release};

/// The answer of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// `remote:ref` checked.
    pub refspec: String,
    /// What boots next now.
    pub current: Option<Release>,
    /// The tip of the remote ref.
    pub remote: Release,
    /// Whether `cairn upgrade` would deploy `remote`.
    pub update_available: bool,
}

/// Fetches the remote ref's commit metadata and compares it with the default deployment.
#[context("Checking for updates")]
pub fn check(host: &Host, settings: &Settings, wait: bool) -> Result<CheckResult> {
    let source = Source::for_host(host, &settings.source)?;
    let current = host.own_deployments().first().map(Release::from);
    let tip = {
        let _lock = host.lock(wait)?;
        pull::fetch_commit_metadata(host, &source, 0)?
    };
    let remote = Release::from(&tip);
    let update_available = match &current {
        Some(cur) => cur.commit != remote.commit && !is_older(&remote, cur),
        None => true,
    };
    let result = CheckResult {
        refspec: source.refspec(),
        current,
        remote,
        update_available,
    };
    let record = LastCheck {
        checked_at: state::now(),
        refspec: result.refspec.clone(),
        commit: result.remote.commit.clone(),
        version: result.remote.version.clone(),
        timestamp: result.remote.timestamp,
        update_available,
    };
    if let Err(e) = state::save_last_check(&host.var_dir(), &record) {
        log::warn!("{e:#}");
    }
    Ok(result)
}
