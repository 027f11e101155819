//! Lockfiles: the exact package set of a compose, to compose it again.
//!
//! JSON, one entry per package with the sha256 of its `.deb`. `cairn-compose tree --lockfile`
//! installs exactly these versions and refuses a `.deb` whose hash differs.

use std::path::Path;

use anyhow::{bail, Context, Result};
use cairn_release::metadata::Package;
use serde::{Deserialize, Serialize};

/// The lockfile format version this composer writes and reads.
const FORMAT: u32 = 1;

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub architecture: String,
    /// sha256 of the `.deb`.
    pub sha256: String,
}

impl LockedPackage {
    /// The package without its hash.
    pub fn package(&self) -> Package {
        Package {
            name: self.name.clone(),
            version: self.version.clone(),
            architecture: self.architecture.clone(),
        }
    }
}

/// A lockfile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version.
    pub format: u32,
    /// The ref it was composed for.
    #[serde(rename = "ref")]
    pub osref: String,
    /// The version it produced.
    pub version: String,
    /// Packages, sorted by name.
    pub packages: Vec<LockedPackage>,
}

impl Lockfile {
    /// A lockfile for a compose.
    pub fn new(osref: &str, version: &str, mut packages: Vec<LockedPackage>) -> Lockfile {
        packages.sort();
        Lockfile {
            format: FORMAT,
            osref: osref.into(),
            version: version.into(),
            packages,
        }
    }

    /// Reads and checks a lockfile.
    pub fn read(path: &Path) -> Result<Lockfile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Reading lockfile {}", path.display()))?;
        let lock: Lockfile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
        if lock.format != FORMAT {
            bail!(
                "{}: lockfile format {} is not supported (this composer reads format {FORMAT})",
                path.display(),
                lock.format
            );
        }
        for p in &lock.packages {
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{}: package {} has a malformed sha256 {:?}",
                    path.display(),
                    p.name,
                    p.sha256
                );
            }
        }
        Ok(lock)
    }

    /// Writes atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("Writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("Writing {}", path.display()))
    }
}
