//! The commit's object list with sizes, `ostree.sizes` in its metadata: what hosts read
//! (`ostree_commit_get_object_sizes`) to say how much an update downloads and how much room
//! its objects need before they fetch its tree (`cairn check`, the updater's room check).
//!
//! libostree writes the same key with `OSTREE_REPO_COMMIT_MODIFIER_FLAGS_GENERATE_SIZES`, but
//! only for objects that pass through its writer; [`crate::tree_writer`] skips the objects a
//! recompose already has, so the list is built here from the written tree instead: every
//! dirtree, dirmeta and content object reachable from the root, each one byte string of
//! checksum (32 bytes) ‖ varint archived size ‖ varint unpacked size ‖ object type, sorted by
//! checksum — the format of libostree 2020.1 and later (`aay`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use cairn_release::glib::{self, prelude::*};
use cairn_release::{gio, ostree};

/// The commit metadata key.
pub const KEY: &str = "ostree.sizes";

/// The `ostree.sizes` value for the tree whose root is `contents` (dirtree) and `meta`
/// (dirmeta), all of whose objects are in `repo`.
pub fn object_sizes(repo: &ostree::Repo, contents: &str, meta: &str) -> Result<glib::Variant> {
    let mut objects = BTreeMap::new();
    objects.insert(meta.to_string(), ostree::ObjectType::DirMeta);
    collect(repo, contents, &mut objects)?;
    let mut entries = Vec::with_capacity(objects.len());
    for (checksum, objtype) in &objects {
        let archived = repo
            .query_object_storage_size(*objtype, checksum, gio::Cancellable::NONE)
            .with_context(|| format!("Sizing object {checksum}"))?;
        let unpacked = if *objtype == ostree::ObjectType::File {
            let (_, info, _) = repo
                .load_file(checksum, gio::Cancellable::NONE)
                .with_context(|| format!("Reading file object {checksum}"))?;
            match info.symlink_target() {
                // libostree counts a symlink's target as its content.
                Some(target) if info.file_type() == gio::FileType::SymbolicLink => {
                    target.as_os_str().len() as u64
                }
                _ => u64::try_from(info.size()).unwrap_or(0),
            }
        } else {
            archived
        };
        let mut entry = hex::decode(checksum).with_context(|| format!("checksum {checksum}"))?;
        varint(&mut entry, archived);
        varint(&mut entry, unpacked);
        entry.push(type_byte(*objtype));
        entries.push(entry);
    }
    Ok(entries.to_variant())
}

/// Adds `contents` (a dirtree) and everything below it to `objects`.
fn collect(
    repo: &ostree::Repo,
    contents: &str,
    objects: &mut BTreeMap<String, ostree::ObjectType>,
) -> Result<()> {
    if objects
        .insert(contents.to_string(), ostree::ObjectType::DirTree)
        .is_some()
    {
        return Ok(());
    }
    let tree = repo
        .load_variant(ostree::ObjectType::DirTree, contents)
        .with_context(|| format!("Loading dirtree {contents}"))?;
    let hex_at = |v: &glib::Variant, i: usize| -> Result<String> {
        let sum = v.try_child_value(i).context("a short dirtree entry")?;
        Ok(hex::encode(sum.fixed_array::<u8>().context("a checksum")?))
    };
    let files = tree.try_child_value(0).context("a dirtree without files")?;
    for f in files.iter() {
        objects.insert(hex_at(&f, 1)?, ostree::ObjectType::File);
    }
    let dirs = tree
        .try_child_value(1)
        .context("a dirtree without directories")?;
    for d in dirs.iter() {
        objects.insert(hex_at(&d, 2)?, ostree::ObjectType::DirMeta);
        collect(repo, &hex_at(&d, 1)?, objects)?;
    }
    Ok(())
}

