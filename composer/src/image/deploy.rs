//! The sysroot on the image's root filesystem: `ostree admin init-fs`, the stateroot, the
//! remote, the commit pulled into `ostree/repo`, and one deployment with its `/etc/fstab` and
//! the recipe's per-host files.
//!
//! This drives the `ostree` CLI (the same code paths a person would use by hand, and whose
//! behaviour `ARCHITECTURE.md` records), not the sysroot API: the image builder writes a fresh
//! sysroot once and has no deployment list to preserve.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::recipe::{EtcFile, Remote};
use crate::command::CommandExt;

/// What to deploy where.
#[derive(Debug)]
pub struct DeployRequest<'a> {
    /// The mounted root filesystem (its `boot` is the mounted `/boot` filesystem).
    pub sysroot: &'a Path,
    /// The archive repository holding the commit.
    pub source_repo: &'a Path,
    /// The commit checksum.
    pub commit: &'a str,
    /// The ref the host follows.
    pub osref: &'a str,
    /// The stateroot.
    pub os: &'a str,
    /// The remote configured in the image's repository.
    pub remote: &'a Remote,
    /// Kernel arguments, in order.
    pub kernel_args: &'a [String],
    /// The GRUB menu generator libostree runs.
    pub grub_menu: &'a Path,
}

fn ostree() -> Command {
    Command::new("ostree")
}

/// Initializes the sysroot, pulls the commit and deploys it; returns the deployment's path.
pub fn deploy(req: &DeployRequest, on_step: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let sysroot = format!("--sysroot={}", req.sysroot.display());
    let repo_dir = req.sysroot.join("ostree/repo");
    let repo = format!("--repo={}", repo_dir.display());

    ostree()
        .args(["admin", "init-fs"])
        .arg(req.sysroot)
        .run_checked()?;
    ostree()
        .args(["admin", "os-init", req.os, &sysroot])
        .run_checked()?;
    ostree()
        .args([
            "remote",
            "add",
            &repo,
            "--set=gpg-verify=false",
            &req.remote.name,
            &req.remote.url,
        ])
        .run_checked()?;
    crate::interrupt::check()?;

    on_step(&format!(
        "Pulling {} into the image's repository",
        short(req.commit)
    ));
    ostree()
        .args(["pull-local", &repo])
        .arg(req.source_repo)
        .arg(req.commit)
        // Streaming registers the child with `crate::interrupt`, which stops it on SIGTERM.
        .run_streaming(&mut |_| {})
        .with_context(|| {
            format!(
                "Pulling commit {} from {}",
                req.commit,
                req.source_repo.display()
            )
        })?;
    let refspec = format!("{}:{}", req.remote.name, req.osref);
    ostree()
        .args(["refs", &repo, &format!("--create={refspec}"), req.commit])
        .run_checked()?;
    crate::interrupt::check()?;

    on_step(&format!("Deploying {refspec}"));
    let mut cmd = ostree();
    cmd.args(["admin", "deploy", &sysroot, "--os", req.os, "--karg-none"])
        .env("OSTREE_GRUB2_EXEC", req.grub_menu);
    for k in req.kernel_args {
        cmd.arg(format!("--karg-append={k}"));
    }
    cmd.arg(&refspec)
        .run_checked()
        .context("Deploying the commit")?;

    let dir = req
        .sysroot
        .join("ostree/deploy")
        .join(req.os)
        .join("deploy");
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("Reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(req.commit) && !name.ends_with(".origin") && entry.path().is_dir() {
            found.push(entry.path());
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one deployment of {} in {}, found {}",
            req.commit,
            dir.display(),
            found.len()
        ),
    }
}

/// Writes the deployment's `/etc/fstab` (mounting `/boot` by UUID) and the recipe's files.
pub fn write_etc(deployment: &Path, boot_uuid: &str, files: &[EtcFile]) -> Result<()> {
    let fstab = deployment.join("etc/fstab");
    let text = format!(
        "# Written by cairn-compose image. The root filesystem is found by the kernel's root=\n\
         # argument and set up by ostree-prepare-root; only /boot is listed here.\n\
         UUID={boot_uuid} /boot ext4 defaults 1 2\n"
    );
    fs::write(&fstab, text).with_context(|| format!("Writing {}", fstab.display()))?;
    for f in files {
        let path = deployment.join(f.dest.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("Creating {}", parent.display()))?;
        }
        fs::write(&path, &f.content).with_context(|| format!("Writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))
            .with_context(|| format!("Setting the mode of {}", path.display()))?;
    }
    Ok(())
}

/// `ostree admin status` of the sysroot, for the log.
pub fn status(sysroot: &Path) -> Result<String> {
    ostree()
        .args(["admin", "status"])
        .arg(format!("--sysroot={}", sysroot.display()))
        .output_checked()
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
