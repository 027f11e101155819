//! Installing a locked package set into a fresh tree with mmdebstrap.
//!
//! mmdebstrap runs Debian's own installation (maintainer scripts, triggers, essential-first
//! ordering) but reads only a local flat repository holding exactly the locked `.deb`s, so the
//! tree gets those versions and nothing else, without touching the network.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_release::metadata::Package;

use crate::command::CommandExt;
use crate::install_base::Transition;
use crate::lockfile::LockedPackage;
use crate::progress::Progress;

/// Set before any package is configured, so the initramfs dracut makes when the kernel is
/// installed is generic (not host-only) and boots with ostree-prepare-root. zstd at a low level
/// instead of dracut's default `gzip -9`: the generic initramfs is ~210 MB uncompressed and gzip
/// was the slowest single step of a compose (the kernel has CONFIG_RD_ZSTD; the `zstd` package
/// must be in the tree, which `base.toml` ensures). `reproducible`: dracut clamps the
/// times of the files it packs and sorts them, so the same inputs give the same bytes. The
/// composer makes the initramfs again on composes whose manifest ships dracut files
/// (Ignition's), and an initramfs that differs only in its time stamps would otherwise be a
/// changed 60 MB file in every update a host downloads.
const DRACUT_CONF: &str = "hostonly=\"no\"\nadd_dracutmodules+=\" ostree \"\ncompress=\"zstd -q -3 -T0\"\nreproducible=\"yes\"\n";

/// dpkg without an fsync per unpacked file, for the install only (the customize hook removes
/// it, so the OS's own dpkg stays safe). Nothing is lost: a tree whose compose did not finish is
/// thrown away, and the commit writes (and syncs) every object into the repository anyway.
const UNSAFE_IO: &str = "etc/dpkg/dpkg.cfg.d/50-cairn-compose-unsafe-io";

