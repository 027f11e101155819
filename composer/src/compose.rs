//! `cairn-compose tree`: one manifest to one new version on its ref.
//!
//! resolve (apt, or a lockfile) → inputs hash → unchanged? stop → download into the cache →
//! install (the changed packages on the ref's cached fresh install, or all by mmdebstrap) →
//! post-process → commit (one libostree transaction, signed inside it
//! with `--sign-key`) → static deltas from the previous versions → summary → lockfile.
//! Everything before the commit happens in a work directory that is removed on every exit path;
//! the repository changes only in the final transaction.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::glib::{self, prelude::*};
use cairn_release::metadata::{self as meta, Package};
use cairn_release::{history, version};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::install_base::{self, BaseStore, NoTransition};
use crate::lockfile::{LockedPackage, Lockfile};
use crate::manifest::{FileSource, Manifest};
use crate::progress::Progress;
use crate::resolve::{make_flat_repo, sha256_file, AptRoot};
use crate::workdir::WorkDir;
use crate::{commit, delta, initramfs, install, interrupt, postprocess};
use cairn_release::signature::SecretKey;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// The manifest.
    pub manifest: PathBuf,
    /// The archive repository (created if missing).
    pub repo: PathBuf,
    /// Package cache and work area (default: `cache` beside the repository).
    pub cache_dir: Option<PathBuf>,
    /// Compose exactly this lockfile's packages.
    pub lockfile: Option<PathBuf>,
    /// Where to write the new lockfile (default: beside the repository).
    pub lockfile_out: Option<PathBuf>,
    /// apt sources files replacing the manifest's mirrors and the machine's sources.
    pub sources: Vec<PathBuf>,
    /// Compose even when nothing changed.
    pub force: bool,
    /// Move the committed tree here instead of deleting it.
    pub keep_tree: Option<PathBuf>,
    /// Sign the new commit with this ed25519 secret key file (in the commit's transaction).
    pub sign_key: Option<PathBuf>,
    /// Static deltas to the new commit from this many previous versions.
    pub deltas: usize,
    /// Install every package from scratch, not from the cached install of an earlier compose.
    pub fresh_install: bool,
}

/// How the tree's packages were installed.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// `fresh` (every package, by mmdebstrap) or `incremental` (package changes applied by apt
    /// to a copy of the ref's cached fresh install).
    pub mode: &'static str,
    /// Incremental: sha256 of the cached install's package set (also in the commit metadata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Incremental: packages installed, upgraded or downgraded on the base.
    pub changed: usize,
    /// Incremental: packages purged from the base.
    pub purged: usize,
    /// Incremental: the changed file inside (or feeding) the initramfs that made the compose
    /// make it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initramfs_remade_for: Option<String>,
    /// Fresh: why the cached install was not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh_because: Option<String>,
}

/// What a compose did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// Inputs equal the ref's last commit; nothing written.
    Unchanged {
        /// The ref.
        #[serde(rename = "ref")]
        osref: String,
        /// Its current version.
        version: Option<String>,
        /// Its current commit.
        commit: String,
    },
    /// A new commit.
    Committed {
        /// The ref.
        #[serde(rename = "ref")]
        osref: String,
        /// The new version.
        version: String,
        /// The new commit.
        commit: String,
        /// The lockfile written.
        lockfile: PathBuf,
        /// Number of packages.
        packages: usize,
        /// The kernel, if bootable.
        kernel: Option<String>,
        /// Whether the commit was signed.
        signed: bool,
        /// Versions (or commits) a static delta to the new commit starts from.
        deltas_from: Vec<String>,
        /// How the packages were installed.
        install: InstallReport,
    },
}

