//! Outcome reports and the automatic halt of a bad release.
//!
//! Hosts report how each update ended (`POST /v1/report`): `ok` once the new release is
//! healthy, `rolled-back` when its health checks failed and the host went back, `boot-attempts`
//! when it never booted and GRUB went back. Each host's last report per release is kept in
//! etcd; when the failures of a release pass the `[halt] after` rule, the release is halted:
//! listed by `GET /v1/halts`, which hosts consult before staging, and refused at pre-reboot
//! for hosts that name it as their target. A halt only makes hosts more careful (it can keep a
//! release from them, never hand one out), so it needs no signature. `cairn-fleet unhalt`
//! lifts it.
//!
//! Keys under the prefix: `reports/<commit>/<host id>` (a [`Report`] and when it came) and
//! `halts/<commit>` (a [`Halt`]). A commit checksum names a release in every stream.

use serde::{Deserialize, Serialize};

use crate::etcd::{self, Etcd};

/// How an update ended on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The release booted and passed its health checks.
    Ok,
    /// Its required health checks failed; the host rolled back.
    RolledBack,
    /// It did not boot within its boot attempts; GRUB went back.
    BootAttempts,
}

/// What a host reports about one update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The stream's ref.
    pub stream: String,
    /// The release's version.
    pub version: String,
    /// Its commit checksum (64 lowercase hex digits).
    pub commit: String,
    /// How the update ended.
    pub outcome: Outcome,
}

impl Report {
    /// Checks the fields a key is made of.
    pub fn check(&self) -> Result<(), String> {
        if self.commit.len() != 64
            || !self
                .commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "report.commit {:?} is not a commit checksum (64 lowercase hex digits)",
                self.commit.chars().take(80).collect::<String>()
            ));
        }
        if self.stream.is_empty() || self.stream.len() > 256 || self.version.len() > 128 {
            return Err("report.stream must be 1 to 256 characters, version at most 128".into());
        }
        Ok(())
    }
}

/// A halted release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// The stream of the report that halted it.
    pub stream: String,
    /// Its version.
    pub version: String,
    /// Its commit.
    pub commit: String,
    /// Failed updates when it was halted.
    pub failures: u32,
    /// Reports when it was halted.
    pub reports: u32,
    /// When, seconds since the epoch.
    pub at: u64,
}

/// When a release is halted (`[halt] after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// After this many failed updates.
    Failures(u32),
    /// When this percentage of the reports are failures, once `min_reports` came in.
    Ratio {
        /// 1–100.
        percent: u8,
        /// Reports needed before the ratio counts.
        min_reports: u32,
    },
}

impl Rule {
    /// Whether `failures` of `reports` halt the release.
    pub fn halts(&self, failures: u32, reports: u32) -> bool {
        match *self {
            Rule::Failures(n) => failures >= n,
            Rule::Ratio {
                percent,
                min_reports,
            } => {
                reports >= min_reports
                    && failures > 0
                    && u64::from(failures) * 100 >= u64::from(percent) * u64::from(reports)
            }
        }
    }

    /// In words, for status.
    pub fn describe(&self) -> String {
        match self {
            Rule::Failures(n) => format!("after {n} failed update(s)"),
            Rule::Ratio {
                percent,
                min_reports,
            } => format!("when {percent}% of at least {min_reports} reports are failures"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    report: Report,
    at: u64,
}

fn reports_prefix(prefix: &str, commit: &str) -> Vec<u8> {
    format!("{prefix}reports/{commit}/").into_bytes()
}

fn halt_key(prefix: &str, commit: &str) -> Vec<u8> {
    format!("{prefix}halts/{commit}").into_bytes()
}

/// Records `report` from host `id` and halts its release if `rule` says so. Returns the halt,
/// if the release is halted (now or before).
pub async fn record(
    etcd: &Etcd,
    prefix: &str,
    id: &str,
    report: &Report,
    rule: Option<Rule>,
    now: u64,
) -> etcd::Result<Option<Halt>> {
    let mut key = reports_prefix(prefix, &report.commit);
    key.extend_from_slice(id.as_bytes());
    let stored = Stored {
        report: report.clone(),
        at: now,
    };
    etcd.put(&key, &serde_json::to_vec(&stored).unwrap_or_default())
        .await?;
    if let Some(h) = halted(etcd, prefix, &report.commit).await? {
        return Ok(Some(h));
    }
    let Some(rule) = rule else {
        return Ok(None);
    };
    let all = etcd
        .range_prefix(&reports_prefix(prefix, &report.commit))
        .await?;
    let outcomes: Vec<Outcome> = all
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Stored>(&kv.value).ok())
        .map(|s| s.report.outcome)
        .collect();
    let reports = outcomes.len() as u32;
    let failures = outcomes.iter().filter(|o| **o != Outcome::Ok).count() as u32;
    if !rule.halts(failures, reports) {
        return Ok(None);
    }
    let halt = Halt {
        stream: report.stream.clone(),
        version: report.version.clone(),
        commit: report.commit.clone(),
        failures,
        reports,
        at: now,
    };
    log::warn!(
        "halting {} ({}) on {}: {failures} of {reports} update(s) failed ({})",
        halt.version,
        halt.commit,
        halt.stream,
        rule.describe()
    );
    etcd.put(
        &halt_key(prefix, &report.commit),
        &serde_json::to_vec(&halt).unwrap_or_default(),
    )
    .await?;
    Ok(Some(halt))
}

/// The halt of `commit`, if it is halted.
pub async fn halted(etcd: &Etcd, prefix: &str, commit: &str) -> etcd::Result<Option<Halt>> {
    let r = etcd.range_prefix(&halt_key(prefix, commit)).await?;
    Ok(r.kvs
        .iter()
        .find(|kv| kv.key == halt_key(prefix, commit))
        .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// Every halted release.
pub async fn all(etcd: &Etcd, prefix: &str) -> etcd::Result<Vec<Halt>> {
    let r = etcd
        .range_prefix(format!("{prefix}halts/").as_bytes())
        .await?;
    Ok(r.kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

/// Lifts the halt of `commit` and forgets its reports (counting starts again). Returns the
/// halt that was lifted.
pub async fn lift(etcd: &Etcd, prefix: &str, commit: &str) -> etcd::Result<Option<Halt>> {
    let was = halted(etcd, prefix, commit).await?;
    etcd.delete_prefix(&halt_key(prefix, commit)).await?;
    etcd.delete_prefix(&reports_prefix(prefix, commit)).await?;
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(!Rule::Failures(2).halts(1, 10));
        assert!(Rule::Failures(2).halts(2, 2));
        let r = Rule::Ratio {
            percent: 30,
            min_reports: 10,
        };
        assert!(!r.halts(5, 9), "too few reports");
        assert!(!r.halts(2, 10));
        assert!(r.halts(3, 10));
        assert!(!r.halts(0, 100));
    }

    #[test]
    fn reports_are_checked() {
        let mut r = Report {
            stream: "cairn/bookworm/x86_64/stable".into(),
            version: "2026.12.1".into(),
            commit: "a".repeat(64),
            outcome: Outcome::RolledBack,
        };
        assert!(r.check().is_ok());
        r.commit = "A".repeat(64);
        assert!(r.check().is_err());
        r.commit = "a".repeat(63);
        assert!(r.check().is_err());
        let parsed: Result<Report, _> = serde_json::from_str(
            r#"{"stream":"s","version":"1","commit":"x","outcome":"exploded"}"#,
        );
        assert!(parsed.is_err());
    }
}
