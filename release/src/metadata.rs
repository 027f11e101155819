//! Commit metadata keys and the plain-Rust view of a Cairn commit.
//!
//! The composer writes these keys; the updater and `cairn-compose log/diff` read them through
//! [`CommitInfo`], so glib variants stay inside this module.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::glib::{self, prelude::*};
use crate::ostree;

/// The release version, e.g. `2026.11.3` (libostree's own key, shown by `ostree log`).
pub const VERSION: &str = "version";
/// `true` on commits that carry a kernel and can be deployed (libostree's key).
pub const BOOTABLE: &str = "ostree.bootable";
/// The kernel version in `/usr/lib/modules` (libostree's key).
pub const LINUX: &str = "ostree.linux";
/// The refs this commit may be published on; libostree checks it on pull.
pub const REF_BINDING: &str = "ostree.ref-binding";
/// Installed packages as `a(sss)`: name, version, architecture, sorted by name.
pub const PACKAGES: &str = "cairn.packages";
/// sha256 over the merged manifest and the resolved package set: equal means "nothing to do".
pub const INPUTS_SHA256: &str = "cairn.inputs-sha256";
/// The `SOURCE_DATE_EPOCH` the tree was built with (seconds).
pub const SOURCE_DATE_EPOCH: &str = "cairn.source-date-epoch";
/// On a tree made by applying package changes to a cached fresh install: sha256 of that
/// install's package set (name, version, architecture, `.deb` sha256 per line, sorted).
pub const INSTALL_BASE: &str = "cairn.install-base";

/// One installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Debian version string.
    pub version: String,
    /// Debian architecture (`amd64`, `all`, …).
    pub architecture: String,
}

/// What a Cairn commit says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct CommitInfo {
    /// The commit checksum.
    pub commit: String,
    /// The parent commit, if the commit names one.
    pub parent: Option<String>,
    /// The release version, if set.
    pub version: Option<String>,
    /// Commit time, seconds since the epoch.
    pub timestamp: u64,
    /// The commit subject line.
    pub subject: String,
    /// The kernel version, if bootable.
    pub linux: Option<String>,
    /// Installed packages, sorted by name.
    pub packages: Vec<Package>,
    /// The inputs hash the composer recorded.
    pub inputs_sha256: Option<String>,
    /// For a tree installed incrementally: the package-set hash of the fresh install it
    /// started from ([`INSTALL_BASE`]).
    pub install_base: Option<String>,
}

impl CommitInfo {
    /// Loads a commit object from `repo`.
    pub fn load(repo: &ostree::Repo, commit: &str) -> Result<Self> {
        let variant = repo
            .load_variant(ostree::ObjectType::Commit, commit)
            .with_context(|| format!("Loading commit {commit}"))?;
        Self::from_variant(commit, &variant)
    }

    /// Reads the plain fields out of a commit variant (`(a{sv}aya(say)sstayay)`).
    pub fn from_variant(commit: &str, variant: &glib::Variant) -> Result<Self> {
        let meta = glib::VariantDict::new(Some(&variant.child_value(0)));
        let packages: Vec<(String, String, String)> = meta
            .lookup_value(
                PACKAGES,
                Some(&<Vec<(String, String, String)>>::static_variant_type()),
            )
            .and_then(|v| v.get())
            .unwrap_or_default();
        let subject: String = variant.child_value(3).get().unwrap_or_default();
        Ok(CommitInfo {
            commit: commit.to_string(),
            parent: ostree::commit_get_parent(variant).map(|p| p.to_string()),
            version: lookup_string(&meta, VERSION),
            timestamp: ostree::commit_get_timestamp(variant),
            subject,
            linux: lookup_string(&meta, LINUX),
            packages: packages
                .into_iter()
                .map(|(name, version, architecture)| Package {
                    name,
                    version,
                    architecture,
                })
                .collect(),
            inputs_sha256: lookup_string(&meta, INPUTS_SHA256),
            install_base: lookup_string(&meta, INSTALL_BASE),
        })
    }
}

fn lookup_string(meta: &glib::VariantDict, key: &str) -> Option<String> {
    meta.lookup_value(key, Some(glib::VariantTy::STRING))
        .and_then(|v| v.get())
}

/// Builds the `a(sss)` variant for [`PACKAGES`].
pub fn packages_variant(packages: &[Package]) -> glib::Variant {
    packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.architecture.clone()))
        .collect::<Vec<_>>()
        .to_variant()
}