/// Runs a compose.
pub fn compose(opts: &ComposeOptions, progress: &Progress) -> Result<Outcome> {
    let manifest = Manifest::load(&opts.manifest)?;
    let repo_parent = absolute(&opts.repo)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let cache = match &opts.cache_dir {
        Some(c) => absolute(c)?,
        None => repo_parent.join("cache"),
    };
    let lock_in = opts.lockfile.as_deref().map(Lockfile::read).transpose()?;
    if let Some(keep) = opts.keep_tree.as_deref().filter(|k| k.exists()) {
        bail!("--keep-tree {}: it must not exist yet", keep.display());
    }
    // A bad key should fail now, not after minutes of installing.
    // So is a key whose public half the tree does not trust: its hosts would refuse it.
    let shipped = crate::sign::shipped_keys(&manifest.files)?;
    let sign_key = match opts.sign_key.as_deref() {
        Some(path) => {
            let key = SecretKey::load(path)?;
            crate::sign::check_key_is_shipped(&key, path, &opts.manifest, &shipped)?;
            Some(key)
        }
        None => {
            eprintln!("{}", crate::sign::unsigned_warning(&shipped));
            None
        }
    };

    let repo = commit::open_or_create(&opts.repo)?;
    let previous = history::resolve(&repo, &manifest.osref)?;
    let past = history::ref_history(&repo, &manifest.osref)?;

    // Two composes sharing a cache would download into and index the same files.
    fs::create_dir_all(&cache).with_context(|| format!("Creating {}", cache.display()))?;
    let cache_lock = fs::File::create(cache.join("lock"))
        .with_context(|| format!("Creating {}", cache.join("lock").display()))?;
    if cache_lock.try_lock().is_err() {
        progress.step(&format!(
            "Waiting for another compose using {}",
            cache.display()
        ));
        cache_lock.lock().context("Locking the cache")?;
    }
    let work = WorkDir::create(&cache.join("work"))?;
    let local_repo = if manifest.local_debs.is_empty() {
        None
    } else {
        let dir = work.path().join("local-debs");
        make_flat_repo(&dir, &manifest.local_debs)?;
        Some(dir)
    };
    progress.step("Updating package indices");
    let apt = AptRoot::prepare(&cache, &manifest, &opts.sources, local_repo.as_deref())?;
    apt.update()?;
    interrupt::check()?;

    progress.step("Resolving packages");
    let packages: Vec<Package> = match &lock_in {
        Some(lock) => lock.packages.iter().map(LockedPackage::package).collect(),
        None => apt.resolve(&manifest)?,
    };
    let inputs = inputs_sha256(&manifest, &packages)?;
    if let (Some(prev), false) = (&previous, opts.force) {
        if past.first().and_then(|c| c.inputs_sha256.as_deref()) == Some(inputs.as_str()) {
            return Ok(Outcome::Unchanged {
                osref: manifest.osref.clone(),
                version: past.first().and_then(|c| c.version.clone()),
                commit: prev.clone(),
            });
        }
    }

    progress.step(&format!(
        "Downloading {} packages (cache: {})",
        packages.len(),
        apt.archives().display()
    ));
    let downloaded = apt.download(&packages)?;
    if let Some(lock) = &lock_in {
        for (got, _) in &downloaded {
            let want = lock
                .packages
                .iter()
                .find(|p| p.name == got.name && p.version == got.version);
            if want.map(|w| &w.sha256) != Some(&got.sha256) {
                bail!(
                    "{} {}: the downloaded .deb has sha256 {}, the lockfile says {}; the archive changed this package, refusing",
                    got.name,
                    got.version,
                    got.sha256,
                    want.map_or("nothing", |w| w.sha256.as_str())
                );
            }
        }
    }
    interrupt::check()?;

    let epoch = source_date_epoch()?;
    let pool = work.path().join("pool");
    make_flat_repo(
        &pool,
        &downloaded
            .iter()
            .map(|(_, p)| p.clone())
            .collect::<Vec<_>>(),
    )?;
    let tree = work.path().join("tree");
    let locked: Vec<LockedPackage> = downloaded.into_iter().map(|(l, _)| l).collect();
    let installed = install_packages(
        &cache,
        &manifest.osref,
        work.path(),
        &tree,
        install::Target {
            pool: &pool,
            packages: &locked,
            suite: &manifest.suite,
            architecture: &manifest.architecture,
            source_date_epoch: epoch,
            tree: &work.path().join("install"),
        },
        opts.fresh_install,
        progress,
    )?;
    interrupt::check()?;

    let facts = postprocess::run(&tree, &manifest, progress)?;
    interrupt::check()?;

    let new_version = version::next_version(
        &manifest.version_prefix,
        past.iter().filter_map(|c| c.version.as_deref()),
    );
    progress.step(&format!("Committing {} as {new_version}", manifest.osref));
    let metadata = commit_metadata(
        &manifest,
        &new_version,
        &packages,
        &inputs,
        facts.kernel.as_deref(),
        epoch,
        installed.base.as_deref(),
    );
    let subject = format!("{} {new_version}", manifest.os);
    let checksum = commit::commit(
        &repo,
        &commit::CommitRequest {
            tree: &tree,
            osref: &manifest.osref,
            parent: previous.as_deref(),
            subject: &subject,
            metadata,
            timestamp: epoch,
            sign_key: sign_key.as_ref(),
        },
        &interrupt::cancellable(),
    )?;
    let mut deltas_from = Vec::new();
    if opts.deltas > 0 {
        progress.step("Generating static deltas");
        // The commit is in: a delta that fails is a warning, not a failed compose.
        match delta::generate_from_ancestors(&repo, &checksum, opts.deltas) {
            Ok(written) => {
                deltas_from = written
                    .into_iter()
                    .map(|d| d.from_version.or(d.from).unwrap_or_default())
                    .collect()
            }
            Err(e) => progress.step(&format!("warning: {e:#}")),
        }
    }
    commit::regenerate_summary(&repo)?;

    let lock_path = opts
        .lockfile_out
        .clone()
        .unwrap_or_else(|| repo_parent.join(format!("{}-{new_version}.lock.json", manifest.os)));
    Lockfile::new(&manifest.osref, &new_version, locked).write(&lock_path)?;
    if let Some(keep) = &opts.keep_tree {
        progress.step(&format!("Keeping the tree in {}", keep.display()));
        install_base::copy_tree(&tree, keep)?;
    }
    Ok(Outcome::Committed {
        osref: manifest.osref.clone(),
        version: new_version,
        commit: checksum,
        lockfile: lock_path,
        packages: packages.len(),
        kernel: facts.kernel,
        signed: sign_key.is_some(),
        deltas_from,
        install: installed,
    })
}

