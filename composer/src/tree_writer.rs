//! Writing a directory into a repository, checksum first.
//!
//! libostree's own `write_directory_to_mtree` streams every file of an archive repository
//! through zlib before it learns the file's checksum, so re-committing a tree that is 99%
//! identical to the last version costs as much as the first commit (`ARCHITECTURE.md`: 33 s of
//! 37 s). Here each file's object checksum is computed first (`ostree_checksum_file_at`, the
//! library's own definition of a content object: sha256 over the file header and content);
//! only objects the repository does not have are written. A recompose then pays hashing for
//! the unchanged files and compression only for what changed.
//!
//! Checksums are computed on worker threads (plain paths in, hex strings out: no glib objects
//! cross threads); the mutable tree is built on the calling thread.

use std::collections::HashMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use cairn_release::gio;
use cairn_release::gio::prelude::*;
use cairn_release::ostree;

/// Counts of what was written.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteStats {
    /// Files and symlinks in the tree.
    pub files: usize,
    /// Content objects the repository did not have.
    pub written: usize,
}

/// One regular file or symlink and its content object checksum.
struct Entry {
    path: PathBuf,
    checksum: String,
}

/// Writes `tree` into `mtree` (inside an open transaction).
pub fn write_tree(
    repo: &ostree::Repo,
    tree: &Path,
    mtree: &ostree::MutableTree,
    cancellable: &gio::Cancellable,
) -> Result<WriteStats> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    walk(tree, &mut dirs, &mut files)?;
    let checksums = checksum_all(&files)?;

    let mut stats = WriteStats::default();
    let mut dirmeta: HashMap<(u32, u32, u32), String> = HashMap::new();
    let mut subtrees: HashMap<PathBuf, ostree::MutableTree> = HashMap::new();
    subtrees.insert(tree.to_path_buf(), mtree.clone());
    // Parents come before children: `walk` lists directories in pre-order.
    for dir in &dirs {
        let meta =
            fs::symlink_metadata(dir).with_context(|| format!("Reading {}", dir.display()))?;
        let key = (meta.uid(), meta.gid(), meta.mode());
        let checksum = match dirmeta.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = write_dirmeta(repo, dir, cancellable)?;
                dirmeta.insert(key, c.clone());
                c
            }
        };
        let node = if dir == tree {
            mtree.clone()
        } else {
            let parent = dir.parent().context("a directory without a parent")?;
            let name = file_name(dir)?;
            let parent_tree = subtrees
                .get(parent)
                .with_context(|| format!("{} was listed before its parent", dir.display()))?;
            parent_tree
                .ensure_dir(&name)
                .with_context(|| format!("Adding directory {}", dir.display()))?
        };
        node.set_metadata_checksum(&checksum);
        subtrees.insert(dir.clone(), node);
    }
    for entry in checksums {
        stats.files += 1;
        let present = repo
            .has_object(ostree::ObjectType::File, &entry.checksum, Some(cancellable))
            .with_context(|| format!("Looking up {}", entry.checksum))?;
        if !present {
            write_content(repo, &entry, cancellable)?;
            stats.written += 1;
        }
        let parent = entry.path.parent().context("a file without a parent")?;
        let node = subtrees
            .get(parent)
            .with_context(|| format!("{} is outside the tree", entry.path.display()))?;
        node.replace_file(&file_name(&entry.path)?, &entry.checksum)
            .with_context(|| format!("Adding {}", entry.path.display()))?;
    }
    Ok(stats)
}

fn file_name(p: &Path) -> Result<String> {
    Ok(p.file_name()
        .with_context(|| format!("{} has no file name", p.display()))?
        .to_string_lossy()
        .into_owned())
}

