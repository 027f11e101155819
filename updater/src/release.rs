//! A release as the updater reasons about it: a commit with its version and time, whether
//! one is older than another, and how it is named in messages.
//!
//! Not to be confused with the `cairn_release` crate (the composer/updater contract), whose
//! version ordering [`is_older`] uses.

use std::cmp::Ordering;

use cairn_release::metadata::CommitInfo;
use cairn_release::version;
use serde::{Deserialize, Serialize};

use crate::host::sysroot::DeploymentInfo;

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

/// Whether `candidate` is older than `current`: by version when both have one, else by
/// commit time.
pub fn is_older(candidate: &Release, current: &Release) -> bool {
    match (&candidate.version, &current.version) {
        (Some(a), Some(b)) if a != b => version::compare(a, b) == Ordering::Less,
        _ => candidate.timestamp < current.timestamp,
    }
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
