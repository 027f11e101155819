//! Moving the host to another commit: `upgrade` (newest on the followed ref, never older),
//! `deploy` (a given version or commit of that ref, older allowed) and `rebase` (another ref).
//!
//! Each operation holds the sysroot lock throughout, decides from commit metadata alone
//! (cheap), checks the commit's signature against the host's trusted keys ([`crate::verify`]),
//! then fetches the full tree and writes the deployment (see [`Host::deploy`]). Until that
//! last step nothing but the repository changes, so a failure or a kill at any point leaves
//! the current default deployment in place.

use std::cmp::Ordering;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_release::metadata::CommitInfo;
use cairn_release::version;
use fn_error_context::context;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::source::Source;
use crate::sysroot::{DeployMode, DeploymentInfo, Host, Kargs};
use crate::{pull, verify};

/// A commit, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The commit checksum.
    pub commit: String,
    /// Its version, if any.
    pub version: Option<String>,
    /// Its commit time.
    pub timestamp: u64,
}

impl Release {
    /// `2026.11.2 (1a2b3c4d5e6f)` or just the short commit.
    pub fn describe(&self) -> String {
        describe(self.version.as_deref(), &self.commit)
    }
}

impl From<&CommitInfo> for Release {
    fn from(c: &CommitInfo) -> Self {
        Release {
            commit: c.commit.clone(),
            version: c.version.clone(),
            timestamp: c.timestamp,
        }
    }
}

impl From<&DeploymentInfo> for Release {
    fn from(d: &DeploymentInfo) -> Self {
        Release {
            commit: d.commit.clone(),
            version: d.version.clone(),
            timestamp: d.timestamp.unwrap_or(0),
        }
    }
}

/// `2026.11.2 (1a2b3c4d5e6f)`.
pub fn describe(version: Option<&str>, commit: &str) -> String {
    let short = commit.get(..12).unwrap_or(commit);
    match version {
        Some(v) => format!("{v} ({short})"),
        None => short.to_string(),
    }
}

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

/// Whether `candidate` is older than `current`: by version when both have one, else by
/// commit time.
pub fn is_older(candidate: &Release, current: &Release) -> bool {
    match (&candidate.version, &current.version) {
        (Some(a), Some(b)) if a != b => version::compare(a, b) == Ordering::Less,
        _ => candidate.timestamp < current.timestamp,
    }
}

fn default_deployment(host: &Host) -> Option<DeploymentInfo> {
    host.own_deployments().into_iter().next()
}

/// `cairn upgrade`: fetch and deploy the newest commit of the followed ref. Refuses to go to
/// an older release than the one that boots next.
#[context("Upgrading stateroot {}", host.osname())]
pub fn upgrade(host: &Host, config: &Config, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, config)?;
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
    verify::verify_commit(host, config, &tip.commit)?;
    pull::fetch_tree(host, &source, &tip.commit)?;
    let mode = host.deploy(&lock, &tip.commit, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "upgraded {}: {} -> {} ({source}), {}",
        host.osname(),
        current.as_ref().map_or("nothing".into(), Release::describe),
        tip_release.describe(),
        mode_word(mode)
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
pub fn deploy_revision(host: &Host, config: &Config, rev: &str, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, config)?;
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
    verify::verify_commit(host, config, &found.commit)?;
    pull::fetch_tree(host, &source, &found.commit)?;
    let mode = host.deploy(&lock, &found.commit, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "deployed {} on {}: {} -> {} ({source}), {}",
        rev,
        host.osname(),
        current.as_ref().map_or("nothing".into(), Release::describe),
        target.describe(),
        mode_word(mode)
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
pub fn rebase(host: &Host, config: &Config, target: &str, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let current_source = Source::for_host(host, config)?;
    let source = Source::rebase_target(&current_source, target, config)?;
    if let Some(stream) = &config.source.stream {
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
    verify::verify_commit(host, config, &tip.commit)?;
    pull::fetch_tree(host, &source, &tip.commit)?;
    let mode = host.deploy(&lock, &tip.commit, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "rebased {} from {current_source} to {source}: now {}, {}",
        host.osname(),
        target_release.describe(),
        mode_word(mode)
    );
    Ok(Outcome::Deployed {
        from: current.as_ref().map(Release::from),
        to: target_release,
        refspec: source.refspec(),
        mode,
    })
}

/// Words for a deploy mode, for messages.
pub fn mode_word(mode: DeployMode) -> &'static str {
    match mode {
        DeployMode::Staged => "staged for the next boot (written at shutdown)",
        DeployMode::Written => "written as the default deployment",
    }
}

/// Where libostree marks a staged deployment on a booted host.
const STAGED_MARKER: &str = "/run/ostree/staged-deployment";

/// Makes sure the service that writes a staged deployment at shutdown is running before the
/// reboot is asked for. libostree 2022.7 leaves starting it to a path unit watching
/// [`STAGED_MARKER`]; a reboot requested right after staging can overtake that chain, and the
/// shutdown then drops the staged deployment without a word (seen once in the VM test:
/// the host came back on the old version with a single deployment; upstream ostree later made
/// staging start the service itself, ostreedev/ostree#3389).
fn finalize_before_reboot() -> Result<()> {
    if !std::path::Path::new(STAGED_MARKER).exists() {
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

/// `--reboot`: restarts the machine through systemd. Only meaningful on a booted host.
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
        .arg("reboot")
        .status()
        .context("Running systemctl reboot")?;
    if !status.success() {
        bail!("systemctl reboot failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(v: Option<&str>, ts: u64) -> Release {
        Release {
            commit: "c".into(),
            version: v.map(String::from),
            timestamp: ts,
        }
    }

    #[test]
    fn older_is_by_version_first() {
        assert!(is_older(
            &rel(Some("2026.11.9"), 200),
            &rel(Some("2026.11.10"), 100)
        ));
        assert!(!is_older(
            &rel(Some("2026.11.10"), 100),
            &rel(Some("2026.11.9"), 200)
        ));
    }

    #[test]
    fn older_falls_back_to_time() {
        assert!(is_older(&rel(None, 100), &rel(Some("2026.11.1"), 200)));
        assert!(!is_older(&rel(None, 300), &rel(None, 200)));
    }

    #[test]
    fn descriptions_shorten_commits() {
        assert_eq!(
            describe(Some("1.0"), "0123456789abcdef"),
            "1.0 (0123456789ab)"
        );
        assert_eq!(describe(None, "abc"), "abc");
    }
}
