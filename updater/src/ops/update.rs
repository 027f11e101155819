//! Moving the host to another commit: `upgrade` (newest on the followed ref, never older),
//! `deploy` (a given version or commit of that ref, older allowed) and `rebase` (another ref).
//!
//! Each operation holds the sysroot lock throughout, decides from commit metadata alone
//! (cheap), checks the commit's signature against the host's trusted keys ([`crate::host::verify`]),
//! then fetches the full tree and writes the deployment (see [`Host::deploy`]). Until that
//! last step nothing but the repository changes, so a failure or a kill at any point leaves
//! the current default deployment in place.

use anyhow::{bail, Result};
use fn_error_context::context;
use serde::Serialize;

use crate::config::Settings;
use crate::host::source::Source;
use crate::host::sysroot::{DeployMode, DeploymentInfo, Host, Kargs};
use crate::host::{pull, verify};
use crate::release::{is_older, Release};

/// What an update operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// The wanted commit already boots next; nothing changed.
    Unchanged {
        /// The default deployment's release.
        current: Release,
        /// `remote:ref` followed.
        refspec: String,
    },
    /// A new deployment boots next.
    Deployed {
        /// The previous default.
        from: Option<Release>,
        /// The new deployment's release.
        to: Release,
        /// `remote:ref` now followed.
        refspec: String,
        /// Staged (booted host) or written directly.
        mode: DeployMode,
    },
}

fn default_deployment(host: &Host) -> Option<DeploymentInfo> {
    host.own_deployments().into_iter().next()
}

/// `cairn upgrade`: fetch and deploy the newest commit of the followed ref. Refuses to go to
/// an older release than the one that boots next.
#[context("Upgrading stateroot {}", host.osname())]
pub fn upgrade(host: &Host, settings: &Settings, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, &settings.source)?;
    let current = default_deployment(host).map(|d| Release::from(&d));
    let tip = pull::fetch_commit_metadata(host, &source, 0)?;
    let tip_release = Release::from(&tip);
    if let Some(cur) = &current {
        if cur.commit == tip.commit {
            return Ok(Outcome::Unchanged {
                current: cur.clone(),
                refspec: source.refspec(),
            });
        }
        if is_older(&tip_release, cur) {
            bail!(
                "refusing to downgrade: {source} offers {}, older than {} which boots next; \
                 use `cairn deploy VERSION` to go back on purpose",
                tip_release.describe(),
                cur.describe()
            );
        }
    }
    verify::verify_commit(host, settings.require_signature, &tip.commit)?;
    pull::fetch_tree(host, &source, &tip.commit)?;
    let mode = host.deploy(&lock, &tip.commit, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "upgraded {}: {} -> {} ({source}), {}",
        host.osname(),
        current.as_ref().map_or("nothing".into(), Release::describe),
        tip_release.describe(),
        mode.describe()
    );
    Ok(Outcome::Deployed {
        from: current,
        to: tip_release,
        refspec: source.refspec(),
        mode,
    })
}

/// `cairn deploy REV`: deploy a version or commit from the followed ref's history, older ones
/// included.
#[context("Deploying {rev:?} on stateroot {}", host.osname())]
pub fn deploy_revision(host: &Host, settings: &Settings, rev: &str, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, &settings.source)?;
    let current = default_deployment(host).map(|d| Release::from(&d));
    let found = pull::find_on_history(host, &source, rev)?;
    let target = Release::from(&found);
    if let Some(cur) = &current {
        if cur.commit == found.commit {
            return Ok(Outcome::Unchanged {
                current: cur.clone(),
                refspec: source.refspec(),
            });
        }
    }
    verify::verify_commit(host, settings.require_signature, &found.commit)?;
    pull::fetch_tree(host, &source, &found.commit)?;
    let mode = host.deploy(&lock, &found.commit, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "deployed {} on {}: {} -> {} ({source}), {}",
        rev,
        host.osname(),
        current.as_ref().map_or("nothing".into(), Release::describe),
        target.describe(),
        mode.describe()
    );
    Ok(Outcome::Deployed {
        from: current,
        to: target,
        refspec: source.refspec(),
        mode,
    })
}

/// `cairn rebase TARGET`: follow another ref (or stream) and deploy its newest commit.
#[context("Rebasing stateroot {} to {target:?}", host.osname())]
pub fn rebase(host: &Host, settings: &Settings, target: &str, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let current_source = Source::for_host(host, &settings.source)?;
    let source = Source::rebase_target(&current_source, target, &settings.source)?;
    if let Some(stream) = &settings.source.stream {
        if !source.ref_.ends_with(&format!("/{stream}")) {
            log::warn!(
                "the configuration pins stream {stream:?}; later upgrades will follow it, not {}",
                source.ref_
            );
        }
    }
    let current = default_deployment(host);
    let tip = pull::fetch_commit_metadata(host, &source, 0)?;
    let target_release = Release::from(&tip);
    if let Some(cur) = &current {
        if cur.commit == tip.commit && cur.refspec.as_deref() == Some(&source.refspec()) {
            return Ok(Outcome::Unchanged {
                current: Release::from(cur),
                refspec: source.refspec(),
            });
        }
    }
    verify::verify_commit(host, settings.require_signature, &tip.commit)?;
    pull::fetch_tree(host, &source, &tip.commit)?;
    let mode = host.deploy(&lock, &tip.commit, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "rebased {} from {current_source} to {source}: now {}, {}",
        host.osname(),
        target_release.describe(),
        mode.describe()
    );
    Ok(Outcome::Deployed {
        from: current.as_ref().map(Release::from),
        to: target_release,
        refspec: source.refspec(),
        mode,
    })
}
