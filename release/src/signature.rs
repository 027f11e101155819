//! Ed25519 signatures of commits, in libostree's own format, and the key files that hold them.
//!
//! Format (what libostree's `ed25519` sign module reads and writes, so a libostree built with
//! it verifies Cairn's signatures natively):
//! - the signed message is the commit object's bytes (the serialized `(a{sv}aya(say)sstayay)`
//!   variant whose sha256 is the commit checksum);
//! - signatures live in the commit's detached metadata under [`ED25519_KEY`] as `aay`: an array
//!   of 64-byte signatures (several keys may sign one commit);
//! - a secret key file holds one line, the base64 of the 64-byte ed25519 seed followed by its
//!   public key; a public key file holds lines of base64 32-byte public keys.
//!
//! Debian 12's libostree is built without ed25519, so Cairn signs and verifies here, with
//! `ed25519-dalek`. This module is the only place that knows the format: the composer signs and
//! the updater verifies through it. It does no pulling and decides no policy.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use crate::glib::{self, prelude::*};
use crate::{gio, ostree};

/// The detached metadata key of ed25519 signatures (libostree's).
pub const ED25519_KEY: &str = "ostree.sign.ed25519";
/// Extension of public key files, in a key pair and in trusted-key directories.
pub const PUBLIC_KEY_EXTENSION: &str = "pub";
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A secret signing key.
pub struct SecretKey(ed25519_dalek::SigningKey);

/// A public key, with where it came from (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    /// The file it was read from, if any.
    pub origin: Option<PathBuf>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    /// The file name, else the base64 key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "{}", self.to_base64()),
        }
    }
}

impl SecretKey {
    /// A new random key (seed from the kernel's random source).
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .context("Reading 32 random bytes from /dev/urandom")?;
        Ok(SecretKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Parses libostree's text form: base64 of seed (32 bytes) + public key (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = B64
            .decode(text.trim())
            .context("the secret key is not base64")?;
        let Ok(pair) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            bail!(
                "the secret key has {} bytes; an ed25519 secret key has 64 (seed + public key)",
                bytes.len()
            );
        };
        let key = ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
            .context("the secret key's public half does not match its seed")?;
        Ok(SecretKey(key))
    }

    /// Reads a secret key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Reading secret key {}", path.display()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .with_context(|| format!("{}: no key in the file", path.display()))?;
        Self::from_base64(line).with_context(|| format!("{}", path.display()))
    }

    /// libostree's text form (base64 of the 64-byte keypair).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_keypair_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.0.verifying_key(),
            origin: None,
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }

    /// Writes `path` (secret, mode 0600) and `path.pub`; refuses to overwrite either.
    pub fn write_pair(&self, path: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let public_path = public_path_for(path);
        for p in [path, public_path.as_path()] {
            if p.exists() {
                bail!("{} exists; refusing to overwrite a key", p.display());
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("Creating {}", path.display()))?;
        writeln!(f, "{}", self.to_base64())
            .with_context(|| format!("Writing {}", path.display()))?;
        std::fs::write(&public_path, format!("{}\n", self.public().to_base64()))
            .with_context(|| format!("Writing {}", public_path.display()))?;
        Ok(public_path)
    }
}

/// `KEYFILE.pub`.
pub fn public_path_for(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".");
    name.push(PUBLIC_KEY_EXTENSION);
    PathBuf::from(name)
}

impl PublicKey {
    /// Parses base64 of a 32-byte public key.
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = B64
            .decode(text.trim())
            .context("the public key is not base64")?;
        let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!(
                "the public key has {} bytes; an ed25519 public key has 32",
                bytes.len()
            );
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
            .context("not a valid ed25519 public key")?;
        Ok(PublicKey { key, origin: None })
    }

    /// Reads every key (one base64 line each; `#` comments) of a public key file.
    pub fn load_all(path: &Path) -> Result<Vec<Self>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Reading public key {}", path.display()))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut key =
                Self::from_base64(line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
            key.origin = Some(path.to_path_buf());
            keys.push(key);
        }
        if keys.is_empty() {
            bail!("{}: no public key in the file", path.display());
        }
        Ok(keys)
    }

    /// libostree's text form (base64 of 32 bytes).
    pub fn to_base64(&self) -> String {
        B64.encode(self.key.as_bytes())
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify(message, &sig).is_ok()
    }
}

/// The public keys a host trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    /// The keys, in the order found.
    pub keys: Vec<PublicKey>,
    /// The directories that were searched (for messages).
    pub searched: Vec<PathBuf>,
}

