//! What the followed remote offers *this* host: the ref's tip, or, when the remote serves an
//! update policy (`release/POLICY.md`), the release the staged rollout offers this host now.
//! `cairn check`, `cairn upgrade` and the agent all ask here, so they agree; `cairn deploy
//! VERSION` is how an administrator takes a release before its rollout reaches the host.
//!
//! The host's wave comes from `/etc/machine-id` and the stream, or from
//! `[update.rollout] wariness`.

use anyhow::{Context, Result};
use cairn_release::metadata::CommitInfo;
use cairn_release::rollout::{self, Decision, Wave};

use crate::config::Settings;
use crate::host::policy::{self, RolloutView};
use crate::host::pull;
use crate::host::source::Source;
use crate::host::state;
use crate::host::sysroot::Host;
use crate::host::verify;
use crate::release::Release;
use crate::strategy::Strategy;

/// What the remote offers this host.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The tip of the followed ref.
    pub tip: CommitInfo,
    /// The release to take: the tip without a policy, the policy's offer with one (its commit
    /// metadata fetched), `None` when the policy offers nothing now.
    pub release: Option<Release>,
    /// The rollout, when the remote serves a policy.
    pub rollout: Option<RolloutView>,
    /// Why the release offered is not taken although offered: the fleet halted it.
    pub halted: Option<String>,
}

/// Fetches the ref's tip (commit metadata) and the remote's policy, and decides. The caller
/// holds the sysroot lock.
pub fn offered(
    host: &Host,
    settings: &Settings,
    source: &Source,
    current: Option<&Release>,
) -> Result<Offered> {
    let tip = pull::fetch_commit_metadata(host, source, 0)?;
    let url = pull::url_of(host, source)?;
    let trusted = verify::Policy::for_host(host, settings.require_signature)?.trusted;
    let now = state::now();
    let Some(current_policy) = policy::fetch_and_check(&host.var_dir(), &url, &trusted, now)?
    else {
        let (release, halted) = unless_halted(settings, Release::from(&tip));
        return Ok(Offered {
            release,
            tip,
            rollout: None,
            halted,
        });
    };
    let (wave, wave_from) = match settings.wariness {
        Some(w) => (w, "wariness"),
        None => (
            Wave::of_host(&machine_id(host)?, &source.ref_),
            "machine-id",
        ),
    };
    let decision = rollout::offer(
        &current_policy.policy,
        &source.ref_,
        current.and_then(|c| c.version.as_deref()),
        wave,
        now,
    );
    let release = match &decision {
        Decision::Offer { commit, .. } if *commit == tip.commit => Some(Release::from(&tip)),
        Decision::Offer { commit, .. } => Some(Release::from(&pull::fetch_commit_object(
            host, source, commit,
        )?)),
        Decision::Wait { .. } | Decision::Stay { .. } => None,
    };
    let view = RolloutView {
        policy: current_policy.url,
        serial: current_policy.accepted.serial,
        expires: current_policy.accepted.expires,
        wave: wave.value(),
        wave_from: wave_from.to_string(),
        decision,
    };
    log::info!("{}", view.describe());
    let (release, halted) = match release {
        Some(r) => unless_halted(settings, r),
        None => (None, None),
    };
    Ok(Offered {
        tip,
        release,
        rollout: Some(view),
        halted,
    })
}

/// `release`, unless the fleet (`strategy = "fleet-lock"`) halted it: then nothing, and why.
/// A fleet that cannot be asked halts nothing here: its pre-reboot answer still decides
/// whether the host reboots into the release.
fn unless_halted(settings: &Settings, release: Release) -> (Option<Release>, Option<String>) {
    let Strategy::FleetLock(fleet) = &settings.strategy else {
        return (Some(release), None);
    };
    match fleet.halts() {
        Ok(halts) => match halts.iter().find(|h| h.commit == release.commit) {
            Some(h) => {
                let why = format!(
                    "the fleet ({}) halted it: {} of {} update(s) failed",
                    fleet.describe(),
                    h.failures,
                    h.reports
                );
                log::warn!("not taking {}: {why}", release.describe());
                (None, Some(why))
            }
            None => (Some(release), None),
        },
        Err(e) => {
            log::warn!("{e:#}; going on without the fleet's halts");
            (Some(release), None)
        }
    }
}

/// The host's machine ID, from the `/etc` it runs with.
fn machine_id(host: &Host) -> Result<String> {
    let path = host
        .etc_dir()
        .context("the host has no deployment to read /etc/machine-id from")?
        .join("machine-id");
    let id = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "Reading {} for this host's rollout wave (or set [update.rollout] wariness)",
            path.display()
        )
    })?;
    if id.trim().is_empty() {
        anyhow::bail!(
            "{} is empty: this host has no rollout wave yet (or set [update.rollout] wariness)",
            path.display()
        );
    }
    Ok(id)
}
