//! Maintaining the update policy (`REPO/cairn-policy.json` and its `.sig`): each command reads
//! the policy, changes one release of one stream, bumps the serial, sets a new expiry, signs
//! the document and replaces both files atomically.
//!
//! The format and what hosts do with it live in `cairn_release::rollout` (and
//! `release/POLICY.md`); this module only edits. A version is accepted only when it is on the
//! stream's ref history in the repository, so the policy never names a commit hosts cannot pull.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::history::ref_history;
use cairn_release::osref::OsRef;
use cairn_release::rollout::policy::{
    self, format_time, Policy, Release, Rollout, FILE_NAME, SIG_FILE_NAME,
};
use cairn_release::rollout::verify;
use cairn_release::signature::{SecretKey, SIGNATURE_LEN};
use cairn_release::{gio, ostree};
use fn_error_context::context;
use serde::Serialize;

/// The default of `--valid-for`: hosts refuse the policy a week after its last edit, so it must
/// be re-signed at least weekly (any edit, or [`Change::Refresh`]).
pub const DEFAULT_VALID_FOR_SECS: u64 = 7 * 86_400;

/// One edit of the policy.
#[derive(Debug, Clone)]
pub enum Change {
    /// Schedule (or reschedule) the rollout of `version`.
    Start {
        /// `start_percentage`, 0–100.
        percentage: u8,
        /// Seconds from start to 100%.
        duration_secs: u64,
        /// Start time (seconds since the epoch); `None`: now.
        at: Option<u64>,
    },
    /// Set `halted`: stop offering it to hosts not yet on it.
    Pause,
    /// Clear `halted`.
    Resume,
    /// Remove the release from the policy altogether.
    Pull,
    /// Set (or with `clear`, unset) `barrier`.
    Barrier {
        /// Unset instead.
        clear: bool,
    },
    /// Set (or with `clear`, unset) `deadend`.
    Deadend {
        /// Unset instead.
        clear: bool,
    },
    /// Change nothing but the serial and expiry (re-sign before the policy expires).
    Refresh,
}

/// What to edit, and how to sign it.
#[derive(Debug, Clone)]
pub struct EditOptions {
    /// The OSTree repository; the policy sits at its top.
    pub repo: PathBuf,
    /// The stream's ref (`None` only for [`Change::Refresh`]).
    pub stream: Option<String>,
    /// The release version (`None` only for [`Change::Refresh`]).
    pub version: Option<String>,
    /// The ed25519 secret key file.
    pub sign_key: PathBuf,
    /// Seconds from now until hosts refuse the policy.
    pub valid_for_secs: u64,
    /// Sign even when the current policy's signature is not by `sign_key` (a key rotation).
    pub allow_other_signer: bool,
    /// The time of the edit (seconds since the epoch).
    pub now: u64,
}

/// What an edit wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Edited {
    /// The policy file.
    pub policy: PathBuf,
    /// Its signature file.
    pub signature: PathBuf,
    /// The new serial.
    pub serial: u64,
    /// The new expiry (RFC 3339 UTC).
    pub expires: String,
    /// The public key that signed it (base64).
    pub signed_by: String,
    /// The stream edited.
    pub stream: Option<String>,
    /// The release after the edit (`None` after `pull` or `refresh`).
    pub release: Option<ReleaseView>,
    /// The release as it was before (`None` when it was not listed).
    pub before: Option<ReleaseView>,
}

/// A release as `show` and the edit commands print it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    /// The version.
    pub version: String,
    /// The commit.
    pub commit: String,
    /// The rollout, if scheduled.
    pub rollout: Option<RolloutView>,
    /// Hosts below must pass through it.
    pub barrier: bool,
    /// Never offered; hosts on it move off.
    pub deadend: bool,
    /// Not offered to hosts not yet on it.
    pub halted: bool,
}