/// Installs the locked packages and mounts the result at `tree`, a writable overlay view of the
/// ref's cached fresh install: with apt's changes on it when few packages differ (see
/// `install_base`), else of a new install from scratch, which becomes the cached one. A failed
/// incremental install falls back to a fresh one. Dropping `work` unmounts the view.
fn install_packages(
    cache: &Path,
    osref: &str,
    work: &Path,
    tree: &Path,
    target: install::Target,
    fresh_only: bool,
    progress: &Progress,
) -> Result<InstallReport> {
    let store = BaseStore::new(cache);
    let recipe = install::recipe(target.suite, target.architecture);
    let scratch = work.join("overlay");
    let base = if fresh_only {
        Ok(None)
    } else {
        store.load(osref, &recipe)
    };
    let fresh_because = match base {
        // A cache: one that cannot be read is replaced by this compose's fresh install.
        Err(e) => format!("{e:#}"),
        Ok(None) if fresh_only => "--fresh-install".to_string(),
        Ok(None) => "no cached install of this ref yet".to_string(),
        Ok(Some(base)) => match install_base::plan(&base.packages, target.packages) {
            Err(NoTransition::Rebuilt(p)) => {
                format!("{p} is another .deb than the cached install's")
            }
            Err(NoTransition::TooMany { changes, packages }) => {
                format!("{changes} of {packages} packages differ from the cached install")
            }
            Ok(changes) => {
                progress.step(&format!(
                    "Installing packages: {} changed, {} purged on the cached install of {} packages",
                    changes.install.len(),
                    changes.purge.len(),
                    base.packages.len()
                ));
                let applied = install_base::mount_overlay(&base.tree, &scratch, tree)
                    .and_then(|()| {
                        install::apply(&install::Target { tree, ..target }, &changes, progress)
                    })
                    .and_then(|()| {
                        initramfs::refresh_if_stale(
                            tree,
                            &base.tree,
                            &changes,
                            target.source_date_epoch,
                        )
                    });
                match applied {
                    Ok(stale) => {
                        if let Some(path) = &stale {
                            progress.step(&format!(
                                "Made the initramfs again (a changed package owns /{path})"
                            ));
                        }
                        return Ok(InstallReport {
                            mode: "incremental",
                            base: Some(install_base::set_sha256(&base.packages)),
                            changed: changes.install.len(),
                            purged: changes.purge.len(),
                            initramfs_remade_for: stale,
                            fresh_because: None,
                        });
                    }
                    Err(e) => {
                        interrupt::check()?;
                        progress.step(&format!(
                            "warning: applying the changes to the cached install failed; installing from scratch: {e:#}"
                        ));
                        install_base::unmount_overlay(&scratch, tree)?;
                        format!("applying the changes failed: {e:#}")
                    }
                }
            }
        },
    };
    progress.step(&format!(
        "Installing packages (mmdebstrap, from scratch: {fresh_because})"
    ));
    let raw = target.tree;
    install::install(&target, progress)?;
    interrupt::check()?;
    // The install goes into the cache as it is; the compose goes on in a view of it.
    let lower = store.adopt(osref, &recipe, target.packages, raw)?;
    if let Err(e) = install_base::mount_overlay(&lower, &scratch, tree) {
        // Without overlayfs (some containers) the next compose installs from scratch too.
        progress.step(&format!(
            "warning: cannot mount a view of the kept install, copying it: {e:#}"
        ));
        install_base::unmount_overlay(&scratch, tree)?;
        install_base::copy_tree(&lower, tree)?;
    }
    Ok(InstallReport {
        mode: "fresh",
        base: None,
        changed: target.packages.len(),
        purged: 0,
        initramfs_remade_for: None,
        fresh_because: Some(fresh_because),
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("Resolving {}", p.display()))
}

/// `SOURCE_DATE_EPOCH` from the environment, else now.
fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        Err(_) => Ok(chrono::Utc::now().timestamp().max(0) as u64),
    }
}

