//! Moving the host to another commit of a remote: `upgrade` (newest on the followed ref, never
//! older), `deploy` (a given version or commit of that ref, older allowed) and `rebase`
//! (another ref).
//!
//! Each operation holds the sysroot lock throughout and decides from commit metadata alone
//! (cheap) which commit it wants; [`apply`] checks, fetches and deploys it.

use anyhow::{bail, Result};
use fn_error_context::context;

use super::apply::{apply, Delivery, Kind, Outcome, Target};
use crate::config::Settings;
use crate::host::pull;
use crate::host::source::Source;
use crate::host::sysroot::Host;
use crate::release::Release;

/// `cairn upgrade`: fetch and deploy the newest commit of the followed ref, or, when the remote
/// serves an update policy, the release its staged rollout offers this host (nothing, while
/// the rollout has not reached it). Refuses to go to an older release than the one that boots
/// next.
#[context("Upgrading stateroot {}", host.osname())]
pub fn upgrade(host: &Host, settings: &Settings, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, &settings.source)?;
    let current = host.own_deployments().first().map(Release::from);
    let offered = super::rollout::offered(host, settings, &source, current.as_ref())?;
    let release = match (offered.release, current) {
        (Some(r), _) => r,
        // The staged rollout has not reached this host: stay.
        (None, Some(current)) => {
            log::info!(
                "not upgrading to {}: {}; `cairn deploy VERSION` takes a release now",
                Release::from(&offered.tip).describe(),
                offered
                    .rollout
                    .as_ref()
                    .map_or(String::new(), |r| r.describe())
            );
            return Ok(Outcome::Unchanged {
                current,
                refspec: source.refspec(),
            });
        }
        (None, None) => bail!(
            "the update policy offers nothing to this host and it has no deployment of its own              to stay on: deploy a version with `cairn deploy VERSION`"
        ),
    };
    let target = Target {
        kind: Kind::Upgrade,
        release,
        source,
        delivery: Delivery::Remote,
    };
    apply(host, settings, &lock, target)
}

/// `cairn deploy REV`: deploy a version or commit from the followed ref's history, older ones
/// included.
#[context("Deploying {rev:?} on stateroot {}", host.osname())]
pub fn deploy_revision(host: &Host, settings: &Settings, rev: &str, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, &settings.source)?;
    let found = pull::find_on_history(host, &source, rev)?;
    let target = Target {
        kind: Kind::Deploy {
            rev: rev.to_string(),
        },
        release: Release::from(&found),
        source,
        delivery: Delivery::Remote,
    };
    apply(host, settings, &lock, target)
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
    let tip = pull::fetch_commit_metadata(host, &source, 0)?;
    let target = Target {
        kind: Kind::Rebase {
            from: current_source,
        },
        release: Release::from(&tip),
        source,
        delivery: Delivery::Remote,
    };
    apply(host, settings, &lock, target)
}
