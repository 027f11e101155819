//! `/etc/cairn/config.toml`: which remote and stream a host follows, the GRUB generator, the
//! automatic update strategy (`[update]`, [`crate::strategy`]) and the health checks after
//! boot (`[health]`, [`crate::health`]).
//!
//! The file is optional; every key is optional. Unknown keys are errors, reported as
//! `FILE:LINE:COL: message`. Parsing yields the raw [`file::ConfigFile`], validated once into
//! [`Settings`]; nothing else reads the raw file. The documented example is `updater/data/config.example.toml`.
//!
//! Which file: `--config PATH` if given; else `/etc/cairn/config.toml` on the booted host; else,
//! for `--sysroot DIR`, the `etc/cairn/config.toml` of the stateroot's default deployment (the
//! `/etc` that host boots with).
//!
//! [`file`](mod@file) holds the structs as written (values of `[update]` and `[health]` kept spanned);
//! [`settings`] validates them into [`Settings`], with errors that point at the value, as
//! `FILE:LINE:COL`.

pub mod file;
pub mod settings;

use std::path::Path;

use anyhow::{Context, Result};
use fn_error_context::context;

pub use settings::Settings;

use cairn_release::toml_file::TomlFile;

/// Path of the configuration file relative to `/etc`.
pub const RELATIVE_PATH: &str = "cairn/config.toml";

/// Reads `path` and validates it; a missing file is the default configuration.
#[context("Reading configuration {}", path.display())]
pub fn load(path: &Path) -> Result<Settings> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::debug!("no configuration at {}", path.display());
            return Ok(Settings::default());
        }
        Err(e) => return Err(e).context("Reading the file"),
    };
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Settings> {
    let file: file::ConfigFile = TomlFile::new(path, text).parse()?;
    Settings::from_file(&file, text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(parse("", Path::new("c.toml")).unwrap(), Settings::default());
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../data/config.example.toml");
        let c = parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(c.source.stream.as_deref(), Some("stable"));
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        let err = parse(
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
        assert!(parse("[source]\nstream = \"a b\"\n", Path::new("c")).is_err());
        assert!(parse("[source]\nurl = \"ftp://x\"\n", Path::new("c")).is_err());
        assert!(parse("[bootloader]\ngrub_generator = \"rel\"\n", Path::new("c")).is_err());
    }
}
