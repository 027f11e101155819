//! A delta bundle's static delta, compressed against what the host already has.
//!
//! A one-package change rewrites whole directory objects (a dirtree lists every entry's
//! name and two 32-byte checksums: /usr/bin's changes when htop is added) and whole files
//! that packages share (the dpkg database): ~130 KB of new dirtrees that no compressor can
//! shrink on their own, since they are mostly random checksums, and files that differ from
//! the old ones in a few lines. The host has the old version of each, in the commit the
//! bundle starts from. So the composer lists those old objects — the starting commit's
//! dirtree and file at each path where the target has a different one, or at a vanished path
//! whose name differs only in digits (a kernel's new module directory) — and compresses the
//! delta with zstd using their bytes, concatenated in order, as a reference prefix (the
//! mechanism of `zstd --patch-from`); the host reads the same objects from its repository to
//! decompress. A large delta is compressed in [`Chunk`]s, one zstd frame each with the old
//! versions of its own new objects, so that every part of it reaches its reference within
//! the window. The lists are in the signed manifest; the compressed delta's sha256 is checked
//! before decompressing, and each frame's checksum and size and libostree's check of every
//! object it writes catch a host whose objects differ.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A reference object's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A dirtree: its variant's bytes.
    Dirtree,
    /// A content object: a regular file's content or a symlink's target.
    File,
}

/// One object of the reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its checksum.
    pub checksum: String,
}

/// A reference no larger than this (bytes): the host holds it in memory while it
/// decompresses, beside the window.
pub const MAX_REFERENCE: u64 = 64 << 20;

/// The largest zstd window (log2): 128 MiB, the most a zstd decoder accepts by default and
/// what the bundle's own stream uses. The host's decoder allocates at most that (less for a
/// smaller delta: the frame says its size); the composer's level-19 encoder on every core
/// needs several times it, which a larger window made over a gigabyte for a kernel update.
const MAX_WINDOW_LOG: u32 = 27;

/// The reference: the bytes of `refs` in `repo`, concatenated in order.
fn reference_bytes(repo: &ostree::Repo, refs: &[ObjectRef]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in refs {
        match r.kind {
            Kind::Dirtree => {
                let v = repo
                    .load_variant(ostree::ObjectType::DirTree, &r.checksum)
                    .with_context(|| format!("Loading dirtree {}", r.checksum))?;
                out.extend_from_slice(v.data());
            }
            Kind::File => file_bytes(repo, &r.checksum, &mut out)?,
        }
        if out.len() as u64 > MAX_REFERENCE {
            bail!("the delta's reference is over {MAX_REFERENCE} bytes");
        }
    }
    Ok(out)
}

/// Appends a content object's bytes (a regular file's content, a symlink's target).
fn file_bytes(repo: &ostree::Repo, checksum: &str, out: &mut Vec<u8>) -> Result<()> {
    let (stream, info, _) = repo
        .load_file(checksum, gio::Cancellable::NONE)
        .with_context(|| format!("Loading file object {checksum}"))?;
    match (info.file_type(), stream) {
        (gio::FileType::SymbolicLink, _) => {
            let target = info
                .symlink_target()
                .with_context(|| format!("Symlink object {checksum} has no target"))?;
            out.extend_from_slice(target.as_os_str().as_encoded_bytes());
        }
        (gio::FileType::Regular, Some(stream)) => {
            use gio::prelude::*;
            stream
                .into_read()
                .read_to_end(out)
                .with_context(|| format!("Reading file object {checksum}"))?;
        }
        (t, _) => bail!("file object {checksum} is a {t:?}, not a file or symlink"),
    }
    Ok(())
}

/// One stretch of the delta compressed on its own (a zstd frame), against its own reference:
/// the objects of `from` that the new objects in it replace. A delta larger than a zstd window
/// (a kernel update's modules) is cut into chunks, so every chunk's new objects reach their
/// old versions, which one reference for the whole delta could not: past the window its
/// start is out of reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunk {
    /// Its bytes, uncompressed.
    pub size: u64,
    /// The objects it is compressed against, in order (at most [`MAX_REFERENCE`] bytes).
    pub reference: Vec<ObjectRef>,
}

/// The zstd window (log2) that covers the reference and the data, so that every byte of the
/// reference stays within reach, up to [`MAX_WINDOW_LOG`] (past that, data far into a large
/// chunk no longer reaches the reference's start, and is compressed on its own).
fn window_log(reference: usize, data: u64) -> u32 {
    let total = reference as u64 + data;
    (64 - total.leading_zeros()).clamp(20, MAX_WINDOW_LOG)
}

