//! The disk: a sparse file partitioned with `sfdisk`, loop devices and mounts that are always
//! released.
//!
//! Partition device nodes (`/dev/loopNpM`) do not appear on every machine (containers without
//! udev), so each partition gets its own loop device at its offset (`losetup -o --sizelimit`).
//! [`Loop`] and [`Mount`] undo themselves on drop, so every exit path (an error, Ctrl-C turned
//! into an error by `crate::interrupt`) detaches and unmounts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::recipe::{Recipe, MIB};
use crate::command::CommandExt;

/// Where a partition is on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

/// The `sfdisk` input for `recipe`: GPT, MiB-aligned, the last partition taking the rest.
pub fn sfdisk_script(recipe: &Recipe) -> String {
    let mut s = String::from("label: gpt\n");
    for p in &recipe.partitions {
        let size = p
            .size
            .map(|b| format!("size={}MiB, ", b / MIB))
            .unwrap_or_default();
        s.push_str(&format!(
            "{size}type={}, name={}\n",
            p.role.type_guid(),
            p.label
        ));
    }
    s
}

/// Creates the sparse disk file and writes its partition table.
pub fn create(path: &Path, recipe: &Recipe) -> Result<Vec<Extent>> {
    let file = fs::File::create(path).with_context(|| format!("Creating {}", path.display()))?;
    file.set_len(recipe.size)
        .with_context(|| format!("Sizing {} to {} MiB", path.display(), recipe.size / MIB))?;
    drop(file);
    let script = path.with_extension("sfdisk");
    fs::write(&script, sfdisk_script(recipe))
        .with_context(|| format!("Writing {}", script.display()))?;
    let res = Command::new("sh")
        .arg("-c")
        .arg("exec sfdisk --quiet --wipe always \"$1\" < \"$2\"")
        .arg("sh")
        .arg(path)
        .arg(&script)
        .run_checked()
        .with_context(|| format!("Partitioning {}", path.display()));
    let _ = fs::remove_file(&script);
    res?;
    let extents = read_extents(path)?;
    if extents.len() != recipe.partitions.len() {
        bail!(
            "sfdisk wrote {} partitions, the recipe has {}",
            extents.len(),
            recipe.partitions.len()
        );
    }
    Ok(extents)
}

#[derive(Deserialize)]
struct SfdiskJson {
    partitiontable: SfdiskTable,
}

#[derive(Deserialize)]
struct SfdiskTable {
    #[serde(default = "default_sector")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<SfdiskPartition>,
}

fn default_sector() -> u64 {
    512
}

#[derive(Deserialize)]
struct SfdiskPartition {
    start: u64,
    size: u64,
}

/// The partitions of a disk image, in table order, from `sfdisk --json`.
pub fn read_extents(path: &Path) -> Result<Vec<Extent>> {
    let json = Command::new("sfdisk")
        .arg("--json")
        .arg(path)
        .output_checked()?;
    let t: SfdiskJson = serde_json::from_str(&json)
        .with_context(|| format!("Parsing `sfdisk --json {}`", path.display()))?;
    let sector = t.partitiontable.sectorsize;
    Ok(t.partitiontable
        .partitions
        .iter()
        .map(|p| Extent {
            offset: p.start * sector,
            size: p.size * sector,
        })
        .collect())
}

/// A loop device, detached on drop.
#[derive(Debug)]
pub struct Loop {
    device: PathBuf,
}

impl Loop {
    /// Attaches the whole file, or `extent` of it.
    pub fn attach(file: &Path, extent: Option<&Extent>) -> Result<Loop> {
        let mut cmd = Command::new("losetup");
        cmd.arg("--find").arg("--show");
        if let Some(e) = extent {
            cmd.arg("--offset")
                .arg(e.offset.to_string())
                .arg("--sizelimit")
                .arg(e.size.to_string());
        }
        let out = cmd
            .arg(file)
            .output_checked()
            .with_context(|| format!("Attaching {} to a loop device", file.display()))?;
        let device = PathBuf::from(out.trim());
        if !device.starts_with("/dev") {
            bail!("losetup printed {out:?}, not a device");
        }
        Ok(Loop { device })
    }