fn commit_metadata(
    manifest: &Manifest,
    version: &str,
    packages: &[Package],
    inputs: &str,
    kernel: Option<&str>,
    epoch: u64,
    install_base: Option<&str>,
) -> glib::Variant {
    let dict = glib::VariantDict::new(None);
    dict.insert_value(meta::VERSION, &version.to_variant());
    dict.insert_value(meta::BOOTABLE, &kernel.is_some().to_variant());
    if let Some(k) = kernel {
        dict.insert_value(meta::LINUX, &k.to_variant());
    }
    dict.insert_value(
        meta::REF_BINDING,
        &vec![manifest.osref.clone()].to_variant(),
    );
    dict.insert_value(meta::PACKAGES, &meta::packages_variant(packages));
    dict.insert_value(meta::INPUTS_SHA256, &inputs.to_variant());
    dict.insert_value(meta::SOURCE_DATE_EPOCH, &epoch.to_variant());
    if let Some(base) = install_base {
        dict.insert_value(meta::INSTALL_BASE, &base.to_variant());
    }
    dict.end()
}

/// sha256 over what determines the tree: the composer's version, the merged manifest with every
/// file it names replaced by a hash of its content, and the resolved package set.
pub fn inputs_sha256(manifest: &Manifest, packages: &[Package]) -> Result<String> {
    let mut value = serde_json::to_value(manifest)?;
    if let Some(obj) = value.as_object_mut() {
        // Where the manifest was read from does not change what it builds.
        obj.remove("files_read");
        let debs: Result<Vec<String>> =
            manifest.local_debs.iter().map(|d| sha256_file(d)).collect();
        obj.insert("local_debs".into(), serde_json::to_value(debs?)?);
        let files: Result<Vec<serde_json::Value>> = manifest
            .files
            .iter()
            .map(|f| {
                let content = match &f.source {
                    FileSource::Path(p) => tree_sha256(p)?,
                    FileSource::Content(c) => hex::encode(Sha256::digest(c.as_bytes())),
                };
                Ok(serde_json::json!({ "dest": f.dest, "mode": f.mode, "sha256": content }))
            })
            .collect();
        obj.insert("files".into(), serde_json::Value::Array(files?));
    }
    let mut h = Sha256::new();
    h.update(concat!("cairn-compose ", env!("CARGO_PKG_VERSION"), "\n"));
    h.update(serde_json::to_vec(&value)?);
    for p in packages {
        h.update(format!("\n{} {} {}", p.name, p.version, p.architecture));
    }
    Ok(hex::encode(h.finalize()))
}

/// A hash of a file, or of a directory's names, modes, link targets and contents.
fn tree_sha256(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).with_context(|| format!("Reading {}", p.display()))?;
        let rel = p
            .strip_prefix(path)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        h.update(format!("{rel}\0{:o}\0", m.mode()));
        if m.file_type().is_symlink() {
            h.update(fs::read_link(&p)?.to_string_lossy().as_bytes());
        } else if m.is_dir() {
            let mut children: Vec<PathBuf> =
                fs::read_dir(&p)?.flatten().map(|e| e.path()).collect();
            children.sort();
            children.reverse();
            stack.extend(children);
        } else {
            h.update(sha256_file(&p)?.as_bytes());
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_in(dir: &Path, motd: &str) -> Manifest {
        fs::write(dir.join("motd"), motd).unwrap();
        fs::write(
            dir.join("m.toml"),
            "os = \"t\"\nversion-prefix = \"1\"\n[sources]\nsuite = \"bookworm\"\n[[files]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
        )
        .unwrap();
        Manifest::load(&dir.join("m.toml")).unwrap()
    }

    fn pkg(version: &str) -> Vec<Package> {
        vec![Package {
            name: "a".into(),
            version: version.into(),
            architecture: "all".into(),
        }]
    }

    #[test]
    fn inputs_hash_follows_content_not_location() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let a = inputs_sha256(&manifest_in(one.path(), "hi"), &pkg("1")).unwrap();
        let b = inputs_sha256(&manifest_in(two.path(), "hi"), &pkg("1")).unwrap();
        assert_eq!(a, b, "the same manifest elsewhere is the same input");
        let c = inputs_sha256(&manifest_in(two.path(), "changed"), &pkg("1")).unwrap();
        assert_ne!(a, c, "a changed file is a changed input");
        let d = inputs_sha256(&manifest_in(one.path(), "hi"), &pkg("2")).unwrap();
        assert_ne!(a, d, "a changed package version is a changed input");
    }
}
