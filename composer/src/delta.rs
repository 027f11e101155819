//! Static deltas: after a compose, one delta from each of the previous K versions of the ref to
//! the new commit, so a host a few versions behind fetches one compact file instead of many
//! objects (libostree's pull picks a delta by itself when the summary lists one from a commit
//! the host has). Also the single-file deltas that bundles carry.
//!
//! Deltas are derived data: a failure here is reported but leaves the commit and ref in place.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_release::delta_reference::{Chunk, Kind, ObjectRef, MAX_REFERENCE};
use cairn_release::gio::prelude::*;
use cairn_release::glib::{self, translate::IntoGlib};
use cairn_release::metadata::CommitInfo;
use cairn_release::{gio, history, ostree};
use fn_error_context::context;
use serde::Serialize;
use sha2::Digest;

/// One delta written.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    /// The commit it starts from (`None`: from nothing, a full delta).
    pub from: Option<String>,
    /// Its version.
    pub from_version: Option<String>,
    /// The commit it reaches.
    pub to: String,
}

/// Writes deltas to `to` from each of its `count` nearest ancestors (those still in the
/// repository). Returns what was written.
#[context("Generating static deltas to {to}")]
pub fn generate_from_ancestors(repo: &ostree::Repo, to: &str, count: usize) -> Result<Vec<Delta>> {
    let ancestors: Vec<CommitInfo> = history::ref_history(repo, to)?
        .into_iter()
        .skip(1)
        .take(count)
        .collect();
    let mut out = Vec::new();
    for a in ancestors {
        generate(repo, Some(&a.commit), to, None)?;
        out.push(Delta {
            from: Some(a.commit),
            from_version: a.version,
            to: to.to_string(),
        });
    }
    Ok(out)
}

/// Writes one delta from `from` (or from nothing) to `to`: into the repository's `deltas/`,
/// or, with `file`, as one self-contained file (parts inline) for offline use.
#[context("Generating the static delta {} -> {to}", from.unwrap_or("(nothing)"))]
pub fn generate(
    repo: &ostree::Repo,
    from: Option<&str>,
    to: &str,
    file: Option<&Path>,
) -> Result<()> {
    let params = glib::VariantDict::new(None);
    if let Some(f) = file {
        // libostree reads it as a NUL-terminated bytestring (`^&ay`).
        let mut path = f.as_os_str().as_encoded_bytes().to_vec();
        path.push(0);
        params.insert_value("filename", &path.to_variant());
        params.insert_value("inline-parts", &true.to_variant());
        // Objects over libostree's default 4 MB would be left out as HTTP "fallbacks", which
        // an offline delta cannot fetch: libostree refuses to apply such a file.
        params.insert_value("min-fallback-size", &0u32.to_variant());
    }
    repo.static_delta_generate(
        ostree::StaticDeltaGenerateOpt::Major,
        from,
        to,
        None,
        Some(&params.end()),
        gio::Cancellable::NONE,
    )
    .context("libostree static delta generation")
}

/// What a host pulling the static delta `from` → `to` of the repository at `repo_path`
/// downloads: its superblock and parts, and the objects it leaves to be fetched one by one
/// (libostree's "fallbacks": objects over its `min-fallback-size`, 4 MB by default).
#[context("Measuring the static delta {from} -> {to}")]
pub fn download_size(repo: &ostree::Repo, repo_path: &Path, from: &str, to: &str) -> Result<u64> {
    let dir = path(repo_path, Some(from), to)?;
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("Listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("Listing {}", dir.display()))?;
        total += entry
            .metadata()
            .with_context(|| format!("Reading {}", entry.path().display()))?
            .len();
    }
    let superblock = dir.join("superblock");
    let bytes =
        std::fs::read(&superblock).with_context(|| format!("Reading {}", superblock.display()))?;
    let ty = variant_type("(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))")?;
    let v = glib::Variant::from_bytes_with_type(&glib::Bytes::from(&bytes), ty);
    for fallback in v.child_value(7).iter() {
        let objtype = match fallback.child_value(0).get::<u8>() {
            Some(1) => ostree::ObjectType::File,
            Some(2) => ostree::ObjectType::DirTree,
            Some(3) => ostree::ObjectType::DirMeta,
            other => anyhow::bail!("{}: a fallback of type {other:?}", superblock.display()),
        };
        let checksum = hex::encode(fallback.child_value(1).data());
        total += repo
            .query_object_storage_size(objtype, &checksum, gio::Cancellable::NONE)
            .with_context(|| format!("Sizing object {checksum}"))?;
    }
    Ok(total)
}

/// The deltas in the repository, as `(from, to)` commit checksums.
pub fn list(repo: &ostree::Repo) -> Result<Vec<(Option<String>, String)>> {
    let names = repo
        .list_static_delta_names(gio::Cancellable::NONE)
        .context("Listing static deltas")?;
    Ok(names
        .iter()
        .map(|n| match n.split_once('-') {
            Some((f, t)) => (Some(f.to_string()), t.to_string()),
            None => (None, n.to_string()),
        })
        .collect())
}

