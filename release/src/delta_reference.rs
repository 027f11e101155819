//! A delta bundle's static delta, compressed against what the host already has.
//!
//! A one-package change rewrites whole directory objects (a dirtree lists every entry's
//! name and two 32-byte checksums: /usr/bin's changes when htop is added) and whole files
//! that packages share (the dpkg database): ~130 KB of new dirtrees that no compressor can
//! shrink on their own, since they are mostly random checksums, and files that differ from
//! the old ones in a few lines. The host has the old version of each, in the commit the
//! bundle starts from. So the composer lists those old objects — the starting commit's
//! dirtree and file at each path where the target has a different one — and compresses the
//! delta with zstd using their bytes, concatenated in that order, as a reference prefix (the
//! mechanism of `zstd --patch-from`); the host reads the same objects from its repository to
//! decompress. The list is in the signed manifest; the compressed delta's sha256 is checked
//! before decompressing, and the zstd frame's checksum and libostree's check of every object
//! it writes catch a host whose objects differ.

use std::io::{Read, Write};
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
pub fn reference_bytes(repo: &ostree::Repo, refs: &[ObjectRef]) -> Result<Vec<u8>> {
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

/// The zstd window (log2) that covers the reference and the data, so that every byte of the
/// reference stays within reach, up to [`MAX_WINDOW_LOG`] (past that, data far into a large
/// delta no longer reaches the reference's start, and is compressed on its own).
fn window_log(reference: usize, data: u64) -> u32 {
    let total = reference as u64 + data;
    (64 - total.leading_zeros()).clamp(20, MAX_WINDOW_LOG)
}

/// Compresses `src` into `dst` with `reference` as zstd's reference prefix, at level 19 on
/// every core, with the frame's checksum.
pub fn compress(src: &Path, dst: &Path, reference: &[u8]) -> Result<()> {
    let size = std::fs::metadata(src)
        .with_context(|| format!("Reading {}", src.display()))?
        .len();
    let mut input =
        std::fs::File::open(src).with_context(|| format!("Opening {}", src.display()))?;
    let out = std::fs::File::create(dst).with_context(|| format!("Creating {}", dst.display()))?;
    let result = (|| -> std::io::Result<()> {
        let mut enc = zstd::stream::write::Encoder::with_ref_prefix(out, 19, reference)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        enc.multithread(u32::try_from(threads).unwrap_or(1))?;
        enc.window_log(window_log(reference.len(), size))?;
        // The frame records its size, so the host's decoder sizes its buffer to it.
        enc.set_pledged_src_size(Some(size))?;
        enc.long_distance_matching(true)?;
        enc.include_checksum(true)?;
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?.sync_all()
    })();
    result.with_context(|| format!("Compressing {} into {}", src.display(), dst.display()))
}

/// Decompresses `src` (from [`compress`]) into `dst` with the same `reference`.
pub fn decompress(src: &Path, dst: &Path, reference: &[u8]) -> Result<()> {
    let input = std::fs::File::open(src).with_context(|| format!("Opening {}", src.display()))?;
    let mut out =
        std::fs::File::create(dst).with_context(|| format!("Creating {}", dst.display()))?;
    let result = (|| -> std::io::Result<()> {
        let mut dec = zstd::stream::read::Decoder::with_ref_prefix(
            std::io::BufReader::new(input),
            reference,
        )?;
        dec.window_log_max(MAX_WINDOW_LOG)?;
        std::io::copy(&mut dec, &mut out)?;
        out.flush()
    })();
    result.with_context(|| {
        format!(
            "Decompressing {} against the host's objects (a host whose objects of the starting \
             commit differ from the composer's cannot: run `ostree fsck`)",
            src.display()
        )
    })
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

    /// Data that differs from the reference in a few bytes compresses to a few bytes, comes
    /// back whole with the reference, and fails to come back with another one.
    #[test]
    fn compressed_against_a_reference() {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 7u64;
        let reference: Vec<u8> = (0..300_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        let mut data = reference.clone();
        data[1000] ^= 1;
        data.extend_from_slice(b"a new tail");
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        let packed = dir.path().join("packed");
        compress(&src, &packed, &reference).unwrap();
        let size = std::fs::metadata(&packed).unwrap().len();
        assert!(size < 1000, "{size} bytes");
        let back = dir.path().join("back");
        decompress(&packed, &back, &reference).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), data);
        let mut other = reference.clone();
        other[5000] ^= 1;
        let e = decompress(&packed, &back, &other).unwrap_err();
        assert!(
            format!("{e:#}").contains("against the host's objects"),
            "{e:#}"
        );
    }
}
