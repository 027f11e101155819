//! GRUB for BIOS: `grub-install --target=i386-pc` from the build machine onto the disk, the
//! static `/boot/grub/grub.cfg`, and the menu generator the deployment writers share.
//!
//! The menu itself is written by libostree during the deploy, through the commit's own
//! `/usr/lib/cairn/grub-menu` (named by `OSTREE_GRUB2_EXEC`): the same program `cairn` and
//! `ostree-finalize-staged.service` run on the host, so the first menu and every later one
//! agree.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::command::CommandExt;

/// The generator's path in the tree.
pub const GRUB_MENU: &str = cairn_release::tree::GRUB_MENU;
/// The static `grub.cfg`'s path in trees that ship it.
pub const STATIC_GRUB_CFG: &str = cairn_release::tree::STATIC_GRUB_CFG;
/// The static `grub.cfg` of this source tree, for commits that predate shipping it.
const FALLBACK_GRUB_CFG: &str = include_str!("../../../updater/data/grub.cfg");

/// A file of `commit` in `repo`, or `None` when the commit does not have it.
pub fn commit_file(repo: &Path, commit: &str, path: &str) -> Result<Option<String>> {
    let out = Command::new("ostree")
        .arg("cat")
        .arg(format!("--repo={}", repo.display()))
        .arg(commit)
        .arg(path)
        .output()
        .context("Running ostree cat")?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such file") || err.contains("not found") {
        return Ok(None);
    }
    bail!("ostree cat {commit} {path} failed: {}", err.trim())
}