/// libostree's modified base64 of a hex checksum (`/` as `_`, no padding), used in delta paths.
fn mbase64(checksum: &str) -> Result<String> {
    use base64::Engine;
    let bytes = hex::decode(checksum).with_context(|| format!("{checksum:?} is not hex"))?;
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(bytes)
        .replace('/', "_"))
}

/// The directory of the delta `from` → `to` in the repository at `repo_path`.
pub fn path(repo_path: &Path, from: Option<&str>, to: &str) -> Result<std::path::PathBuf> {
    let name = match from {
        Some(f) => format!("{}-{}", mbase64(f)?, mbase64(to)?),
        None => mbase64(to)?,
    };
    let (head, rest) = name.split_at(2);
    Ok(repo_path.join("deltas").join(head).join(rest))
}

/// Removes every delta whose start or end commit is no longer in the repository; returns them.
#[context("Removing static deltas of removed commits")]
pub fn remove_dangling(
    repo: &ostree::Repo,
    repo_path: &Path,
) -> Result<Vec<(Option<String>, String)>> {
    let has = |c: &str| {
        repo.has_object(ostree::ObjectType::Commit, c, gio::Cancellable::NONE)
            .with_context(|| format!("Looking up commit {c}"))
    };
    let mut removed = Vec::new();
    for (from, to) in list(repo)? {
        let from_gone = match &from {
            Some(f) => !has(f)?,
            None => false,
        };
        if from_gone || !has(&to)? {
            let dir = path(repo_path, from.as_deref(), &to)?;
            std::fs::remove_dir_all(&dir).with_context(|| format!("Removing {}", dir.display()))?;
            removed.push((from, to));
        }
    }
    // The delta bundles beside the repository (`cairn_release::bundle::remote_path`).
    let bundles = repo_path.join(cairn_release::bundle::REMOTE_DIR);
    let entries = match std::fs::read_dir(&bundles) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e).with_context(|| format!("Listing {}", bundles.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("Listing {}", bundles.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((from, to)) = name
            .strip_suffix(".cairnbundle")
            .and_then(|n| n.split_once('-'))
        else {
            continue;
        };
        if !has(from)? || !has(to)? {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("Removing {}", entry.path().display()))?;
            removed.push((Some(from.to_string()), to.to_string()));
        }
    }
    Ok(removed)
}

/// A delta part's largest payload before a new part starts (libostree's default
/// `max-chunk-size`); an object larger than this gets a part of its own.
const MAX_PART_PAYLOAD: usize = 32 * 1000 * 1000;

/// Writes the delta from `from` (or from nothing) to `to` as one self-contained file, the way
/// [`generate`] with `file` does, but with every part stored uncompressed (compression type
/// 0, which libostree applies like its own lzma parts) and no bsdiff. libostree 2022.7 always
/// compresses parts with lzma on one core (its documented `compression` parameter is ignored),
/// which made a full bundle of the container host take minutes; the bundle compresses the
/// uncompressed parts with zstd on every core instead, against the objects the host has
/// ([`references`]) for a delta from a commit. Objects go in tree order (the order `tar`
/// would read them), so similar files sit close together for that compressor. Returns the
/// objects written and where each part ends in the file.
#[context("Writing the static delta {} -> {to} as {}", from.unwrap_or("(nothing)"), file.display())]
pub fn write_file(
    repo: &ostree::Repo,
    from: Option<&str>,
    to: &str,
    file: &Path,
) -> Result<DeltaFile> {
    write_parts(repo, from, to, file, MAX_PART_PAYLOAD)
}

