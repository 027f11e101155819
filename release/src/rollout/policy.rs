//! The update policy document, `cairn-policy.json`, served beside the OSTree repository.
//!
//! On disk it is JSON with times as RFC 3339 UTC strings (`2026-12-02T06:00:00Z`) and durations
//! as whole seconds; unknown keys are errors. [`Policy::parse`] reads it into raw serde structs,
//! then validates it once into [`Policy`] (times as seconds since the epoch, releases sorted by
//! version, no duplicates, no release both a barrier and a dead end). Every error names the file
//! and the field (`streams."cairn/bookworm/x86_64/stable".releases[1].rollout.start`).
//!
//! This module neither verifies signatures nor decides anything: see [`super::verify`] and
//! [`super::offer`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::osref::OsRef;
use crate::version;

/// The policy's file name at the top of the repository.
pub const FILE_NAME: &str = "cairn-policy.json";
/// Its detached signature: one or more raw 64-byte ed25519 signatures of the file's bytes.
pub const SIG_FILE_NAME: &str = "cairn-policy.json.sig";

/// A validated update policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Grows with every edit; a host refuses a policy older than one it accepted.
    pub serial: u64,
    /// Seconds since the epoch after which hosts refuse the policy.
    pub expires: u64,
    /// Per stream (the full ref, e.g. `cairn/bookworm/x86_64/stable`), its releases.
    pub streams: BTreeMap<String, Vec<Release>>,
}

/// One release of a stream, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release version (the commit's `version` metadata).
    pub version: String,
    /// The commit checksum hosts pull.
    pub commit: String,
    /// When and how fast it is offered; `None`: not offered yet (e.g. only flagged).
    pub rollout: Option<Rollout>,
    /// Hosts below it must update to it before going further.
    pub barrier: bool,
    /// Never offered; hosts on it are moved off.
    pub deadend: bool,
    /// No longer offered to hosts not yet on it.
    pub halted: bool,
}

/// The rollout curve of a release: `start_percentage` at `start`, rising linearly to 100% at
/// `start + duration_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// Seconds since the epoch; before it nobody is offered the release.
    pub start: u64,
    /// Share of hosts (0–100) offered the release at `start`.
    pub start_percentage: u8,
    /// Seconds from `start` until every host is offered it (0: everyone at `start`).
    pub duration_secs: u64,
}

impl Rollout {
    /// The share of hosts, in [0, 1], offered the release at `now`.
    pub fn share_at(&self, now: u64) -> f64 {
        if now < self.start {
            return 0.0;
        }
        if self.duration_secs == 0 {
            return 1.0;
        }
        let elapsed = (now - self.start).min(self.duration_secs) as f64;
        let p0 = f64::from(self.start_percentage);
        let percent = p0 + (100.0 - p0) * elapsed / self.duration_secs as f64;
        (percent / 100.0).min(1.0)
    }

    /// Whether a host of `wave` is offered the release at `now`: its wave is below the share,
    /// or the rollout is complete (so that a wariness of 1.0 is offered at 100%).
    pub fn offered_to(&self, wave: f64, now: u64) -> bool {
        let share = self.share_at(now);
        share >= 1.0 || wave < share
    }

    /// The first second at which a host of `wave` is offered the release.
    pub fn offered_from(&self, wave: f64) -> u64 {
        let end = self.start.saturating_add(self.duration_secs);
        if self.offered_to(wave, self.start) {
            return self.start;
        }
        let p0 = f64::from(self.start_percentage);
        let fraction = ((wave * 100.0 - p0) / (100.0 - p0)).clamp(0.0, 1.0);
        let guess = self.start + (fraction * self.duration_secs as f64).ceil() as u64;
        // Floating point may be a second off either way: settle on the exact edge.
        let mut t = guess.clamp(self.start, end);
        while t < end && !self.offered_to(wave, t) {
            t += 1;
        }
        while t > self.start && self.offered_to(wave, t - 1) {
            t -= 1;
        }
        t
    }
}

