//! Cairn's man pages and shell completions, rendered from the clap definitions of `cairn`
//! (section 8) and `cairn-compose` (section 1), one page per command and subcommand.
//!
//! The rendered files are committed under `docs/man/` and `docs/completions/`;
//! `cargo run -p cairn-docs` writes them again and `tests/fresh.rs` fails when the committed
//! ones differ from what the clap definitions give, so they cannot go stale. The format pages
//! (`cairn-config(5)`, `cairn-manifest(5)`) are written by hand beside them ([`HAND_WRITTEN`]).
//! Which of these files a host gets is decided by `manifests/base.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// Pages written by hand (paths relative to `docs/`), left alone by [`write`] and the test.
pub const HAND_WRITTEN: &[&str] = &["man/man5/cairn-config.5", "man/man5/cairn-manifest.5"];

/// One generated file: its path relative to `docs/` and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// e.g. `man/man8/cairn-upgrade.8`.
    pub path: PathBuf,
    /// The file's content.
    pub bytes: Vec<u8>,
}

/// The folders [`render`] writes into (relative to `docs/`); each holds only generated files.
pub const GENERATED_DIRS: &[&str] = &[
    "man/man1",
    "man/man8",
    "completions/bash",
    "completions/zsh",
];

/// Every generated file, for both programs.
pub fn render() -> Result<Vec<Rendered>> {
    let mut out = Vec::new();
    for (cmd, section) in [
        (cairn_updater::cli::Cli::command(), "8"),
        (cairn_composer::cli::Cli::command(), "1"),
    ] {
        let name = cmd.get_name().to_string();
        man_pages(cmd.clone(), section, &mut out)?;
        for (shell, dir, file) in [
            (Shell::Bash, "bash", name.clone()),
            (Shell::Zsh, "zsh", format!("_{name}")),
        ] {
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut bytes);
            out.push(Rendered {
                path: Path::new("completions").join(dir).join(file),
                bytes,
            });
        }
    }
    Ok(out)
}

/// The page of `cmd` and, recursively, of each visible subcommand (`cairn-kargs-append`).
fn man_pages(mut cmd: clap::Command, section: &str, out: &mut Vec<Rendered>) -> Result<()> {
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut bytes = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual(if section == "8" {
            "System Administration"
        } else {
            "User Commands"
        })
        .source(format!("Cairn {}", env!("CARGO_PKG_VERSION")))
        .render(&mut bytes)
        .with_context(|| format!("Rendering the man page of {name}"))?;
    out.push(Rendered {
        path: PathBuf::from(format!("man/man{section}/{name}.{section}")),
        bytes,
    });
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let full = format!("{name}-{}", sub.get_name());
        // build() gave the subcommand its bin name (`cairn kargs`), which the usage shows.
        man_pages(sub.clone().name(full), section, out)?;
    }
    Ok(())
}

/// The `docs/` folder of this checkout.
pub fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes every generated file under `dir`, removing generated files that are no longer
/// rendered (a removed subcommand's page); hand-written pages are not touched.
pub fn write(dir: &Path) -> Result<Vec<Rendered>> {
    let rendered = render()?;
    for d in GENERATED_DIRS {
        let d = dir.join(d);
        if d.exists() {
            std::fs::remove_dir_all(&d).with_context(|| format!("Removing {}", d.display()))?;
        }
    }
    for r in &rendered {
        let path = dir.join(&r.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("Creating {}", parent.display()))?;
        }
        std::fs::write(&path, &r.bytes).with_context(|| format!("Writing {}", path.display()))?;
    }
    Ok(rendered)
}