/// A rollout, with the share at the time of printing.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    /// Start (RFC 3339 UTC).
    pub start: String,
    /// Percentage at start.
    pub start_percentage: u8,
    /// Seconds to 100%.
    pub duration_secs: u64,
    /// When it reaches 100% (RFC 3339 UTC).
    pub complete_at: String,
    /// The share of hosts offered it now, 0–100 (ignoring flags).
    pub percentage_now: f64,
}

impl ReleaseView {
    /// The view of `r` at `now`.
    pub fn of(r: &Release, now: u64) -> Self {
        ReleaseView {
            version: r.version.clone(),
            commit: r.commit.clone(),
            rollout: r.rollout.map(|ro| RolloutView {
                start: format_time(ro.start),
                start_percentage: ro.start_percentage,
                duration_secs: ro.duration_secs,
                complete_at: format_time(ro.start.saturating_add(ro.duration_secs)),
                percentage_now: (ro.share_at(now) * 1000.0).round() / 10.0,
            }),
            barrier: r.barrier,
            deadend: r.deadend,
            halted: r.halted,
        }
    }
}

/// The policy of a repository as `show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The policy file.
    pub policy: PathBuf,
    /// Its serial.
    pub serial: u64,
    /// Its expiry (RFC 3339 UTC).
    pub expires: String,
    /// Whether hosts refuse it now for its age.
    pub expired: bool,
    /// How many signatures its `.sig` holds (0: unsigned, hosts refuse it).
    pub signatures: usize,
    /// Per stream, its releases in version order.
    pub streams: std::collections::BTreeMap<String, Vec<ReleaseView>>,
}

/// The policy and signature paths of `repo`.
pub fn paths(repo: &Path) -> (PathBuf, PathBuf) {
    (repo.join(FILE_NAME), repo.join(SIG_FILE_NAME))
}

/// The policy on disk.
struct Current {
    policy: Policy,
    bytes: Vec<u8>,
    sig: Option<Vec<u8>>,
}

/// Reads the policy of `repo` (`None` when there is none yet) and its signature bytes.
fn read_policy(repo: &Path) -> Result<Option<Current>> {
    let (path, sig_path) = paths(repo);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("Reading {}", path.display())),
    };
    let policy = Policy::parse(&bytes, &path.display().to_string())?;
    let sig = match std::fs::read(&sig_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("Reading {}", sig_path.display())),
    };
    Ok(Some(Current { policy, bytes, sig }))
}

/// The policy of `repo` for printing.
#[context("Reading the update policy of {}", repo.display())]
pub fn show(repo: &Path, stream: Option<&str>, now: u64) -> Result<Shown> {
    let (path, _) = paths(repo);
    let Some(Current { policy: p, sig, .. }) = read_policy(repo)? else {
        bail!(
            "{} does not exist: start a rollout with `cairn-compose rollout start` to create it",
            path.display()
        );
    };
    let streams = p
        .streams
        .iter()
        .filter(|(name, _)| stream.is_none_or(|s| s == name.as_str()))
        .map(|(name, rs)| {
            (
                name.clone(),
                rs.iter().map(|r| ReleaseView::of(r, now)).collect(),
            )
        })
        .collect();
    Ok(Shown {
        policy: path,
        serial: p.serial,
        expires: format_time(p.expires),
        expired: now >= p.expires,
        signatures: sig.map_or(0, |s| s.len() / SIGNATURE_LEN),
        streams,
    })
}

