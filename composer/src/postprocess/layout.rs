//! The OSTree layout of `ARCHITECTURE.md` ("Tree layout"), made from a Debian root.
//!
//! - Per-host state and junk leave the commit: machine-id (left empty, so systemd makes one at
//!   first boot), SSH host keys, the build machine's hostname and resolv.conf, apt sources, logs,
//!   caches and apt lists.
//! - `/var` is emptied. Each directory and symlink becomes a `d`/`L` line of
//!   `/usr/lib/tmpfiles.d/cairn-var.conf`; each remaining file is kept under
//!   `/usr/share/factory/var` and copied into place at boot by a `C` line, so a host's `/var`
//!   (which outlives deployments) gets what packages put there without the commit owning it.
//! - dpkg's database moves to `/usr/lib/sysimage/dpkg`, with `/var/lib/dpkg` a symlink to it,
//!   so `dpkg -l` on a host describes the booted deployment.
//! - `/home`, `/root`, `/opt`, `/srv`, `/mnt`, `/usr/local` become symlinks into `/var`
//!   (`/media` into `/run`); `/ostree` → `sysroot/ostree`; `/sysroot` exists; `/etc` becomes
//!   `/usr/etc`; `/boot`, `/dev`, `/proc`, `/sys`, `/run`, `/tmp` are empty directories; no
//!   device node, socket or fifo remains anywhere.

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The tmpfiles.d file that recreates `/var`.
pub const VAR_TMPFILES: &str = "usr/lib/tmpfiles.d/cairn-var.conf";
/// Where files that packages put in `/var` are kept.
pub const VAR_FACTORY: &str = "usr/share/factory/var";
/// Where dpkg's database lives in the commit.
pub const DPKG_DB: &str = "usr/lib/sysimage/dpkg";

/// Paths under `/var` that are junk in a commit: their files are dropped, directories kept.
const VAR_JUNK: &[&str] = &[
    "var/log",
    "var/cache",
    "var/lib/apt/lists",
    "var/tmp",
    "var/backups",
];

/// Top-level directories that become symlinks into `/var` (or `/run`).
const VAR_LINKS: &[(&str, &str, &str)] = &[
    // (top-level path, symlink target, the /var directory's mode)
    ("home", "var/home", "0755"),
    ("root", "var/roothome", "0700"),
    ("opt", "var/opt", "0755"),
    ("srv", "var/srv", "0755"),
    ("mnt", "var/mnt", "0755"),
    ("usr/local", "../var/usrlocal", "0755"),
];

/// Turns a Debian root into the OSTree layout.
pub fn apply(tree: &Path) -> Result<()> {
    drop_host_state(tree)?;
    move_dpkg_db(tree)?;
    link_dirs_into_var(tree)?;
    empty_var(tree)?;
    remove_special_files(tree)?;
    move_etc(tree)?;
    top_level(tree)?;
    Ok(())
}

fn remove_path(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(_) => return Ok(()),
    }
    .with_context(|| format!("Removing {}", p.display()))
}

fn empty_dir(p: &Path, mode: u32) -> Result<()> {
    remove_path(p)?;
    fs::create_dir_all(p).with_context(|| format!("Creating {}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn drop_host_state(tree: &Path) -> Result<()> {
    // An empty machine-id tells systemd this is a first boot; it writes the host's own.
    let etc = tree.join("etc");
    fs::write(etc.join("machine-id"), "").context("Emptying /etc/machine-id")?;
    remove_path(&tree.join("var/lib/dbus/machine-id"))?;
    if let Ok(entries) = fs::read_dir(etc.join("ssh")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                remove_path(&e.path())?;
            }
        }
    }
    // mmdebstrap copies these from the build machine; a host gets its own at boot.
    remove_path(&etc.join("hostname"))?;
    fs::write(
        etc.join("hosts"),
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
    )
    .context("Writing /etc/hosts")?;
    let resolv = etc.join("resolv.conf");
    remove_path(&resolv)?;
    if tree.join("usr/lib/systemd/systemd-resolved").exists() {
        symlink("../run/systemd/resolve/stub-resolv.conf", &resolv)?;
    } else {
        fs::write(&resolv, "").context("Writing /etc/resolv.conf")?;
    }
    // The sources the tree was installed from are the composer's local pool.
    remove_path(&etc.join("apt/sources.list"))?;
    if let Ok(entries) = fs::read_dir(etc.join("apt/sources.list.d")) {
        for e in entries.flatten() {
            remove_path(&e.path())?;
        }
    }
    Ok(())
}

