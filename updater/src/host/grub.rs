//! Which program writes the GRUB menu when libostree writes deployments.
//!
//! Debian's libostree regenerates the menu whenever `/boot/grub/grub.cfg` exists, by running
//! `$OSTREE_GRUB2_EXEC -o /boot/loader.N/grub.cfg` (or `grub-mkconfig`, chrooted into the new
//! deployment on a non-booted sysroot, which fails there). Every writer of deployments must use
//! the same generator: `cairn` (here), the image builder, and `ostree-finalize-staged.service`
//! (through the drop-in `updater/data/ostree-finalize-staged.conf`). The generator is
//! `updater/data/grub-menu`, installed as `/usr/lib/cairn/grub-menu`.
//!
//! We do not set `sysroot.bootloader` in the repository config: libostree 2022.7 detects GRUB
//! from `/boot/grub/grub.cfg` on its own, and the image builder owns that file.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::host::sysroot::Host;

/// The environment variable libostree reads.
pub const ENV: &str = "OSTREE_GRUB2_EXEC";
/// Where Cairn trees carry the generator.
pub const GENERATOR: &str = cairn_release::tree::GRUB_MENU;

/// Whether this sysroot boots with GRUB (libostree's own test).
pub fn uses_grub(host: &Host) -> bool {
    host.path().join("boot/grub/grub.cfg").exists()
}

/// Exports [`ENV`] for libostree, unless it is already set: the configured generator or
/// [`GENERATOR`], both resolved inside the tree the host runs (the booted root, or the
/// stateroot's default deployment for `--sysroot`). Returns the generator in effect.
pub fn configure(host: &Host, config: &Config) -> Option<PathBuf> {
    if let Some(set) = std::env::var_os(ENV) {
        log::debug!("{ENV} is set to {}", Path::new(&set).display());
        return Some(PathBuf::from(set));
    }
    let wanted = config
        .bootloader
        .grub_generator
        .clone()
        .unwrap_or_else(|| PathBuf::from(GENERATOR));
    let resolved = if host.path() == Path::new("/") {
        Some(wanted.clone())
    } else {
        host.merge_deployment().map(|d| {
            d.path
                .join(wanted.strip_prefix("/").unwrap_or(wanted.as_path()))
        })
    };
    match resolved {
        Some(path) if path.exists() => {
            log::debug!("setting {ENV}={}", path.display());
            // Single-threaded at this point: no other thread reads the environment.
            std::env::set_var(ENV, &path);
            Some(path)
        }
        _ => {
            log::debug!(
                "GRUB menu generator {} not found in the tree",
                wanted.display()
            );
            None
        }
    }
}

/// Warns before a write if the sysroot uses GRUB but no generator is set: libostree would then
/// run `grub-mkconfig` (chrooted into the new deployment on a non-booted sysroot).
pub fn warn_if_unset(host: &Host) {
    if uses_grub(host) && std::env::var_os(ENV).is_none() {
        log::warn!(
            "no GRUB menu generator ({GENERATOR} is not in the tree and {ENV} is unset); \
             libostree will fall back to grub-mkconfig"
        );
    }
}
