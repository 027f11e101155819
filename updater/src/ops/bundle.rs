//! `cairn upgrade --bundle FILE`: an update from a file instead of the remote (an offline
//! site, a USB stick). The bundle (format: `cairn_release::bundle`) is checked whole — member
//! sizes and sha256, the manifest's signature, the commit's checksum and its signature — in a
//! scratch directory before anything is written into the host's repository; then its static
//! delta is applied in one repository transaction, the commit's signature is checked again
//! from the repository, and the commit is deployed like a normal upgrade (same ref, never
//! older).

use std::path::Path;

use anyhow::{bail, Context, Result};
use cairn_release::bundle;
use cairn_release::{gio, ostree, signature};
use fn_error_context::context;

use crate::config::Settings;
use crate::host::source::Source;
use crate::host::sysroot::{Host, Kargs};
use crate::host::verify::Policy;
use crate::ops::update::Outcome;
use crate::release::Release;

/// Checks and applies `file`, then deploys its commit.
#[context("Upgrading stateroot {} from bundle {}", host.osname(), file.display())]
pub fn upgrade(host: &Host, settings: &Settings, file: &Path, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, &settings.source)?;
    let policy = Policy::for_host(host, settings.require_signature)?;
    let repo = host.repo();
    // Scratch space on the repository's filesystem; removed on every exit path.
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bundle-")
        .tempdir_in(host.path().join("ostree/repo/tmp"))
        .context("Creating a scratch directory in the repository's tmp")?;
    let opened = bundle::open(
        file,
        scratch.path(),
        &policy.trusted,
        policy.require_signature,
    )?;
    let m = &opened.manifest;
    if m.osref != source.ref_ {
        bail!(
            "the bundle carries {} of {}, but this host follows {}",
            m.to_version.as_deref().unwrap_or(&m.to),
            m.osref,
            source.ref_
        );
    }
    policy.check_data(&m.to, &opened.commit_bytes()?, &opened.detached_bytes()?)?;
    let target = Release::from(&opened.commit_info()?);
    let current = host
        .own_deployments()
        .into_iter()
        .next()
        .map(|d| Release::from(&d));
    if let Some(cur) = &current {
        if cur.commit == m.to {
            return Ok(Outcome::Unchanged {
                current: cur.clone(),
                refspec: source.refspec(),
            });
        }
        if crate::release::is_older(&target, cur) {
            bail!(
                "refusing to downgrade: the bundle carries {}, older than {} which boots next",
                target.describe(),
                cur.describe()
            );
        }
    }
    if let Some(from) = &m.from {
        let have = repo
            .has_object(ostree::ObjectType::Commit, from, gio::Cancellable::NONE)
            .with_context(|| format!("Looking up commit {from}"))?;
        if !have {
            bail!(
                "the bundle updates from {}, which this host does not have; use a bundle \
                 from a version it has, or a full bundle (no --from)",
                crate::release::describe(m.from_version.as_deref(), from)
            );
        }
    }
    apply(&repo, &opened)?;
    policy.check(&repo, &m.to)?;
    let mode = host.deploy(&lock, &m.to, &source.refspec(), &Kargs::Inherit)?;
    log::info!(
        "upgraded {} from bundle {}: {} -> {} ({source}), {}",
        host.osname(),
        file.display(),
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

/// Writes the bundle's objects and the commit's detached metadata in one transaction.
fn apply(repo: &ostree::Repo, opened: &bundle::Opened) -> Result<()> {
    let to = &opened.manifest.to;
    repo.prepare_transaction(gio::Cancellable::NONE)
        .context("Starting a repository transaction")?;
    let result = (|| -> Result<()> {
        repo.static_delta_execute_offline(
            &gio::File::for_path(opened.member(bundle::DELTA)),
            false,
            gio::Cancellable::NONE,
        )
        .with_context(|| format!("Applying the bundle's static delta to {to}"))?;
        signature::write_detached(repo, to, &opened.detached_bytes()?)?;
        repo.commit_transaction(gio::Cancellable::NONE)
            .context("Committing the repository transaction")?;
        Ok(())
    })();
    if result.is_err() {
        let _ = repo.abort_transaction(gio::Cancellable::NONE);
    }
    result
}
