//! The initramfs of an incrementally installed tree: what a fresh install would have made.
//!
//! A fresh install makes the initramfs once, after every package is configured, so it holds
//! the files of the final package set. Applying package changes to a cached install runs only
//! the changed packages' scripts: Debian makes the initramfs again when a package asks for it
//! (a new kernel, dracut, udev rules…), but not when, say, libc6 or systemd's libraries change,
//! although copies of them are inside. So after the changes, the initramfs is made again when a
//! changed or purged package owns a file the initramfs holds, or one of dracut's own files.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::command::CommandExt;
use crate::install_base::Transition;
use crate::postprocess::chroot;

/// Paths whose change alters what dracut builds even when the initramfs does not hold them.
const DRACUT_INPUTS: [&str; 3] = ["usr/lib/dracut/", "etc/dracut.conf", "usr/lib/modules/"];

/// Makes the initramfs of every kernel in `tree` again if the packages `changes` touched (files
/// as `base`, the install before the changes, and `tree` list them) reach into it. Returns the
/// path that made it stale, if one did.
pub fn refresh_if_stale(
    tree: &Path,
    base: &Path,
    changes: &Transition,
    source_date_epoch: u64,
) -> Result<Option<String>> {
    let kernels = kernels(tree)?;
    if kernels.is_empty() {
        return Ok(None);
    }
    let mut touched = BTreeSet::new();
    for p in &changes.install {
        touched.extend(package_files(tree, &p.name, &p.architecture)?);
        touched.extend(package_files(base, &p.name, &p.architecture)?);
    }
    for purged in &changes.purge {
        let (name, arch) = purged.split_once(':').unwrap_or((purged.as_str(), ""));
        touched.extend(package_files(base, name, arch)?);
    }
    let mut stale = touched.iter().find(|f| is_dracut_input(f)).cloned();
    if stale.is_none() {
        for kver in &kernels {
            let inside = initramfs_files(tree, kver)?;
            if let Some(f) = touched.iter().find(|f| inside.contains(*f)) {
                stale = Some(f.clone());
                break;
            }
        }
    }
    if stale.is_some() {
        remake(tree, &kernels, source_date_epoch)?;
    }
    Ok(stale)
}

/// Makes the initramfs of every kernel in `tree` again if one of the manifest's files (their
/// absolute destinations in `dests`) is a dracut input: a dracut module or configuration the
/// manifest ships (Ignition's setup, say) is only written after the packages were configured,
/// so the initramfs made then does not have it. Returns the first such destination.
pub fn remake_for_files<'a>(
    tree: &Path,
    dests: impl IntoIterator<Item = &'a str>,
    source_date_epoch: u64,
) -> Result<Option<String>> {
    let Some(input) = dests
        .into_iter()
        .find(|d| is_dracut_input(d.trim_start_matches('/')))
    else {
        return Ok(None);
    };
    remake(tree, &kernels(tree)?, source_date_epoch)?;
    Ok(Some(input.to_string()))
}

fn is_dracut_input(rel: &str) -> bool {
    DRACUT_INPUTS.iter().any(|d| rel.starts_with(d))
}

/// Runs Debian's kernel hook for dracut, as the kernel's configuration did.
fn remake(tree: &Path, kernels: &[String], source_date_epoch: u64) -> Result<()> {
    for kver in kernels {
        chroot::command(tree, &["/etc/kernel/postinst.d/dracut", kver])
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            // dracut works in /var/tmp by default, which a freshly installed tree lacks once
            // mmdebstrap has cleaned up; /run is the tmpfs `chroot::command` mounts.
            .env("TMPDIR", "/run")
            .output_checked()
            .with_context(|| format!("Making the initramfs of {kver} again"))?;
    }
    Ok(())
}

