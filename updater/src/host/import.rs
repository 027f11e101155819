//! Importing an opened, checked bundle (`cairn_release::bundle`) into the sysroot's
//! repository: its static delta (decompressed first against the host's own objects when the
//! bundle says so) and the commit's detached metadata, in one repository transaction.
//! libostree checks every object it writes from the delta against its checksum.

use anyhow::{Context, Result};
use cairn_release::{bundle, gio, ostree, signature};

use crate::host::sysroot::Host;

/// Writes the bundle's objects into `host`'s repository (the commit it starts from, for a
/// delta bundle, must be there already: [`Host::has_commit`]).
pub fn import(host: &Host, opened: &bundle::Opened) -> Result<()> {
    write(&host.repo(), opened)
}

/// Writes the bundle's objects and the commit's detached metadata in one transaction.
fn write(repo: &ostree::Repo, opened: &bundle::Opened) -> Result<()> {
    let to = &opened.manifest.to;
    repo.prepare_transaction(gio::Cancellable::NONE)
        .context("Starting a repository transaction")?;
    let result = (|| -> Result<()> {
        let delta = opened.delta_file(repo)?;
        repo.static_delta_execute_offline(
            &gio::File::for_path(&delta),
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