/// [`write_file`] with parts of at most `max_part` payload bytes (but one object).
fn write_parts(
    repo: &ostree::Repo,
    from: Option<&str>,
    to: &str,
    file: &Path,
    max_part: usize,
) -> Result<DeltaFile> {
    let commit = repo
        .load_variant(ostree::ObjectType::Commit, to)
        .with_context(|| format!("Loading commit {to}"))?;
    let mut objects = tree_objects(repo, to, &commit)?;
    if let Some(f) = from {
        let have: std::collections::HashSet<String> = repo
            .traverse_commit(f, 0, gio::Cancellable::NONE)
            .with_context(|| format!("Listing the objects of {f}"))?
            .iter()
            .map(|o| o.checksum().to_string())
            .collect();
        objects.retain(|(_, checksum)| !have.contains(checksum));
    }
    let out =
        std::fs::File::create(file).with_context(|| format!("Creating {}", file.display()))?;
    let mut w = VariantWriter::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let io = |e: std::io::Error| anyhow::anyhow!("Writing {}: {e}", file.display());

    // The superblock `(a{sv}tayay(commit)aya(uayttay)a(yaytt))`, streamed: its metadata
    // dictionary holds every part inline, so it is as large as the tree.
    let mut entry_ends = Vec::new();
    let mut headers = Vec::new();
    let mut parts = Vec::new();
    let mut part = PartBuilder::default();
    for (objtype, checksum) in &objects {
        let (data, content) = load_object(repo, *objtype, checksum)?;
        if !part.objects.is_empty() && part.payload.len() + data.len() > max_part {
            let mut done = std::mem::take(&mut part);
            let objects = std::mem::take(&mut done.checksums);
            headers.push(
                write_part(&mut w, (from, to), headers.len(), done, &mut entry_ends).map_err(io)?,
            );
            parts.push(PartSpan {
                end: w.pos,
                objects,
            });
        }
        part.add(*objtype, checksum, &data, content)?;
    }
    if !part.objects.is_empty() {
        let objects = std::mem::take(&mut part.checksums);
        headers.push(
            write_part(&mut w, (from, to), headers.len(), part, &mut entry_ends).map_err(io)?,
        );
        parts.push(PartSpan {
            end: w.pos,
            objects,
        });
    }
    let endianness = if cfg!(target_endian = "little") {
        b'l'
    } else {
        b'B'
    };
    w.dict_entry("ostree.endianness", &[endianness], "y")
        .map_err(io)?;
    entry_ends.push(w.pos);
    w.framing_offsets(0, &entry_ends).map_err(io)?;
    let metadata_end = w.pos;

    // libostree stamps the time of generation; the commit's own time (big-endian in both)
    // keeps bundles reproducible.
    w.align(8).map_err(io)?;
    w.write(commit.child_value(5).data()).map_err(io)?;
    if let Some(f) = from {
        w.write(&hex::decode(f).with_context(|| format!("{f:?} is not hex"))?)
            .map_err(io)?;
    }
    let from_end = w.pos; // `from`: empty for a delta from nothing.
    w.write(&hex::decode(to).with_context(|| format!("{to:?} is not hex"))?)
        .map_err(io)?;
    let to_end = w.pos;
    w.align(8).map_err(io)?;
    w.write(commit.data()).map_err(io)?;
    let commit_end = w.pos;
    let deps_end = w.pos; // No prerequisite deltas.
    let headers = glib::Variant::array_from_iter_with_type(variant_type("(uayttay)")?, headers);
    w.align(8).map_err(io)?;
    w.write(headers.data()).map_err(io)?;
    let headers_end = w.pos;
    // The fallback objects, fetched over HTTP: none (an empty array is zero bytes).
    w.align(8).map_err(io)?;
    // A tuple's framing offsets are those of its variable-size members but the last, reversed.
    w.framing_offsets(
        0,
        &[
            headers_end,
            deps_end,
            commit_end,
            to_end,
            from_end,
            metadata_end,
        ],
    )
    .map_err(io)?;
    w.out.into_inner().map_err(|e| io(e.into_error()))?;
    if let Some(last) = parts.last_mut() {
        last.end = w.pos; // The rest of the superblock goes with the last part.
    }
    Ok(DeltaFile {
        objects: objects.into_iter().map(|(_, checksum)| checksum).collect(),
        parts,
        size: w.pos,
    })
}

/// What [`write_file`] wrote.
#[derive(Debug)]
pub struct DeltaFile {
    /// The objects it carries.
    pub objects: std::collections::HashSet<String>,
    /// Its parts in file order (none for an empty delta).
    pub parts: Vec<PartSpan>,
    /// Its bytes.
    pub size: u64,
}

/// Where one part of a [`DeltaFile`] ends, and the objects it carries in order.
#[derive(Debug)]
pub struct PartSpan {
    /// The file offset its entry ends at (the last part's: the file's end).
    pub end: u64,
    /// Checksums of its objects.
    pub objects: Vec<String>,
}

/// How the delta `delta` from `from` to `to` is compressed (`cairn_release::delta_reference`):
/// one chunk per part, each against the old versions of the part's new objects, in their
/// order, up to the reference's size limit. An object's old version is the dirtree or file
/// `from` has at its path, or, where `from` has nothing there, at a vanished path whose name
/// differs only in digits: a kernel's new module directory, a library whose version is in its
/// file name.
#[context("Choosing the objects of {from} the delta to {to} is compressed against")]
pub fn chunks(repo: &ostree::Repo, from: &str, to: &str, delta: &DeltaFile) -> Result<Vec<Chunk>> {
    let root = |c: &str| -> Result<String> {
        let v = repo
            .load_variant(ostree::ObjectType::Commit, c)
            .with_context(|| format!("Loading commit {c}"))?;
        Ok(hex::encode(v.child_value(6).data()))
    };
    let mut pairs = Pairs {
        repo,
        new: &delta.objects,
        old: std::collections::HashMap::new(),
    };
    pairs.walk(&root(from)?, &root(to)?)?;
    let mut start = 0;
    let mut out = Vec::new();
    for part in &delta.parts {
        let mut seen = std::collections::HashSet::new();
        let mut bytes = 0;
        let mut reference = Vec::new();
        for (old, size) in part.objects.iter().filter_map(|o| pairs.old.get(o)) {
            if bytes + size <= MAX_REFERENCE && seen.insert(&old.checksum) {
                bytes += size;
                reference.push(old.clone());
            }
        }
        out.push(Chunk {
            size: part.end - start,
            reference,
        });
        start = part.end;
    }
    if start < delta.size {
        // A delta without parts (a commit of the same tree) is its superblock alone.
        out.push(Chunk {
            size: delta.size - start,
            reference: Vec::new(),
        });
    }
    Ok(out)
}

/// The walk of [`chunks`]: each new object's old version and its size.
struct Pairs<'a> {
    repo: &'a ostree::Repo,
    new: &'a std::collections::HashSet<String>,
    old: std::collections::HashMap<String, (ObjectRef, u64)>,
}