/// Applies `change` to the policy of `opts.repo`, re-signs it and writes it.
#[context("Editing the update policy of {}", opts.repo.display())]
pub fn edit(opts: &EditOptions, change: &Change) -> Result<Edited> {
    if opts.valid_for_secs == 0 {
        bail!("--valid-for 0 would publish a policy hosts refuse at once");
    }
    let key = SecretKey::load(&opts.sign_key)?;
    let (path, sig_path) = paths(&opts.repo);
    let current = read_policy(&opts.repo)?;
    if let Some(c) = &current {
        check_signer(
            &c.bytes,
            c.sig.as_deref(),
            &key,
            &sig_path,
            opts.allow_other_signer,
        )?;
    }
    let mut p = match current {
        Some(c) => c.policy,
        None if matches!(
            change,
            Change::Start { .. }
                | Change::Barrier { clear: false }
                | Change::Deadend { clear: false }
        ) =>
        {
            Policy::empty(0, 0)
        }
        None => bail!(
            "{} does not exist: there is nothing to change yet (start a rollout first)",
            path.display()
        ),
    };

    let (stream, before, after) = if let Change::Refresh = change {
        (None, None, None)
    } else {
        let (Some(stream), Some(version)) = (opts.stream.as_deref(), opts.version.as_deref())
        else {
            bail!("give --stream REF and --version V");
        };
        let (before, after) = apply(&mut p, &opts.repo, stream, version, change, opts.now)?;
        (Some(stream.to_string()), before, after)
    };

    p.serial = p
        .serial
        .checked_add(1)
        .context("the policy's serial is at its maximum")?;
    p.expires = opts
        .now
        .checked_add(opts.valid_for_secs)
        .context("--valid-for is too long")?;
    let bytes = p.to_bytes()?;
    // The document as hosts will parse it: catches what an edit may not produce (a release
    // both barrier and dead end).
    Policy::parse(&bytes, &path.display().to_string()).context("The edited policy is invalid")?;
    let sig = verify::sign(&bytes, &key);
    write_atomically(&path, &bytes)?;
    write_atomically(&sig_path, &sig)?;
    Ok(Edited {
        policy: path,
        signature: sig_path,
        serial: p.serial,
        expires: format_time(p.expires),
        signed_by: key.public().to_base64(),
        stream,
        release: after.map(|r| ReleaseView::of(&r, opts.now)),
        before: before.map(|r| ReleaseView::of(&r, opts.now)),
    })
}

/// Refuses to re-sign a policy someone else signed (or nobody did), unless asked to: the file
/// on the server may have been altered, and signing it would bless the change.
fn check_signer(
    bytes: &[u8],
    sig: Option<&[u8]>,
    key: &SecretKey,
    sig_path: &Path,
    allow_other_signer: bool,
) -> Result<()> {
    let public = key.public();
    let signed_by_us = sig.is_some_and(|s| {
        s.len() % SIGNATURE_LEN == 0 && s.chunks(SIGNATURE_LEN).any(|c| public.verifies(bytes, c))
    });
    if signed_by_us || allow_other_signer {
        return Ok(());
    }
    bail!(
        "the current policy is not signed by this key ({} {}): it may have been altered, or \
         another key signed it; check it with `cairn-compose rollout show`, then pass \
         --allow-other-signer to sign it with this key (e.g. after a key rotation)",
        sig_path.display(),
        if sig.is_some() {
            "does not verify with it"
        } else {
            "is missing"
        }
    )
}