impl TrustedKeys {
    /// Reads every `*.pub` file of each directory that exists, in name order.
    pub fn load_dirs(dirs: &[PathBuf]) -> Result<Self> {
        let mut out = TrustedKeys {
            keys: Vec::new(),
            searched: dirs.to_vec(),
        };
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("Reading {}", dir.display())),
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == PUBLIC_KEY_EXTENSION))
                .collect();
            files.sort();
            for f in files {
                out.keys.extend(PublicKey::load_all(&f)?);
            }
        }
        Ok(out)
    }

    /// No key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The first key with which one of `signatures` verifies `message`.
    pub fn find_signer(&self, message: &[u8], signatures: &[Vec<u8>]) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|k| signatures.iter().any(|s| k.verifies(message, s)))
    }

    /// "a.pub, b.pub" or, when none, the searched directories.
    pub fn describe(&self) -> String {
        if self.keys.is_empty() {
            let dirs: Vec<String> = self
                .searched
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return format!("no trusted keys (searched {})", dirs.join(", "));
        }
        let names: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        names.join(", ")
    }
}

/// The bytes of commit object `commit`, checked against its checksum.
pub fn commit_bytes(repo: &ostree::Repo, commit: &str) -> Result<Vec<u8>> {
    let variant = repo
        .load_variant(ostree::ObjectType::Commit, commit)
        .with_context(|| format!("Loading commit {commit}"))?;
    let bytes = variant.data_as_bytes().to_vec();
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != commit {
        bail!("commit object {commit} in the repository hashes to {actual}: it is corrupt");
    }
    Ok(bytes)
}

/// The ed25519 signatures in a serialized detached metadata variant (`a{sv}`).
pub fn signatures_in(detached: &glib::Variant) -> Vec<Vec<u8>> {
    let dict = glib::VariantDict::new(Some(detached));
    dict.lookup_value(ED25519_KEY, Some(&<Vec<Vec<u8>>>::static_variant_type()))
        .and_then(|v| v.get::<Vec<Vec<u8>>>())
        .unwrap_or_default()
}

/// Parses serialized detached metadata (the `.commitmeta` file's bytes).
pub fn detached_from_bytes(bytes: &[u8]) -> Result<glib::Variant> {
    let v =
        glib::Variant::from_bytes_with_type(&glib::Bytes::from(bytes), glib::VariantTy::VARDICT);
    if !v.is_normal_form() {
        bail!("the detached metadata is not a valid a{{sv}} variant");
    }
    Ok(v)
}

/// The detached metadata of `commit` as bytes (empty dictionary when there is none).
pub fn detached_bytes(repo: &ostree::Repo, commit: &str) -> Result<Vec<u8>> {
    let v = read_detached(repo, commit)?.unwrap_or_else(|| glib::VariantDict::new(None).end());
    Ok(v.data_as_bytes().to_vec())
}

fn read_detached(repo: &ostree::Repo, commit: &str) -> Result<Option<glib::Variant>> {
    repo.read_commit_detached_metadata(commit, gio::Cancellable::NONE)
        .with_context(|| format!("Reading the detached metadata of commit {commit}"))
}

/// Writes `detached` (serialized `a{sv}`) as the detached metadata of `commit`.
pub fn write_detached(repo: &ostree::Repo, commit: &str, detached: &[u8]) -> Result<()> {
    let v = detached_from_bytes(detached)?;
    repo.write_commit_detached_metadata(commit, Some(&v), gio::Cancellable::NONE)
        .with_context(|| format!("Writing the detached metadata of commit {commit}"))
}

/// Adds `key`'s signature of `commit` to its detached metadata, keeping what is there (other
/// signatures, GPG signatures). Signing twice with one key changes nothing. Works inside a
/// transaction (libostree then stages the metadata with the commit).
pub fn sign_commit(repo: &ostree::Repo, commit: &str, key: &SecretKey) -> Result<()> {
    let message = commit_bytes(repo, commit)?;
    let existing = read_detached(repo, commit)?;
    let dict = glib::VariantDict::new(existing.as_ref());
    let mut sigs = existing.as_ref().map(signatures_in).unwrap_or_default();
    let sig = key.sign(&message).to_vec();
    if !sigs.contains(&sig) {
        sigs.push(sig);
    }
    dict.insert_value(ED25519_KEY, &sigs.to_variant());
    repo.write_commit_detached_metadata(commit, Some(&dict.end()), gio::Cancellable::NONE)
        .with_context(|| format!("Writing the signature of commit {commit}"))
}

/// Why a commit was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No ed25519 signature at all.
    Unsigned,
    /// Signatures, but none verifies with a trusted key over these bytes.
    NoTrustedSignature {
        /// How many signatures the commit carries.
        signatures: usize,
    },
}