/// The most chunks compressed at once: each takes its data, its reference and a level-19
/// encoder with a window of up to 128 MiB (a few hundred MiB together).
const MAX_WORKERS: usize = 4;

/// Compresses `src` into `dst`, one zstd frame per chunk (their sizes add up to `src`'s),
/// each with its reference's objects in `repo` as zstd's reference prefix, at level 19 with
/// the frame's checksum. Chunks are compressed side by side, one per core (zstd's own threads
/// would not help: at level 19 one of its jobs is larger than a chunk).
pub fn compress(repo: &ostree::Repo, src: &Path, dst: &Path, chunks: &[Chunk]) -> Result<()> {
    let size = std::fs::metadata(src)
        .with_context(|| format!("Reading {}", src.display()))?
        .len();
    let total: u64 = chunks.iter().map(|c| c.size).sum();
    if total != size {
        bail!(
            "the chunks of {} add up to {total} bytes; it has {size}",
            src.display()
        );
    }
    let mut input = std::io::BufReader::new(
        std::fs::File::open(src).with_context(|| format!("Opening {}", src.display()))?,
    );
    let mut out =
        std::fs::File::create(dst).with_context(|| format!("Creating {}", dst.display()))?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS);
    for (batch_index, batch) in chunks.chunks(workers).enumerate() {
        // The repository is read here (its handle stays on this thread); the encoders run on
        // their own.
        let mut jobs = Vec::new();
        for chunk in batch {
            let reference = reference_bytes(repo, &chunk.reference)?;
            let mut data = Vec::new();
            (&mut input)
                .take(chunk.size)
                .read_to_end(&mut data)
                .with_context(|| format!("Reading {}", src.display()))?;
            jobs.push((data, reference));
        }
        let packed: Vec<std::io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .iter()
                .map(|(data, reference)| scope.spawn(move || compress_chunk(data, reference)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("the encoder panicked")))
                })
                .collect()
        });
        for (k, frame) in packed.into_iter().enumerate() {
            let i = batch_index * workers + k;
            let frame =
                frame.with_context(|| format!("Compressing chunk {i} of {}", src.display()))?;
            out.write_all(&frame)
                .with_context(|| format!("Writing {}", dst.display()))?;
        }
    }
    out.sync_all()
        .with_context(|| format!("Writing {}", dst.display()))
}

/// One chunk's zstd frame.
fn compress_chunk(data: &[u8], reference: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 19, reference)?;
    enc.window_log(window_log(reference.len(), data.len() as u64))?;
    // The frame records its size, so the host's decoder sizes its buffer to it.
    enc.set_pledged_src_size(Some(data.len() as u64))?;
    enc.long_distance_matching(true)?;
    enc.include_checksum(true)?;
    enc.write_all(data)?;
    enc.finish()
}

/// Decompresses `src` (from [`compress`]) into `dst` with the same chunks, reading their
/// references from `repo`; each chunk must come back at its size, with nothing after the last.
pub fn decompress(repo: &ostree::Repo, src: &Path, dst: &Path, chunks: &[Chunk]) -> Result<()> {
    let frames: Vec<_> = chunks
        .iter()
        .map(|c| (Some(c.size), c.reference.as_slice()))
        .collect();
    decompress_frames(repo, src, dst, &frames)
}

/// Decompresses a delta of format 2: one frame against one reference, of a size only the
/// frame records.
pub fn decompress_whole(
    repo: &ostree::Repo,
    src: &Path,
    dst: &Path,
    reference: &[ObjectRef],
) -> Result<()> {
    decompress_frames(repo, src, dst, &[(None, reference)])
}

