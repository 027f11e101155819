//! A commit's object list with sizes, in its metadata: what hosts read to say how much an
//! update downloads and how much room its objects need, before they fetch its tree (`cairn
//! check`, the updater's room check).
//!
//! Two keys, each a sorted array of byte strings checksum (32 bytes) ‖ varint archived size ‖
//! varint unpacked size ‖ object type (libostree 2020.1's format, `aay`):
//!
//! - [`ALL_KEY`], libostree's `ostree.sizes` (`ostree_commit_get_object_sizes` reads it):
//!   every dirtree, dirmeta and content object the commit reaches. Written for a commit without
//!   a parent, and what stock tools write (`ostree commit --generate-sizes`).
//! - [`NEW_KEY`], `cairn.sizes-new`: only the objects the commit reaches that its parent (the
//!   commit's parent field) does not. Written when the composer commits over a parent. The
//!   full list of an OS tree is ~30,000 entries, 672,360 bytes for the container host — more
//!   than twice the objects a one-package change adds, and every pull, static delta and
//!   bundle carries the commit object. A reader joins the lists along the parents, down to a
//!   commit it holds whole, whose objects it has ([`Listed`]).
//!
//! libostree writes `ostree.sizes` itself with `OSTREE_REPO_COMMIT_MODIFIER_FLAGS_GENERATE_SIZES`,
//! but only for objects that pass through its writer, and the composer's writer skips the
//! objects a recompose already has: so the list is built here from the written tree.

use std::collections::{BTreeMap, HashSet};

use anyhow::{bail, Context, Result};
use glib::prelude::*;

/// libostree's key: every object of the commit.
pub const ALL_KEY: &str = "ostree.sizes";
/// Cairn's key: the objects of the commit its parent does not reach.
pub const NEW_KEY: &str = "cairn.sizes-new";

/// One object of a commit, with its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSize {
    /// Its checksum (hex).
    pub checksum: String,
    /// Its type (file, dirtree or dirmeta).
    pub objtype: ostree::ObjectType,
    /// Its size in an archive repository: what a pull downloads.
    pub archived: u64,
    /// Its content's size (a symlink's: the target's length).
    pub unpacked: u64,
}

/// What a commit's metadata lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Every object ([`ALL_KEY`]).
    All(Vec<ObjectSize>),
    /// The objects its parent `parent` does not reach ([`NEW_KEY`]).
    NewOverParent {
        /// The commit's parent.
        parent: String,
        /// The new objects.
        objects: Vec<ObjectSize>,
    },
    /// No list.
    Nothing,
}

/// What `commit` (a commit variant) lists. A list that does not parse is an error.
pub fn listed(commit: &glib::Variant) -> Result<Listed> {
    let metadata = glib::VariantDict::new(commit.try_child_value(0).as_ref());
    if let Some(v) = metadata.lookup_value(NEW_KEY, None) {
        let parent = ostree::commit_get_parent(commit)
            .with_context(|| format!("{NEW_KEY} in a commit without a parent"))?;
        return Ok(Listed::NewOverParent {
            parent: parent.to_string(),
            objects: decode(&v).with_context(|| format!("Reading {NEW_KEY}"))?,
        });
    }
    match metadata.lookup_value(ALL_KEY, None) {
        Some(v) => Ok(Listed::All(
            decode(&v).with_context(|| format!("Reading {ALL_KEY}"))?,
        )),
        None => Ok(Listed::Nothing),
    }
}

/// The metadata entry (key, value) listing the objects of the tree whose root is `contents`
/// (dirtree) and `meta` (dirmeta), all of whose objects are in `repo`, for a commit over
/// `parent`: [`NEW_KEY`] with what `parent` does not reach when `repo` holds `parent` whole,
/// else [`ALL_KEY`].
pub fn commit_entry(
    repo: &ostree::Repo,
    contents: &str,
    meta: &str,
    parent: Option<&str>,
) -> Result<(&'static str, glib::Variant)> {
    let mut objects = tree_objects(repo, contents, meta)?;
    let whole = |p: &str| {
        repo.load_commit(p)
            .map(|(_, state)| !state.contains(ostree::RepoCommitState::PARTIAL))
            .unwrap_or(false)
    };
    let key = match parent {
        Some(p) if whole(p) => {
            let old: HashSet<String> = repo
                .traverse_commit(p, 0, gio::Cancellable::NONE)
                .with_context(|| format!("Listing the objects of the parent commit {p}"))?
                .iter()
                .map(|o| o.checksum().to_string())
                .collect();
            objects.retain(|checksum, _| !old.contains(checksum));
            NEW_KEY
        }
        _ => ALL_KEY,
    };
    Ok((key, encode(&sized(repo, &objects)?)?))
}