impl Pairs<'_> {
    /// Compares the dirtrees `old` (of `from`) and `new` (of `to`) at one path.
    fn walk(&mut self, old: &str, new: &str) -> Result<()> {
        if old == new || !self.new.contains(new) || self.old.contains_key(new) {
            return Ok(());
        }
        let load = |sum: &str| {
            self.repo
                .load_variant(ostree::ObjectType::DirTree, sum)
                .with_context(|| format!("Loading dirtree {sum}"))
        };
        let (old_tree, new_tree) = (load(old)?, load(new)?);
        self.pair(new, Kind::Dirtree, old, old_tree.size() as u64);
        // `(a(say)a(sayay))`: files (name, checksum), then dirs (name, tree, meta).
        let entries = |v: &glib::Variant, i: usize| {
            v.child_value(i)
                .iter()
                .map(|e| {
                    (
                        e.child_value(0).str().unwrap_or_default().to_string(),
                        hex::encode(e.child_value(1).data()),
                    )
                })
                .collect::<Entries>()
        };
        let (old_files, new_files) = (entries(&old_tree, 0), entries(&new_tree, 0));
        for (sum, was) in counterparts(&old_files, &new_files) {
            if was != sum && self.new.contains(sum) {
                let (_, info, _) = self
                    .repo
                    .load_file(was, gio::Cancellable::NONE)
                    .with_context(|| format!("Loading file object {was}"))?;
                let size = u64::try_from(info.size()).unwrap_or(0);
                self.pair(sum, Kind::File, was, size);
            }
        }
        let (old_dirs, new_dirs) = (entries(&old_tree, 1), entries(&new_tree, 1));
        for (sum, was) in counterparts(&old_dirs, &new_dirs) {
            self.walk(was, sum)?;
        }
        Ok(())
    }

    fn pair(&mut self, new: &str, kind: Kind, old: &str, size: u64) {
        let old = ObjectRef {
            kind,
            checksum: old.to_string(),
        };
        self.old.entry(new.to_string()).or_insert((old, size));
    }
}

/// A dirtree's files or directories: name → checksum.
type Entries = std::collections::BTreeMap<String, String>;

/// For each entry of `new`, the checksum `old` has under the same name, or, when `old` has no
/// such name, under a name `new` lacks that is the same without its digits (the greatest such
/// name: likely the newest of several versions): pairs of (new checksum, old checksum).
fn counterparts<'a>(old: &'a Entries, new: &'a Entries) -> Vec<(&'a str, &'a str)> {
    let stem = |name: &str| -> String { name.chars().filter(|c| !c.is_ascii_digit()).collect() };
    let vanished: std::collections::HashMap<String, &str> = old
        .iter()
        .filter(|(name, _)| !new.contains_key(*name))
        .map(|(name, sum)| (stem(name), sum.as_str()))
        .collect();
    new.iter()
        .filter_map(|(name, sum)| {
            let was = old
                .get(name)
                .map(String::as_str)
                .or_else(|| vanished.get(&stem(name)).copied())?;
            Some((sum.as_str(), was))
        })
        .collect()
}

/// The objects of `to`'s tree (all but the commit, which the superblock carries), dirtree
/// and dirmeta objects first, then the files in path order, each once.
fn tree_objects(
    repo: &ostree::Repo,
    to: &str,
    commit: &glib::Variant,
) -> Result<Vec<(ostree::ObjectType, String)>> {
    use ostree::ObjectType::{DirMeta, DirTree, File};
    let mut seen = std::collections::HashSet::new();
    let mut meta = Vec::new();
    let mut files = Vec::new();
    // (dirtree, dirmeta) still to read.
    let mut stack = vec![(
        hex::encode(commit.child_value(6).data()),
        hex::encode(commit.child_value(7).data()),
    )];
    while let Some((tree, dirmeta)) = stack.pop() {
        if seen.insert((DirMeta, dirmeta.clone())) {
            meta.push((DirMeta, dirmeta));
        }
        if !seen.insert((DirTree, tree.clone())) {
            continue;
        }
        let v = repo
            .load_variant(DirTree, &tree)
            .with_context(|| format!("Loading dirtree {tree}"))?;
        // `(a(say)a(sayay))`: files (name, checksum), then dirs (name, tree, meta), by name.
        for f in v.child_value(0).iter() {
            let checksum = hex::encode(f.child_value(1).data());
            if seen.insert((File, checksum.clone())) {
                files.push((File, checksum));
            }
        }
        let dirs: Vec<_> = v.child_value(1).iter().collect();
        // Reversed onto the stack, so directories come off it in name order.
        for d in dirs.iter().rev() {
            stack.push((
                hex::encode(d.child_value(1).data()),
                hex::encode(d.child_value(2).data()),
            ));
        }
        meta.push((DirTree, tree));
    }
    // libostree's own walk must agree: a delta missing an object would fail only on a host.
    let reachable = repo
        .traverse_commit(to, 0, gio::Cancellable::NONE)
        .with_context(|| format!("Listing the objects of {to}"))?;
    if reachable.len() != meta.len() + files.len() + 1 {
        anyhow::bail!(
            "commit {to} reaches {} objects; its tree walk found {}",
            reachable.len(),
            meta.len() + files.len() + 1
        );
    }
    meta.extend(files);
    Ok(meta)
}