fn move_dpkg_db(tree: &Path) -> Result<()> {
    let from = tree.join("var/lib/dpkg");
    if !from.is_dir() {
        return Ok(());
    }
    let to = tree.join(DPKG_DB);
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(&from, &to).context("Moving /var/lib/dpkg to /usr/lib/sysimage/dpkg")?;
    // Lock files and backups are host state, not part of the database.
    for junk in [
        "lock",
        "lock-frontend",
        "triggers/Lock",
        "status-old",
        "available-old",
        "diversions-old",
        "statoverride-old",
    ] {
        remove_path(&to.join(junk))?;
    }
    symlink("../../usr/lib/sysimage/dpkg", &from)?;
    Ok(())
}

fn link_dirs_into_var(tree: &Path) -> Result<()> {
    for (dir, target, mode) in VAR_LINKS {
        let path = tree.join(dir);
        let in_var = path
            .parent()
            .map(|p| p.join(target))
            .context("a top-level path without a parent")?;
        fs::create_dir_all(&in_var).with_context(|| format!("Creating {}", in_var.display()))?;
        let mode = u32::from_str_radix(mode, 8)?;
        fs::set_permissions(&in_var, fs::Permissions::from_mode(mode))?;
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            // Keep what packages put there (e.g. /root/.bashrc): it goes to /var with the rest.
            for e in fs::read_dir(&path)?.flatten() {
                fs::rename(e.path(), in_var.join(e.file_name()))
                    .with_context(|| format!("Moving {} into /var", e.path().display()))?;
            }
        }
        remove_path(&path)?;
        symlink(target, &path).with_context(|| format!("Linking /{dir} -> {target}"))?;
    }
    let media = tree.join("media");
    remove_path(&media)?;
    symlink("run/media", &media)?;
    Ok(())
}

/// One line of tmpfiles.d for each entry under `/var`, files kept in the factory.
fn empty_var(tree: &Path) -> Result<()> {
    let var = tree.join("var");
    let mut lines = vec![
        "# Generated by cairn-compose: recreates /var, which the commit leaves empty.".to_string(),
    ];
    let mut entries = Vec::new();
    walk(&var, &mut entries)?;
    entries.sort();
    let factory = tree.join(VAR_FACTORY);
    for path in entries {
        let rel = path
            .strip_prefix(tree)
            .context("a /var entry outside the tree")?;
        let rel_str = rel.to_string_lossy();
        let meta = fs::symlink_metadata(&path)?;
        let junk = VAR_JUNK
            .iter()
            .any(|j| rel.starts_with(j) && rel != Path::new(j));
        let quoted = tmpfiles_quote(&format!("/{rel_str}"));
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            lines.push(format!("L {quoted} - - - - {}", target.display()));
        } else if meta.is_dir() {
            lines.push(format!(
                "d {quoted} {:04o} {} {} -",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ));
        } else if meta.is_file() && !junk {
            let kept = factory.join(rel.strip_prefix("var").unwrap_or(rel));
            if let Some(parent) = kept.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(&path, &kept)
                .with_context(|| format!("Keeping {} in the factory", path.display()))?;
            std::os::unix::fs::chown(&kept, Some(meta.uid()), Some(meta.gid()))?;
            lines.push(format!(
                "C {quoted} - - - - /{}",
                kept.strip_prefix(tree)?.display()
            ));
            // C copies with the factory file's mode; ownership comes from a z line.
            lines.push(format!(
                "z {quoted} {:04o} {} {} -",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ));
        }
    }
    let conf = tree.join(VAR_TMPFILES);
    if let Some(parent) = conf.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&conf, lines.join("\n") + "\n")
        .with_context(|| format!("Writing {}", conf.display()))?;
    empty_dir(&var, 0o755)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir)
        .with_context(|| format!("Reading {}", dir.display()))?
        .flatten()
    {
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        out.push(p.clone());
        if is_dir {
            walk(&p, out)?;
        }
    }
    Ok(())
}

