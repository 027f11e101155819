//! The offline bundle format: what `cairn-compose bundle` writes and `cairn upgrade --bundle`
//! reads. Both sides go through this module so they agree.
//!
//! A bundle is a zstd-compressed tar of exactly these regular files:
//! - [`MANIFEST`]: JSON ([`Manifest`]): the ref, from/to commits and versions, and the size and
//!   sha256 of every other member;
//! - [`MANIFEST_SIG`]: the 64-byte ed25519 signature of the manifest's bytes (optional: absent
//!   in an unsigned bundle);
//! - [`COMMIT`]: the target commit object's bytes (sha256 = the target checksum);
//! - [`COMMITMETA`]: its detached metadata (`a{sv}`, holding the commit's own signatures);
//! - [`DELTA`]: a self-contained libostree static delta (superblock with inline parts) from
//!   `from` (or from nothing) to `to`. In format 3 (a manifest with `chunks`), that delta
//!   compressed with zstd, chunk by chunk, each against the objects of `from` the manifest
//!   lists for it ([`crate::delta_reference`]): the host decompresses it with its own copies
//!   of them. Format 2 (one `reference` for the whole delta) is still read.
//!
//! [`open`] extracts into a directory of the caller's and checks everything (member set,
//! sizes, sha256, manifest signature, commit checksum) before the caller writes anything
//! into a repository. It does not apply the delta.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::delta_reference::{Chunk, ObjectRef};
use crate::glib;
use crate::metadata::CommitInfo;
use crate::signature::{PublicKey, SecretKey, TrustedKeys, SIGNATURE_LEN};

/// Linux's errno for a full filesystem.
const ENOSPC: i32 = 28;

/// The manifest member.
pub const MANIFEST: &str = "manifest.json";
/// The manifest signature member.
pub const MANIFEST_SIG: &str = "manifest.json.sig";
/// The commit object member.
pub const COMMIT: &str = "commit";
/// The detached metadata member.
pub const COMMITMETA: &str = "commitmeta";
/// The static delta member.
pub const DELTA: &str = "delta";
/// The newest format version, written when the delta is compressed in chunks against the
/// host's objects; readers understand it and every older one.
pub const FORMAT: u32 = 3;
/// The format of a delta compressed against one reference (written by earlier composers).
const FORMAT_ONE_REFERENCE: u32 = 2;
/// The format of a bundle without a reference.
const FORMAT_PLAIN: u32 = 1;

/// Where a repository keeps the delta bundles hosts may fetch instead of pulling objects
/// (relative to the repository's URL), one per (from, to) pair the composer wrote a static
/// delta for.
pub const REMOTE_DIR: &str = "cairn-deltas";

/// The path of the delta bundle `from` → `to`, relative to the repository.
pub fn remote_path(from: &str, to: &str) -> String {
    format!("{REMOTE_DIR}/{from}-{to}.cairnbundle")
}

const MEMBERS: [&str; 5] = [MANIFEST, MANIFEST_SIG, COMMIT, COMMITMETA, DELTA];
/// Members the manifest lists (all but itself and its signature).
pub const PAYLOAD: [&str; 3] = [COMMIT, COMMITMETA, DELTA];

/// Size and sha256 of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Bytes.
    pub size: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// What a bundle says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The ref the target commit belongs to.
    #[serde(rename = "ref")]
    pub osref: String,
    /// The commit a host must have (`None`: a full bundle).
    pub from: Option<String>,
    /// Its version.
    pub from_version: Option<String>,
    /// The target commit.
    pub to: String,
    /// Its version.
    pub to_version: Option<String>,
    /// The payload members.
    pub members: BTreeMap<String, Member>,
    /// How the delta is compressed against the objects of `from` (format 3; empty: it is not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Chunk>,
    /// Format 2's one reference for the whole delta (read, never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference: Vec<ObjectRef>,
}

/// A checked, extracted bundle.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The manifest.
    pub manifest: Manifest,
    /// The key that signed the manifest, if it was signed by a trusted key.
    pub signed_by: Option<PublicKey>,
    /// Directory holding the members.
    pub dir: PathBuf,
}

impl Opened {
    /// Path of a member.
    pub fn member(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The target commit object's bytes.
    pub fn commit_bytes(&self) -> Result<Vec<u8>> {
        read(&self.member(COMMIT))
    }

    /// The target commit's detached metadata bytes.
    pub fn detached_bytes(&self) -> Result<Vec<u8>> {
        read(&self.member(COMMITMETA))
    }

    /// What the target commit says about itself.
    pub fn commit_info(&self) -> Result<CommitInfo> {
        let bytes = self.commit_bytes()?;
        let v = glib::Variant::from_bytes_with_type(
            &glib::Bytes::from(&bytes),
            glib::VariantTy::new("(a{sv}aya(say)sstayay)")
                .map_err(|e| anyhow::anyhow!("commit variant type: {e}"))?,
        );
        if !v.is_normal_form() {
            bail!("the bundle's commit object is not a valid commit");
        }
        CommitInfo::from_variant(&self.manifest.to, &v)
    }
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("Reading {}", p.display()))
}

