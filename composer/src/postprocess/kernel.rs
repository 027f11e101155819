//! The kernel and initramfs, where libostree looks for them:
//! `/usr/lib/modules/$KVER/{vmlinuz,initramfs.img}`.
//!
//! The initramfs is the one dracut made when the kernel package was configured: the install
//! step configures dracut before any package (`hostonly="no"`, the `ostree` module), so it is
//! generic and carries `ostree-prepare-root`. That is checked here, not assumed.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::chroot;

/// Moves the kernel into place and empties `/boot`. Returns the kernel version, or `None` for
/// a tree that is not bootable.
pub fn relocate(tree: &Path, bootable: bool) -> Result<Option<String>> {
    let modules = tree.join("usr/lib/modules");
    let mut kernels: Vec<String> = match fs::read_dir(&modules) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|k| {
                tree.join("boot").join(format!("vmlinuz-{k}")).exists()
                    || modules.join(k).join("vmlinuz").exists()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    kernels.sort();
    let kver = match (kernels.as_slice(), bootable) {
        ([], false) => {
            clear_boot(tree)?;
            return Ok(None);
        }
        ([], true) => bail!("the tree has no kernel: add a kernel package (e.g. linux-image-amd64) to the manifest's packages, or set bootable = false"),
        ([one], _) => one.clone(),
        (many, _) => bail!("the tree has {} kernels ({}); a bootable tree carries exactly one", many.len(), many.join(", ")),
    };
    let dir = modules.join(&kver);
    let boot = tree.join("boot");
    for (from, to) in [
        (format!("vmlinuz-{kver}"), "vmlinuz"),
        (format!("initrd.img-{kver}"), "initramfs.img"),
        (format!("config-{kver}"), "config"),
        (format!("System.map-{kver}"), "System.map"),
    ] {
        let src = boot.join(&from);
        if src.exists() {
            fs::rename(&src, dir.join(to))
                .with_context(|| format!("Moving /boot/{from} to /usr/lib/modules/{kver}/{to}"))?;
        }
    }
    let initramfs = dir.join("initramfs.img");
    if !initramfs.exists() {
        bail!("kernel {kver} has no initramfs: add the dracut and ostree-boot packages to the manifest (Debian's ostree-boot ships the dracut module; initramfs-tools has none)");
    }
    let inside = format!("/usr/lib/modules/{kver}/initramfs.img");
    let listing = chroot::output(tree, &["lsinitrd", &inside])
        .with_context(|| format!("Listing {inside} (is dracut installed?)"))?;
    if !listing.contains("usr/lib/ostree/ostree-prepare-root") {
        bail!("the initramfs of {kver} has no ostree-prepare-root: the ostree-boot package (dracut module 'ostree') must be installed");
    }
    clear_boot(tree)?;
    Ok(Some(kver))
}

/// Empties `/boot` and drops the top-level kernel symlinks Debian makes.
fn clear_boot(tree: &Path) -> Result<()> {
    let boot = tree.join("boot");
    if let Ok(entries) = fs::read_dir(&boot) {
        for e in entries.flatten() {
            let p = e.path();
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.with_context(|| format!("Removing {}", p.display()))?;
        }
    } else {
        fs::create_dir_all(&boot)?;
    }
    for link in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        let p = tree.join(link);
        if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p).with_context(|| format!("Removing {}", p.display()))?;
        }
    }
    Ok(())
}
