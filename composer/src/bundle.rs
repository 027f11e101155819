//! `cairn-compose bundle`: one file that carries what a host on version A needs to reach
//! version B without a network: a self-contained static delta (for a host on A, compressed
//! against A's objects at the paths that changed), the target commit object with its detached
//! metadata (its signatures), and a signed manifest. The format is
//! `cairn_release::bundle`'s; hosts apply it with `cairn upgrade --bundle`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::bundle::{self, Manifest};
use cairn_release::delta_reference;
use cairn_release::history::{find_revision, ref_history};
use cairn_release::signature::{self, SecretKey};
use cairn_release::{gio, ostree};
use fn_error_context::context;
use serde::Serialize;

use crate::delta;

/// What to bundle.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// The repository.
    pub repo: PathBuf,
    /// The ref (default: the ref whose history holds `to`).
    pub osref: Option<String>,
    /// The version or commit hosts start from (`None`: a full bundle).
    pub from: Option<String>,
    /// The version, commit or ref to reach.
    pub to: String,
    /// The file to write.
    pub output: PathBuf,
    /// Sign the manifest with this ed25519 secret key.
    pub sign_key: Option<PathBuf>,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// The bundle file.
    pub output: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether the manifest is signed.
    pub signed: bool,
    /// Whether the target commit carries an ed25519 signature.
    pub commit_signed: bool,
}

/// Writes a bundle.
#[context("Writing bundle {}", opts.output.display())]
pub fn write(opts: &BundleOptions) -> Result<Written> {
    let key = opts.sign_key.as_deref().map(SecretKey::load).transpose()?;
    let repo = crate::repo::open_repo(&opts.repo)?;
    let to = find_revision(&repo, opts.osref.as_deref(), &opts.to)?;
    let from = opts
        .from
        .as_deref()
        .map(|f| find_revision(&repo, opts.osref.as_deref(), f))
        .transpose()?;
    let osref = match &opts.osref {
        Some(r) => r.clone(),
        None => ref_holding(&repo, &to.commit)?,
    };
    let work = tempfile::Builder::new()
        .prefix("cairn-bundle-")
        .tempdir_in(opts.repo.join("tmp"))
        .with_context(|| format!("Creating a work directory in {}/tmp", opts.repo.display()))?;
    let dir = work.path();
    let delta_file = dir.join(bundle::DELTA);
    // Every part uncompressed: a full delta for the bundle's multithreaded zstd (libostree
    // would lzma it on one core), a delta from a commit for zstd against the objects the host
    // has (cairn_release::delta_reference), which libostree's lzma and bsdiff parts cannot use.
    let chunks = match &from {
        Some(f) => {
            let raw = dir.join("delta.unpacked");
            let written = delta::write_file(&repo, Some(&f.commit), &to.commit, &raw)?;
            let chunks = delta::chunks(&repo, &f.commit, &to.commit, &written)?;
            delta_reference::compress(&repo, &raw, &delta_file, &chunks)?;
            std::fs::remove_file(&raw).with_context(|| format!("Removing {}", raw.display()))?;
            chunks
        }
        None => {
            delta::write_file(&repo, None, &to.commit, &delta_file)?;
            Vec::new()
        }
    };
    let commit = signature::commit_bytes(&repo, &to.commit)?;
    let detached = signature::detached_bytes(&repo, &to.commit)?;
    let commit_signed =
        !signature::signatures_in(&signature::detached_from_bytes(&detached)?).is_empty();
    write_file(&dir.join(bundle::COMMIT), &commit)?;
    write_file(&dir.join(bundle::COMMITMETA), &detached)?;
    let manifest = bundle::write(
        &opts.output,
        dir,
        Manifest {
            format: bundle::FORMAT,
            osref,
            from: from.as_ref().map(|f| f.commit.clone()),
            from_version: from.and_then(|f| f.version),
            to: to.commit.clone(),
            to_version: to.version,
            members: Default::default(),
            chunks,
            reference: Vec::new(),
        },
        key.as_ref(),
    )?;
    let size = std::fs::metadata(&opts.output)
        .with_context(|| format!("Reading {}", opts.output.display()))?
        .len();
    Ok(Written {
        output: opts.output.clone(),
        size,
        manifest,
        signed: key.is_some(),
        commit_signed,
    })
}