/// Changes release `version` of `stream`; returns it before and after.
fn apply(
    p: &mut Policy,
    repo: &Path,
    stream: &str,
    version: &str,
    change: &Change,
    now: u64,
) -> Result<(Option<Release>, Option<Release>)> {
    stream
        .parse::<OsRef>()
        .context("--stream names a stream by its ref")?;
    let before = p.release(stream, version).cloned();
    let listed = || {
        before.clone().with_context(|| {
            let listed: Vec<&str> = p
                .releases(stream)
                .iter()
                .map(|r| r.version.as_str())
                .collect();
            format!(
                "release {version} of {stream} is not in the policy (it lists: {}); \
                 `cairn-compose rollout start` adds it",
                if listed.is_empty() {
                    "nothing".to_string()
                } else {
                    listed.join(", ")
                }
            )
        })
    };
    let r = match change {
        Change::Pull => {
            listed()?;
            p.remove(stream, version);
            return Ok((before, None));
        }
        Change::Pause | Change::Resume => {
            listed()?;
            let commit = before
                .as_ref()
                .map(|b| b.commit.clone())
                .unwrap_or_default();
            p.release_mut(stream, version, &commit)
        }
        Change::Start { .. } | Change::Barrier { .. } | Change::Deadend { .. } => {
            let commit = commit_on_history(repo, stream, version)?;
            if let Some(b) = &before {
                if b.commit != commit {
                    bail!(
                        "the policy lists {version} of {stream} as commit {}, but the ref's \
                         history has {commit}: `rollout pull` it first if the release was \
                         recomposed",
                        b.commit
                    );
                }
            }
            p.release_mut(stream, version, &commit)
        }
        Change::Refresh => bail!("internal: refresh edits no release"),
    };
    match *change {
        Change::Start {
            percentage,
            duration_secs,
            at,
        } => {
            if r.deadend {
                bail!("{version} is a dead end: clear it first (`rollout deadend --clear`)");
            }
            if percentage > 100 {
                bail!("--percentage {percentage} is above 100");
            }
            r.rollout = Some(Rollout {
                start: at.unwrap_or(now),
                start_percentage: percentage,
                duration_secs,
            });
        }
        Change::Pause => r.halted = true,
        Change::Resume => r.halted = false,
        Change::Barrier { clear } => {
            if !clear && r.deadend {
                bail!(
                    "{version} is a dead end; a barrier must be offered: clear the dead end first"
                );
            }
            r.barrier = !clear;
        }
        Change::Deadend { clear } => {
            if !clear && r.barrier {
                bail!(
                    "{version} is a barrier; a dead end is never offered: clear the barrier first"
                );
            }
            r.deadend = !clear;
        }
        Change::Pull | Change::Refresh => {}
    }
    let after = r.clone();
    Ok((before, Some(after)))
}

/// The commit of `version` on `stream`'s ref history in `repo`.
fn commit_on_history(repo_path: &Path, stream: &str, version: &str) -> Result<String> {
    let repo = ostree::Repo::new(&gio::File::for_path(repo_path));
    repo.open(gio::Cancellable::NONE)
        .with_context(|| format!("Opening repository {}", repo_path.display()))?;
    let history = ref_history(&repo, stream)?;
    if history.is_empty() {
        bail!("ref {stream} is not in {}", repo_path.display());
    }
    if let Some(c) = history
        .iter()
        .find(|c| c.version.as_deref() == Some(version))
    {
        return Ok(c.commit.clone());
    }
    let versions: Vec<&str> = history
        .iter()
        .filter_map(|c| c.version.as_deref())
        .collect();
    bail!(
        "version {version} is not on the history of {stream} in {} (versions there, newest \
         first: {}); a rollout can only name a commit hosts can pull",
        repo_path.display(),
        if versions.is_empty() {
            "none".to_string()
        } else {
            versions.join(", ")
        }
    )
}