/// sha256 and size of a file.
pub fn hash_file(path: &Path) -> Result<Member> {
    let mut f = std::fs::File::open(path).with_context(|| format!("Opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("Reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(Member {
        size,
        sha256: hex::encode(h.finalize()),
    })
}

/// Writes a bundle to `output` from payload files in `dir` (named as [`PAYLOAD`]), signing
/// the manifest with `key`. Writes a temp file beside `output` and renames it.
pub fn write(
    output: &Path,
    dir: &Path,
    mut manifest: Manifest,
    key: Option<&SecretKey>,
) -> Result<Manifest> {
    if !manifest.reference.is_empty() {
        bail!("bundles are written in format {FORMAT}: a reference comes in chunks");
    }
    manifest.format = if manifest.chunks.is_empty() {
        FORMAT_PLAIN
    } else {
        FORMAT
    };
    manifest.members.clear();
    for name in PAYLOAD {
        manifest
            .members
            .insert(name.to_string(), hash_file(&dir.join(name))?);
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("Creating a temp file in {}", parent.display()))?;
    {
        let enc = encoder(tmp.as_file()).context("Starting zstd")?;
        let mut tar = tar::Builder::new(enc);
        let mut add = |name: &str, data: &mut dyn Read, size: u64| -> Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, data)
                .with_context(|| format!("Adding {name} to the bundle"))
        };
        add(
            MANIFEST,
            &mut manifest_bytes.as_slice(),
            manifest_bytes.len() as u64,
        )?;
        if let Some(k) = key {
            let sig = k.sign(&manifest_bytes);
            add(MANIFEST_SIG, &mut sig.as_slice(), sig.len() as u64)?;
        }
        for name in PAYLOAD {
            let p = dir.join(name);
            let mut f =
                std::fs::File::open(&p).with_context(|| format!("Opening {}", p.display()))?;
            add(name, &mut f, manifest.members[name].size)?;
        }
        let enc = tar.into_inner().context("Finishing the tar stream")?;
        let mut f = enc.finish().context("Finishing the zstd stream")?;
        f.flush()?;
        f.sync_all()?;
    }
    // Readable by all, as the repository's objects are (a web server serves delta bundles):
    // a bundle holds nothing secret, and the temp file starts as 0600.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("Setting the mode of {}", output.display()))?;
    }
    tmp.persist(output)
        .with_context(|| format!("Writing {}", output.display()))?;
    Ok(manifest)
}

/// zstd level 19 on every core, with a 128 MiB window and long-distance matching, as
/// `zstd -T0 -19 --long` would: a full bundle's delta is uncompressed (the composer leaves the
/// compressing to this stream), and a window of 2^27 is the most a decoder accepts by default,
/// so bundles still open with [`open`] as before.
fn encoder<W: Write>(out: W) -> std::io::Result<zstd::Encoder<'static, W>> {
    let mut enc = zstd::Encoder::new(out, 19)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    enc.multithread(u32::try_from(threads).unwrap_or(1))?;
    enc.window_log(27)?;
    enc.long_distance_matching(true)?;
    Ok(enc)
}

impl Opened {
    /// Bytes of the static delta as libostree applies it (`None`: format 2, whose delta only
    /// says its size once decompressed). Its parts are uncompressed, so this is also about what
    /// the objects it carries take.
    pub fn unpacked_size(&self) -> Option<u64> {
        if !self.manifest.chunks.is_empty() {
            Some(self.manifest.chunks.iter().map(|c| c.size).sum())
        } else if self.manifest.reference.is_empty() {
            self.manifest.members.get(DELTA).map(|m| m.size)
        } else {
            None
        }
    }

    /// Whether [`Opened::delta_file`] writes the delta decompressed beside the members.
    pub fn unpacks(&self) -> bool {
        !self.manifest.chunks.is_empty() || !self.manifest.reference.is_empty()
    }

    /// The static delta as libostree applies it: the [`DELTA`] member itself, or, when it is
    /// compressed against the host's objects, decompressed with them from `repo` (which holds
    /// the commit the bundle starts from) into the bundle's directory.
    pub fn delta_file(&self, repo: &ostree::Repo) -> Result<PathBuf> {
        let packed = self.member(DELTA);
        let out = self.dir.join("delta.unpacked");
        let from = self.manifest.from.as_deref().unwrap_or("(nothing)");
        let what = || format!("Unpacking the bundle's delta against the objects of {from}");
        if !self.manifest.chunks.is_empty() {
            crate::delta_reference::decompress(repo, &packed, &out, &self.manifest.chunks)
                .with_context(what)?;
        } else if !self.manifest.reference.is_empty() {
            crate::delta_reference::decompress_whole(repo, &packed, &out, &self.manifest.reference)
                .with_context(what)?;
        } else {
            return Ok(packed);
        }
        Ok(out)
    }
}

