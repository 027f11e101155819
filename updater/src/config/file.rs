//! What `/etc/cairn/config.toml` says, as written: serde structs with unknown keys refused and
//! the values other sections validate kept spanned, so [`super::settings`] can point an error
//! at `FILE:LINE:COL`. Nothing outside [`crate::config`] sees these types.

use std::ops::Range;
use std::path::{Path, PathBuf};

use cairn_release::toml_file::TomlFile;
use serde::Deserialize;
use toml::Spanned;

/// The whole file, as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Where updates come from.
    pub source: SourceConfig,
    /// Boot loader settings.
    pub bootloader: BootloaderConfig,
    /// Signature checks.
    pub verify: VerifyConfig,
    /// `[update]`: the automatic update agent.
    pub update: UpdateConfig,
    /// `[health]`: the checks after boot.
    pub health: HealthConfig,
}

/// A value in the file that parsed but is not valid; points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Byte range of the value in the file, if known.
    pub span: Option<Range<usize>>,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// An error about the spanned value `at`.
    pub fn at<T>(at: &toml::Spanned<T>, message: impl Into<String>) -> Self {
        Invalid {
            span: Some(at.span()),
            message: message.into(),
        }
    }

    /// An error without a position.
    pub fn new(message: impl Into<String>) -> Self {
        Invalid {
            span: None,
            message: message.into(),
        }
    }

    pub(super) fn in_file(self, text: &str, path: &Path) -> anyhow::Error {
        match self.span {
            Some(s) => anyhow::anyhow!("{}: {}", TomlFile::new(path, text).at(s), self.message),
            None => anyhow::anyhow!("{}: {}", path.display(), self.message),
        }
    }
}

/// `[source]`: overrides for what the deployment's origin file says.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// The OSTree remote to pull from instead of the origin's.
    pub remote: Option<String>,
    /// Fetch from this URL instead of the remote's configured one.
    pub url: Option<String>,
    /// Follow this stream (last component of the ref) instead of the origin's.
    pub stream: Option<String>,
}

/// `[bootloader]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BootloaderConfig {
    /// The GRUB menu generator libostree runs (`OSTREE_GRUB2_EXEC`); default
    /// `/usr/lib/cairn/grub-menu` of the running tree.
    pub grub_generator: Option<PathBuf>,
}

/// `[verify]`: which commits a host accepts (see [`crate::host::verify`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Refuse commits without a valid ed25519 signature by a trusted key. Default: true when
    /// any trusted key is installed (`/etc/cairn/trusted.d/*.pub`,
    /// `/usr/lib/cairn/trusted.d/*.pub`), false otherwise.
    pub require_signature: Option<bool>,
}

/// `[update]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// `off`, `immediate` (default), `periodic`, `fleet-lock` or `download-only`.
    pub strategy: Option<Spanned<String>>,
    /// Boot attempts a new deployment gets before GRUB returns to the previous one (1–9,
    /// default 3).
    pub boot_attempts: Option<Spanned<u32>>,
    /// Reboot while someone is logged in (default false: the agent postpones).
    pub reboot_when_logged_in: Option<bool>,
    /// Seconds between the agent's warning to logged-in users and its reboot (default 60).
    pub reboot_delay: Option<Spanned<u64>>,
    /// `[update.periodic]`.
    pub periodic: PeriodicConfig,
    /// `[update.fleet_lock]`.
    pub fleet_lock: FleetLockConfig,
    /// `[update.rollout]`.
    pub rollout: RolloutConfig,
}

/// `[update.rollout]`: this host's place in staged rollouts.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// 0.0 (a canary: first in every rollout) to 1.0 (only once a rollout is complete), in
    /// place of the wave derived from `/etc/machine-id`.
    pub wariness: Option<Spanned<f64>>,
}

/// `[update.periodic]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PeriodicConfig {
    /// `[[update.periodic.window]]` entries.
    pub window: Vec<WindowConfig>,
}

/// One `[[update.periodic.window]]`: on each of `days`, from `start_time` (UTC) for
/// `length_minutes`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Day names: `Mon` … `Sun` (or `Monday` …).
    pub days: Spanned<Vec<Spanned<String>>>,
    /// `HH:MM`, UTC.
    pub start_time: Spanned<String>,
    /// Length in minutes (1 to a week).
    pub length_minutes: Spanned<u32>,
}

/// `[update.fleet_lock]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetLockConfig {
    /// The server's base URL (`http://…` or `https://…`); `/v1/pre-reboot` and
    /// `/v1/steady-state` are appended.
    pub base_url: Option<Spanned<String>>,
    /// A PEM file of CA certificates trusted for an `https://` server, beside the system's.
    pub ca_file: Option<Spanned<String>>,
    /// The reboot group (default `default`).
    pub group: Option<Spanned<String>>,
    /// This node's ID; default: derived from `/etc/machine-id` (an app-specific hash, so the
    /// machine ID itself is not sent).
    pub id: Option<Spanned<String>>,
}

/// `[health]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Timeout of each check in seconds (default 120).
    pub timeout_seconds: Option<Spanned<u64>>,
    /// `auto` (default: podman if the tree has it), `podman` or `none`.
    pub container_runtime: Option<Spanned<String>>,
    /// Units that must not be in the failed state.
    pub units: Vec<Spanned<String>>,
}
