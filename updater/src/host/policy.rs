//! The update policy of the remote a host follows: `cairn-policy.json` and its `.sig` at the
//! top of the repository URL, fetched, checked (`cairn_release::rollout::verify`: a trusted
//! signature, a serial that never goes back, an expiry in the future) and remembered as the
//! last [`Accepted`] one in `/var/lib/cairn/policy.json`.
//!
//! A remote that serves no policy is followed as before (every host takes the ref's tip). Once
//! a host has accepted a policy from a remote, that remote serving none is an error: a mirror
//! that drops the file must not turn a staged rollout into everyone-at-once.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_release::rollout::offer::{Reason, Stay};
use cairn_release::rollout::policy::{FILE_NAME, SIG_FILE_NAME};
use cairn_release::rollout::{self, Accepted, Decision, Policy};
use cairn_release::signature::TrustedKeys;
use fn_error_context::context;
use serde::{Deserialize, Serialize};

use crate::host::http::Transport;
use crate::host::state;

/// What the host keeps under `/var/lib/cairn/`.
pub const ACCEPTED_FILE: &str = "policy.json";

/// The largest policy or signature file read (a policy lists releases, not packages).
const MAX_BYTES: u64 = 4 << 20;

/// How long a fetch of the policy may stall.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The last policy accepted, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The policy's URL.
    pub url: String,
    /// Its serial, expiry and digest.
    pub accepted: Accepted,
}

/// A policy that passed the checks.
#[derive(Debug, Clone)]
pub struct Current {
    /// Its URL.
    pub url: String,
    /// The document.
    pub policy: Policy,
    /// Its serial, expiry and digest.
    pub accepted: Accepted,
}

/// Fetches and checks the policy beside `repo_url` with `trusted` keys at `now`. `Ok(None)`:
/// the remote serves none and this host never accepted one from it. An accepted policy is
/// remembered under `var` before it is returned.
#[context("Reading the update policy beside {repo_url}")]
pub fn fetch_and_check(
    var: &Path,
    repo_url: &str,
    trusted: &TrustedKeys,
    now: u64,
) -> Result<Option<Current>> {
    let base = repo_url.trim_end_matches('/');
    let url = format!("{base}/{FILE_NAME}");
    let remembered: Option<Remembered> = state::load_json(var, ACCEPTED_FILE);
    let last = remembered.as_ref().map(|r| &r.accepted);
    let Some(bytes) = fetch(&url)? else {
        if let Some(r) = &remembered {
            bail!(
                "{url} is gone, but this host accepted an update policy from {} (serial {}): \
                 without it the staged rollout cannot be followed. Restore the policy on the \
                 server; if rollouts were ended on purpose, remove {}",
                r.url,
                r.accepted.serial,
                state::dir(var).join(ACCEPTED_FILE).display()
            );
        }
        log::debug!("{url}: no update policy; following the ref's tip");
        return Ok(None);
    };
    let signature = fetch(&format!("{base}/{SIG_FILE_NAME}"))?;
    let verified = rollout::verify(&url, &bytes, signature.as_deref(), trusted, last, now)?;
    if last != Some(&verified.accepted) {
        log::info!(
            "accepted the update policy {url}: serial {}, signed by {}, expires {}",
            verified.accepted.serial,
            verified.signed_by.to_base64(),
            rollout::policy::format_time(verified.accepted.expires)
        );
    }
    state::save_json(
        var,
        ACCEPTED_FILE,
        &Remembered {
            url: url.clone(),
            accepted: verified.accepted.clone(),
        },
    )?;
    Ok(Some(Current {
        url,
        policy: verified.policy,
        accepted: verified.accepted,
    }))
}

/// The bytes at `url`, `None` when the server says there is nothing there (404) or a
/// `file://` path does not exist.
fn fetch(url: &str) -> Result<Option<Vec<u8>>> {
    if let Some(path) = url.strip_prefix("file://") {
        return match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("Reading {path}")),
        };
    }
    let tls = url.starts_with("https://");
    if !tls && !url.starts_with("http://") {
        bail!("{url}: only http://, https:// and file:// remotes can serve an update policy");
    }
    let resp = Transport::new(tls, None, TIMEOUT)?.get(url, MAX_BYTES)?;
    match resp.status {
        200 => Ok(Some(resp.body)),
        404 => Ok(None),
        s => bail!("{url}: the server answered {s}"),
    }
}

/// The rollout as it concerns this host, for `cairn check --json` and `cairn status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    /// The policy's URL.
    pub policy: String,
    /// Its serial.
    pub serial: u64,
    /// When it expires, seconds since the epoch.
    pub expires: u64,
    /// This host's wave in the stream's rollouts, in [0, 1].
    pub wave: f64,
    /// `machine-id` or `wariness` (`[update.rollout]`).
    pub wave_from: String,
    /// What the policy says for this host now.
    pub decision: Decision,
}

impl RolloutView {
    /// One line: what this host is offered, or when it will be, and why.
    pub fn describe(&self) -> String {
        let what = match &self.decision {
            Decision::Offer {
                version, reason, ..
            } => format!(
                "offers {version} to this host: {}",
                match reason {
                    Reason::Rollout => "its rollout has reached this host",
                    Reason::Barrier => "a barrier, to pass through before anything newer",
                    Reason::LeaveDeadend => "the way off the dead end this host is on",
                }
            ),
            Decision::Wait { version, at, .. } => format!(
                "offers {version} to this host from {}",
                rollout::policy::format_time(*at)
            ),
            Decision::Stay { why } => match why {
                Stay::UnknownStream => "does not list this stream".to_string(),
                Stay::UpToDate => "offers nothing newer".to_string(),
                Stay::Halted { version } => format!("has halted {version}"),
                Stay::NotScheduled { version } => {
                    format!("lists {version} but schedules no rollout for it")
                }
                Stay::DeadendNoWayOff => "marks this release a dead end with no way off".into(),
            },
        };
        format!(
            "the update policy (serial {}, expires {}) {what}; wave {:.4} from {}",
            self.serial,
            rollout::policy::format_time(self.expires),
            self.wave,
            self.wave_from
        )
    }
}
