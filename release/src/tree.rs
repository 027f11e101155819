//! Paths inside a Cairn OS tree that the composer writes (or ships) and the updater or the
//! image builder reads: one spelling for both sides.
//!
//! Paths are absolute, as seen from the running system; [`relative`] turns one into a path
//! below a checkout (`tree.join(relative(KERNEL_ARGS))`).

/// The GRUB menu generator every deployment writer runs (libostree's `OSTREE_GRUB2_EXEC`):
/// `cairn`, the image builder and `ostree-finalize-staged.service`.
pub const GRUB_MENU: &str = "/usr/lib/cairn/grub-menu";

/// The static `/boot/grub/grub.cfg` a tree ships for the image builder to install.
pub const STATIC_GRUB_CFG: &str = "/usr/lib/cairn/grub.cfg";

/// The manifest's default kernel arguments, one per line.
pub const KERNEL_ARGS: &str = "/usr/lib/cairn/kernel-args";

/// Ignition's dracut module (Debian's package `ignition`): a tree that has it provisions itself
/// on first boot, so the image builder arms the first-boot flag.
pub const IGNITION_DRACUT_MODULE: &str = "/usr/lib/dracut/modules.d/30ignition/module-setup.sh";

/// On the `/boot` filesystem: the flag that makes GRUB add `ignition.firstboot` to the kernel
/// arguments (the Fedora CoreOS name and place). The image builder writes it; the first boot
/// that reaches the real root removes it (`cairn-firstboot-complete.service`).
pub const FIRSTBOOT_FLAG: &str = "/ignition.firstboot";

/// On the `/boot` filesystem: the Ignition config embedded in an image, as a cpio archive that
/// GRUB loads after the initramfs on first boot; it puts `/usr/lib/ignition/user.ign` there,
/// which Ignition prefers to the platform's config.
pub const EMBEDDED_IGNITION: &str = "/ignition/config.cpio";

/// `path` without its leading `/`, to join below a tree's root directory.
pub fn relative(path: &str) -> &str {
    path.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_below_a_root() {
        assert_eq!(relative(KERNEL_ARGS), "usr/lib/cairn/kernel-args");
        assert_eq!(
            std::path::Path::new("/t").join(relative(GRUB_MENU)),
            std::path::Path::new("/t/usr/lib/cairn/grub-menu")
        );
    }
}
