//! Writing a tree into an OSTree repository as a commit on a ref, in one libostree transaction:
//! the ref moves only when the whole commit is written, so a failure or an interrupt leaves
//! the repository exactly as it was (libostree drops the half-written staging area later).
//! With a signing key, the signature (detached metadata) is written in that same transaction.
//! The commit metadata gets the tree's object list with sizes ([`crate::object_sizes`]).

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_release::gio;
use cairn_release::glib;
use cairn_release::ostree;
use cairn_release::ostree::prelude::*;
use cairn_release::signature::{self, SecretKey};

/// What to commit.
pub struct CommitRequest<'a> {
    /// The tree.
    pub tree: &'a Path,
    /// The ref to move.
    pub osref: &'a str,
    /// The previous commit of the ref.
    pub parent: Option<&'a str>,
    /// Subject line.
    pub subject: &'a str,
    /// Commit metadata (`a{sv}`).
    pub metadata: glib::Variant,
    /// Commit timestamp.
    pub timestamp: u64,
    /// Sign the commit with this key in the same transaction (before the ref moves).
    pub sign_key: Option<&'a SecretKey>,
}

/// Commits the tree and moves the ref; returns the checksum.
pub fn commit(
    repo: &ostree::Repo,
    req: &CommitRequest,
    cancellable: &gio::Cancellable,
) -> Result<String> {
    repo.prepare_transaction(Some(cancellable))
        .context("Starting a repository transaction")?;
    match write(repo, req, cancellable) {
        Ok(checksum) => Ok(checksum),
        Err(e) => {
            let _ = repo.abort_transaction(gio::Cancellable::NONE);
            Err(e)
        }
    }
}

fn write(
    repo: &ostree::Repo,
    req: &CommitRequest,
    cancellable: &gio::Cancellable,
) -> Result<String> {
    let mtree = ostree::MutableTree::new();
    // Ownership and modes are the tree's (dpkg set them); extended attributes are not kept.
    // With a previous version most objects already exist: hash first, write what is missing
    // (tree_writer.rs). Without one, every object is new and hashing first would only read the
    // tree twice (measured 1.17x the ostree CLI), so libostree's own writer does it.
    if req.parent.is_some() {
        crate::tree_writer::write_tree(repo, req.tree, &mtree, cancellable)
    } else {
        // The directory-fd entry point, as the `ostree commit` CLI uses: the GFile one
        // (`write_directory_to_mtree`) queries every file through GIO: 1.4-1.7x the CLI's time
        // on a bare-user repo (two runs), where this one is at parity (BENCHMARKS.md, case 3).
        let modifier =
            ostree::RepoCommitModifier::new(ostree::RepoCommitModifierFlags::SKIP_XATTRS, None);
        std::fs::File::open(req.tree)
            .map_err(anyhow::Error::from)
            .and_then(|dir| {
                repo.write_dfd_to_mtree(
                    dir.as_raw_fd(),
                    ".",
                    &mtree,
                    Some(&modifier),
                    Some(cancellable),
                )
                .map_err(anyhow::Error::from)
            })
            .map(|_| crate::tree_writer::WriteStats::default())
    }
    .with_context(|| format!("Writing {} into the repository", req.tree.display()))?;
    let root = repo
        .write_mtree(&mtree, Some(cancellable))
        .context("Writing the tree's metadata")?;
    let root = root
        .downcast::<ostree::RepoFile>()
        .map_err(|_| anyhow::anyhow!("libostree returned a root that is not a RepoFile"))?;
    let contents = root
        .tree_get_contents_checksum()
        .context("libostree returned a root without a dirtree")?;
    let meta = root
        .tree_get_metadata_checksum()
        .context("libostree returned a root without a dirmeta")?;
    // Hosts size an update from this list before they fetch its tree.
    let metadata = glib::VariantDict::new(Some(&req.metadata));
    metadata.insert_value(
        crate::object_sizes::KEY,
        &crate::object_sizes::object_sizes(repo, &contents, &meta)?,
    );
    let metadata = metadata.end();
    let checksum = repo
        .write_commit_with_time(
            req.parent,
            Some(req.subject),
            None,
            Some(&metadata),
            &root,
            req.timestamp,
            Some(cancellable),
        )
        .context("Writing the commit")?;
    if let Some(key) = req.sign_key {
        // Detached metadata written inside the transaction lands with the commit: a failure
        // here aborts both, and the ref never points at an unsigned commit.
        signature::sign_commit(repo, &checksum, key)?;
    }
    repo.transaction_set_ref(None, req.osref, Some(&checksum));
    repo.commit_transaction(Some(cancellable))
        .context("Committing the repository transaction")?;
    Ok(checksum.to_string())
}

/// Regenerates the summary file so clients can list refs.
pub fn regenerate_summary(repo: &ostree::Repo) -> Result<()> {
    repo.regenerate_summary(None, gio::Cancellable::NONE)
        .context("Regenerating the repository summary")
}