/// libostree's varint (`ostree-varint.c`, protobuf's base-128 encoding).
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The object type as the byte `ostree.sizes` stores (libostree's `OstreeObjectType`).
fn type_byte(t: ostree::ObjectType) -> u8 {
    match t {
        ostree::ObjectType::File => 1,
        ostree::ObjectType::DirTree => 2,
        ostree::ObjectType::DirMeta => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn varints_as_protobuf() {
        let enc = |v| {
            let mut out = Vec::new();
            varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(300), [0xac, 0x02]);
    }

    /// The same entries as libostree's own `--generate-sizes` for a tree, read back through
    /// `ostree_commit_get_object_sizes`.
    #[test]
    fn same_entries_as_libostree() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/lib/modules/6.1")).unwrap();
        std::fs::create_dir_all(tree.join("usr/empty")).unwrap();
        std::fs::write(tree.join("usr/lib/modules/6.1/vmlinuz"), vec![3u8; 200_000]).unwrap();
        std::fs::write(tree.join("usr/a"), "a\n").unwrap();
        std::os::unix::fs::symlink("a", tree.join("usr/b")).unwrap();
        let path = dir.path().join("repo");
        let repo = ostree::Repo::new(&gio::File::for_path(&path));
        repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        let out = std::process::Command::new("ostree")
            .arg(format!("--repo={}", path.display()))
            .args(["commit", "--generate-sizes", "--no-xattrs", "-b", "t"])
            .arg(format!("--tree=dir={}", tree.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let commit = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let theirs = repo
            .load_variant(ostree::ObjectType::Commit, &commit)
            .unwrap();
        let (root, _) = repo.read_commit(&commit, gio::Cancellable::NONE).unwrap();
        let root = root.downcast::<ostree::RepoFile>().unwrap();
        let ours = object_sizes(
            &repo,
            &root.tree_get_contents_checksum().unwrap(),
            &root.tree_get_metadata_checksum().unwrap(),
        )
        .unwrap();
        let dict = glib::VariantDict::new(None);
        dict.insert_value(KEY, &ours);
        // A commit variant `(a{sv}aya(say)sstayay)` holding only that metadata.
        let ours_commit = glib::Variant::tuple_from_iter([
            dict.end(),
            Vec::<u8>::new().to_variant(),
            Vec::<(String, Vec<u8>)>::new().to_variant(),
            "".to_variant(),
            "".to_variant(),
            0u64.to_variant(),
            Vec::<u8>::new().to_variant(),
            Vec::<u8>::new().to_variant(),
        ]);
        let entries = |v: &glib::Variant| -> BTreeSet<(String, u64, u64, String)> {
            ostree::commit_get_object_sizes(v)
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e.checksum().to_string(),
                        e.archived(),
                        e.unpacked(),
                        format!("{:?}", e.objtype()),
                    )
                })
                .collect()
        };
        let theirs = entries(&theirs);
        assert_eq!(entries(&ours_commit), theirs);
        assert!(theirs.iter().any(|e| e.2 == 200_000 && e.1 < 10_000));
    }

    /// Both of the composer's commit paths (libostree's writer for a first commit, the
    /// checksum-first writer with a parent) list exactly the objects the commit reaches.
    #[test]
    fn composer_commits_list_every_object() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
        std::fs::write(tree.join("usr/lib/a"), "one\n").unwrap();
        let repo = ostree::Repo::new(&gio::File::for_path(dir.path().join("repo")));
        repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        let mut parent: Option<String> = None;
        for n in 0..2 {
            std::fs::write(tree.join(format!("usr/lib/v{n}")), format!("{n}\n")).unwrap();
            let commit = crate::commit::commit(
                &repo,
                &crate::commit::CommitRequest {
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
            let listed: BTreeSet<String> = ostree::commit_get_object_sizes(&v)
                .unwrap()
                .iter()
                .map(|e| e.checksum().to_string())
                .collect();
            let reached: BTreeSet<String> = repo
                .traverse_commit(&commit, 0, gio::Cancellable::NONE)
                .unwrap()
                .iter()
                .filter(|o| o.object_type() != ostree::ObjectType::Commit)
                .map(|o| o.checksum().to_string())
                .collect();
            assert_eq!(listed, reached, "commit {n}");
            parent = Some(commit);
        }
    }
}