/// Lists directories (pre-order) and files/symlinks; anything else is an error.
fn walk(dir: &Path, dirs: &mut Vec<PathBuf>, files: &mut Vec<PathBuf>) -> Result<()> {
    dirs.push(dir.to_path_buf());
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .with_context(|| format!("Reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("Reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e
            .file_type()
            .with_context(|| format!("Reading {}", e.path().display()))?;
        if t.is_dir() {
            walk(&e.path(), dirs, files)?;
        } else if t.is_file() || t.is_symlink() {
            files.push(e.path());
        } else if t.is_block_device() || t.is_char_device() || t.is_fifo() || t.is_socket() {
            bail!(
                "{} is a special file; a commit cannot hold it",
                e.path().display()
            );
        }
    }
    Ok(())
}

/// Checksums of every file, on as many threads as there are cores.
fn checksum_all(files: &[PathBuf]) -> Result<Vec<Entry>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; files.len()]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(path) = files.get(i) else { return };
                match checksum_file(path) {
                    Ok(c) => {
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(c);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a checksum thread panicked"))?;
    files
        .iter()
        .zip(results)
        .map(|(path, c)| {
            Ok(Entry {
                path: path.clone(),
                checksum: c.with_context(|| format!("no checksum for {}", path.display()))?,
            })
        })
        .collect()
}

/// The content object checksum of a file or symlink, as libostree defines it (no xattrs).
fn checksum_file(path: &Path) -> Result<String> {
    let parent = path.parent().context("a file without a parent")?;
    let dir = fs::File::open(parent).with_context(|| format!("Opening {}", parent.display()))?;
    let name = path.file_name().context("a file without a name")?;
    let checksum = ostree::checksum_file_at(
        dir.as_raw_fd(),
        Path::new(name),
        None,
        ostree::ObjectType::File,
        ostree::ChecksumFlags::IGNORE_XATTRS,
        gio::Cancellable::NONE,
    )
    .with_context(|| format!("Checksumming {}", path.display()))?;
    Ok(checksum.to_string())
}

fn write_dirmeta(
    repo: &ostree::Repo,
    dir: &Path,
    cancellable: &gio::Cancellable,
) -> Result<String> {
    let info = gio::File::for_path(dir)
        .query_info(
            "standard::type,unix::uid,unix::gid,unix::mode",
            gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
            Some(cancellable),
        )
        .with_context(|| format!("Reading {}", dir.display()))?;
    let variant = ostree::create_directory_metadata(&info, None);
    let checksum = repo
        .write_metadata(
            ostree::ObjectType::DirMeta,
            None,
            &variant,
            Some(cancellable),
        )
        .with_context(|| format!("Writing the metadata of {}", dir.display()))?;
    Ok(checksum.to_hex())
}

fn write_content(repo: &ostree::Repo, entry: &Entry, cancellable: &gio::Cancellable) -> Result<()> {
    let meta = fs::symlink_metadata(&entry.path)
        .with_context(|| format!("Reading {}", entry.path.display()))?;
    let written = if meta.file_type().is_symlink() {
        let target = fs::read_link(&entry.path)?;
        repo.write_symlink(
            Some(&entry.checksum),
            meta.uid(),
            meta.gid(),
            None,
            &target.to_string_lossy(),
            Some(cancellable),
        )
    } else {
        let data =
            fs::read(&entry.path).with_context(|| format!("Reading {}", entry.path.display()))?;
        repo.write_regfile_inline(
            Some(&entry.checksum),
            meta.uid(),
            meta.gid(),
            meta.mode(),
            None,
            &data,
            Some(cancellable),
        )
    };
    written.with_context(|| format!("Writing {} into the repository", entry.path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn root_checksum(repo: &ostree::Repo, tree: &Path, ours: bool) -> String {
        let c = gio::Cancellable::new();
        repo.prepare_transaction(Some(&c)).unwrap();
        let mtree = ostree::MutableTree::new();
        if ours {
            write_tree(repo, tree, &mtree, &c).unwrap();
        } else {
            let modifier =
                ostree::RepoCommitModifier::new(ostree::RepoCommitModifierFlags::SKIP_XATTRS, None);
            repo.write_directory_to_mtree(
                &gio::File::for_path(tree),
                &mtree,
                Some(&modifier),
                Some(&c),
            )
            .unwrap();
        }
        let root = repo.write_mtree(&mtree, Some(&c)).unwrap();
        repo.commit_transaction(Some(&c)).unwrap();
        let root = root.downcast::<ostree::RepoFile>().unwrap();
        root.tree_get_contents_checksum().unwrap().to_string()
            + &root.tree_get_metadata_checksum().unwrap()
    }

    #[test]
    fn same_tree_checksum_as_libostree() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("usr/bin")).unwrap();
        fs::create_dir_all(tree.join("usr/share/empty")).unwrap();
        fs::create_dir_all(tree.join("var")).unwrap();
        fs::write(tree.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            tree.join("usr/bin/tool"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        fs::write(tree.join("usr/share/big"), vec![7u8; 300_000]).unwrap();
        fs::set_permissions(
            tree.join("usr/share/empty"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        symlink("usr/bin", tree.join("bin")).unwrap();
        symlink("/nowhere", tree.join("usr/dangling")).unwrap();
        let _ = std::os::unix::fs::lchown(tree.join("usr/share/big"), Some(1), Some(2));

        let theirs_repo = ostree::Repo::new(&gio::File::for_path(dir.path().join("a")));
        theirs_repo
            .create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        let ours_repo = ostree::Repo::new(&gio::File::for_path(dir.path().join("b")));
        ours_repo
            .create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        assert_eq!(
            root_checksum(&ours_repo, &tree, true),
            root_checksum(&theirs_repo, &tree, false)
        );
        // A second write of the same tree writes no content object.
        let c = gio::Cancellable::new();
        ours_repo.prepare_transaction(Some(&c)).unwrap();
        let stats = write_tree(&ours_repo, &tree, &ostree::MutableTree::new(), &c).unwrap();
        ours_repo.commit_transaction(Some(&c)).unwrap();
        assert_eq!(stats.files, 4);
        assert_eq!(stats.written, 0);
    }
}
