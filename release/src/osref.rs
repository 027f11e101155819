//! OS refs: `<os>/<suite>/<arch>/<stream>`, e.g. `cairn/bookworm/x86_64/stable`.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

/// A parsed OS ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRef {
    /// The OS name, e.g. `cairn`; also the OSTree stateroot on hosts.
    pub os: String,
    /// The Debian suite, e.g. `bookworm`.
    pub suite: String,
    /// The architecture as OSTree spells it, e.g. `x86_64`.
    pub arch: String,
    /// The release stream, e.g. `stable` or `testing`.
    pub stream: String,
}

impl FromStr for OsRef {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() != 4 || !parts.iter().all(|p| valid(p)) {
            bail!("ref {s:?} is not of the form <os>/<suite>/<arch>/<stream> (e.g. cairn/bookworm/x86_64/stable)");
        }
        Ok(OsRef {
            os: parts[0].into(),
            suite: parts[1].into(),
            arch: parts[2].into(),
            stream: parts[3].into(),
        })
    }
}

impl fmt::Display for OsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.os, self.suite, self.arch, self.stream
        )
    }
}

/// The OSTree architecture name for a Debian architecture (`amd64` → `x86_64`).
pub fn ostree_arch(debian_arch: &str) -> &str {
    match debian_arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "i386" => "i686",
        "armhf" => "armv7hl",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r: OsRef = "cairn/bookworm/x86_64/stable".parse().unwrap();
        assert_eq!(r.stream, "stable");
        assert_eq!(r.to_string(), "cairn/bookworm/x86_64/stable");
    }

    #[test]
    fn rejects_malformed_refs() {
        assert!("cairn/bookworm/stable".parse::<OsRef>().is_err());
        assert!("cairn//x86_64/stable".parse::<OsRef>().is_err());
        assert!("cairn/book worm/x86_64/stable".parse::<OsRef>().is_err());
    }
}