/// Copies the commit's GRUB menu generator to `dir/grub-menu` and returns its path.
pub fn extract_generator(repo: &Path, commit: &str, dir: &Path) -> Result<PathBuf> {
    let Some(script) = commit_file(repo, commit, GRUB_MENU)? else {
        bail!("commit {commit} has no {GRUB_MENU}; compose it from a manifest that includes manifests/base.toml");
    };
    let path = dir.join("grub-menu");
    fs::write(&path, script).with_context(|| format!("Writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("Making {} executable", path.display()))?;
    Ok(path)
}

/// Installs GRUB's boot code on `disk` (the whole-disk loop device), its modules into
/// `boot_fs/grub`, and the static `grub.cfg` (the commit's, else this source tree's).
pub fn install(disk: &Path, boot_fs: &Path, repo: &Path, commit: &str) -> Result<()> {
    Command::new("grub-install")
        .arg("--target=i386-pc")
        .arg(format!("--boot-directory={}", boot_fs.display()))
        // Everything needed to find and read /boot goes into core.img.
        .arg("--modules=part_gpt ext2 search_fs_uuid")
        .arg("--no-floppy")
        .arg(disk)
        .run_checked()
        .context("Installing GRUB")?;
    let cfg = commit_file(repo, commit, STATIC_GRUB_CFG)?
        .unwrap_or_else(|| FALLBACK_GRUB_CFG.to_string());
    let path = boot_fs.join("grub/grub.cfg");
    fs::write(&path, cfg).with_context(|| format!("Writing {}", path.display()))
}

/// The default entry (the first `menuentry`, since the generator sets `default=0`) of the GRUB
/// menu libostree's `loader` symlink points at.
pub fn default_entry(boot_fs: &Path) -> Result<String> {
    let path = boot_fs.join("loader/grub.cfg");
    let menu = fs::read_to_string(&path).with_context(|| format!("Reading {}", path.display()))?;
    menu.lines()
        .find(|l| l.starts_with("menuentry "))
        .map(str::to_string)
        .with_context(|| format!("{} has no menuentry", path.display()))
}

/// Debian's shim, signed by Microsoft's UEFI CA (package shim-signed).
pub const SIGNED_SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
/// shim's MOK manager, started by shim when a MOK change is pending (package shim-signed).
pub const SIGNED_MOK_MANAGER: &str = "/usr/lib/shim/mmx64.efi.signed";
/// Debian's monolithic GRUB for x86-64 EFI, signed by Debian (package grub-efi-amd64-signed).
pub const SIGNED_GRUB: &str = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
/// GRUB's x86-64 EFI modules (package grub-efi-amd64-bin).
pub const GRUB_EFI_MODULES: &str = "/usr/lib/grub/x86_64-efi";
/// The removable-media path UEFI firmware boots without NVRAM entries.
pub const ESP_BOOT_DIR: &str = "EFI/BOOT";

/// The `grub.cfg` next to the signed GRUB on the ESP. Debian's signed image looks for its
/// configuration in the directory it was started from; this finds `/boot` by its filesystem
/// UUID and hands over to the same static `/boot/grub/grub.cfg` the BIOS GRUB reads, with
/// `$prefix` on `/boot` so the menu's `load_env`/`save_env` use `/boot/grub/grubenv`.
pub fn esp_grub_cfg(boot_uuid: &str) -> String {
    format!(
        "# Written by cairn-compose image. shim (BOOTX64.EFI) starts Debian's signed GRUB\n\
         # (grubx64.efi), which reads this file: find /boot by UUID and follow the static\n\
         # /boot/grub/grub.cfg, as BIOS boots do. Not signed: Secure Boot covers shim, GRUB and\n\
         # the kernel, not this file, the menus or the initramfs.\n\
         search --no-floppy --fs-uuid --set=root {boot_uuid}\n\
         set prefix=($root)/grub\n\
         configfile ($root)/grub/grub.cfg\n"
    )
}

/// Writes the static `/boot/grub/grub.cfg` (the commit's, else this source tree's) and an
/// empty GRUB environment block next to it when there is none yet (`grub-install` makes one
/// for BIOS; the signed EFI GRUB is not installed with it).
pub fn write_static_cfg(boot_fs: &Path, repo: &Path, commit: &str) -> Result<()> {
    let dir = boot_fs.join("grub");
    fs::create_dir_all(&dir).with_context(|| format!("Creating {}", dir.display()))?;
    let cfg = commit_file(repo, commit, STATIC_GRUB_CFG)?
        .unwrap_or_else(|| FALLBACK_GRUB_CFG.to_string());
    let path = dir.join("grub.cfg");
    fs::write(&path, cfg).with_context(|| format!("Writing {}", path.display()))?;
    let env = dir.join("grubenv");
    if !env.exists() {
        Command::new("grub-editenv")
            .arg(&env)
            .arg("create")
            .run_checked()
            .context("Creating the GRUB environment block")?;
    }
    Ok(())
}

/// Installs the UEFI bootloader: files staged under `work` and copied onto the unmounted FAT
/// filesystem on `esp` with mtools (the ESP is never mounted: the build machine's kernel need
/// not have vfat).
///
/// With `secure_boot`: Debian's signed shim as `EFI/BOOT/BOOTX64.EFI`, its MOK manager, the
/// signed GRUB as `EFI/BOOT/grubx64.efi` (the name shim loads) and [`esp_grub_cfg`]. Without:
/// what `grub-install --target=x86_64-efi --removable` installs, made with `grub-mkimage` (it
/// needs no mounted ESP): GRUB's modules in `boot_fs/grub/x86_64-efi` and a core image as
/// `EFI/BOOT/BOOTX64.EFI` that finds `/boot` by UUID and sets `$prefix` to its `/grub`.
pub fn install_efi(
    esp: &Path,
    boot_fs: &Path,
    boot_uuid: &str,
    secure_boot: bool,
    work: &Path,
) -> Result<()> {
    let stage = work.join("esp");
    let boot_dir = stage.join(ESP_BOOT_DIR);
    fs::create_dir_all(&boot_dir).with_context(|| format!("Creating {}", boot_dir.display()))?;
    if secure_boot {
        for (from, to) in [
            (SIGNED_SHIM, "BOOTX64.EFI"),
            (SIGNED_MOK_MANAGER, "mmx64.efi"),
            (SIGNED_GRUB, "grubx64.efi"),
        ] {
            fs::copy(from, boot_dir.join(to)).with_context(|| {
                format!("Copying {from} (packages shim-signed, grub-efi-amd64-signed)")
            })?;
        }
        let cfg = boot_dir.join("grub.cfg");
        fs::write(&cfg, esp_grub_cfg(boot_uuid))
            .with_context(|| format!("Writing {}", cfg.display()))?;
    } else {
        copy_efi_modules(&boot_fs.join("grub/x86_64-efi"))?;
        let load_cfg = work.join("efi-load.cfg");
        fs::write(
            &load_cfg,
            format!("search.fs_uuid {boot_uuid} root\nset prefix=($root)/grub\n"),
        )
        .with_context(|| format!("Writing {}", load_cfg.display()))?;
        Command::new("grub-mkimage")
            .args(["--format=x86_64-efi", "--directory", GRUB_EFI_MODULES])
            .arg("--config")
            .arg(&load_cfg)
            .arg("--prefix=/grub")
            .arg("--output")
            .arg(boot_dir.join("BOOTX64.EFI"))
            // efi_gop: a video mode for the kernel's framebuffer (without it GRUB's linux
            // loader says "no suitable video mode found" and boots "in blind mode").
            .args(["part_gpt", "ext2", "search_fs_uuid", "efi_gop"])
            .run_checked()
            .context("Making GRUB's EFI image (package grub-efi-amd64-bin)")?;
    }
    Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-s")
        .arg("-i")
        .arg(esp)
        .arg(stage.join("EFI"))
        .arg("::/")
        .run_checked()
        .context("Copying the bootloader onto the ESP")
}

/// Copies GRUB's EFI modules and their lists (what `grub-install` copies) into `dest`.
fn copy_efi_modules(dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("Creating {}", dest.display()))?;
    let src = Path::new(GRUB_EFI_MODULES);
    let entries = fs::read_dir(src)
        .with_context(|| format!("Reading {} (package grub-efi-amd64-bin)", src.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("Reading {}", src.display()))?;
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".mod") || n.ends_with(".lst") || n == "modinfo.sh" {
            fs::copy(entry.path(), dest.join(&name))
                .with_context(|| format!("Copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The files under `EFI/BOOT` on the ESP at `esp` (a device or image), upper-cased as FAT
/// compares them; for the build log and tests.
pub fn esp_files(esp: &Path) -> Result<Vec<String>> {
    fat_files(esp, &format!("/{ESP_BOOT_DIR}"))
}

/// The names in directory `dir` (absolute) of the FAT filesystem `image` (a device, an image
/// file, or mtools' `FILE@@BYTE-OFFSET` for one inside a disk), upper-cased and sorted.
pub fn fat_files(image: &Path, dir: &str) -> Result<Vec<String>> {
    let out = Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-b", "-i"])
        .arg(image)
        .arg(format!("::{dir}"))
        .output_checked()?;
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim_end_matches('/').rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    v.sort();
    Ok(v)
}