/// Quotes a path for tmpfiles.d if it has spaces.
fn tmpfiles_quote(p: &str) -> String {
    if p.contains(char::is_whitespace) {
        format!("\"{p}\"")
    } else {
        p.to_string()
    }
}

fn remove_special_files(tree: &Path) -> Result<()> {
    for dir in ["dev", "proc", "sys", "run", "tmp"] {
        let mode = if dir == "tmp" { 0o1777 } else { 0o755 };
        empty_dir(&tree.join(dir), mode)?;
    }
    let mut all = Vec::new();
    walk(tree, &mut all)?;
    for p in all {
        let t = fs::symlink_metadata(&p)?.file_type();
        if t.is_block_device() || t.is_char_device() || t.is_fifo() || t.is_socket() {
            fs::remove_file(&p)
                .with_context(|| format!("Removing special file {}", p.display()))?;
        }
    }
    Ok(())
}

fn move_etc(tree: &Path) -> Result<()> {
    let usr_etc = tree.join("usr/etc");
    if fs::symlink_metadata(&usr_etc).is_ok() {
        bail!("the tree already has /usr/etc; a package or [[files]] entry must not create it");
    }
    fs::rename(tree.join("etc"), &usr_etc).context("Moving /etc to /usr/etc")
}

fn top_level(tree: &Path) -> Result<()> {
    empty_dir(&tree.join("sysroot"), 0o755)?;
    empty_dir(&tree.join("boot"), 0o755)?;
    let ostree = tree.join("ostree");
    remove_path(&ostree)?;
    symlink("sysroot/ostree", &ostree)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_becomes_tmpfiles_and_factory() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        for d in [
            "etc/ssh",
            "var/lib/foo",
            "var/log/apt",
            "var/lib/dpkg",
            "root",
            "usr/lib",
            "dev",
        ] {
            fs::create_dir_all(t.join(d)).unwrap();
        }
        fs::write(t.join("etc/ssh/ssh_host_ed25519_key"), "secret").unwrap();
        fs::write(t.join("etc/machine-id"), "0123").unwrap();
        fs::write(t.join("var/lib/foo/state"), "kept").unwrap();
        fs::write(t.join("var/log/apt/history.log"), "junk").unwrap();
        fs::write(t.join("var/lib/dpkg/status"), "Package: x\n").unwrap();
        fs::write(t.join("root/.bashrc"), "rc").unwrap();
        symlink("/run", t.join("var/run")).unwrap();

        apply(t).unwrap();

        let conf = fs::read_to_string(t.join(VAR_TMPFILES)).unwrap();
        assert!(conf.contains("d /var/lib/foo 0755 0 0 -"), "{conf}");
        assert!(
            conf.contains("C /var/lib/foo/state - - - - /usr/share/factory/var/lib/foo/state"),
            "{conf}"
        );
        assert!(conf.contains("L /var/run - - - - /run"), "{conf}");
        assert!(
            conf.contains("L /var/lib/dpkg - - - - ../../usr/lib/sysimage/dpkg"),
            "{conf}"
        );
        assert!(conf.contains("d /var/roothome 0700"), "{conf}");
        assert!(conf.contains("C /var/roothome/.bashrc"), "{conf}");
        assert!(!conf.contains("history.log"), "logs are junk: {conf}");
        assert!(conf.contains("d /var/log/apt"), "{conf}");
        assert_eq!(fs::read_dir(t.join("var")).unwrap().count(), 0);
        assert_eq!(
            fs::read_to_string(t.join("usr/lib/sysimage/dpkg/status")).unwrap(),
            "Package: x\n"
        );
        assert_eq!(
            fs::read_to_string(t.join("usr/etc/machine-id")).unwrap(),
            ""
        );
        assert!(!t.join("usr/etc/ssh/ssh_host_ed25519_key").exists());
        assert!(!t.join("etc").exists());
        assert_eq!(
            fs::read_link(t.join("home")).unwrap(),
            Path::new("var/home")
        );
        assert_eq!(
            fs::read_link(t.join("ostree")).unwrap(),
            Path::new("sysroot/ostree")
        );
        assert!(t.join("sysroot").is_dir());
    }
}
