//! State cairn keeps on the host, as JSON files in `/var/lib/cairn/` (the stateroot's `var`
//! for `--sysroot`): the result of the last `cairn check` (`last-check.json`), so that
//! `cairn status` can say whether something newer is known without asking the remote; the
//! agent's last run (`agent.json`, [`crate::agent`]), the last health report (`health.json`,
//! [`crate::health`]) and the versions that failed (`failed.json`, [`crate::failed`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fn_error_context::context;
use serde::{Deserialize, Serialize};

/// File name under `<var>/lib/cairn/`.
pub const LAST_CHECK: &str = "last-check.json";

/// What the last `cairn check` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastCheck {
    /// When the check ran, seconds since the epoch.
    pub checked_at: u64,
    /// `remote:ref` that was checked.
    pub refspec: String,
    /// The commit the remote ref pointed to.
    pub commit: String,
    /// Its version.
    pub version: Option<String>,
    /// Its commit time.
    pub timestamp: u64,
    /// Whether it was newer than the host's default deployment.
    pub update_available: bool,
    /// The staged rollout, when the remote serves an update policy.
    #[serde(default)]
    pub rollout: Option<crate::host::policy::RolloutView>,
}

/// The state directory under a host's `/var`.
pub fn dir(var: &Path) -> PathBuf {
    var.join("lib/cairn")
}

/// The last check, if one was recorded and is readable (a damaged file is ignored).
pub fn load_last_check(var: &Path) -> Option<LastCheck> {
    load_json(var, LAST_CHECK)
}

/// Records `check` atomically (write a temporary file, then rename).
pub fn save_last_check(var: &Path, check: &LastCheck) -> Result<()> {
    save_json(var, LAST_CHECK, check)
}

/// Reads `<var>/lib/cairn/NAME` as JSON; `None` if missing; a damaged file is logged and
/// ignored.
pub fn load_json<T: serde::de::DeserializeOwned>(var: &Path, name: &str) -> Option<T> {
    let path = dir(var).join(name);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(c) => Some(c),
        Err(e) => {
            log::warn!("ignoring {}: {e}", path.display());
            None
        }
    }
}

/// Writes `value` as `<var>/lib/cairn/NAME` atomically (temporary file, fsync, rename).
#[context("Recording {name} under {}", var.display())]
pub fn save_json<T: Serialize>(var: &Path, name: &str, value: &T) -> Result<()> {
    let dir = dir(var);
    std::fs::create_dir_all(&dir).with_context(|| format!("Creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("Creating {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut f, value).context("Serialising")?;
    f.write_all(b"\n")
        .and_then(|()| f.sync_all())
        .with_context(|| format!("Writing {}", tmp.display()))?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).with_context(|| format!("Renaming to {}", path.display()))?;
    Ok(())
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as ISO 8601 UTC (or the number if it cannot be formatted).
pub fn format_time(ts: u64) -> String {
    i64::try_from(ts)
        .ok()
        .and_then(|t| cairn_release::glib::DateTime::from_unix_utc(t).ok())
        .and_then(|d| d.format("%Y-%m-%dT%H:%M:%SZ").ok())
        .map_or_else(|| ts.to_string(), |s| s.to_string())
}