/// What decides how a tree is installed besides its packages: a cached base installed by
/// another recipe is not reused (see `install_base`).
pub fn recipe(suite: &str, architecture: &str) -> String {
    format!(
        "cairn-compose {} {suite} {architecture}\n{DRACUT_CONF}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Where the packages come from and where they go.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The flat repository holding exactly the locked `.deb`s.
    pub pool: &'a Path,
    /// The locked package set.
    pub packages: &'a [LockedPackage],
    /// Debian suite.
    pub suite: &'a str,
    /// Debian architecture.
    pub architecture: &'a str,
    /// `SOURCE_DATE_EPOCH` for the maintainer scripts.
    pub source_date_epoch: u64,
    /// The tree.
    pub tree: &'a Path,
}

/// Installs the packages into a new tree (which must not exist).
///
/// With dracut in the set, the initramfs is made once, after every package is configured: the
/// kernel's hook and dracut's own trigger would each make it (INITRD=No stops both, as
/// Debian's kernel hooks document), and one dracut run costs ~5 s.
pub fn install(target: &Target, progress: &Progress) -> Result<()> {
    let include: Vec<String> = target
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    let dracut = target.packages.iter().any(|p| p.name == "dracut");
    let mut hooks = Vec::new();
    if dracut {
        hooks.push(
            "for k in \"$1\"/boot/vmlinu[zx]-*; do [ -e \"$k\" ] || continue; \
             chroot \"$1\" env -u INITRD /etc/kernel/postinst.d/dracut \"${k##*/vmlinu?-}\" || exit 1; done"
                .to_string(),
        );
    }
    let mut cmd = mmdebstrap(target, &hooks)?;
    cmd.arg(format!("--include={}", include.join(",")));
    if dracut {
        cmd.env("INITRD", "No");
    }
    run(cmd, target, progress)
}

/// Turns the copy of a cached install in `target.tree` into the locked set: apt installs,
/// upgrades, downgrades and purges only the packages of `changes`, in mmdebstrap's chroot
/// (mounts, no services started, the same dpkg and apt settings as a fresh install). Replaced
/// configuration files take the package's version, as a fresh install has them.
pub fn apply(target: &Target, changes: &Transition, progress: &Progress) -> Result<()> {
    let mut specs: Vec<String> = changes
        .install
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    specs.extend(changes.purge.iter().map(|name| format!("{name}-")));
    // apt records which packages it installed as dependencies; a fresh install (dpkg, by
    // mmdebstrap) has no such record, so it goes outside the tree.
    let states = target.pool.with_file_name("apt-extended-states");
    let mut hooks = Vec::new();
    if !specs.is_empty() {
        // apt from outside the tree, as mmdebstrap itself installs: the tree needs no apt.
        hooks.push(format!(
            "APT_CONFIG=\"$MMDEBSTRAP_APT_CONFIG\" apt-get \
             -o Dir::Bin::dpkg=env -o DPkg::Options::=--unset=TMPDIR -o DPkg::Options::=dpkg \
             -o DPkg::Options::=--force-confnew -o DPkg::Chroot-Directory=\"$1\" \
             -o Dir::State::extended_states={} \
             --yes --allow-downgrades --purge install {}",
            states.display(),
            specs.join(" ")
        ));
    }
    let mut cmd = mmdebstrap(target, &hooks)?;
    cmd.arg("--skip=check/empty");
    run(cmd, target, progress)
}

/// mmdebstrap with what both ways of installing share, running `customize` hooks while the
/// pool is still mounted in the tree (the file-mirror hooks come after them).
fn mmdebstrap(target: &Target, customize: &[String]) -> Result<Command> {
    let sources = target.pool.join("pool.list");
    std::fs::write(
        &sources,
        format!("deb [trusted=yes] file:{} ./\n", target.pool.display()),
    )
    .context("Writing the pool's sources")?;
    let setup = format!(
        "mkdir -p \"$1/etc/dracut.conf.d\" \"$1/etc/dpkg/dpkg.cfg.d\" \
         && printf '{}' > \"$1/etc/dracut.conf.d/50-cairn.conf\" \
         && echo force-unsafe-io > \"$1/{UNSAFE_IO}\"",
        DRACUT_CONF.replace('\n', "\\n")
    );
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=custom", "--mode=root", "--format=directory"])
        .arg(format!("--architectures={}", target.architecture))
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--setup-hook={setup}"));
    for hook in customize {
        cmd.arg(format!("--customize-hook={hook}"));
    }
    cmd.arg(format!("--customize-hook=rm \"$1/{UNSAFE_IO}\""))
        .arg("--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount")
        .env("SOURCE_DATE_EPOCH", target.source_date_epoch.to_string())
        .env("DEBIAN_FRONTEND", "noninteractive");
    Ok(cmd)
}

/// Runs mmdebstrap (the positional arguments last), then checks the tree.
fn run(mut cmd: Command, target: &Target, progress: &Progress) -> Result<()> {
    cmd.arg(target.suite)
        .arg(target.tree)
        .arg(target.pool.join("pool.list"))
        .run_streaming(&mut |line| progress.detail(line))
        .context("Installing packages with mmdebstrap")?;
    remove_mount_point(target.tree, target.pool)?;
    verify_installed(target.tree, target.packages)
}

/// mmdebstrap's file-mirror hook bind-mounts the pool at its own path inside the tree and
/// leaves the empty directories behind; they are the build machine's paths, not the OS's.
fn remove_mount_point(tree: &Path, pool: &Path) -> Result<()> {
    let rel = pool.strip_prefix("/").unwrap_or(pool);
    let mut dir = tree.join(rel);
    while dir != tree && dir.starts_with(tree) {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            // Not empty (a directory the OS has, like /tmp) or already gone: stop there.
            Err(_) => break,
        }
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    Ok(())
}

/// Checks that dpkg installed exactly the locked set, fully configured.
fn verify_installed(tree: &Path, packages: &[LockedPackage]) -> Result<()> {
    let installed = installed_packages(tree, "var/lib/dpkg")?;
    let want: BTreeSet<Package> = packages.iter().map(LockedPackage::package).collect();
    let have: BTreeSet<Package> = installed.into_iter().collect();
    let missing: Vec<String> = want
        .difference(&have)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let extra: Vec<String> = have
        .difference(&want)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "the installed packages differ from the resolved set; missing: [{}], unexpected: [{}]",
            missing.join(", "),
            extra.join(", ")
        );
    }
    Ok(())
}

/// The fully installed packages of the dpkg database at `tree/admindir`.
pub fn installed_packages(tree: &Path, admindir: &str) -> Result<Vec<Package>> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", tree.join(admindir).display()))
        .args([
            "-W",
            "-f",
            "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n",
        ])
        .output_checked()
        .context("Listing installed packages")?;
    let mut packages = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 4 {
            continue;
        }
        if f[3].trim() != "ii" {
            bail!(
                "package {} is not fully installed (dpkg status {:?})",
                f[0],
                f[3].trim()
            );
        }
        packages.push(Package {
            name: f[0].into(),
            version: f[1].into(),
            architecture: f[2].into(),
        });
    }
    packages.sort();
    Ok(packages)
}
