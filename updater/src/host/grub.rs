//! Which program writes the GRUB menu when libostree writes deployments. The sysroot
//! ([`crate::host::sysroot`]) only warns when none is set; choosing one is here.
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

use cairn_release::tree::GRUB_MENU as GENERATOR;

use crate::host::sysroot::{Host, GRUB_EXEC_ENV as ENV};

/// Exports [`ENV`] for libostree, unless it is already set: the configured generator or
/// [`GENERATOR`], both resolved inside the tree the host runs (the booted root, or the
/// stateroot's default deployment for `--sysroot`). Returns the generator in effect.
pub fn configure(host: &Host, configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(set) = std::env::var_os(ENV) {
        log::debug!("{ENV} is set to {}", Path::new(&set).display());
        return Some(PathBuf::from(set));
    }
    let wanted = configured.map_or_else(|| PathBuf::from(GENERATOR), Path::to_path_buf);
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