/// Every dirtree, dirmeta and content object of the tree `contents` + `meta`, by checksum.
fn tree_objects(
    repo: &ostree::Repo,
    contents: &str,
    meta: &str,
) -> Result<BTreeMap<String, ostree::ObjectType>> {
    let mut objects = BTreeMap::new();
    objects.insert(meta.to_string(), ostree::ObjectType::DirMeta);
    collect(repo, contents, &mut objects)?;
    Ok(objects)
}

/// The sizes of `objects` (all in `repo`), in checksum order.
fn sized(
    repo: &ostree::Repo,
    objects: &BTreeMap<String, ostree::ObjectType>,
) -> Result<Vec<ObjectSize>> {
    let mut out = Vec::with_capacity(objects.len());
    for (checksum, objtype) in objects {
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
        out.push(ObjectSize {
            checksum: checksum.clone(),
            objtype: *objtype,
            archived,
            unpacked,
        });
    }
    Ok(out)
}

/// The `aay` value for `objects` (sorted by checksum, as libostree sorts).
pub fn encode(objects: &[ObjectSize]) -> Result<glib::Variant> {
    let mut sorted: Vec<&ObjectSize> = objects.iter().collect();
    sorted.sort_by(|a, b| a.checksum.cmp(&b.checksum));
    let mut entries = Vec::with_capacity(sorted.len());
    for o in sorted {
        let mut entry =
            hex::decode(&o.checksum).with_context(|| format!("checksum {}", o.checksum))?;
        if entry.len() != 32 {
            bail!("checksum {} is not 32 bytes", o.checksum);
        }
        varint(&mut entry, o.archived);
        varint(&mut entry, o.unpacked);
        entry.push(type_byte(o.objtype));
        entries.push(entry);
    }
    Ok(entries.to_variant())
}

/// The entries of an `aay` object list.
pub fn decode(list: &glib::Variant) -> Result<Vec<ObjectSize>> {
    let entries: Vec<Vec<u8>> = list
        .get()
        .with_context(|| format!("an object list of type {}, not aay", list.type_()))?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let bad = || format!("object list entry {i} ({} bytes)", entry.len());
        let (sum, mut rest) = entry.split_at_checked(32).with_context(bad)?;
        let archived = read_varint(&mut rest).with_context(bad)?;
        let unpacked = read_varint(&mut rest).with_context(bad)?;
        let objtype = match rest {
            [1] => ostree::ObjectType::File,
            [2] => ostree::ObjectType::DirTree,
            [3] => ostree::ObjectType::DirMeta,
            _ => bail!("{}: no object type after the sizes", bad()),
        };
        out.push(ObjectSize {
            checksum: hex::encode(sum),
            objtype,
            archived,
            unpacked,
        });
    }
    Ok(out)
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

/// Reads one varint from the front of `bytes`; `None` when it is cut short or too long.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(v);
        }
    }
    None
}

/// The object type as the byte the list stores (libostree's `OstreeObjectType`).
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
        for v in [0, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let bytes = enc(v);
            let mut rest = &bytes[..];
            assert_eq!(read_varint(&mut rest), Some(v));
            assert!(rest.is_empty());
        }
        let mut cut: &[u8] = &[0x80, 0x80];
        assert_eq!(read_varint(&mut cut), None);
    }

    #[test]
    fn a_bad_list_is_an_error() {
        let short = vec![vec![0u8; 20]].to_variant();
        assert!(decode(&short).is_err());
        let mut no_type = vec![7u8; 32];
        no_type.extend([5, 5]);
        assert!(decode(&vec![no_type].to_variant()).is_err());
        assert!(decode(&"not a list".to_variant()).is_err());
    }

    /// The same entries as libostree's own `--generate-sizes` for a tree, read back through
    /// `ostree_commit_get_object_sizes`, and through [`listed`].
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
        let (key, ours) = commit_entry(
            &repo,
            &root.tree_get_contents_checksum().unwrap(),
            &root.tree_get_metadata_checksum().unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(key, ALL_KEY);
        let dict = glib::VariantDict::new(None);
        dict.insert_value(key, &ours);
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
        let libostree = |v: &glib::Variant| -> Vec<ObjectSize> {
            ostree::commit_get_object_sizes(v)
                .unwrap()
                .iter()
                .map(|e| ObjectSize {
                    checksum: e.checksum().to_string(),
                    objtype: e.objtype(),
                    archived: e.archived(),
                    unpacked: e.unpacked(),
                })
                .collect()
        };
        let theirs_entries = libostree(&theirs);
        assert_eq!(libostree(&ours_commit), theirs_entries);
        assert_eq!(
            listed(&theirs).unwrap(),
            Listed::All(theirs_entries.clone())
        );
        assert!(theirs_entries
            .iter()
            .any(|e| e.unpacked == 200_000 && e.archived < 10_000));
    }
}
