//! Writing a tree into an OSTree repository as a commit on a ref, in one libostree transaction:
//! the ref moves only when the whole commit is written, so a failure or an interrupt leaves
//! the repository exactly as it was (libostree drops the half-written staging area later).
//! With a signing key, the signature (detached metadata) is written in that same transaction.
//! The commit metadata gets the tree's object list with sizes ([`cairn_release::object_sizes`]:
//! every object for a first commit, the new ones over a parent).

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_release::gio;
use cairn_release::glib;
use cairn_release::object_sizes;
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
    // Hosts size an update from this list before they fetch its tree; over a parent it names
    // only the new objects (cairn_release::object_sizes says why).
    let metadata = glib::VariantDict::new(Some(&req.metadata));
    let (key, sizes) = object_sizes::commit_entry(repo, &contents, &meta, req.parent)?;
    metadata.insert_value(key, &sizes);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeSet;

    /// Both of the composer's commit paths (libostree's writer for a first commit, the
    /// checksum-first writer with a parent) list their objects: the first commit every object
    /// it reaches, the next exactly those its parent does not reach.
    #[test]
    fn commits_list_their_objects() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
        std::fs::write(tree.join("usr/lib/a"), "one\n").unwrap();
        let repo = ostree::Repo::new(&gio::File::for_path(dir.path().join("repo")));
        repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        let reached = |commit: &str| -> BTreeSet<String> {
            repo.traverse_commit(commit, 0, gio::Cancellable::NONE)
                .unwrap()
                .iter()
                .filter(|o| o.object_type() != ostree::ObjectType::Commit)
                .map(|o| o.checksum().to_string())
                .collect()
        };
        let mut parent: Option<String> = None;
        for n in 0..3 {
            std::fs::write(tree.join(format!("usr/lib/v{n}")), format!("{n}\n")).unwrap();
            let commit = commit(
                &repo,
                &CommitRequest {
                    tree: &tree,
                    osref: "t",
                    parent: parent.as_deref(),
                    subject: "t",
                    metadata: glib::VariantDict::new(None).end(),
                    timestamp: 1,
                    sign_key: None,
                },
                &gio::Cancellable::new(),
            )
            .unwrap();
            let v = repo
                .load_variant(ostree::ObjectType::Commit, &commit)
                .unwrap();
            let names = |list: &[object_sizes::ObjectSize]| -> BTreeSet<String> {
                list.iter().map(|o| o.checksum.clone()).collect()
            };
            match (object_sizes::listed(&v).unwrap(), &parent) {
                (object_sizes::Listed::All(all), None) => {
                    assert_eq!(names(&all), reached(&commit));
                    // libostree reads the same list.
                    assert_eq!(
                        ostree::commit_get_object_sizes(&v).unwrap().len(),
                        all.len()
                    );
                }
                (object_sizes::Listed::NewOverParent { parent: p, objects }, Some(expected)) => {
                    assert_eq!(&p, expected);
                    let new: BTreeSet<String> =
                        reached(&commit).difference(&reached(&p)).cloned().collect();
                    // The root dirtree and the changed file, at least.
                    assert!(new.len() >= 2, "{new:?}");
                    assert_eq!(names(&objects), new, "commit {n}");
                }
                (other, _) => panic!("commit {n} lists {other:?}"),
            }
            parent = Some(commit);
        }
    }
}
