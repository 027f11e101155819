//! Boot counting through GRUB's environment block (`/boot/grub/grubenv`).
//!
//! When a new deployment is about to boot for the first time, cairn *arms* the counter:
//! `cairn_boot_pending=1`, `cairn_boot_left=N`. The menu header that `updater/data/grub-menu`
//! writes loads both variables (`load_env`), decrements `cairn_boot_left` and saves it
//! (`save_env`) on every boot of entry 0; once it reaches 0 with the boot still pending, GRUB
//! boots entry 1, the previous deployment, by itself. `cairn health run` *clears* the counter
//! (`cairn_boot_pending=0`) when the required health checks pass, and on a fallback boot it
//! notices `cairn_boot_left=0`, records the failed version and makes the booted deployment the
//! default again. Attempts are bounded and a failed version is remembered, so a host never loops.
//!
//! The file format (GRUB's `grub-editenv`, `grub-core/lib/envblk.c`): exactly 1024 bytes, the
//! line `# GRUB Environment Block`, then `NAME=VALUE` lines, padded with `#`. GRUB's `save_env`
//! rewrites the blocks of an existing file in place and cannot create it, so cairn writes the
//! whole block (temporary file + rename) whenever it arms or clears.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fn_error_context::context;

/// Size of a GRUB environment block.
pub const BLOCK_SIZE: usize = 1024;
/// The first line of every block.
pub const SIGNATURE: &str = "# GRUB Environment Block\n";
/// `1` while a new deployment has not been marked good yet.
pub const PENDING: &str = "cairn_boot_pending";
/// Boot attempts left for the pending deployment (GRUB decrements it).
pub const LEFT: &str = "cairn_boot_left";
/// The most attempts the GRUB script can count down (it has no arithmetic: one branch each).
pub const MAX_ATTEMPTS: u32 = 9;

/// An environment block's variables, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubEnv {
    /// Variable name → value.
    pub vars: BTreeMap<String, String>,
}

impl GrubEnv {
    /// Parses a block: `NAME=VALUE` lines; comment and padding lines ignored. GRUB escapes `\`
    /// and newlines in values with a backslash; those are undone.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let text = String::from_utf8_lossy(bytes);
        if !text.starts_with(SIGNATURE) {
            bail!(
                "not a GRUB environment block (no {:?} line)",
                SIGNATURE.trim()
            );
        }
        let mut vars = BTreeMap::new();
        for line in text[SIGNATURE.len()..].split('\n') {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.to_string(), v.replace("\\\\", "\\"));
            }
        }
        Ok(GrubEnv { vars })
    }

    /// Serialises into exactly [`BLOCK_SIZE`] bytes.
    pub fn to_block(&self) -> Result<Vec<u8>> {
        let mut out = SIGNATURE.as_bytes().to_vec();
        for (k, v) in &self.vars {
            if k.is_empty() || k.contains(['=', '\n']) || v.contains('\n') {
                bail!("GRUB environment variable {k:?}={v:?} cannot be written");
            }
            out.extend_from_slice(format!("{k}={}\n", v.replace('\\', "\\\\")).as_bytes());
        }
        if out.len() > BLOCK_SIZE {
            bail!("the GRUB environment block would exceed {BLOCK_SIZE} bytes");
        }
        out.resize(BLOCK_SIZE, b'#');
        Ok(out)
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Where a sysroot's environment block is.
pub fn path(sysroot: &Path) -> PathBuf {
    sysroot.join("boot/grub/grubenv")
}

/// Reads the block at `path`; a missing file is an empty environment.
#[context("Reading the GRUB environment block {}", path.display())]
pub fn read(path: &Path) -> Result<GrubEnv> {
    match std::fs::read(path) {
        Ok(b) => GrubEnv::parse(&b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GrubEnv::default()),
        Err(e) => Err(e).context("Reading the file"),
    }
}

/// Writes `env` to `path` as a whole block (temporary file, fsync, rename).
#[context("Writing the GRUB environment block {}", path.display())]
pub fn write(path: &Path, env: &GrubEnv) -> Result<()> {
    let block = env.to_block()?;
    let dir = path.parent().context("the path has no directory")?;
    let tmp = dir.join(".grubenv.cairn-tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("Creating {}", tmp.display()))?;
    f.write_all(&block)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("Writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("Renaming to {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The counter's state as cairn reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Counter {
    /// Nothing pending: entry 0 is known good (or counting is not in use).
    Idle,
    /// A new deployment is on trial, with `left` attempts left.
    Pending {
        /// Attempts left.
        left: u32,
    },
    /// The attempts ran out: GRUB boots entry 1.
    Exhausted,
}

/// Reads the counter of the block at `path`.
pub fn counter(path: &Path) -> Result<Counter> {
    let env = read(path)?;
    if env.get(PENDING) != Some("1") {
        return Ok(Counter::Idle);
    }
    Ok(match env.get(LEFT).and_then(|l| l.parse::<u32>().ok()) {
        Some(0) | None => Counter::Exhausted,
        Some(left) => Counter::Pending { left },
    })
}

/// Gives the deployment that boots next `attempts` boot attempts.
pub fn arm(path: &Path, attempts: u32) -> Result<()> {
    if attempts == 0 || attempts > MAX_ATTEMPTS {
        bail!("boot attempts must be 1 to {MAX_ATTEMPTS}, not {attempts}");
    }
    let mut env = read(path)?;
    env.vars.insert(PENDING.into(), "1".into());
    env.vars.insert(LEFT.into(), attempts.to_string());
    write(path, &env)?;
    log::info!(
        "boot counting armed in {}: {attempts} attempts",
        path.display()
    );
    Ok(())
}

/// Marks the boot good: nothing pending any more. Writes only if something was pending.
pub fn clear(path: &Path) -> Result<bool> {
    let mut env = read(path)?;
    if env.get(PENDING).is_none() && env.get(LEFT).is_none() {
        return Ok(false);
    }
    env.vars.insert(PENDING.into(), "0".into());
    env.vars.remove(LEFT);
    write(path, &env)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_at_1024_bytes() {
        let mut env = GrubEnv::default();
        env.vars.insert(PENDING.into(), "1".into());
        env.vars.insert(LEFT.into(), "3".into());
        let b = env.to_block().unwrap();
        assert_eq!(b.len(), BLOCK_SIZE);
        assert!(b.starts_with(b"# GRUB Environment Block\ncairn_boot_left=3\n"));
        assert_eq!(GrubEnv::parse(&b).unwrap(), env);
        assert!(GrubEnv::parse(b"garbage").is_err());
    }
}
