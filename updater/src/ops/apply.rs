//! The one path that changes which commit the host boots next.
//!
//! Each command only works out *what* to deploy — a [`Target`]: `upgrade` the newest commit
//! of the followed ref, `deploy` a revision of its history, `rebase` the newest commit of
//! another ref, `upgrade --bundle` the commit a bundle file carries. [`apply`] then does what
//! every path must do, in this order: nothing if the target already boots next; refuse an
//! older release where the command does; bring the commit's tree into the repository with its
//! signature checked ([`crate::host::verify`]) — from the remote's delta bundle when it has one
//! from a commit the host has ([`crate::host::remote_delta`]), else by a pull — and, from the
//! remote, after making sure the
//! repository's filesystem can hold the new objects ([`crate::host::root_space`], which may
//! first drop the deployments this deploy would drop anyway); refuse when `/boot` cannot
//! hold the new kernel and initramfs ([`crate::host::space`]); write or stage the deployment
//! ([`Host::deploy`]); log; and arm boot counting (`arm_boot_counter`). A new way to change
//! the host adds a [`Kind`] of target, not another pipeline.
//!
//! The caller holds the sysroot lock from resolving the target to the end. Until the deploy
//! step nothing but the repository changes (and, only when the new objects need their space,
//! the deployments the deploy would drop anyway are dropped first), so a failure or a kill
//! at any point leaves the current default deployment in place.

use std::path::PathBuf;

use anyhow::{bail, Result};
use cairn_release::bundle;
use serde::Serialize;

use crate::config::Settings;
use crate::health;
use crate::host::source::Source;
use crate::host::sysroot::{DeployMode, DeploymentInfo, Host, Kargs, SysrootLock};
use crate::host::verify::Policy;
use crate::host::{bootcount, import, pull, remote_delta, root_space, space, verify};
use crate::ops::etc::{self, EtcConflict};
use crate::release::{describe, is_older, Release};

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
        /// Bytes downloaded from the remote; `None` when the commit came from a bundle.
        bytes_fetched: Option<u64>,
        /// Locally changed `/etc` files the merge kept although their default changed.
        etc_conflicts: Vec<EtcConflict>,
    },
}

/// Which command asked, as far as the pipeline cares: whether an older release is refused,
/// whether following another ref is a change by itself, and how the log line reads.
#[derive(Debug)]
pub enum Kind {
    /// `cairn upgrade`: the newest commit of the followed ref; never older.
    Upgrade,
    /// `cairn deploy REV` (and the agent): a commit from the ref's history; older allowed.
    Deploy {
        /// The revision as asked for.
        rev: String,
    },
    /// `cairn rebase`: the newest commit of another ref; a new ref is a change even for the
    /// same commit.
    Rebase {
        /// What the host followed before.
        from: Source,
    },
    /// `cairn upgrade --bundle FILE`: the commit a checked bundle carries; never older.
    Bundle {
        /// The bundle file.
        file: PathBuf,
    },
}

/// How the commit's objects reach the repository.
pub enum Delivery {
    /// Pulled from the target's remote; its commit object is in the repository already
    /// (metadata pull), its signature is checked before the tree is fetched.
    Remote,
    /// Imported from a bundle checked whole in a scratch directory; the signature is checked
    /// again from the repository after the import.
    Bundle(Box<FromBundle>),
}

/// A bundle checked whole, ready to import.
pub struct FromBundle {
    /// The checked bundle (its members live in `scratch`).
    pub opened: bundle::Opened,
    /// The host's signature policy the bundle was checked against.
    pub policy: Policy,
    /// Scratch space of the opened bundle; removed on drop.
    pub scratch: tempfile::TempDir,
}

/// What a command resolved: which commit, following which ref, from where.
pub struct Target {
    /// Which command, for the rules that differ.
    pub kind: Kind,
    /// What the new deployment follows (its origin's refspec).
    pub source: Source,
    /// The commit to deploy.
    pub release: Release,
    /// Where its objects come from.
    pub delivery: Delivery,
}