    /// The device, e.g. `/dev/loop3`.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Waits for a detach to finish. The kernel answers a detach of a device someone still
    /// holds open (udev probing the new partition table) with success, marks it to clear
    /// when the last user closes it, and keeps the backing file attached until then; the
    /// caller's "nothing is left attached" must hold when the build returns.
    fn wait_detached(&self) {
        let Some(name) = self.device.file_name() else {
            return;
        };
        let backing = Path::new("/sys/block").join(name).join("loop/backing_file");
        for _ in 0..50 {
            if !backing.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!(
            "warning: {} is still attached 5 s after its detach",
            self.device.display()
        );
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // The kernel may still hold the device for a moment after an unmount.
        for _ in 0..20 {
            match Command::new("losetup")
                .arg("--detach")
                .arg(&self.device)
                .run_checked()
            {
                Ok(()) => return self.wait_detached(),
                Err(e) if !Path::new(&self.device).exists() => {
                    eprintln!("warning: {e:#}");
                    return;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
        eprintln!("warning: could not detach {}", self.device.display());
    }
}

/// A mounted filesystem, unmounted on drop.
#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
}

impl Mount {
    /// Mounts `device` on `target` (created if missing).
    pub fn new(device: &Path, target: &Path) -> Result<Mount> {
        fs::create_dir_all(target).with_context(|| format!("Creating {}", target.display()))?;
        Command::new("mount")
            .arg(device)
            .arg(target)
            .run_checked()?;
        Ok(Mount {
            target: target.to_path_buf(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting failure (drop only warns).
    pub fn unmount(mut self) -> Result<()> {
        let target = std::mem::take(&mut self.target);
        Command::new("umount").arg(&target).run_checked()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.target.as_os_str().is_empty() {
            return;
        }
        if Command::new("umount")
            .arg(&self.target)
            .run_checked()
            .is_err()
        {
            // Something still holds it (a process killed mid-write): detach it lazily so the
            // loop device can go.
            if let Err(e) = Command::new("umount")
                .arg("--lazy")
                .arg(&self.target)
                .run_checked()
            {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// Makes an ext4 filesystem with `label` on `device` and returns its UUID.
pub fn mkfs_ext4(device: &Path, label: &str) -> Result<String> {
    Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        // No reserved blocks and no lazy init: the image is small and done at once.
        .args(["-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(device)
        .run_checked()?;
    fs_uuid(device)
}

/// Makes a FAT32 filesystem (the ESP) with `label` (upper-cased, as FAT stores it) on `device`
/// and returns its UUID (`XXXX-XXXX`, the volume serial).
pub fn mkfs_vfat(device: &Path, label: &str) -> Result<String> {
    Command::new("mkfs.vfat")
        .args(["-F", "32", "-n"])
        .arg(label.to_ascii_uppercase())
        .arg(device)
        .output_checked()?;
    fs_uuid(device)
}

/// The filesystem UUID of `device`.
pub fn fs_uuid(device: &Path) -> Result<String> {
    let out = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value"])
        .arg(device)
        .output_checked()?;
    let uuid = out.trim().to_string();
    if uuid.is_empty() {
        bail!("{} has no filesystem UUID", device.display());
    }
    Ok(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::recipe::{Partition, Remote, Role};

    #[test]
    fn script() {
        let r = Recipe {
            path: PathBuf::from("r.toml"),
            size: 1024 * MIB,
            partitions: vec![
                Partition {
                    role: Role::BiosBoot,
                    label: "bios".into(),
                    size: Some(MIB),
                },
                Partition {
                    role: Role::Root,
                    label: "root".into(),
                    size: None,
                },
            ],
            kernel_args: vec![],
            remote: Remote {
                name: "cairn".into(),
                url: "http://x/".into(),
            },
            files: vec![],
            bootloader: Default::default(),
            secure_boot: false,
            ignition_platform: "metal".into(),
        };
        assert_eq!(
            sfdisk_script(&r),
            "label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios\n\
             type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n"
        );
    }
}
