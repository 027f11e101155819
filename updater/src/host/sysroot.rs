//! The host's OSTree sysroot, wrapped: the only module that holds `ostree::Sysroot` and
//! `ostree::Deployment` values.
//!
//! Deployments leave this module as plain [`DeploymentInfo`] structs (serialisable, `Send`), and
//! operations take deployment *indices* into libostree's deployment list. Every write goes
//! through a [`SysrootLock`].
//!
//! Booted versus not booted: on a booted host (`--sysroot /` on a running Cairn system) a new
//! deployment is *staged* (`stage_tree`) and written by `ostree-finalize-staged.service` at
//! shutdown, as libostree intends. libostree only allows staging on the booted sysroot, so for
//! any other sysroot (tests, image builds, a disk mounted elsewhere) the deployment is written
//! directly (`deploy_tree` + `simple_write_deployment`): it is the default at once.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cairn_release::gio;
use cairn_release::glib;
use cairn_release::metadata::CommitInfo;
use cairn_release::ostree;
use fn_error_context::context;
use serde::Serialize;

/// The environment variable libostree reads for the program that writes the GRUB menu
/// (chosen by [`crate::host::grub`]).
pub const GRUB_EXEC_ENV: &str = "OSTREE_GRUB2_EXEC";

/// One deployment, as `cairn status` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeploymentInfo {
    /// Position in libostree's deployment list (0 boots next); what `pin`/`unpin` take.
    pub index: usize,
    /// The stateroot (OS name).
    pub osname: String,
    /// The commit checksum.
    pub commit: String,
    /// Deployment serial (several deployments of one commit differ by it).
    pub serial: i32,
    /// The commit's release version, if the commit carries one.
    pub version: Option<String>,
    /// The commit time, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// The commit time as ISO 8601 (UTC).
    pub time: Option<String>,
    /// `remote:ref` the deployment follows, from its origin file.
    pub refspec: Option<String>,
    /// Whether the running system booted from this deployment.
    pub booted: bool,
    /// Whether it is a staged deployment (written at shutdown).
    pub staged: bool,
    /// Whether it is pinned (never removed by cleanup or upgrades).
    pub pinned: bool,
    /// Whether it boots next (first deployment in the list).
    pub default: bool,
    /// A new deployment that boots next but is not running yet (booted hosts only).
    pub pending: bool,
    /// The deployment `cairn rollback` would make the default.
    pub rollback: bool,
    /// Kernel arguments from its boot entry.
    pub kargs: Vec<String>,
    /// Its checkout directory.
    pub path: PathBuf,
}

/// An opened sysroot and the stateroot cairn works on.
pub struct Host {
    sysroot: ostree::Sysroot,
    path: PathBuf,
    osname: String,
}

/// Holds the sysroot lock; releases it on drop.
pub struct SysrootLock<'a> {
    sysroot: &'a ostree::Sysroot,
}

impl Drop for SysrootLock<'_> {
    fn drop(&mut self) {
        self.sysroot.unlock();
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployMode {
    /// Staged on the booted host; written at shutdown by `ostree-finalize-staged.service`.
    Staged,
    /// Written directly into a sysroot that is not booted; the default at once.
    Written,
}

impl DeployMode {
    /// Words for messages.
    pub fn describe(self) -> &'static str {
        match self {
            DeployMode::Staged => "staged for the next boot (written at shutdown)",
            DeployMode::Written => "written as the default deployment",
        }
    }
}

/// The kernel arguments for a new deployment.
#[derive(Debug, Clone)]
pub enum Kargs {
    /// Those of the merge deployment (libostree's default).
    Inherit,
    /// Exactly these.
    Replace(Vec<String>),
}

