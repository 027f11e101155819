//! `/etc/cairn/config.toml`: which remote and stream a host follows, the GRUB generator, the
//! automatic update strategy (`[update]`, [`crate::strategy`]) and the health checks after
//! boot (`[health]`, [`crate::health`]).
//!
//! The file is optional; every key is optional. Unknown keys are errors, reported as
//! `FILE:LINE:COL: message`. Parsing yields [`Config`], validated once; nothing else reads the
//! raw file. The documented example is `updater/data/config.example.toml`.
//!
//! Which file: `--config PATH` if given; else `/etc/cairn/config.toml` on the booted host; else,
//! for `--sysroot DIR`, the `etc/cairn/config.toml` of the stateroot's default deployment (the
//! `/etc` that host boots with).
//!
//! Sections owned by other modules (`[update]`, `[health]`) keep their values spanned and
//! validate themselves; their errors ([`Invalid`]) point at the value, as `FILE:LINE:COL`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fn_error_context::context;
use serde::Deserialize;

/// Path of the configuration file relative to `/etc`.
pub const RELATIVE_PATH: &str = "cairn/config.toml";

/// The validated configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where updates come from.
    pub source: SourceConfig,
    /// Boot loader settings.
    pub bootloader: BootloaderConfig,
    /// Signature checks.
    pub verify: VerifyConfig,
    /// `[update]`: the automatic update agent.
    pub update: crate::strategy::UpdateConfig,
    /// `[health]`: the checks after boot.
    pub health: crate::health::HealthConfig,
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

    fn in_file(self, text: &str, path: &Path) -> anyhow::Error {
        match self.span {
            Some(s) => {
                let (line, col) = line_col(text, s.start);
                anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), self.message)
            }
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

impl Config {
    /// Reads `path`; a missing file is the default configuration.
    #[context("Reading configuration {}", path.display())]
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::debug!("no configuration at {}", path.display());
                return Ok(Config::default());
            }
            Err(e) => return Err(e).context("Reading the file"),
        };
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            anyhow::anyhow!(
                "{}:{line}:{col}: {}",
                path.display(),
                e.message().trim_end()
            )
        })?;
        config
            .validate()
            .with_context(|| format!("{}", path.display()))?;
        config
            .update
            .validate()
            .and_then(|()| config.health.validate())
            .map_err(|e| e.in_file(text, path))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if let Some(stream) = &self.source.stream {
            if stream.is_empty()
                || !stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                bail!("[source] stream {stream:?} must be letters, digits, '-', '_' or '.'");
            }
        }
        if let Some(remote) = &self.source.remote {
            if remote.is_empty() || remote.contains(['/', ':', ' ']) {
                bail!("[source] remote {remote:?} is not a valid OSTree remote name");
            }
        }
        if let Some(url) = &self.source.url {
            if !["http://", "https://", "file://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                bail!("[source] url {url:?} must start with http://, https:// or file://");
            }
        }
        if let Some(g) = &self.bootloader.grub_generator {
            if !g.is_absolute() {
                bail!(
                    "[bootloader] grub_generator {} must be an absolute path",
                    g.display()
                );
            }
        }
        Ok(())
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(
            Config::parse("", Path::new("c.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../data/config.example.toml");
        let c = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(c.source.stream.as_deref(), Some("stable"));
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        let err = Config::parse(
            "[source]\nremote = \"o\"\nstrem = \"x\"\n",
            Path::new("/etc/c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/etc/c.toml:3:1: unknown field `strem`"),
            "{err}"
        );
    }

    #[test]
    fn values_are_validated() {
        assert!(Config::parse("[source]\nstream = \"a b\"\n", Path::new("c")).is_err());
        assert!(Config::parse("[source]\nurl = \"ftp://x\"\n", Path::new("c")).is_err());
        assert!(Config::parse("[bootloader]\ngrub_generator = \"rel\"\n", Path::new("c")).is_err());
    }
}