/// Checks the commit bytes against the signatures in `detached` with `trusted`; returns the
/// key that verified.
pub fn verify_data<'k>(
    commit_bytes: &[u8],
    detached: Option<&glib::Variant>,
    trusted: &'k TrustedKeys,
) -> std::result::Result<&'k PublicKey, Rejection> {
    let sigs = detached.map(signatures_in).unwrap_or_default();
    if sigs.is_empty() {
        return Err(Rejection::Unsigned);
    }
    trusted
        .find_signer(commit_bytes, &sigs)
        .ok_or(Rejection::NoTrustedSignature {
            signatures: sigs.len(),
        })
}

/// Verifies `commit` (object and detached metadata already in `repo`) against `trusted`.
/// The error says which commit, why, and which keys were tried.
pub fn verify_commit(
    repo: &ostree::Repo,
    commit: &str,
    trusted: &TrustedKeys,
) -> Result<PublicKey> {
    let bytes = commit_bytes(repo, commit)?;
    let detached = read_detached(repo, commit)?;
    explain(
        verify_data(&bytes, detached.as_ref(), trusted),
        commit,
        trusted,
    )
    .cloned()
}

/// Turns a [`Rejection`] into an error naming the commit and the keys.
pub fn explain<'k>(
    result: std::result::Result<&'k PublicKey, Rejection>,
    commit: &str,
    trusted: &TrustedKeys,
) -> Result<&'k PublicKey> {
    match result {
        Ok(k) => Ok(k),
        Err(Rejection::Unsigned) => bail!(
            "commit {commit} is not signed (no {ED25519_KEY} signature in its detached metadata); \
             trusted keys: {}",
            trusted.describe()
        ),
        Err(Rejection::NoTrustedSignature { signatures }) => bail!(
            "commit {commit} carries {signatures} ed25519 signature(s), none valid for a trusted \
             key ({}): it was signed by another key, or the commit was altered after signing",
            trusted.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_text_roundtrips_in_libostree_form() {
        let k = SecretKey::generate().unwrap();
        let text = k.to_base64();
        assert_eq!(B64.decode(&text).unwrap().len(), 64);
        let back = SecretKey::from_base64(&text).unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(B64.decode(k.public().to_base64()).unwrap().len(), 32);
        // The second half of the secret key is the public key, as libsodium lays it out.
        assert_eq!(
            &B64.decode(&text).unwrap()[32..],
            B64.decode(k.public().to_base64()).unwrap().as_slice()
        );
        assert!(SecretKey::from_base64("bm90IGEga2V5").is_err());
        assert!(PublicKey::from_base64(&text).is_err());
    }

    #[test]
    fn sign_and_verify() {
        let k = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let sig = k.sign(b"commit bytes");
        assert!(k.public().verifies(b"commit bytes", &sig));
        assert!(!k.public().verifies(b"commit bytez", &sig));
        assert!(!other.public().verifies(b"commit bytes", &sig));
        assert!(!k.public().verifies(b"commit bytes", &sig[..10]));
    }

    #[test]
    fn key_files_and_trusted_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let k = SecretKey::generate().unwrap();
        let public = k.write_pair(&path).unwrap();
        assert_eq!(public, dir.path().join("release.key.pub"));
        assert!(k.write_pair(&path).is_err(), "overwrote a key");
        assert_eq!(SecretKey::load(&path).unwrap().public(), k.public());
        let trusted = TrustedKeys::load_dirs(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(trusted.keys.len(), 1);
        assert_eq!(trusted.keys[0].origin.as_deref(), Some(public.as_path()));
        std::fs::write(dir.path().join("bad.pub"), "garbage!\n").unwrap();
        let err = TrustedKeys::load_dirs(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.pub:1"), "{err}");
    }

    #[test]
    fn detached_signatures_in_libostree_layout() {
        let k = SecretKey::generate().unwrap();
        let sig = k.sign(b"x").to_vec();
        let dict = glib::VariantDict::new(None);
        dict.insert_value(ED25519_KEY, &vec![sig.clone()].to_variant());
        let v = dict.end();
        assert_eq!(
            glib::VariantDict::new(Some(&v))
                .lookup_value(ED25519_KEY, None)
                .unwrap()
                .type_()
                .as_str(),
            "aay"
        );
        let parsed = detached_from_bytes(&v.data_as_bytes()).unwrap();
        assert_eq!(signatures_in(&parsed), vec![sig]);
        let trusted = TrustedKeys {
            keys: vec![k.public()],
            searched: vec![],
        };
        assert!(verify_data(b"x", Some(&parsed), &trusted).is_ok());
        assert_eq!(
            verify_data(b"y", Some(&parsed), &trusted),
            Err(Rejection::NoTrustedSignature { signatures: 1 })
        );
        assert_eq!(verify_data(b"x", None, &trusted), Err(Rejection::Unsigned));
    }
}
