//! `cairn-compose tree`: one manifest to one new version on its ref.
//!
//! resolve (apt, or a lockfile) → inputs hash → unchanged? stop → download into the cache →
//! install (the changed packages on the ref's cached fresh install, or all by mmdebstrap) →
//! post-process → commit (one libostree transaction, signed inside it
//! with `--sign-key`) → static deltas from the previous versions → summary → lockfile.
//! Everything before the commit happens in a work directory that is removed on every exit path;
//! the repository changes only in the final transaction.

//!
//! One file per concern: [`cache_lock`] (one compose per package cache), [`inputs`] (the hash
//! that decides "unchanged"), [`lockfile_check`] (`--lockfile`'s sha256s),
//! [`fresh_or_incremental`] (which install, and why), [`metadata`] (what the commit says).

mod cache_lock;
mod fresh_or_incremental;
mod inputs;
mod lockfile_check;
mod metadata;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::metadata::Package;
use cairn_release::signature::SecretKey;
use cairn_release::{history, version};
use serde::Serialize;

use crate::install_base;
use crate::lockfile::{LockedPackage, Lockfile};
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::resolve::{make_flat_repo, AptRoot};
use crate::workdir::WorkDir;
use crate::{commit, delta, install, interrupt, postprocess};

use cache_lock::CacheLock;
pub use fresh_or_incremental::InstallReport;
pub use inputs::inputs_sha256;
use metadata::{commit_metadata, CommitFacts};

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
    let mut manifest = Manifest::load(&opts.manifest)?;
    let repo_parent = absolute(&opts.repo)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let cache = real_dir(&match &opts.cache_dir {
        Some(c) => absolute(c)?,
        None => repo_parent.join("cache"),
    })?;
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
            if shipped.is_empty() {
                let entry = crate::sign::ship_signing_key(&key, path);
                eprintln!(
                    "note: {} ships no trusted key: the tree trusts {}'s public half as {}",
                    opts.manifest.display(),
                    path.display(),
                    entry.dest
                );
                manifest.files.push(entry);
            }
            Some(key)
        }
        None => {
            eprintln!("{}", crate::sign::unsigned_warning(&shipped));
            None
        }
    };

    let repo = crate::repo::open_or_create(&opts.repo)?;
    let previous = history::resolve(&repo, &manifest.osref)?;
    let past = history::ref_history(&repo, &manifest.osref)?;

    let _cache_lock = CacheLock::acquire(&cache, progress)?;
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
        lockfile_check::check_downloads(lock, &downloaded)?;
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
    let installed = fresh_or_incremental::install_packages(
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

    let facts = postprocess::run(&tree, &manifest, epoch, progress)?;
    interrupt::check()?;

    let new_version = version::next_version(
        &manifest.version_prefix,
        past.iter().filter_map(|c| c.version.as_deref()),
    );
    progress.step(&format!("Committing {} as {new_version}", manifest.osref));
    let metadata = commit_metadata(
        &manifest,
        &CommitFacts {
            version: &new_version,
            packages: &packages,
            inputs: &inputs,
            kernel: facts.kernel.as_deref(),
            epoch,
            install_base: installed.base.as_deref(),
        },
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
                // The same updates as delta bundles beside the repository, which Cairn hosts
                // fetch instead (compressed against what they have: smaller than libostree's
                // deltas, which stock clients keep using).
                // It is kept only when it is the smaller download: for a change that moves
                // files (a kernel update's new module directory) libostree's delta, which
                // matches files by name across paths, can be.
                for d in &written {
                    let Some(from) = &d.from else { continue };
                    let kept = crate::bundle::write_remote_delta(
                        &opts.repo,
                        &manifest.osref,
                        from,
                        &checksum,
                        opts.sign_key.as_deref(),
                    )
                    .and_then(|w| {
                        let theirs = delta::download_size(&repo, &opts.repo, from, &checksum)?;
                        if w.size < theirs {
                            return Ok(());
                        }
                        std::fs::remove_file(&w.output)
                            .with_context(|| format!("Removing {}", w.output.display()))?;
                        progress.step(&format!(
                            "The delta bundle from {from} ({} B) is not smaller than the static \
                             delta ({theirs} B): hosts pull the static delta",
                            w.size
                        ));
                        Ok(())
                    });
                    if let Err(e) = kept {
                        progress.step(&format!("warning: {e:#}"));
                    }
                }
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

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("Resolving {}", p.display()))
}

/// Creates `dir` if need be and returns its canonical path. The trees are built under the
/// cache, and `systemctl --root=TREE` (unit enabling) fails on a root with `..` in its path
/// ("unit … does not exist" for links it just made): `--cache-dir ../cache` must work too.
fn real_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("Resolving {}", dir.display()))
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
