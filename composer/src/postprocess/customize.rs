//! The manifest's own changes to the tree: files, groups and users, units, kernel arguments,
//! removals and post-process scripts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::chroot;
use super::paths::resolve_in_root;
use crate::command::CommandExt;
use crate::manifest::{FileSource, Manifest};
use crate::progress::Progress;

/// Where deployments find the manifest's default kernel arguments (one per line). The image
/// builder and the updater read it from the deployment.
pub const KERNEL_ARGS_FILE: &str = cairn_release::tree::KERNEL_ARGS;

/// Applies the manifest to `tree`, in the order files, groups, users, units, kernel arguments,
/// scripts, removals (so a script can rely on the files, and removals win over everything).
pub fn apply(tree: &Path, manifest: &Manifest, progress: &Progress) -> Result<()> {
    for f in &manifest.files {
        add_file(tree, f).with_context(|| format!("Adding {} to the tree", f.dest))?;
    }
    for g in &manifest.groups {
        let mut argv = vec!["groupadd", "--system"];
        let gid;
        if let Some(id) = g.gid {
            gid = id.to_string();
            argv.extend(["--gid", &gid]);
        }
        argv.push(&g.name);
        chroot::output(tree, &argv).with_context(|| format!("Creating group {}", g.name))?;
    }
    for u in &manifest.users {
        add_user(tree, u).with_context(|| format!("Creating user {}", u.name))?;
    }
    for (verb, units) in [
        ("enable", &manifest.enable_units),
        ("disable", &manifest.disable_units),
        ("mask", &manifest.mask_units),
    ] {
        for unit in units {
            Command::new("systemctl")
                .arg(format!("--root={}", tree.display()))
                .arg(verb)
                .arg(unit)
                .run_checked()
                .with_context(|| format!("systemctl {verb} {unit} (is the unit installed by a package or a [[files]] entry?)"))?;
        }
    }
    let kargs = tree.join(cairn_release::tree::relative(KERNEL_ARGS_FILE));
    if let Some(dir) = kargs.parent() {
        fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    }
    let mut text = manifest.kernel_args.join("\n");
    text.push('\n');
    fs::write(&kargs, text).with_context(|| format!("Writing {}", kargs.display()))?;

    for script in &manifest.postprocess {
        progress.step(&format!("Running post-process script {:?}", script.name));
        let mut cmd = chroot::command(tree, &["/bin/sh", "-euc", &script.body, &script.name]);
        cmd.run_streaming(&mut |line| progress.detail(line))
            .with_context(|| {
                format!(
                    "Post-process script {:?} ({}) failed",
                    script.name, script.origin
                )
            })?;
    }
    for pattern in &manifest.remove_files {
        remove_glob(tree, pattern)?;
    }
    Ok(())
}

fn add_file(tree: &Path, f: &crate::manifest::FileEntry) -> Result<()> {
    let dest = resolve_in_root(tree, &f.dest)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("Creating {}", parent.display()))?;
    }
    if fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&dest)?;
    }
    match &f.source {
        FileSource::Content(text) => {
            fs::write(&dest, text).with_context(|| format!("Writing {}", dest.display()))?;
            let mode = f.mode.unwrap_or(0o644);
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
        }
        FileSource::Path(src) => {
            // cp keeps modes and copies directories whole; ownership becomes root's.
            let mut cmd = Command::new("cp");
            cmd.args([
                "-R",
                "--no-preserve=ownership",
                "--preserve=mode,links",
                "-T",
            ])
            .arg(src)
            .arg(&dest);
            cmd.run_checked()?;
            if let Some(mode) = f.mode {
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

fn add_user(tree: &Path, u: &crate::manifest::User) -> Result<()> {
    let mut argv: Vec<String> = vec!["useradd".into()];
    if u.system {
        argv.push("--system".into());
    }
    if let Some(uid) = u.uid {
        argv.extend(["--uid".into(), uid.to_string()]);
    }
    if !u.groups.is_empty() {
        argv.extend(["--groups".into(), u.groups.join(",")]);
    }
    let home = u
        .home
        .clone()
        .or_else(|| (!u.system).then(|| format!("/var/home/{}", u.name)));
    match &home {
        Some(h) => argv.extend(["--home-dir".into(), h.clone()]),
        None => argv.extend(["--home-dir".into(), "/nonexistent".into()]),
    }
    // Homes under /var are created by tmpfiles at boot (see layout), not in the commit.
    argv.push("--no-create-home".into());
    let shell = u.shell.clone().unwrap_or_else(|| {
        if u.system {
            "/usr/sbin/nologin"
        } else {
            "/bin/bash"
        }
        .to_string()
    });
    argv.extend([
        "--shell".into(),
        shell,
        "--user-group".into(),
        u.name.clone(),
    ]);
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    chroot::output(tree, &refs)?;
    if let Some(h) = home.filter(|h| h.starts_with("/var/home/")) {
        // Made here so layout turns it into a tmpfiles.d line with the user's ids.
        let dir = resolve_in_root(tree, &h)?;
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let ids = chroot::output(tree, &["id", "-u", &u.name])?;
        let gid = chroot::output(tree, &["id", "-g", &u.name])?;
        std::os::unix::fs::chown(&dir, ids.trim().parse().ok(), gid.trim().parse().ok())?;
    }
    Ok(())
}

fn remove_glob(tree: &Path, pattern: &str) -> Result<()> {
    let root = tree.canonicalize()?;
    let full = format!("{}{}", root.display(), pattern);
    let matches = glob::glob(&full).with_context(|| format!("remove-files pattern {pattern:?}"))?;
    for m in matches {
        let path = m.with_context(|| format!("remove-files pattern {pattern:?}"))?;
        // A match reached through a symlink that leads out of the tree is never touched.
        let parent = path.parent().and_then(|p| p.canonicalize().ok());
        if !parent.is_some_and(|p| p.starts_with(&root)) {
            bail!("remove-files {pattern:?} matched {} through a symlink leading out of the tree; refusing", path.display());
        }
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .with_context(|| format!("Removing {}", path.display()))?;
    }
    Ok(())
}