/// Deploys `target` unless it already boots next; see the module documentation for the steps.
pub fn apply(
    host: &Host,
    settings: &Settings,
    lock: &SysrootLock<'_>,
    target: Target,
) -> Result<Outcome> {
    let Target {
        kind,
        source,
        release,
        delivery,
    } = target;
    let refspec = source.refspec();
    let current_deployment = host.own_deployments().into_iter().next();
    let current = current_deployment.as_ref().map(Release::from);
    if let (Some(cur), Some(cur_release)) = (&current_deployment, &current) {
        let same_ref = match kind {
            Kind::Rebase { .. } => cur.refspec.as_deref() == Some(refspec.as_str()),
            _ => true,
        };
        if cur.commit == release.commit && same_ref {
            return Ok(Outcome::Unchanged {
                current: cur_release.clone(),
                refspec,
            });
        }
        if is_older(&release, cur_release) {
            match &kind {
                Kind::Upgrade => bail!(
                    "refusing to downgrade: {source} offers {}, older than {} which boots next; \
                     use `cairn deploy VERSION` to go back on purpose",
                    release.describe(),
                    cur_release.describe()
                ),
                Kind::Bundle { .. } => bail!(
                    "refusing to downgrade: the bundle carries {}, older than {} which boots next",
                    release.describe(),
                    cur_release.describe()
                ),
                Kind::Deploy { .. } | Kind::Rebase { .. } => {}
            }
        }
    }
    let bytes_fetched = match &delivery {
        Delivery::Remote => {
            verify::verify_commit(host, settings.require_signature, &release.commit)?;
            let objects = root_space::ensure_root_room(host, lock, &source, &release.commit)?;
            let bundled = remote_delta::find(host, &source, &release.commit).and_then(|found| {
                remote_delta::fetch(
                    host,
                    &source,
                    settings.require_signature,
                    &found,
                    (&release.commit, objects),
                )
            });
            match bundled {
                Some(bytes) => Some(bytes),
                None => Some(pull::fetch_tree(host, &source, &release.commit)?),
            }
        }
        Delivery::Bundle(b) => {
            let FromBundle { opened, policy, .. } = b.as_ref();
            if let Some(from) = &opened.manifest.from {
                if !host.has_commit(from)? {
                    bail!(
                        "the bundle updates from {}, which this host does not have; use a \
                         bundle from a version it has, or a full bundle (no --from)",
                        describe(opened.manifest.from_version.as_deref(), from)
                    );
                }
            }
            root_space::ensure_bundle_room(host, Some(opened), 0, None)?;
            import::import(host, opened)?;
            policy.check(&host.repo(), &release.commit)?;
            None
        }
    };
    space::check_boot_room(host, &release.commit)?;
    let merge = host.merge_deployment();
    let mode = host.deploy(lock, &release.commit, &refspec, &Kargs::Inherit)?;
    let etc_conflicts = report_etc_conflicts(host, merge.as_ref(), &release);
    let from = current.as_ref().map_or("nothing".into(), Release::describe);
    match &kind {
        Kind::Upgrade => log::info!(
            "upgraded {}: {from} -> {} ({source}), {}",
            host.osname(),
            release.describe(),
            mode.describe()
        ),
        Kind::Deploy { rev } => log::info!(
            "deployed {rev} on {}: {from} -> {} ({source}), {}",
            host.osname(),
            release.describe(),
            mode.describe()
        ),
        Kind::Rebase { from: before } => log::info!(
            "rebased {} from {before} to {source}: now {}, {}",
            host.osname(),
            release.describe(),
            mode.describe()
        ),
        Kind::Bundle { file } => log::info!(
            "upgraded {} from bundle {}: {from} -> {} ({source}), {}",
            host.osname(),
            file.display(),
            release.describe(),
            mode.describe()
        ),
    }
    arm_boot_counter(host, settings, &release.commit);
    Ok(Outcome::Deployed {
        from: current,
        to: release,
        refspec,
        mode,
        bytes_fetched,
        etc_conflicts,
    })
}

/// Works out ([`etc::conflicts`]) and records the `/etc` files the merge from `merge` into the
/// new deployment of `release` kept although their default changed, and logs each. Failures
/// are logged, not fatal: the update itself is in place.
fn report_etc_conflicts(
    host: &Host,
    merge: Option<&DeploymentInfo>,
    release: &Release,
) -> Vec<EtcConflict> {
    let Some(merge) = merge else {
        return Vec::new();
    };
    let find = || {
        host.own_deployments()
            .into_iter()
            .find(|d| d.commit == release.commit && d.path != merge.path)
    };
    let Some(new) = find().or_else(|| host.reload().ok().and_then(|()| find())) else {
        log::warn!(
            "not comparing /etc: the new deployment of {} was not found",
            release.describe()
        );
        return Vec::new();
    };
    let found = match etc::conflicts(
        &merge.path.join("etc"),
        &merge.path.join("usr/etc"),
        &new.path.join("usr/etc"),
    ) {
        Ok(found) => found,
        Err(e) => {
            log::warn!("{e:#}");
            return Vec::new();
        }
    };
    for c in &found {
        log::warn!(
            "kept the local {} ({}): its default {} in {}; the new default was not applied",
            c.path,
            c.local,
            c.default,
            release.describe()
        );
    }
    if let Err(e) = etc::save(&host.var_dir(), release, &found) {
        log::warn!("{e:#}");
    }
    found
}

/// Gives the deployment that boots next its boot attempts, if the sysroot boots with GRUB and
/// the deployment's tree runs the health service (which marks a boot good; without it every
/// boot would count down). Failures are logged, not fatal: the update itself is in place.
fn arm_boot_counter(host: &Host, settings: &Settings, commit: &str) {
    let Some(next) = host.own_deployments().into_iter().next() else {
        return;
    };
    if next.commit != commit {
        return;
    }
    if !host.boots_with_grub() {
        log::debug!("not arming boot counting: the sysroot does not boot with GRUB");
        return;
    }
    if !next.path.join(health::UNIT).exists() {
        log::info!(
            "not arming boot counting: {} has no cairn-health.service to mark its boot good",
            Release::from(&next).describe()
        );
        return;
    }
    if let Err(e) = bootcount::arm(&bootcount::path(host.path()), settings.boot_attempts) {
        log::warn!("{e:#}");
    }
}