/// Extracts `bundle` into `dir` (an empty directory of the caller's) and checks it: only known
/// regular-file members, each once; the manifest's format; the manifest signature (required
/// when `require_signature`; checked against `trusted`); every payload member's size and
/// sha256; the commit object's sha256 against the manifest's target. Nothing else is written.
pub fn open(
    bundle: &Path,
    dir: &Path,
    trusted: &TrustedKeys,
    require_signature: bool,
) -> Result<Opened> {
    let what = || format!("bundle {}", bundle.display());
    extract(bundle, dir).map_err(|e| {
        let full = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                == Some(ENOSPC)
        });
        if full {
            e.context(format!(
                "No room to extract {} into {}: free space on its filesystem",
                what(),
                dir.display()
            ))
        } else {
            e.context(format!(
                "{} is truncated or corrupt (not a complete zstd-compressed tar)",
                what()
            ))
        }
    })?;
    let manifest_bytes =
        read(&dir.join(MANIFEST)).with_context(|| format!("{} has no {MANIFEST}", what()))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("{}: {MANIFEST} is not a valid bundle manifest", what()))?;
    let (chunks, reference) = (!manifest.chunks.is_empty(), !manifest.reference.is_empty());
    let fits = match manifest.format {
        FORMAT_PLAIN => !chunks && !reference,
        FORMAT_ONE_REFERENCE => !chunks && reference,
        FORMAT => chunks && !reference,
        _ => false,
    };
    if !fits {
        bail!(
            "{}: format {} is not understood (this cairn reads formats {FORMAT_PLAIN} to \
             {FORMAT}: {FORMAT_PLAIN} without a reference, {FORMAT_ONE_REFERENCE} with one \
             `reference`, {FORMAT} with `chunks`)",
            what(),
            manifest.format
        );
    }
    let sig_path = dir.join(MANIFEST_SIG);
    let signed_by = if sig_path.exists() {
        let sig = read(&sig_path)?;
        if sig.len() != SIGNATURE_LEN {
            bail!("{}: {MANIFEST_SIG} is not a 64-byte signature", what());
        }
        match trusted.find_signer(&manifest_bytes, &[sig]) {
            Some(k) => Some(k.clone()),
            None if require_signature => bail!(
                "{}: its manifest signature is not valid for a trusted key ({}): signed by \
                 another key, or altered",
                what(),
                trusted.describe()
            ),
            None => None,
        }
    } else if require_signature {
        bail!("{} is not signed (no {MANIFEST_SIG})", what());
    } else {
        None
    };
    for name in PAYLOAD {
        let want = manifest
            .members
            .get(name)
            .with_context(|| format!("{}: the manifest lists no {name}", what()))?;
        let got =
            hash_file(&dir.join(name)).with_context(|| format!("{} has no {name}", what()))?;
        if &got != want {
            bail!(
                "{}: member {name} has {} bytes, sha256 {}; the manifest says {} bytes, sha256 {}",
                what(),
                got.size,
                got.sha256,
                want.size,
                want.sha256
            );
        }
    }
    if let Some(extra) = manifest
        .members
        .keys()
        .find(|k| !PAYLOAD.contains(&k.as_str()))
    {
        bail!("{}: the manifest lists an unknown member {extra:?}", what());
    }
    let commit_sha = hash_file(&dir.join(COMMIT))?.sha256;
    if commit_sha != manifest.to {
        bail!(
            "{}: the commit object hashes to {commit_sha}, not the target {}",
            what(),
            manifest.to
        );
    }
    Ok(Opened {
        manifest,
        signed_by,
        dir: dir.to_path_buf(),
    })
}

fn extract(bundle: &Path, dir: &Path) -> Result<()> {
    let f = std::fs::File::open(bundle).with_context(|| format!("Opening {}", bundle.display()))?;
    let dec = zstd::Decoder::new(f)?;
    let mut tar = tar::Archive::new(dec);
    let mut seen = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let Some(known) = MEMBERS.iter().find(|m| **m == name) else {
            bail!("unexpected member {name:?}");
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("member {name} is not a regular file");
        }
        if seen.contains(known) {
            bail!("member {name} appears twice");
        }
        seen.push(*known);
        let path = dir.join(known);
        let mut out =
            std::fs::File::create(&path).with_context(|| format!("Creating {}", path.display()))?;
        std::io::copy(&mut entry, &mut out)
            .with_context(|| format!("Writing {}", path.display()))?;
    }
    // Reading to the end makes zstd check its frame: a cut-off stream fails here.
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())?;
    if !seen.contains(&MANIFEST) {
        bail!("no {MANIFEST}");
    }
    Ok(())
}