impl Host {
    /// Opens and loads the sysroot at `path`. The stateroot is `os`, else the booted
    /// deployment's, else the only one in `ostree/deploy/`.
    ///
    /// With `writable`, a booted sysroot is prepared for changes first: libostree moves this
    /// process into a private mount namespace where it can remount `/sysroot` and `/boot`
    /// read-write (this must happen before loading). Other sysroots are left as they are.
    #[context("Opening the OSTree sysroot at {}", path.display())]
    pub fn open(path: &Path, os: Option<&str>, writable: bool) -> Result<Self> {
        if !path.join("ostree/repo").is_dir() {
            bail!(
                "{} is not an OSTree sysroot (no ostree/repo in it)",
                path.display()
            );
        }
        let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(path)));
        if writable {
            sysroot
                .initialize_with_mount_namespace(gio::Cancellable::NONE)
                .context("Preparing to write the sysroot (mount namespace)")?;
            // libostree 2022.7 opened the sysroot's directory before it unshared, so that fd
            // still walks pid 1's mounts: the repository opened through it would sit on another
            // mount than the deployment directories, which libostree reopens in the new
            // namespace when it first writes. linkat() across mounts fails with EXDEV and
            // libostree silently copies every file of the checkout instead of hardlinking it
            // (a full tree of disk per deployment, minutes of I/O; it filled auto.py's disk).
            // Closing the fd now makes `load` open everything in the new namespace, the order
            // `ostree admin` gets by locking before loading.
            sysroot.unload();
        }
        sysroot
            .load(gio::Cancellable::NONE)
            .context("Loading the sysroot")?;
        let osname = match os {
            Some(os) => {
                if !path.join("ostree/deploy").join(os).is_dir() {
                    bail!("there is no stateroot {os:?} (no ostree/deploy/{os})");
                }
                os.to_string()
            }
            None => match sysroot.booted_deployment() {
                Some(d) => d.osname().to_string(),
                None => only_stateroot(path)?,
            },
        };
        Ok(Host {
            sysroot,
            path: path.to_path_buf(),
            osname,
        })
    }

    /// The sysroot's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stateroot cairn works on.
    pub fn osname(&self) -> &str {
        &self.osname
    }

    /// Whether this sysroot is the one the running system booted from.
    pub fn is_booted(&self) -> bool {
        self.sysroot.is_booted()
    }

    /// Whether this sysroot boots with GRUB (libostree's own test).
    pub fn boots_with_grub(&self) -> bool {
        self.path.join("boot/grub/grub.cfg").exists()
    }

    /// Warns before a write if the sysroot uses GRUB but no generator is set: libostree would
    /// then run `grub-mkconfig` (chrooted into the new deployment on a non-booted sysroot).
    fn warn_if_no_grub_generator(&self) {
        if self.boots_with_grub() && std::env::var_os(GRUB_EXEC_ENV).is_none() {
            log::warn!(
                "no GRUB menu generator ({} is not in the tree and {GRUB_EXEC_ENV} is unset); \
                 libostree will fall back to grub-mkconfig",
                cairn_release::tree::GRUB_MENU
            );
        }
    }

    /// Takes the sysroot lock. Without `wait`, fails with [`crate::exit::Locked`] if another
    /// process holds it; with `wait`, says so and blocks.
    pub fn lock(&self, wait: bool) -> Result<SysrootLock<'_>> {
        let got = self.sysroot.try_lock().context("Taking the sysroot lock")?;
        if !got {
            if !wait {
                return Err(anyhow!(crate::exit::Locked));
            }
            eprintln!("Waiting for the sysroot lock held by another process…");
            log::info!("waiting for the sysroot lock held by another process");
            self.sysroot
                .lock()
                .context("Waiting for the sysroot lock")?;
        }
        // Another process may have changed the deployments while we waited.
        self.sysroot
            .load_if_changed(gio::Cancellable::NONE)
            .context("Reloading the sysroot")?;
        Ok(SysrootLock {
            sysroot: &self.sysroot,
        })
    }

    /// The sysroot's repository (for [`crate::host::pull`]).
    pub(crate) fn repo(&self) -> ostree::Repo {
        self.sysroot.repo()
    }

    /// Where the host's `/var` is: `/var` on the booted root, else the stateroot's `var`.
    pub fn var_dir(&self) -> PathBuf {
        if self.path == Path::new("/") {
            PathBuf::from("/var")
        } else {
            self.path
                .join("ostree/deploy")
                .join(&self.osname)
                .join("var")
        }
    }

    /// The `/etc` the host runs with: `/etc` on the booted root, else the `etc` of the
    /// stateroot's default deployment, if there is one.
    pub fn etc_dir(&self) -> Option<PathBuf> {
        if self.path == Path::new("/") && self.is_booted() {
            return Some(PathBuf::from("/etc"));
        }
        let merge = self.sysroot.merge_deployment(Some(&self.osname))?;
        Some(self.deployment_path(&merge).join("etc"))
    }

    /// The root of the tree the host runs: `/` on the booted root, else the stateroot's
    /// default deployment, if there is one.
    pub fn tree_root(&self) -> Option<PathBuf> {
        if self.path == Path::new("/") && self.is_booted() {
            return Some(PathBuf::from("/"));
        }
        let merge = self.sysroot.merge_deployment(Some(&self.osname))?;
        Some(self.deployment_path(&merge))
    }

    /// Every deployment, in libostree's order (index 0 boots next).
    pub fn deployments(&self) -> Vec<DeploymentInfo> {
        let repo = self.repo();
        let booted = self.sysroot.booted_deployment();
        let all = self.sysroot.deployments();
        let rollback = self.rollback_index(&all);
        all.iter()
            .enumerate()
            .map(|(index, d)| {
                let commit = d.csum().to_string();
                let info = CommitInfo::load(&repo, &commit).ok();
                let is_booted = booted.as_ref().is_some_and(|b| b.equal(d));
                let timestamp = info.as_ref().map(|i| i.timestamp);
                DeploymentInfo {
                    index,
                    osname: d.osname().to_string(),
                    serial: d.deployserial(),
                    version: info.as_ref().and_then(|i| i.version.clone()),
                    timestamp,
                    time: timestamp.map(crate::host::state::format_time),
                    refspec: origin_refspec(d),
                    booted: is_booted,
                    staged: d.is_staged(),
                    pinned: d.is_pinned(),
                    default: index == 0,
                    pending: index == 0 && booted.is_some() && !is_booted,
                    rollback: rollback == Some(index),
                    kargs: kargs_of(d),
                    path: self.deployment_path(d),
                    commit,
                }
            })
            .collect()
    }

    /// The deployments of our stateroot only.
    pub fn own_deployments(&self) -> Vec<DeploymentInfo> {
        self.deployments()
            .into_iter()
            .filter(|d| d.osname == self.osname)
            .collect()
    }

    /// The deployment a new one merges `/etc` and kernel arguments from, and whose origin
    /// says what to follow: the booted one on a booted host, else the stateroot's default.
    pub fn merge_deployment(&self) -> Option<DeploymentInfo> {
        let merge = self.merge_raw()?;
        self.deployments().into_iter().find(|d| {
            d.osname == merge.osname()
                && d.serial == merge.deployserial()
                && d.commit == merge.csum()
        })
    }

    fn merge_raw(&self) -> Option<ostree::Deployment> {
        match self.sysroot.booted_deployment() {
            Some(b) if b.osname() == self.osname => Some(b),
            _ => self.sysroot.merge_deployment(Some(&self.osname)),
        }
    }

    /// The index of the deployment `rollback` would make the default: the booted one when a
    /// pending deployment is ahead of it, else the next deployment of our stateroot after the
    /// default.
    fn rollback_index(&self, all: &[ostree::Deployment]) -> Option<usize> {
        let first = all.iter().position(|d| d.osname() == self.osname)?;
        if let Some(booted) = self.sysroot.booted_deployment() {
            if let Some(b) = all.iter().position(|d| d.equal(&booted)) {
                if b != first && booted.osname() == self.osname {
                    return Some(b);
                }
            }
        }
        all.iter()
            .enumerate()
            .skip(first + 1)
            .find(|(_, d)| d.osname() == self.osname && !d.is_staged())
            .map(|(i, _)| i)
    }

    /// Checks out `commit` and makes it the next boot: staged on a booted host, written
    /// directly otherwise. `/etc` and (unless replaced) kernel arguments come from the merge
    /// deployment; the origin records `refspec`.
    #[context("Deploying commit {commit} ({refspec})")]
    pub fn deploy(
        &self,
        _lock: &SysrootLock<'_>,
        commit: &str,
        refspec: &str,
        kargs: &Kargs,
    ) -> Result<DeployMode> {
        self.warn_if_no_grub_generator();
        let origin = self.sysroot.origin_new_from_refspec(refspec);
        let merge = self.merge_raw();
        let argv: Vec<&str> = match kargs {
            Kargs::Inherit => Vec::new(),
            Kargs::Replace(v) => v.iter().map(String::as_str).collect(),
        };
        let opts = ostree::SysrootDeployTreeOpts {
            override_kernel_argv: match kargs {
                Kargs::Inherit => None,
                Kargs::Replace(_) => Some(&argv),
            },
            ..Default::default()
        };
        let result = self.deploy_inner(commit, &origin, merge.as_ref(), &opts);
        if result.is_err() {
            self.remove_incomplete_deployments();
        }
        result
    }

    fn deploy_inner(
        &self,
        commit: &str,
        origin: &glib::KeyFile,
        merge: Option<&ostree::Deployment>,
        opts: &ostree::SysrootDeployTreeOpts<'_>,
    ) -> Result<DeployMode> {
        if self.is_booted() {
            self.sysroot
                .stage_tree_with_options(
                    Some(&self.osname),
                    commit,
                    Some(origin),
                    merge,
                    opts,
                    gio::Cancellable::NONE,
                )
                .context("Staging the deployment")?;
            Ok(DeployMode::Staged)
        } else {
            let new = self
                .sysroot
                .deploy_tree_with_options(
                    Some(&self.osname),
                    commit,
                    Some(origin),
                    merge,
                    Some(opts),
                    gio::Cancellable::NONE,
                )
                .context("Checking out the deployment")?;
            self.sysroot
                .simple_write_deployment(
                    Some(&self.osname),
                    &new,
                    merge,
                    ostree::SysrootSimpleWriteDeploymentFlags::NONE,
                    gio::Cancellable::NONE,
                )
                .context("Writing the deployment list and boot entries")?;
            Ok(DeployMode::Written)
        }
    }

    /// After a failed deploy: removes the checkout libostree left behind (a disk that filled
    /// up mid-checkout would otherwise keep the partial tree, and each retry add another) and
    /// boot files no bootversion uses. Unlike `cleanup` it prunes nothing from the repository,
    /// so what was pulled for the attempt stays for the next one.
    fn remove_incomplete_deployments(&self) {
        let tidy = self
            .sysroot
            .load(gio::Cancellable::NONE)
            .and_then(|()| self.sysroot.prepare_cleanup(gio::Cancellable::NONE));
        if let Err(e) = tidy {
            log::warn!("could not remove the failed deployment's files: {e}");
        }
    }

    /// Writes a new deployment order: `order` lists current indices, first boots next.
    /// Deployments left out are removed (unless libostree keeps the booted one).
    #[context("Writing the deployment list")]
    pub fn write_order(&self, _lock: &SysrootLock<'_>, order: &[usize]) -> Result<()> {
        self.warn_if_no_grub_generator();
        let all = self.sysroot.deployments();
        let list = order
            .iter()
            .map(|&i| {
                all.get(i)
                    .cloned()
                    .ok_or_else(|| anyhow!("no deployment with index {i}"))
            })
            .collect::<Result<Vec<_>>>()?;
        self.sysroot
            .write_deployments(&list, gio::Cancellable::NONE)
            .context("Writing deployments and boot entries")?;
        Ok(())
    }

    /// Makes the deployment at `index` boot next; the others keep their order.
    pub fn make_default(&self, lock: &SysrootLock<'_>, index: usize) -> Result<()> {
        let n = self.sysroot.deployments().len();
        let mut order = vec![index];
        order.extend((0..n).filter(|&i| i != index));
        self.write_order(lock, &order)
    }

    /// Whether the repository has the commit object `commit`.
    pub fn has_commit(&self, commit: &str) -> Result<bool> {
        self.repo()
            .has_object(ostree::ObjectType::Commit, commit, gio::Cancellable::NONE)
            .with_context(|| format!("Looking up commit {commit}"))
    }

    /// Pins or unpins the deployment at `index`.
    #[context("Setting pinned={pinned} on deployment {index}")]
    pub fn set_pinned(&self, _lock: &SysrootLock<'_>, index: usize, pinned: bool) -> Result<()> {
        let d = self.raw(index)?;
        self.sysroot
            .deployment_set_pinned(&d, pinned)
            .context("Writing the deployment's origin")?;
        Ok(())
    }

    /// Replaces the kernel arguments of the (not booted) deployment at `index` in place; this
    /// writes a new bootversion.
    #[context("Changing kernel arguments of deployment {index}")]
    pub fn set_kargs_in_place(
        &self,
        _lock: &SysrootLock<'_>,
        index: usize,
        kargs: &[String],
    ) -> Result<()> {
        self.warn_if_no_grub_generator();
        let d = self.raw(index)?;
        let argv: Vec<&str> = kargs.iter().map(String::as_str).collect();
        self.sysroot
            .deployment_set_kargs(&d, &argv, gio::Cancellable::NONE)
            .context("Writing boot entries")?;
        Ok(())
    }

    /// Removes unreferenced deployment directories and boot files, then prunes repository
    /// objects no ref (including libostree's per-deployment refs) reaches.
    /// Returns (objects removed, bytes freed).
    #[context("Cleaning up the sysroot")]
    pub fn cleanup(&self, _lock: &SysrootLock<'_>) -> Result<(i32, u64)> {
        self.sysroot
            .cleanup(gio::Cancellable::NONE)
            .context("Removing unused deployments and boot files")?;
        let (_, pruned, freed) = self
            .repo()
            .prune(ostree::RepoPruneFlags::REFS_ONLY, 0, gio::Cancellable::NONE)
            .context("Pruning the repository")?;
        Ok((pruned, freed))
    }

    /// Reloads the deployment list from disk.
    pub fn reload(&self) -> Result<()> {
        self.sysroot
            .load(gio::Cancellable::NONE)
            .context("Reloading the sysroot")
    }

    fn raw(&self, index: usize) -> Result<ostree::Deployment> {
        let all = self.sysroot.deployments();
        let n = all.len();
        all.into_iter().nth(index).ok_or_else(|| {
            anyhow!("there is no deployment {index} (there are {n}; see `cairn status`)")
        })
    }

    fn deployment_path(&self, d: &ostree::Deployment) -> PathBuf {
        self.path.join(self.sysroot.deployment_dirpath(d).as_str())
    }
}

/// The `refspec` of a deployment's origin file.
fn origin_refspec(d: &ostree::Deployment) -> Option<String> {
    let origin: glib::KeyFile = d.origin()?;
    origin
        .string("origin", "refspec")
        .ok()
        .map(|s| s.to_string())
}

fn kargs_of(d: &ostree::Deployment) -> Vec<String> {
    d.bootconfig()
        .and_then(|b| b.get("options"))
        .map(|o| o.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The one stateroot under `ostree/deploy`, or an error naming them.
fn only_stateroot(path: &Path) -> Result<String> {
    let dir = path.join("ostree/deploy");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("Listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("Listing {}", dir.display()))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no stateroot in {} (run `ostree admin os-init`)",
            dir.display()
        ),
        many => bail!(
            "several stateroots in {} ({}): choose one with --os",
            dir.display(),
            many.join(", ")
        ),
    }
}