/// Writes the delta bundle `from` → `to` of `osref` beside the repository at `repo_path`
/// (`cairn_release::bundle::remote_path`), signed with `sign_key` when given.
pub fn write_remote_delta(
    repo_path: &Path,
    osref: &str,
    from: &str,
    to: &str,
    sign_key: Option<&Path>,
) -> Result<Written> {
    let output = repo_path.join(bundle::remote_path(from, to));
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    }
    write(&BundleOptions {
        repo: repo_path.to_path_buf(),
        osref: Some(osref.to_string()),
        from: Some(from.to_string()),
        to: to.to_string(),
        output,
        sign_key: sign_key.map(Path::to_path_buf),
    })
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).with_context(|| format!("Writing {}", path.display()))
}

/// The one ref whose history holds `commit`.
fn ref_holding(repo: &ostree::Repo, commit: &str) -> Result<String> {
    let refs = repo
        .list_refs(None, gio::Cancellable::NONE)
        .context("Listing refs")?;
    let mut names: Vec<String> = refs.keys().map(|k| k.to_string()).collect();
    names.sort();
    for name in names {
        if ref_history(repo, &name)?.iter().any(|c| c.commit == commit) {
            return Ok(name);
        }
    }
    bail!("commit {commit} is on no ref's history; name the ref with --ref")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_release::glib;
    use cairn_release::signature::TrustedKeys;

    fn commit(repo: &ostree::Repo, tree: &Path, parent: Option<&str>, v: &str) -> String {
        let meta = glib::VariantDict::new(None);
        meta.insert_value("version", &glib::prelude::ToVariant::to_variant(v));
        crate::commit::commit(
            repo,
            &crate::commit::CommitRequest {
                tree,
                osref: "cairn/bookworm/x86_64/stable",
                parent,
                subject: v,
                metadata: meta.end(),
                timestamp: 1,
                sign_key: None,
            },
            &gio::Cancellable::new(),
        )
        .unwrap()
    }

    #[test]
    fn bundle_roundtrip_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let repo_path = dir.path().join("repo");
        let repo = crate::repo::open_or_create(&repo_path).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
        std::fs::write(tree.join("usr/bin/a"), "one\n").unwrap();
        let v0 = commit(&repo, &tree, None, "1.0");
        std::fs::write(tree.join("usr/bin/b"), "two\n".repeat(1000)).unwrap();
        let v1 = commit(&repo, &tree, Some(&v0), "1.1");
        let key = SecretKey::generate().unwrap();
        key.write_pair(&dir.path().join("k")).unwrap();
        let out = dir.path().join("b.cairnbundle");
        let w = write(&BundleOptions {
            repo: repo_path.clone(),
            osref: None,
            from: Some("1.0".into()),
            to: "1.1".into(),
            output: out.clone(),
            sign_key: Some(dir.path().join("k")),
        })
        .unwrap();
        assert_eq!(w.manifest.from.as_deref(), Some(v0.as_str()));
        assert_eq!(w.manifest.to, v1);
        assert_eq!(w.manifest.osref, "cairn/bookworm/x86_64/stable");
        let trusted = TrustedKeys {
            keys: vec![key.public()],
            searched: vec![],
        };
        let x = tempfile::tempdir().unwrap();
        let opened = bundle::open(&out, x.path(), &trusted, true).unwrap();
        assert_eq!(
            opened.commit_info().unwrap().version.as_deref(),
            Some("1.1")
        );

        // Truncated, a flipped byte, another key: refused.
        let bytes = std::fs::read(&out).unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
        let x = tempfile::tempdir().unwrap();
        let e = format!(
            "{:#}",
            bundle::open(&bad, x.path(), &trusted, true).unwrap_err()
        );
        assert!(e.contains("truncated or corrupt"), "{e}");
        let mut flipped = bytes.clone();
        let i = flipped.len() / 2;
        flipped[i] ^= 0x40;
        std::fs::write(&bad, &flipped).unwrap();
        let x = tempfile::tempdir().unwrap();
        assert!(bundle::open(&bad, x.path(), &trusted, true).is_err());
        let other = TrustedKeys {
            keys: vec![SecretKey::generate().unwrap().public()],
            searched: vec![],
        };
        let x = tempfile::tempdir().unwrap();
        let e = format!(
            "{:#}",
            bundle::open(&out, x.path(), &other, true).unwrap_err()
        );
        assert!(e.contains("signed by another key"), "{e}");
    }
}