/// How a content object is recreated: its (uid, gid, mode) and xattrs.
struct Content {
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: glib::Variant,
}

/// An object's bytes as a delta carries them: a metadata object's variant, a file's
/// content or a symlink's target (with its [`Content`]).
fn load_object(
    repo: &ostree::Repo,
    objtype: ostree::ObjectType,
    checksum: &str,
) -> Result<(Vec<u8>, Option<Content>)> {
    if objtype != ostree::ObjectType::File {
        let v = repo
            .load_variant(objtype, checksum)
            .with_context(|| format!("Loading {objtype:?} object {checksum}"))?;
        return Ok((v.data().to_vec(), None));
    }
    let (stream, info, xattrs) = repo
        .load_file(checksum, gio::Cancellable::NONE)
        .with_context(|| format!("Loading file object {checksum}"))?;
    let content = Content {
        uid: info.attribute_uint32("unix::uid"),
        gid: info.attribute_uint32("unix::gid"),
        mode: info.attribute_uint32("unix::mode"),
        xattrs,
    };
    let data = match (info.file_type(), stream) {
        (gio::FileType::SymbolicLink, _) => info
            .symlink_target()
            .with_context(|| format!("Symlink object {checksum} has no target"))?
            .as_os_str()
            .as_encoded_bytes()
            .to_vec(),
        (gio::FileType::Regular, Some(stream)) => {
            let mut data = Vec::with_capacity(usize::try_from(info.size()).unwrap_or(0));
            std::io::Read::read_to_end(&mut stream.into_read(), &mut data)
                .with_context(|| format!("Reading file object {checksum}"))?;
            data
        }
        (t, _) => anyhow::bail!("file object {checksum} is a {t:?}, not a file or symlink"),
    };
    Ok((data, Some(content)))
}

/// One delta part being filled: `(a(uuu)aa(ayay)ayay)` (modes, xattrs, payload, operations)
/// and the objects it creates, in the order of its operations.
#[derive(Default)]
struct PartBuilder {
    modes: Vec<(u32, u32, u32)>,
    mode_index: std::collections::HashMap<(u32, u32, u32), u64>,
    xattrs: Vec<glib::Variant>,
    xattr_index: std::collections::HashMap<Vec<u8>, u64>,
    payload: Vec<u8>,
    ops: Vec<u8>,
    /// Object type byte + 32-byte checksum, per object.
    objects: Vec<u8>,
    /// The same checksums in hex.
    checksums: Vec<String>,
    /// Bytes of the objects it creates.
    uncompressed: u64,
}

/// libostree's "open, splice and close" operation: one object from one payload range.
const OP_OPEN_SPLICE_AND_CLOSE: u8 = b'S';

impl PartBuilder {
    fn add(
        &mut self,
        objtype: ostree::ObjectType,
        checksum: &str,
        data: &[u8],
        content: Option<Content>,
    ) -> Result<()> {
        let offset = self.payload.len() as u64;
        self.payload.extend_from_slice(data);
        self.uncompressed += data.len() as u64;
        self.objects.push(objtype.into_glib() as u8);
        self.objects
            .extend(hex::decode(checksum).with_context(|| format!("{checksum:?} is not hex"))?);
        self.checksums.push(checksum.to_string());
        self.ops.push(OP_OPEN_SPLICE_AND_CLOSE);
        if let Some(c) = content {
            // Stored big-endian, as libostree does.
            let mode = (c.uid.to_be(), c.gid.to_be(), c.mode.to_be());
            let next = self.modes.len() as u64;
            let mode_offset = *self.mode_index.entry(mode).or_insert_with(|| {
                self.modes.push(mode);
                next
            });
            let next = self.xattrs.len() as u64;
            let xattr_offset = *self
                .xattr_index
                .entry(c.xattrs.data().to_vec())
                .or_insert_with(|| {
                    self.xattrs.push(c.xattrs);
                    next
                });
            varint(&mut self.ops, mode_offset);
            varint(&mut self.ops, xattr_offset);
        }
        varint(&mut self.ops, data.len() as u64);
        varint(&mut self.ops, offset);
        Ok(())
    }
}

/// libostree's varint (LEB128: seven bits a byte, low first, the high bit for "more").
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn variant_type(s: &str) -> Result<&glib::VariantTy> {
    glib::VariantTy::new(s).map_err(|e| anyhow::anyhow!("variant type {s}: {e}"))
}