/// Kernel versions with an initramfs in `/boot`.
fn kernels(tree: &Path) -> Result<Vec<String>> {
    let boot = tree.join("boot");
    let Ok(entries) = fs::read_dir(&boot) else {
        return Ok(Vec::new());
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("initrd.img-"))
                .map(str::to_string)
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The files (not directories) dpkg lists for a package in `tree` (none if it is not
/// installed there), as relative paths with `/usr` merged.
fn package_files(tree: &Path, name: &str, arch: &str) -> Result<Vec<String>> {
    let info = tree.join("var/lib/dpkg/info");
    for file in [format!("{name}:{arch}.list"), format!("{name}.list")] {
        match fs::read_to_string(info.join(&file)) {
            Ok(text) => {
                return Ok(text
                    .lines()
                    .map(merged_usr)
                    .filter(|rel| !tree.join(rel).is_dir())
                    .collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("Reading {}", info.join(&file).display()))
            }
        }
    }
    Ok(Vec::new())
}

/// The paths an initramfs holds, relative, with `/usr` merged.
fn initramfs_files(tree: &Path, kver: &str) -> Result<BTreeSet<String>> {
    let image = format!("/boot/initrd.img-{kver}");
    let listing =
        chroot::output(tree, &["lsinitrd", &image]).with_context(|| format!("Listing {image}"))?;
    Ok(parse_listing(&listing))
}

/// Files and links from `lsinitrd`'s `ls -l`-style lines (`… path` or `… path -> target`).
fn parse_listing(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter(|l| l.len() > 10 && matches!(l.as_bytes()[0], b'-' | b'l'))
        .filter_map(|l| {
            let l = l.split(" -> ").next().unwrap_or(l);
            l.split_whitespace().last().map(merged_usr)
        })
        .collect()
}

/// `/lib/x.so` → `usr/lib/x.so`: Debian 12 packages still ship files under the top-level
/// directories that are links into `/usr`.
fn merged_usr(path: &str) -> String {
    let rel = path.trim_start_matches('/');
    for top in ["bin/", "sbin/", "lib/", "lib32/", "lib64/", "libx32/"] {
        if rel.starts_with(top) {
            return format!("usr/{rel}");
        }
    }
    rel.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lsinitrd_listings() {
        let listing = "Image: /boot/initrd.img-6.1.0-56-amd64: 36M\n\
            ========\n\
            dracut modules:\nsystemd\nbase\n\
            crw-r--r--   1 root     root       5,   1 Mar  9  2023 dev/console\n\
            lrwxrwxrwx   1 root     root            7 Mar  9  2023 lib -> usr/lib\n\
            -rwxr-xr-x   1 root     root      1926232 Mar  9  2023 usr/lib/x86_64-linux-gnu/libc.so.6\n\
            lrwxrwxrwx   1 root     root           17 Mar  9  2023 usr/lib/systemd/systemd-udevd -> ../../bin/udevadm\n";
        let files = parse_listing(listing);
        assert!(files.contains("usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(files.contains("usr/lib/systemd/systemd-udevd"));
        assert!(!files.contains("systemd"), "module names are not paths");
        assert!(
            !files.contains("dev/console"),
            "device nodes are no package's"
        );
        assert_eq!(files.len(), 3, "{files:?}");
    }

    #[test]
    fn dracut_inputs() {
        assert!(is_dracut_input("usr/lib/dracut/modules.d/50cairn-ignition"));
        assert!(is_dracut_input("etc/dracut.conf.d/60-ignition.conf"));
        assert!(!is_dracut_input("etc/dracut-not.conf"));
        assert!(!is_dracut_input("usr/lib/cairn/grub-menu"));
    }

    #[test]
    fn merges_usr() {
        assert_eq!(
            merged_usr("/lib/x86_64-linux-gnu/libc.so.6"),
            "usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(merged_usr("/usr/bin/htop"), "usr/bin/htop");
        assert_eq!(merged_usr("/etc/dracut.conf.d/x"), "etc/dracut.conf.d/x");
        assert_eq!(merged_usr("/library"), "library");
    }
}
