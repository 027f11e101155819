//! A full `/boot` refuses an upgrade before anything is written there: the sysroot's `/boot`
//! is moved onto a small tmpfs, which is then filled up.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs mounted over a directory (its content copied in first); unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn over(dir: &Path, size: &str) -> Self {
        let stash = dir.with_extension("orig");
        run(Command::new("cp").arg("-a").arg(dir).arg(&stash));
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir));
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", stash.display()))
            .arg(dir));
        SmallFs(dir.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_boot_refuses_the_upgrade_before_writing() {
    let fx = Fixture::new();
    let boot = fx.sysroot.join("boot");
    let _fs = SmallFs::over(&boot, "1m");
    // Fill it up (dd stops with ENOSPC).
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", boot.join("filler").display()))
        .output()
        .unwrap();
    let kernel = format!("usr/lib/modules/{KVER}/vmlinuz");
    fx.publish_with(STABLE, 1, 0, &[(&kernel, "a new kernel\n", 0o644)]);
    let menu = fx.grub_menu();
    let err = fx.cairn_fails(&["upgrade"], 1);
    assert!(err.contains("missing") && err.contains("boot"), "{err}");
    assert_eq!(fx.order(), ["2026.11.0"]);
    assert_eq!(fx.grub_menu(), menu);
    // With room again it goes through.
    std::fs::remove_file(boot.join("filler")).unwrap();
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
}