/// Writes `path` through a temporary file in its directory and a rename, so that a web server
/// never serves half a file; mode 0644 (served files must be world-readable).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("the policy path has no directory")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".cairn-policy.")
        .tempfile_in(dir)
        .with_context(|| format!("Creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .with_context(|| format!("Writing {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("Renaming the new policy into {}", path.display()))?;
    Ok(())
}

/// Parses a `--at`/`--time` value: `now` or an RFC 3339 UTC time.
pub fn parse_at(text: &str, now: u64) -> Result<u64> {
    if text == "now" {
        return Ok(now);
    }
    policy::parse_time(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_release::glib::{self, prelude::*};
    use cairn_release::rollout::{offer, verify::verify, Decision, Wave};
    use cairn_release::signature::TrustedKeys;

    const S: &str = "cairn/bookworm/x86_64/stable";
    const NOW: u64 = 1_800_000_000;

    /// A repository with versions 1.0, 1.1, 1.2 on S; returns the dir, the key and commits.
    fn fixture() -> (tempfile::TempDir, PathBuf, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        let mut parent = None;
        let mut commits = Vec::new();
        for v in ["1.0", "1.1", "1.2"] {
            let tree = dir.path().join(format!("tree-{v}"));
            std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
            std::fs::write(tree.join("usr/lib/os-release"), format!("VERSION_ID={v}\n")).unwrap();
            let meta = glib::VariantDict::new(None);
            meta.insert_value("version", &v.to_variant());
            let c = crate::commit::commit(
                &repo,
                &crate::commit::CommitRequest {
                    tree: &tree,
                    osref: S,
                    parent: parent.as_deref(),
                    subject: v,
                    metadata: meta.end(),
                    timestamp: 1,
                    sign_key: None,
                },
                &gio::Cancellable::new(),
            )
            .unwrap();
            parent = Some(c.clone());
            commits.push(c);
        }
        let key = dir.path().join("k");
        SecretKey::generate().unwrap().write_pair(&key).unwrap();
        (dir, key, commits)
    }

    fn opts(dir: &Path, key: &Path, version: &str, now: u64) -> EditOptions {
        EditOptions {
            repo: dir.join("repo"),
            stream: Some(S.into()),
            version: Some(version.into()),
            sign_key: key.to_path_buf(),
            valid_for_secs: DEFAULT_VALID_FOR_SECS,
            allow_other_signer: false,
            now,
        }
    }

    fn start() -> Change {
        Change::Start {
            percentage: 10,
            duration_secs: 3600,
            at: None,
        }
    }

    /// The policy as a host would accept it.
    fn host_view(dir: &Path, key: &Path, now: u64) -> Policy {
        let (path, sig) = paths(&dir.join("repo"));
        let trusted = TrustedKeys {
            keys: cairn_release::signature::PublicKey::load_all(
                &cairn_release::signature::public_path_for(key),
            )
            .unwrap(),
            searched: vec![],
        };
        verify(
            "p",
            &std::fs::read(path).unwrap(),
            Some(&std::fs::read(sig).unwrap()),
            &trusted,
            None,
            now,
        )
        .unwrap()
        .policy
    }

    #[test]
    fn start_creates_a_signed_policy_hosts_accept() {
        let (dir, key, commits) = fixture();
        let e = edit(&opts(dir.path(), &key, "1.1", NOW), &start()).unwrap();
        assert_eq!(e.serial, 1);
        assert_eq!(e.expires, format_time(NOW + DEFAULT_VALID_FOR_SECS));
        let p = host_view(dir.path(), &key, NOW);
        let r = p.release(S, "1.1").unwrap();
        assert_eq!(r.commit, commits[1]);
        assert_eq!(
            r.rollout,
            Some(Rollout {
                start: NOW,
                start_percentage: 10,
                duration_secs: 3600
            })
        );
        let d = offer(&p, S, Some("1.0"), Wave::wariness(0.0).unwrap(), NOW);
        assert!(
            matches!(d, Decision::Offer { ref version, .. } if version == "1.1"),
            "{d:?}"
        );
        let mode = std::fs::metadata(dir.path().join("repo").join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn each_edit_bumps_the_serial_and_sets_the_flags() {
        let (dir, key, _) = fixture();
        let o = |v: &str| opts(dir.path(), &key, v, NOW);
        edit(&o("1.1"), &start()).unwrap();
        assert_eq!(edit(&o("1.1"), &Change::Pause).unwrap().serial, 2);
        assert!(
            host_view(dir.path(), &key, NOW)
                .release(S, "1.1")
                .unwrap()
                .halted
        );
        edit(&o("1.1"), &Change::Resume).unwrap();
        assert!(
            !host_view(dir.path(), &key, NOW)
                .release(S, "1.1")
                .unwrap()
                .halted
        );
        edit(&o("1.2"), &Change::Barrier { clear: false }).unwrap();
        let p = host_view(dir.path(), &key, NOW);
        assert!(p.release(S, "1.2").unwrap().barrier);
        assert!(p.release(S, "1.2").unwrap().rollout.is_none());
        let err = format!(
            "{:#}",
            edit(&o("1.2"), &Change::Deadend { clear: false }).unwrap_err()
        );
        assert!(err.contains("is a barrier"), "{err}");
        edit(&o("1.1"), &Change::Deadend { clear: false }).unwrap();
        let err = format!("{:#}", edit(&o("1.1"), &start()).unwrap_err());
        assert!(err.contains("dead end"), "{err}");
        let e = edit(&o("1.1"), &Change::Pull).unwrap();
        assert!(e.release.is_none() && e.before.is_some());
        assert_eq!(e.serial, 6, "failed edits write nothing");
        assert!(host_view(dir.path(), &key, NOW).release(S, "1.1").is_none());
        let err = format!("{:#}", edit(&o("1.1"), &Change::Pause).unwrap_err());
        assert!(
            err.contains("not in the policy") && err.contains("1.2"),
            "{err}"
        );
        let mut refresh = o("x");
        refresh.now = NOW + 100;
        let e = edit(&refresh, &Change::Refresh).unwrap();
        assert_eq!(e.expires, format_time(NOW + 100 + DEFAULT_VALID_FOR_SECS));
    }

    #[test]
    fn a_version_off_the_ref_history_is_refused() {
        let (dir, key, _) = fixture();
        let err = format!(
            "{:#}",
            edit(&opts(dir.path(), &key, "9.9", NOW), &start()).unwrap_err()
        );
        assert!(
            err.contains("9.9")
                && err.contains("not on the history")
                && err.contains("1.2, 1.1, 1.0"),
            "{err}"
        );
        let mut o = opts(dir.path(), &key, "1.1", NOW);
        o.stream = Some("cairn/bookworm/x86_64/testing".into());
        let err = format!("{:#}", edit(&o, &start()).unwrap_err());
        assert!(
            err.contains("ref cairn/bookworm/x86_64/testing is not in"),
            "{err}"
        );
        assert!(
            !dir.path().join("repo").join(FILE_NAME).exists(),
            "nothing written"
        );
    }

    #[test]
    fn a_policy_signed_by_another_key_or_altered_is_not_re_signed_silently() {
        let (dir, key, _) = fixture();
        edit(&opts(dir.path(), &key, "1.1", NOW), &start()).unwrap();
        let other = dir.path().join("other");
        SecretKey::generate().unwrap().write_pair(&other).unwrap();
        let mut o = opts(dir.path(), &other, "1.1", NOW);
        let err = format!("{:#}", edit(&o, &Change::Pause).unwrap_err());
        assert!(err.contains("--allow-other-signer"), "{err}");
        o.allow_other_signer = true;
        assert_eq!(edit(&o, &Change::Pause).unwrap().serial, 2);
        // Altered on disk: the original key refuses too.
        let path = dir.path().join("repo").join(FILE_NAME);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"halted\": true", "\"halted\": false");
        std::fs::write(&path, text).unwrap();
        let err = format!(
            "{:#}",
            edit(&opts(dir.path(), &other, "1.1", NOW), &Change::Pause).unwrap_err()
        );
        assert!(err.contains("may have been altered"), "{err}");
    }

    #[test]
    fn show_reports_the_share_now_and_expiry() {
        let (dir, key, _) = fixture();
        edit(&opts(dir.path(), &key, "1.1", NOW), &start()).unwrap();
        let s = show(&dir.path().join("repo"), None, NOW + 1800).unwrap();
        assert_eq!(s.signatures, 1);
        assert!(!s.expired);
        let r = &s.streams[S][0];
        assert_eq!(r.rollout.as_ref().unwrap().percentage_now, 55.0);
        assert!(
            show(&dir.path().join("repo"), None, NOW + DEFAULT_VALID_FOR_SECS)
                .unwrap()
                .expired
        );
    }
}
