//! `cairn upgrade --bundle FILE`: an update from a file instead of the remote (an offline
//! site, a USB stick). The bundle (format: `cairn_release::bundle`) is checked whole — member
//! sizes and sha256, the manifest's signature, the commit's checksum and its signature — in a
//! scratch directory before anything is written into the host's repository; then
//! [`apply`] imports its static delta in one repository transaction, checks the commit's
//! signature again from the repository, and deploys the commit like a normal upgrade (same
//! ref, never older).

use std::path::Path;

use anyhow::{bail, Context, Result};
use cairn_release::bundle;
use fn_error_context::context;

use super::apply::{apply, Delivery, FromBundle, Kind, Outcome, Target};
use crate::config::Settings;
use crate::host::source::Source;
use crate::host::sysroot::Host;
use crate::host::verify::Policy;
use crate::release::Release;

/// Checks and applies `file`, then deploys its commit.
#[context("Upgrading stateroot {} from bundle {}", host.osname(), file.display())]
pub fn upgrade(host: &Host, settings: &Settings, file: &Path, wait: bool) -> Result<Outcome> {
    let lock = host.lock(wait)?;
    let source = Source::for_host(host, &settings.source)?;
    let policy = Policy::for_host(host, settings.require_signature)?;
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
    let release = Release::from(&opened.commit_info()?);
    let target = Target {
        kind: Kind::Bundle {
            file: file.to_path_buf(),
        },
        source,
        release,
        delivery: Delivery::Bundle(Box::new(FromBundle {
            opened,
            policy,
            scratch,
        })),
    };
    apply(host, settings, &lock, target)
}