/// Writes `part` as the metadata entry `deltas/XX/REST/N` → `(yay)` (compression 0, then the
/// part) and returns its header `(uayttay)`.
fn write_part<W: Write>(
    w: &mut VariantWriter<W>,
    (from, to): (Option<&str>, &str),
    index: usize,
    part: PartBuilder,
    entry_ends: &mut Vec<u64>,
) -> std::io::Result<glib::Variant> {
    let xattr_ty = glib::VariantTy::new("a(ayay)").map_err(std::io::Error::other)?;
    let body = glib::Variant::tuple_from_iter([
        part.modes.to_variant(),
        glib::Variant::array_from_iter_with_type(xattr_ty, part.xattrs),
        glib::Variant::array_from_fixed_array(&part.payload),
        glib::Variant::array_from_fixed_array(&part.ops),
    ]);
    drop(part.payload);
    let mut yay = Vec::with_capacity(body.size() + 1);
    yay.push(0u8); // Compression type: none.
    yay.extend_from_slice(body.data());
    drop(body);
    let key = path(Path::new(""), from, to)
        .map_err(std::io::Error::other)?
        .join(index.to_string());
    let key = key.to_string_lossy();
    w.dict_entry(&key, &yay, "(yay)")?;
    entry_ends.push(w.pos);
    // libostree skips this checksum for inline parts; it is right all the same.
    let checksum = sha2::Sha256::digest(&yay);
    Ok(glib::Variant::tuple_from_iter([
        0u32.to_variant(), // The part format's version.
        glib::Variant::array_from_fixed_array(checksum.as_slice()),
        (yay.len() as u64).to_variant(),
        part.uncompressed.to_variant(),
        glib::Variant::array_from_fixed_array(&part.objects),
    ]))
}

/// Streams a GVariant in serialized form (so a superblock as large as the tree is never held
/// in memory): containers are written front to back and closed with their framing offsets.
struct VariantWriter<W: Write> {
    out: W,
    /// Bytes written so far: offsets are relative to the variant's start.
    pos: u64,
}

