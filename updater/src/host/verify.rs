//! Which commits this host accepts: the ed25519 signature check that runs after a commit's
//! metadata (commit object + detached metadata) arrived and before its tree is fetched or
//! deployed.
//!
//! Trusted keys are the `*.pub` files (base64 public keys, one per line) of
//! `/etc/cairn/trusted.d/` (the administrator's) and `/usr/lib/cairn/trusted.d/` (shipped in
//! the tree); for `--sysroot DIR`, those of the stateroot's default deployment. More than one
//! key may be trusted at once: that is how keys rotate (ship the new key, sign with it, drop
//! the old one later). Policy: `[verify] require_signature` of the configuration; by default a
//! signature is required as soon as one trusted key exists.
//!
//! The signature format lives in `cairn_release::signature`, shared with the composer.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use cairn_release::signature::{self, TrustedKeys};
use fn_error_context::context;

use crate::host::sysroot::Host;

/// Trusted key directories, relative to a tree's root.
pub const TRUSTED_DIRS: [&str; 2] = ["etc/cairn/trusted.d", "usr/lib/cairn/trusted.d"];

/// The keys and whether a signature is required.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The trusted keys.
    pub trusted: TrustedKeys,
    /// Refuse commits without a valid signature.
    pub require_signature: bool,
}

/// How a commit passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by a trusted key: its file (or base64 key).
    Signed(String),
    /// Not checked: no signature is required.
    NotRequired,
}

impl Policy {
    /// Reads the trusted keys of the tree `host` runs and applies the configuration.
    #[context("Reading the trusted signing keys")]
    pub fn for_host(host: &Host, require_signature: Option<bool>) -> Result<Self> {
        let dirs = host
            .tree_root()
            .map(|root| trusted_dirs(&root))
            .unwrap_or_default();
        Self::from_dirs(&dirs, require_signature)
    }

    /// Reads the keys of `dirs` and applies the configuration.
    pub fn from_dirs(dirs: &[PathBuf], require_signature: Option<bool>) -> Result<Self> {
        let trusted = TrustedKeys::load_dirs(dirs)?;
        let require_signature = require_signature.unwrap_or(!trusted.is_empty());
        Ok(Policy {
            trusted,
            require_signature,
        })
    }

    /// Checks `commit`, already in the host's repository (object and detached metadata).
    pub fn check(&self, repo: &cairn_release::ostree::Repo, commit: &str) -> Result<Verdict> {
        if !self.require_signature {
            if self.trusted.is_empty() {
                log::debug!("no trusted keys: commit {commit} is not signature-checked");
            } else {
                log::warn!(
                    "[verify] require_signature = false: commit {commit} is not signature-checked"
                );
            }
            return Ok(Verdict::NotRequired);
        }
        if self.trusted.is_empty() {
            bail!(
                "a signature is required ([verify] require_signature = true) but there are {}",
                self.trusted.describe()
            );
        }
        let key = signature::verify_commit(repo, commit, &self.trusted)?;
        log::info!("commit {commit}: valid signature by {key}");
        Ok(Verdict::Signed(key.to_string()))
    }

    /// Checks a commit given as bytes with its serialized detached metadata (from a bundle),
    /// before anything is written into the repository.
    pub fn check_data(
        &self,
        commit: &str,
        commit_bytes: &[u8],
        detached: &[u8],
    ) -> Result<Verdict> {
        if !self.require_signature {
            return Ok(Verdict::NotRequired);
        }
        if self.trusted.is_empty() {
            bail!(
                "a signature is required ([verify] require_signature = true) but there are {}",
                self.trusted.describe()
            );
        }
        let meta = signature::detached_from_bytes(detached)?;
        let key = signature::explain(
            signature::verify_data(commit_bytes, Some(&meta), &self.trusted),
            commit,
            &self.trusted,
        )?;
        Ok(Verdict::Signed(key.to_string()))
    }
}

/// Verifies `commit` in the host's repository under the host's policy.
#[context("Verifying the signature of commit {commit}")]
pub fn verify_commit(
    host: &Host,
    require_signature: Option<bool>,
    commit: &str,
) -> Result<Verdict> {
    Policy::for_host(host, require_signature)?.check(&host.repo(), commit)
}

/// The trusted key directories of a tree rooted at `root`.
pub fn trusted_dirs(root: &Path) -> Vec<PathBuf> {
    TRUSTED_DIRS.iter().map(|d| root.join(d)).collect()
}