fn decompress_frames(
    repo: &ostree::Repo,
    src: &Path,
    dst: &Path,
    frames: &[(Option<u64>, &[ObjectRef])],
) -> Result<()> {
    let what = || {
        format!(
            "Decompressing {} against the host's objects (a host whose objects of the starting \
             commit differ from the composer's cannot: run `ostree fsck`)",
            src.display()
        )
    };
    let mut input = std::io::BufReader::new(
        std::fs::File::open(src).with_context(|| format!("Opening {}", src.display()))?,
    );
    let mut out =
        std::fs::File::create(dst).with_context(|| format!("Creating {}", dst.display()))?;
    for (i, (size, refs)) in frames.iter().enumerate() {
        let reference = reference_bytes(repo, refs)?;
        let mut dec = zstd::stream::read::Decoder::with_ref_prefix(&mut input, &reference)
            .and_then(|mut d| {
                d.window_log_max(MAX_WINDOW_LOG)?;
                Ok(d.single_frame())
            })
            .with_context(what)?;
        let got = std::io::copy(&mut dec, &mut out).with_context(what)?;
        if let Some(want) = size {
            if got != *want {
                bail!(
                    "{}: chunk {i} has {got} bytes; the manifest says {want}",
                    what()
                );
            }
        }
    }
    if !input.fill_buf().with_context(what)?.is_empty() {
        bail!("{}: bytes follow the last chunk", what());
    }
    out.flush()
        .with_context(|| format!("Writing {}", dst.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn windows_cover_reference_and_data() {
        assert_eq!(window_log(0, 0), 20);
        assert_eq!(window_log(1 << 24, 1 << 24), 26);
        assert_eq!(window_log(usize::MAX / 2, u64::MAX / 2), MAX_WINDOW_LOG);
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect()
    }

    /// A repository holding `files` as content objects, and their checksums.
    fn repo_with(dir: &Path, files: &[&[u8]]) -> (ostree::Repo, Vec<ObjectRef>) {
        let repo = ostree::Repo::new(&gio::File::for_path(dir.join("repo")));
        repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
        let refs = files
            .iter()
            .map(|data| ObjectRef {
                kind: Kind::File,
                checksum: repo
                    .write_regfile_inline(None, 0, 0, 0o100644, None, data, gio::Cancellable::NONE)
                    .unwrap()
                    .to_string(),
            })
            .collect();
        repo.commit_transaction(gio::Cancellable::NONE).unwrap();
        (repo, refs)
    }

    /// Two chunks, each a changed copy of its own reference object: each compresses to a few
    /// bytes, the whole comes back, and fails to come back with another reference or a
    /// wrong chunk size.
    #[test]
    fn chunks_compressed_against_their_references() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (noise(300_000, 7), noise(200_000, 8));
        let (repo, refs) = repo_with(dir.path(), &[&one, &two, b"something else"]);
        let mut first = one.clone();
        first[1000] ^= 1;
        let mut second = two.clone();
        second.extend_from_slice(b"a new tail");
        let src = dir.path().join("src");
        std::fs::write(&src, [first.as_slice(), second.as_slice()].concat()).unwrap();
        let chunks = vec![
            Chunk {
                size: first.len() as u64,
                reference: vec![refs[0].clone()],
            },
            Chunk {
                size: second.len() as u64,
                reference: vec![refs[1].clone()],
            },
        ];
        let packed = dir.path().join("packed");
        compress(&repo, &src, &packed, &chunks).unwrap();
        let size = std::fs::metadata(&packed).unwrap().len();
        assert!(size < 2000, "{size} bytes");
        let back = dir.path().join("back");
        decompress(&repo, &packed, &back, &chunks).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());

        let mut other = chunks.clone();
        other[1].reference = vec![refs[2].clone()];
        let e = decompress(&repo, &packed, &back, &other).unwrap_err();
        assert!(
            format!("{e:#}").contains("against the host's objects"),
            "{e:#}"
        );
        let mut other = chunks.clone();
        other[0].size += 1;
        let e = decompress(&repo, &packed, &back, &other).unwrap_err();
        assert!(format!("{e:#}").contains("chunk 0 has"), "{e:#}");
        let e = decompress(&repo, &packed, &back, &chunks[..1]).unwrap_err();
        assert!(format!("{e:#}").contains("follow the last chunk"), "{e:#}");
        let e = compress(&repo, &src, &packed, &chunks[..1]).unwrap_err();
        assert!(format!("{e:#}").contains("add up to"), "{e:#}");
    }

    /// A delta of format 2 is one frame against one reference: what a single chunk is.
    #[test]
    fn one_reference_for_the_whole_delta_as_format_2_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = noise(300_000, 9);
        let (repo, refs) = repo_with(dir.path(), &[&one]);
        let mut data = one.clone();
        data[7] ^= 1;
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        let chunk = Chunk {
            size: data.len() as u64,
            reference: refs.clone(),
        };
        let packed = dir.path().join("packed");
        compress(&repo, &src, &packed, &[chunk]).unwrap();
        let back = dir.path().join("back");
        decompress_whole(&repo, &packed, &back, &refs).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), data);
    }
}