impl Policy {
    /// A policy with no stream.
    pub fn empty(serial: u64, expires: u64) -> Self {
        Policy {
            serial,
            expires,
            streams: BTreeMap::new(),
        }
    }

    /// Parses and validates a policy; `origin` (a file name or URL) prefixes every error.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let raw: RawPolicy = serde_json::from_slice(bytes)
            .with_context(|| format!("{origin}: not a valid update policy"))?;
        raw.validate().with_context(|| origin.to_string())
    }

    /// The document's bytes: pretty JSON, releases in version order, a final newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(&RawPolicy::from(self))
            .context("Serializing the update policy")?;
        out.push(b'\n');
        Ok(out)
    }

    /// The releases of `stream` (empty when the policy does not list it).
    pub fn releases(&self, stream: &str) -> &[Release] {
        self.streams.get(stream).map_or(&[], Vec::as_slice)
    }

    /// The release `version` of `stream`.
    pub fn release(&self, stream: &str, version: &str) -> Option<&Release> {
        self.releases(stream).iter().find(|r| r.version == version)
    }

    /// The release `version` of `stream`, added (no rollout, no flag) when missing.
    pub fn release_mut(&mut self, stream: &str, version: &str, commit: &str) -> &mut Release {
        let releases = self.streams.entry(stream.to_string()).or_default();
        let index = match releases.iter().position(|r| r.version == version) {
            Some(i) => i,
            None => {
                releases.push(Release {
                    version: version.to_string(),
                    commit: commit.to_string(),
                    rollout: None,
                    barrier: false,
                    deadend: false,
                    halted: false,
                });
                releases.sort_by(|a, b| version::compare(&a.version, &b.version));
                releases
                    .iter()
                    .position(|r| r.version == version)
                    .unwrap_or(releases.len() - 1)
            }
        };
        &mut releases[index]
    }

    /// Removes release `version` of `stream`; returns it if it was there. A stream left with
    /// no release is removed too.
    pub fn remove(&mut self, stream: &str, version: &str) -> Option<Release> {
        let releases = self.streams.get_mut(stream)?;
        let i = releases.iter().position(|r| r.version == version)?;
        let removed = releases.remove(i);
        if releases.is_empty() {
            self.streams.remove(stream);
        }
        Some(removed)
    }
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Formats seconds since the epoch as RFC 3339 UTC, e.g. `2026-12-02T06:00:00Z`.
pub fn format_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Parses an RFC 3339 UTC time (`2026-12-02T06:00:00Z`, fractions of a second dropped).
pub fn parse_time(text: &str) -> Result<u64> {
    let t = humantime::parse_rfc3339(text).with_context(|| {
        format!("{text:?} is not an RFC 3339 UTC time such as 2026-12-02T06:00:00Z")
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .with_context(|| format!("{text:?} is before 1970"))
}

// The document as written: validated into `Policy` by `validate`.

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    serial: u64,
    expires: String,
    #[serde(default)]
    streams: BTreeMap<String, RawStream>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    releases: Vec<RawRelease>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    version: String,
    commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollout: Option<RawRollout>,
    #[serde(default)]
    barrier: bool,
    #[serde(default)]
    deadend: bool,
    #[serde(default)]
    halted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    start: String,
    start_percentage: u64,
    duration_secs: u64,
}

impl RawPolicy {
    fn validate(self) -> Result<Policy> {
        let expires = parse_time(&self.expires).context("field `expires`")?;
        let mut streams = BTreeMap::new();
        for (name, stream) in self.streams {
            let at = format!("streams.{name:?}");
            name.parse::<OsRef>()
                .with_context(|| format!("field `{at}`: a stream is named by its full ref"))?;
            let mut releases = Vec::new();
            for (i, r) in stream.releases.into_iter().enumerate() {
                let at = format!("{at}.releases[{i}]");
                releases.push(r.validate().with_context(|| format!("field `{at}`"))?);
            }
            releases.sort_by(|a: &Release, b| version::compare(&a.version, &b.version));
            for pair in releases.windows(2) {
                if version::compare(&pair[0].version, &pair[1].version) == Ordering::Equal {
                    bail!("field `{at}`: version {} is listed twice", pair[1].version);
                }
            }
            let mut commits: Vec<&str> = releases.iter().map(|r| r.commit.as_str()).collect();
            commits.sort_unstable();
            if let Some(pair) = commits.windows(2).find(|p| p[0] == p[1]) {
                bail!(
                    "field `{at}`: commit {} is listed under two versions",
                    pair[0]
                );
            }
            streams.insert(name, releases);
        }
        Ok(Policy {
            serial: self.serial,
            expires,
            streams,
        })
    }
}

impl RawRelease {
    fn validate(self) -> Result<Release> {
        if self.version.is_empty() || self.version.chars().any(char::is_whitespace) {
            bail!(".version: {:?} is not a version", self.version);
        }
        let hex64 = self.commit.len() == 64
            && self
                .commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex64 {
            bail!(
                ".commit: {:?} is not a commit checksum (64 lowercase hex digits)",
                self.commit
            );
        }
        if self.barrier && self.deadend {
            bail!(
                "release {} is both a barrier and a dead end: a barrier must be offered, a dead \
                 end never is; clear one of them",
                self.version
            );
        }
        let rollout = match self.rollout {
            None => None,
            Some(r) => {
                let start = parse_time(&r.start).context(".rollout.start")?;
                let Ok(start_percentage) = u8::try_from(r.start_percentage) else {
                    bail!(
                        ".rollout.start_percentage: {} is above 100",
                        r.start_percentage
                    );
                };
                if start_percentage > 100 {
                    bail!(".rollout.start_percentage: {start_percentage} is above 100");
                }
                Some(Rollout {
                    start,
                    start_percentage,
                    duration_secs: r.duration_secs,
                })
            }
        };
        Ok(Release {
            version: self.version,
            commit: self.commit,
            rollout,
            barrier: self.barrier,
            deadend: self.deadend,
            halted: self.halted,
        })
    }
}

impl From<&Policy> for RawPolicy {
    fn from(p: &Policy) -> Self {
        RawPolicy {
            serial: p.serial,
            expires: format_time(p.expires),
            streams: p
                .streams
                .iter()
                .map(|(name, releases)| {
                    let mut releases: Vec<RawRelease> = releases
                        .iter()
                        .map(|r| RawRelease {
                            version: r.version.clone(),
                            commit: r.commit.clone(),
                            rollout: r.rollout.map(|ro| RawRollout {
                                start: format_time(ro.start),
                                start_percentage: u64::from(ro.start_percentage),
                                duration_secs: ro.duration_secs,
                            }),
                            barrier: r.barrier,
                            deadend: r.deadend,
                            halted: r.halted,
                        })
                        .collect();
                    releases.sort_by(|a, b| version::compare(&a.version, &b.version));
                    (name.clone(), RawStream { releases })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn doc(release_extra: &str) -> String {
        format!(
            r#"{{"serial": 3, "expires": "2026-12-09T06:00:00Z", "streams": {{
  "cairn/bookworm/x86_64/stable": {{"releases": [
    {{"version": "2026.12.10", "commit": "{C2}"{release_extra}}},
    {{"version": "2026.12.9", "commit": "{C1}",
      "rollout": {{"start": "2026-12-02T06:00:00Z", "start_percentage": 5, "duration_secs": 86400}}}}
  ]}}}}}}"#
        )
    }

    #[test]
    fn parses_sorts_and_round_trips() {
        let p = Policy::parse(doc("").as_bytes(), "p.json").unwrap();
        assert_eq!(p.serial, 3);
        assert_eq!(p.expires, parse_time("2026-12-09T06:00:00Z").unwrap());
        let rs = p.releases("cairn/bookworm/x86_64/stable");
        assert_eq!(rs[0].version, "2026.12.9", "sorted by version, numerically");
        assert_eq!(rs[0].rollout.unwrap().start_percentage, 5);
        assert!(rs[1].rollout.is_none());
        let again = Policy::parse(&p.to_bytes().unwrap(), "again").unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let err = |extra: &str| {
            format!(
                "{:#}",
                Policy::parse(doc(extra).as_bytes(), "/srv/repo/cairn-policy.json").unwrap_err()
            )
        };
        let e = err(r#", "haltd": true"#);
        assert!(
            e.contains("/srv/repo/cairn-policy.json") && e.contains("haltd"),
            "{e}"
        );
        let e =
            err(r#", "rollout": {"start": "tomorrow", "start_percentage": 1, "duration_secs": 1}"#);
        assert!(
            e.contains("streams.\"cairn/bookworm/x86_64/stable\".releases[0]")
                && e.contains(".rollout.start")
                && e.contains("tomorrow"),
            "{e}"
        );
        let e = err(
            r#", "rollout": {"start": "2026-12-02T06:00:00Z", "start_percentage": 101, "duration_secs": 1}"#,
        );
        assert!(e.contains("start_percentage") && e.contains("101"), "{e}");
        let e = err(r#", "barrier": true, "deadend": true"#);
        assert!(e.contains("both a barrier and a dead end"), "{e}");
        let bad_commit = doc("").replace(C2, "abc");
        let e = format!(
            "{:#}",
            Policy::parse(bad_commit.as_bytes(), "x").unwrap_err()
        );
        assert!(e.contains(".commit") && e.contains("abc"), "{e}");
        let dup = doc("").replace("2026.12.10", "2026.12.9");
        let e = format!("{:#}", Policy::parse(dup.as_bytes(), "x").unwrap_err());
        assert!(e.contains("listed twice"), "{e}");
        let e = format!(
            "{:#}",
            Policy::parse(br#"{"serial": 1, "expires": "2026-12-09T06:00:00Z", "streams": {"stable": {"releases": []}}}"#, "x")
                .unwrap_err()
        );
        assert!(
            e.contains("streams.\"stable\"") && e.contains("full ref"),
            "{e}"
        );
        let e = format!("{:#}", Policy::parse(br#"{"serial": 1}"#, "x").unwrap_err());
        assert!(e.contains("expires"), "{e}");
    }

    #[test]
    fn the_curve_rises_linearly_to_everyone() {
        let r = Rollout {
            start: 1000,
            start_percentage: 10,
            duration_secs: 100,
        };
        assert_eq!(r.share_at(999), 0.0, "before start: nobody");
        assert_eq!(r.share_at(1000), 0.10);
        assert!((r.share_at(1050) - 0.55).abs() < 1e-12);
        assert_eq!(r.share_at(1100), 1.0);
        assert_eq!(r.share_at(5000), 1.0);
        assert!(
            r.offered_to(1.0, 1100),
            "the most wary host is offered at 100%"
        );
        assert!(!r.offered_to(0.995, 1099), "99.1% at 1099");
        let instant = Rollout {
            start: 1000,
            start_percentage: 0,
            duration_secs: 0,
        };
        assert!(!instant.offered_to(0.0, 999));
        assert!(instant.offered_to(0.999, 1000));
    }

    #[test]
    fn offered_from_is_the_exact_first_second() {
        let r = Rollout {
            start: 1000,
            start_percentage: 0,
            duration_secs: 100,
        };
        for wave in [0.0, 0.001, 0.25, 0.5, 0.7345, 0.99, 0.999_999, 1.0] {
            let t = r.offered_from(wave);
            assert!(r.offered_to(wave, t), "wave {wave} at {t}");
            assert!(
                t == r.start || !r.offered_to(wave, t - 1),
                "wave {wave} at {t}"
            );
        }
        assert_eq!(
            r.offered_from(0.5),
            1051,
            "at 1050 the share is exactly 0.5: not yet"
        );
    }
}