impl<W: Write> VariantWriter<W> {
    fn new(out: W) -> Self {
        Self { out, pos: 0 }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.out.write_all(data)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Pads with zeros to a multiple of `n` (every container here starts so aligned).
    fn align(&mut self, n: u64) -> std::io::Result<()> {
        let pad = (n - self.pos % n) % n;
        self.write(&[0u8; 8][..pad as usize])
    }

    /// Ends the container that started at `start` with the framing offsets `ends` (each
    /// relative to `start`), each as wide as the container's total size requires.
    fn framing_offsets(&mut self, start: u64, ends: &[u64]) -> std::io::Result<()> {
        let body = self.pos - start;
        let n = ends.len() as u64;
        let width = [1u64, 2, 4, 8]
            .into_iter()
            .find(|w| *w == 8 || body + n * w < (1u64 << (8 * w)))
            .unwrap_or(8);
        for e in ends {
            let bytes = (e - start).to_le_bytes();
            self.write(&bytes[..width as usize])?;
        }
        Ok(())
    }

    /// One `{sv}` entry of an `a{sv}` (8-aligned): the key, then a variant holding the
    /// serialized `value` of type `ty`, then the offset of the key's end.
    fn dict_entry(&mut self, key: &str, value: &[u8], ty: &str) -> std::io::Result<()> {
        self.align(8)?;
        let start = self.pos;
        self.write(key.as_bytes())?;
        self.write(&[0])?;
        let key_end = self.pos;
        self.align(8)?;
        self.write(value)?;
        self.write(&[0])?;
        self.write(ty.as_bytes())?;
        self.framing_offsets(start, &[key_end])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SUPERBLOCK: &str = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";

    fn commit(repo: &ostree::Repo, tree: &Path, parent: Option<&str>) -> String {
        crate::commit::commit(
            repo,
            &crate::commit::CommitRequest {
                tree,
                osref: "cairn/bookworm/x86_64/stable",
                parent,
                subject: "v",
                metadata: glib::VariantDict::new(None).end(),
                timestamp: 1,
                sign_key: None,
            },
            &gio::Cancellable::new(),
        )
        .unwrap()
    }

    fn superblock(file: &Path) -> glib::Variant {
        let bytes = std::fs::read(file).unwrap();
        let ty = glib::VariantTy::new(SUPERBLOCK).unwrap();
        glib::Variant::from_bytes_with_type(&glib::Bytes::from(&bytes), ty)
    }

    /// A delta from a commit carries only what that commit lacks, with the changed file's and
    /// directories' old versions as its reference; libostree applies it on a repository
    /// holding the starting commit. `remove_dangling` drops the delta bundle beside the
    /// repository once its starting commit is gone.
    #[test]
    fn deltas_from_a_commit_and_their_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let repo_path = dir.path().join("repo");
        let repo = crate::repo::open_or_create(&repo_path).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/share")).unwrap();
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(tree.join("usr/share/big"), &text).unwrap();
        std::fs::write(tree.join("usr/share/same"), "same\n").unwrap();
        let v0 = commit(&repo, &tree, None);
        std::fs::write(
            tree.join("usr/share/big"),
            text.replace("line 7\n", "line seven\n"),
        )
        .unwrap();
        std::fs::write(tree.join("usr/share/new"), "new\n").unwrap();
        let v1 = commit(&repo, &tree, Some(&v0));
        let file = dir.path().join("delta");
        let new = write_file(&repo, Some(&v0), &v1, &file).unwrap();
        // The root, usr and usr/share dirtrees, the changed file and the new one (the
        // dirmetas are unchanged).
        assert_eq!(new.objects.len(), 5, "{new:?}");
        let chunks = chunks(&repo, &v0, &v1, &new).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].size, std::fs::metadata(&file).unwrap().len());
        let kinds: Vec<Kind> = chunks[0].reference.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Dirtree, Kind::Dirtree, Kind::Dirtree, Kind::File]
        );
        let host_path = dir.path().join("host");
        let host = crate::repo::open_or_create(&host_path).unwrap();
        let out = std::process::Command::new("ostree")
            .arg(format!("--repo={}", host_path.display()))
            .arg("pull-local")
            .arg(&repo_path)
            .arg(&v0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        host.prepare_transaction(gio::Cancellable::NONE).unwrap();
        host.static_delta_execute_offline(
            &gio::File::for_path(&file),
            false,
            gio::Cancellable::NONE,
        )
        .unwrap();
        host.commit_transaction(gio::Cancellable::NONE).unwrap();
        let (_, state) = host.load_commit(&v1).unwrap();
        assert!(!state.contains(ostree::RepoCommitState::PARTIAL));

        let bundle = crate::bundle::write_remote_delta(
            &repo_path,
            "cairn/bookworm/x86_64/stable",
            &v0,
            &v1,
            None,
        )
        .unwrap();
        assert!(bundle.output.exists());
        assert_eq!(bundle.manifest.chunks, chunks);
        assert!(remove_dangling(&repo, &repo_path).unwrap().is_empty());
        repo.delete_object(ostree::ObjectType::Commit, &v0, gio::Cancellable::NONE)
            .unwrap();
        let removed = remove_dangling(&repo, &repo_path).unwrap();
        assert!(
            removed.contains(&(Some(v0.clone()), v1.clone())),
            "{removed:?}"
        );
        assert!(!bundle.output.exists());
    }

    #[test]
    fn counterparts_by_path_then_by_name_without_digits() {
        let entries = |names: &[(&str, &str)]| -> Entries {
            names
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect()
        };
        let old = entries(&[
            ("6.1.0-27-amd64", "k27"),
            ("libfoo.so.1.2.3", "foo3"),
            ("libfoo.so.1.2.2", "foo2"),
            ("same", "s0"),
            ("gone", "g"),
        ]);
        let new = entries(&[
            ("6.1.0-28-amd64", "k28"),
            ("libfoo.so.1.2.4", "foo4"),
            ("same", "s1"),
            ("added", "a"),
        ]);
        let mut pairs = counterparts(&old, &new);
        pairs.sort();
        assert_eq!(pairs, [("foo4", "foo3"), ("k28", "k27"), ("s1", "s0")]);
    }

    /// A delta in several parts is compressed chunk by chunk, each part's new files against
    /// their old versions, found across a renamed directory (a kernel's modules): the result
    /// is a small fraction of the new data, unpacks to the same delta, and libostree applies it.
    #[test]
    fn chunks_reach_old_versions_across_renamed_directories() {
        let dir = tempfile::tempdir().unwrap();
        let repo_path = dir.path().join("repo");
        let repo = crate::repo::open_or_create(&repo_path).unwrap();
        let tree = dir.path().join("tree");
        let noise = |seed: u64| -> Vec<u8> {
            let mut x = seed;
            (0..100_000)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect()
        };
        let modules = |version: &str| tree.join("usr/lib/modules").join(version);
        std::fs::create_dir_all(modules("6.1.0-27-amd64")).unwrap();
        for i in 0..8 {
            std::fs::write(modules("6.1.0-27-amd64").join(format!("m{i}.ko")), noise(i)).unwrap();
        }
        let v0 = commit(&repo, &tree, None);
        std::fs::rename(modules("6.1.0-27-amd64"), modules("6.1.0-28-amd64")).unwrap();
        for i in 0..8 {
            let mut data = noise(i);
            data[500] ^= 1;
            std::fs::write(modules("6.1.0-28-amd64").join(format!("m{i}.ko")), data).unwrap();
        }
        let v1 = commit(&repo, &tree, Some(&v0));
        let raw = dir.path().join("delta.unpacked");
        let delta = write_parts(&repo, Some(&v0), &v1, &raw, 250_000).unwrap();
        let chunks = chunks(&repo, &v0, &v1, &delta).unwrap();
        assert!(chunks.len() >= 3, "{chunks:?}");
        assert_eq!(
            chunks.iter().map(|c| c.size).sum::<u64>(),
            std::fs::metadata(&raw).unwrap().len()
        );
        // Every changed module's old version is in some chunk's reference, once.
        let files: Vec<_> = chunks
            .iter()
            .flat_map(|c| &c.reference)
            .filter(|r| r.kind == Kind::File)
            .collect();
        assert_eq!(files.len(), 8, "{chunks:?}");
        let packed = dir.path().join("delta");
        cairn_release::delta_reference::compress(&repo, &raw, &packed, &chunks).unwrap();
        let size = std::fs::metadata(&packed).unwrap().len();
        assert!(
            size < 100_000,
            "8 changed files of 100 KB packed into {size} bytes"
        );
        let back = dir.path().join("back");
        cairn_release::delta_reference::decompress(&repo, &packed, &back, &chunks).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&raw).unwrap());

        let host_path = dir.path().join("host");
        let host = crate::repo::open_or_create(&host_path).unwrap();
        let out = std::process::Command::new("ostree")
            .arg(format!("--repo={}", host_path.display()))
            .arg("pull-local")
            .arg(&repo_path)
            .arg(&v0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        host.prepare_transaction(gio::Cancellable::NONE).unwrap();
        host.static_delta_execute_offline(
            &gio::File::for_path(&back),
            false,
            gio::Cancellable::NONE,
        )
        .unwrap();
        host.commit_transaction(gio::Cancellable::NONE).unwrap();
        let (_, state) = host.load_commit(&v1).unwrap();
        assert!(!state.contains(ostree::RepoCommitState::PARTIAL));
    }

    /// A commit of the same tree: a delta without parts is one chunk, its superblock, and
    /// unpacks to the same bytes.
    #[test]
    fn a_delta_without_new_objects_is_one_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr")).unwrap();
        std::fs::write(tree.join("usr/a"), "a\n").unwrap();
        let v0 = commit(&repo, &tree, None);
        let v1 = commit(&repo, &tree, Some(&v0));
        let raw = dir.path().join("delta.unpacked");
        let delta = write_file(&repo, Some(&v0), &v1, &raw).unwrap();
        assert!(delta.parts.is_empty(), "{delta:?}");
        let chunks = chunks(&repo, &v0, &v1, &delta).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].size, std::fs::metadata(&raw).unwrap().len());
        let packed = dir.path().join("delta");
        cairn_release::delta_reference::compress(&repo, &raw, &packed, &chunks).unwrap();
        let back = dir.path().join("back");
        cairn_release::delta_reference::decompress(&repo, &packed, &back, &chunks).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&raw).unwrap());
    }

    /// A repository delta leaves a large object as a fallback: its download is the delta's
    /// files plus that object.
    #[test]
    fn a_delta_download_counts_its_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let repo_path = dir.path().join("repo");
        let repo = crate::repo::open_or_create(&repo_path).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr")).unwrap();
        std::fs::write(tree.join("usr/small"), "small\n").unwrap();
        let v0 = commit(&repo, &tree, None);
        let mut x = 1u64;
        let big: Vec<u8> = (0..5_000_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        std::fs::write(tree.join("usr/big"), &big).unwrap();
        std::fs::write(tree.join("usr/small"), "changed\n").unwrap();
        let v1 = commit(&repo, &tree, Some(&v0));
        generate(&repo, Some(&v0), &v1, None).unwrap();
        let files: u64 = std::fs::read_dir(path(&repo_path, Some(&v0), &v1).unwrap())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        let size = download_size(&repo, &repo_path, &v0, &v1).unwrap();
        assert!(files < 100_000, "the big file is not in the parts: {files}");
        assert!(size > files + 4_900_000, "{size} (files {files})");
    }

    #[test]
    fn file_deltas_carry_large_objects_inline() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr")).unwrap();
        let v0 = commit(&repo, &tree, None);
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(tree.join("usr/big"), &big).unwrap();
        let v1 = commit(&repo, &tree, Some(&v0));
        let file = dir.path().join("delta");
        generate(&repo, Some(&v0), &v1, Some(&file)).unwrap();
        assert_eq!(
            superblock(&file).child_value(7).n_children(),
            0,
            "no fallbacks"
        );
    }

    #[test]
    fn full_delta_file_is_a_valid_superblock_that_libostree_applies() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
        std::fs::create_dir_all(tree.join("usr/lib/empty")).unwrap();
        std::fs::write(tree.join("usr/bin/a"), "one\n").unwrap();
        std::fs::write(tree.join("usr/bin/same"), "one\n").unwrap();
        // Larger than a part: the delta needs several.
        let big: Vec<u8> = (0..MAX_PART_PAYLOAD + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(tree.join("usr/lib/big"), &big).unwrap();
        std::fs::write(tree.join("usr/lib/small"), "x".repeat(300)).unwrap();
        std::os::unix::fs::symlink("../lib/big", tree.join("usr/bin/link")).unwrap();
        let to = commit(&repo, &tree, None);
        let file = dir.path().join("delta");
        write_file(&repo, None, &to, &file).unwrap();

        let v = superblock(&file);
        assert!(v.is_normal_form());
        // Metadata and usr/bin; usr/lib/big alone; usr/lib/small.
        assert_eq!(v.child_value(6).n_children(), 3);

        let other = crate::repo::open_or_create(&dir.path().join("other")).unwrap();
        other.prepare_transaction(gio::Cancellable::NONE).unwrap();
        other
            .static_delta_execute_offline(
                &gio::File::for_path(&file),
                false,
                gio::Cancellable::NONE,
            )
            .unwrap();
        other.commit_transaction(gio::Cancellable::NONE).unwrap();
        let out = dir.path().join("out");
        let st = std::process::Command::new("ostree")
            .arg(format!("--repo={}", dir.path().join("other").display()))
            .args(["checkout", "-U", &to])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read(out.join("usr/lib/big")).unwrap(), big);
        assert_eq!(
            std::fs::read_to_string(out.join("usr/bin/a")).unwrap(),
            "one\n"
        );
        assert_eq!(
            std::fs::read_link(out.join("usr/bin/link")).unwrap(),
            Path::new("../lib/big")
        );
        assert!(out.join("usr/lib/empty").is_dir());
    }
}
