//! Disk images from a commit (`cairn-compose image`): a GPT disk whose sysroot holds the
//! commit deployed, with GRUB for BIOS, the remote the host updates from, and a menu written by
//! the same generator the updater uses.
//!
//! Parts: [`recipe`] (the TOML format), [`disk`] (partition table, loop devices, mounts),
//! [`bootloader`] (GRUB), [`deploy`] (the sysroot). This module only sequences them. It does
//! not compose trees; the commit must already be in the repository.

pub mod bootloader;
pub mod deploy;
pub mod disk;
pub mod first_boot;
pub mod recipe;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_release::history::{ref_history, resolve};
use cairn_release::metadata::CommitInfo;
use cairn_release::osref::OsRef;

use serde::Serialize;

use crate::command::CommandExt;
use crate::interrupt;
use crate::progress::Progress;
use crate::workdir::WorkDir;
use disk::{Loop, Mount};
use recipe::{Recipe, Role};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A raw disk (sparse).
    Raw,
    /// qcow2, converted with `qemu-img`.
    Qcow2,
}

impl Format {
    /// `qcow2` for a `.qcow2` file name, else raw.
    pub fn from_name(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("qcow2") => Format::Qcow2,
            _ => Format::Raw,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The recipe file.
    pub recipe: PathBuf,
    /// The archive repository holding the commit.
    pub repo: PathBuf,
    /// The ref to deploy and follow.
    pub osref: String,
    /// A version on the ref's history (default: the ref's newest commit).
    pub version: Option<String>,
    /// The image file.
    pub output: PathBuf,
    /// Overrides the recipe's remote URL.
    pub remote_url: Option<String>,
    /// Overrides the format the output name implies.
    pub format: Option<Format>,
    /// An Ignition config to embed (the tree must carry Ignition).
    pub ignition: Option<PathBuf>,
    /// A URL Ignition fetches the config from on the first boot (platform metal).
    pub ignition_url: Option<String>,
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct ImageOutcome {
    /// The image file.
    pub output: PathBuf,
    /// Its format.
    pub format: Format,
    /// Virtual disk size in bytes.
    pub disk_size: u64,
    /// Bytes the file occupies on disk.
    pub allocated: u64,
    /// The ref the host follows.
    pub osref: String,
    /// The deployed commit.
    pub commit: String,
    /// Its version.
    pub version: Option<String>,
    /// The deployment's kernel arguments.
    pub kernel_args: Vec<String>,
    /// The GRUB menu's default entry.
    pub default_entry: String,
    /// How the disk boots.
    pub bootloader: recipe::Bootloader,
    /// Whether the ESP carries the signed shim and GRUB.
    pub secure_boot: bool,
    /// The files in the ESP's `EFI/BOOT` (empty without an ESP).
    pub esp_files: Vec<String>,
    /// Whether Ignition runs on the disk's first boot (the tree carries it).
    pub ignition_first_boot: bool,
    /// The Ignition config embedded in the image, if one is.
    pub ignition_config: Option<PathBuf>,
    /// The URL the first boot fetches its Ignition config from, if one was given.
    pub ignition_url: Option<String>,
    /// Kernel arguments of the first boot only, beside `ignition.firstboot` (the URL, the
    /// network a platform's metadata service needs).
    pub ignition_first_boot_kargs: Option<String>,
}

/// Removes a file on drop unless kept.
struct PartialFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Finds the commit to deploy: `version` on `osref`'s history, or the ref's head.
fn find_commit(repo_path: &Path, osref: &str, version: Option<&str>) -> Result<CommitInfo> {
    let repo = crate::repo::open_repo(repo_path)?;
    let info = match version {
        Some(v) => ref_history(&repo, osref)?
            .into_iter()
            .find(|c| c.version.as_deref() == Some(v))
            .with_context(|| {
                format!(
                    "version {v} is not in the history of {osref} in {}",
                    repo_path.display()
                )
            })?,
        None => {
            let Some(commit) = resolve(&repo, osref)? else {
                bail!("{} has no ref {osref}", repo_path.display());
            };
            CommitInfo::load(&repo, &commit)?
        }
    };
    if info.linux.is_none() {
        bail!(
            "commit {} of {osref} is not bootable (no ostree.linux metadata)",
            info.commit
        );
    }
    Ok(info)
}

/// The deployment's kernel arguments: the tree's, the recipe's, then `root=` and `rw`;
/// exact duplicates dropped (the first stays).
pub fn kernel_args(tree: &str, recipe: &[String], root_uuid: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = tree
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .chain(recipe.iter().cloned())
        .chain([format!("root=UUID={root_uuid}"), "rw".to_string()]);
    for k in all {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Builds the image.
pub fn build(opts: &ImageOptions, progress: &Progress) -> Result<ImageOutcome> {
    let mut recipe = Recipe::read(&opts.recipe)?;
    if let Some(url) = &opts.remote_url {
        recipe::validate_url(url)?;
        recipe.remote.url = url.clone();
    }
    let format = opts
        .format
        .unwrap_or_else(|| Format::from_name(&opts.output));
    let os = opts.osref.parse::<OsRef>()?.os;
    let info = find_commit(&opts.repo, &opts.osref, opts.version.as_deref())?;
    let ignition = first_boot::tree_has_ignition(&opts.repo, &info.commit)?;
    let ignition_config = match &opts.ignition {
        Some(path) if !ignition => bail!(
            "--ignition {}: commit {} of {} has no Ignition in its initramfs ({}); compose it from a manifest that includes manifests/ignition.toml",
            path.display(),
            &info.commit[..12],
            opts.osref,
            cairn_release::tree::IGNITION_DRACUT_MODULE
        ),
        Some(path) => Some(first_boot::read_config(path)?),
        None => None,
    };
    let firstboot_kargs = match &opts.ignition_url {
        Some(url) if !ignition => bail!(
            "--ignition-url {url}: commit {} of {} has no Ignition in its initramfs ({}); compose it from a manifest that includes manifests/ignition.toml",
            &info.commit[..12],
            opts.osref,
            cairn_release::tree::IGNITION_DRACUT_MODULE
        ),
        Some(url) => Some(first_boot::url_kargs(url, &recipe.ignition_platform, &opts.recipe)?),
        // An embedded config needs no network; the platform's may.
        None if ignition_config.is_some() => None,
        None => first_boot::platform_kargs(&recipe.ignition_platform).map(str::to_string),
    };
    progress.step(&format!(
        "Building a {} MiB image of {} {} ({})",
        recipe.size / recipe::MIB,
        opts.osref,
        info.version.as_deref().unwrap_or("unversioned"),
        &info.commit[..12]
    ));

    let work = WorkDir::create(&std::env::temp_dir().join("cairn-image"))?;
    let raw_path = match format {
        Format::Raw => opts.output.with_file_name(format!(
            ".{}.partial",
            opts.output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
        Format::Qcow2 => work.path().join("disk.raw"),
    };
    let mut partial = PartialFile {
        path: raw_path.clone(),
        keep: false,
    };

    progress.step("Partitioning");
    let extents = disk::create(&raw_path, &recipe)?;
    let (boot_idx, boot_part) = recipe
        .partition(Role::Boot)
        .context("recipe has no boot partition")?;
    let (root_idx, root_part) = recipe
        .partition(Role::Root)
        .context("recipe has no root partition")?;
    let (boot_label, root_label) = (boot_part.label.clone(), root_part.label.clone());
    let esp = recipe
        .partition(Role::Esp)
        .map(|(i, p)| (i, p.label.clone()));

    let (kargs, default_entry, esp_files) = {
        let disk_loop = Loop::attach(&raw_path, None)?;
        let boot_loop = Loop::attach(&raw_path, Some(&extents[boot_idx]))?;
        let root_loop = Loop::attach(&raw_path, Some(&extents[root_idx]))?;
        progress.step("Making filesystems");
        let boot_uuid = disk::mkfs_ext4(boot_loop.device(), &boot_label)?;
        let root_uuid = disk::mkfs_ext4(root_loop.device(), &root_label)?;
        let esp_loop = match &esp {
            Some((i, label)) => {
                let l = Loop::attach(&raw_path, Some(&extents[*i]))?;
                disk::mkfs_vfat(l.device(), label)?;
                Some(l)
            }
            None => None,
        };
        interrupt::check()?;
        let root_mnt = Mount::new(root_loop.device(), &work.path().join("sysroot"))?;
        let boot_mnt = Mount::new(boot_loop.device(), &root_mnt.path().join("boot"))?;

        let generator = bootloader::extract_generator(&opts.repo, &info.commit, work.path())?;
        if recipe.bootloader.bios() {
            progress.step("Installing GRUB (i386-pc)");
            bootloader::install(
                disk_loop.device(),
                boot_mnt.path(),
                &opts.repo,
                &info.commit,
            )?;
        } else {
            bootloader::write_static_cfg(boot_mnt.path(), &opts.repo, &info.commit)?;
        }
        interrupt::check()?;
        let mut esp_files = Vec::new();
        if let Some(esp_loop) = &esp_loop {
            progress.step(if recipe.secure_boot {
                "Installing shim and GRUB for UEFI Secure Boot (signed by Microsoft and Debian)"
            } else {
                "Installing GRUB (x86_64-efi)"
            });
            bootloader::install_efi(
                esp_loop.device(),
                boot_mnt.path(),
                &boot_uuid,
                recipe.secure_boot,
                work.path(),
            )?;
            esp_files = bootloader::esp_files(esp_loop.device())?;
            progress.detail(&format!("ESP /EFI/BOOT: {}", esp_files.join(" ")));
        }
        interrupt::check()?;

        let tree_kargs =
            bootloader::commit_file(&opts.repo, &info.commit, cairn_release::tree::KERNEL_ARGS)?
                .unwrap_or_default();
        let mut recipe_kargs = recipe.kernel_args.clone();
        if ignition {
            recipe_kargs.push(format!("ignition.platform.id={}", recipe.ignition_platform));
        }
        let kargs = kernel_args(&tree_kargs, &recipe_kargs, &root_uuid);
        progress.step("Initializing the sysroot");
        let deployment = deploy::deploy(
            &deploy::DeployRequest {
                sysroot: root_mnt.path(),
                source_repo: &opts.repo,
                commit: &info.commit,
                osref: &opts.osref,
                os: &os,
                remote: &recipe.remote,
                kernel_args: &kargs,
                grub_menu: &generator,
            },
            &mut |s| progress.step(s),
        )?;
        deploy::write_etc(&deployment, &boot_uuid, &recipe.files)?;
        for line in deploy::status(root_mnt.path())?.lines() {
            progress.detail(line);
        }
        if ignition {
            progress.step(match (&ignition_config, &opts.ignition_url) {
                (Some(_), _) => "Arming Ignition for the first boot, with the embedded config",
                (None, Some(_)) => "Arming Ignition for the first boot (config from a URL)",
                (None, None) => "Arming Ignition for the first boot (config from the platform)",
            });
            first_boot::arm(
                boot_mnt.path(),
                ignition_config.as_deref(),
                firstboot_kargs.as_deref(),
                work.path(),
            )?;
        }
        let default_entry = bootloader::default_entry(boot_mnt.path())?;
        progress.step("Unmounting");
        boot_mnt.unmount()?;
        root_mnt.unmount()?;
        (kargs, default_entry, esp_files)
    };
    interrupt::check()?;

    match format {
        Format::Raw => {
            fs::rename(&raw_path, &opts.output).with_context(|| {
                format!(
                    "Renaming {} to {}",
                    raw_path.display(),
                    opts.output.display()
                )
            })?;
            partial.keep = true;
        }
        Format::Qcow2 => {
            progress.step("Converting to qcow2");
            let tmp = opts.output.with_extension("qcow2.partial");
            let _tmp_guard = PartialFile {
                path: tmp.clone(),
                keep: false,
            };
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(&raw_path)
                .arg(&tmp)
                .run_checked()?;
            fs::rename(&tmp, &opts.output).with_context(|| {
                format!("Renaming {} to {}", tmp.display(), opts.output.display())
            })?;
        }
    }
    drop(partial);
    drop(work);
    let meta =
        fs::metadata(&opts.output).with_context(|| format!("Reading {}", opts.output.display()))?;
    use std::os::unix::fs::MetadataExt;
    Ok(ImageOutcome {
        output: opts.output.clone(),
        format,
        disk_size: recipe.size,
        allocated: meta.blocks() * 512,
        osref: opts.osref.clone(),
        commit: info.commit,
        version: info.version,
        kernel_args: kargs,
        default_entry,
        bootloader: recipe.bootloader,
        secure_boot: recipe.secure_boot,
        esp_files,
        ignition_first_boot: ignition,
        ignition_config: opts.ignition.clone(),
        ignition_url: opts.ignition_url.clone(),
        ignition_first_boot_kargs: firstboot_kargs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kargs_order_and_dedup() {
        let k = kernel_args(
            "console=tty0\nconsole=ttyS0,115200n8\n",
            &["console=ttyS0,115200n8".into(), "quiet".into()],
            "abcd",
        );
        assert_eq!(
            k,
            [
                "console=tty0",
                "console=ttyS0,115200n8",
                "quiet",
                "root=UUID=abcd",
                "rw"
            ]
        );
    }

    #[test]
    fn format_from_name() {
        assert_eq!(Format::from_name(Path::new("a.qcow2")), Format::Qcow2);
        assert_eq!(Format::from_name(Path::new("a.img")), Format::Raw);
    }
}
