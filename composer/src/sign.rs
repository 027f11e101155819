//! Signing commits: ed25519 in libostree's format (through `cairn_release::signature`, the one
//! place that knows it) and, for shops that already run a GPG keyring, GPG through libostree.
//!
//! `keygen` writes a key pair; [`sign`] adds a signature to an existing commit (detached
//! metadata only: the commit, its checksum and the refs do not change). A compose signs inside
//! its own transaction instead (see [`crate::commit`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_release::gio;
use cairn_release::history::find_revision;
use cairn_release::signature::{self, PublicKey, SecretKey};
use fn_error_context::context;
use serde::Serialize;

use crate::manifest::{FileEntry, FileSource};

/// The trusted-key directories of a host, relative to the tree's root (the updater reads the
/// same two: `cairn_updater::host::verify::TRUSTED_DIRS`).
pub const TRUSTED_DIRS: [&str; 2] = ["usr/lib/cairn/trusted.d", "etc/cairn/trusted.d"];

/// How to sign.
#[derive(Debug, Clone)]
pub enum SignWith {
    /// An ed25519 secret key file (libostree's base64 form).
    Ed25519(PathBuf),
    /// A GPG key id, optionally from another GnuPG home directory.
    Gpg {
        /// The key id or fingerprint.
        key_id: String,
        /// `GNUPGHOME` to use instead of the default.
        homedir: Option<PathBuf>,
    },
}

/// What `keygen` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct KeyPair {
    /// The secret key file (mode 0600).
    pub secret: PathBuf,
    /// The public key file: install it on hosts as `/etc/cairn/trusted.d/NAME.pub`.
    pub public: PathBuf,
    /// The public key, base64.
    pub public_key: String,
}

/// Writes a new ed25519 key pair: `path` and `path.pub`.
#[context("Generating a key pair at {}", path.display())]
pub fn keygen(path: &Path) -> Result<KeyPair> {
    let key = SecretKey::generate()?;
    let public = key.write_pair(path)?;
    Ok(KeyPair {
        secret: path.to_path_buf(),
        public,
        public_key: key.public().to_base64(),
    })
}

/// What `sign` signed.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The commit.
    pub commit: String,
    /// Its version.
    pub version: Option<String>,
    /// `ed25519` or `gpg`.
    pub kind: &'static str,
}

/// Signs revision `rev` (a version, commit or ref) of the repository at `repo_path`.
#[context("Signing {rev:?} in {}", repo_path.display())]
pub fn sign(repo_path: &Path, rev: &str, with: &SignWith) -> Result<Signed> {
    let repo = crate::repo::open_repo(repo_path)?;
    let found = find_revision(&repo, None, rev)?;
    let kind = match with {
        SignWith::Ed25519(key) => {
            signature::sign_commit(&repo, &found.commit, &SecretKey::load(key)?)?;
            "ed25519"
        }
        SignWith::Gpg { key_id, homedir } => {
            let home = homedir.as_ref().map(|h| h.to_string_lossy().into_owned());
            repo.sign_commit(
                &found.commit,
                key_id,
                home.as_deref(),
                gio::Cancellable::NONE,
            )
            .with_context(|| format!("GPG-signing commit {} with key {key_id}", found.commit))?;
            "gpg"
        }
    };
    Ok(Signed {
        commit: found.commit,
        version: found.version,
        kind,
    })
}

/// A public key a manifest ships into one of the trusted-key directories.
#[derive(Debug, Clone)]
pub struct ShippedKey {
    /// Where it lands in the tree (absolute, e.g. `/usr/lib/cairn/trusted.d/release.pub`).
    pub dest: String,
    /// The keys in that file.
    pub keys: Vec<PublicKey>,
}

/// The `*.pub` files `files` (a manifest's `[[files]]`) put into [`TRUSTED_DIRS`]: a file or
/// literal content with such a destination, or a directory copied over one of them.
#[context("Reading the public keys the manifest ships")]
pub fn shipped_keys(files: &[FileEntry]) -> Result<Vec<ShippedKey>> {
    let mut out = Vec::new();
    for f in files {
        match &f.source {
            FileSource::Content(text) => {
                if is_trusted_key_path(&f.dest) {
                    out.push(ShippedKey {
                        dest: f.dest.clone(),
                        keys: parse_keys(text).with_context(|| {
                            format!("the content given for {} is not a public key", f.dest)
                        })?,
                    });
                }
            }
            FileSource::Path(src) if src.is_dir() => {
                for (rel, path) in files_under(src)? {
                    let dest = format!("{}/{rel}", f.dest.trim_end_matches('/'));
                    if is_trusted_key_path(&dest) {
                        out.push(ShippedKey {
                            keys: PublicKey::load_all(&path)?,
                            dest,
                        });
                    }
                }
            }
            FileSource::Path(src) => {
                let dest = match (f.dest.ends_with('/'), src.file_name()) {
                    (true, Some(name)) => format!("{}{}", f.dest, name.to_string_lossy()),
                    _ => f.dest.clone(),
                };
                if is_trusted_key_path(&dest) {
                    out.push(ShippedKey {
                        keys: PublicKey::load_all(src)?,
                        dest,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Refuses to sign with `key` when the manifest ships trusted keys and none of them is `key`'s
/// public half: hosts of that tree would refuse every release signed so, this one included
/// once it is deployed. `key_file` and `manifest` only name things in the error.
pub fn check_key_is_shipped(
    key: &SecretKey,
    key_file: &Path,
    manifest: &Path,
    shipped: &[ShippedKey],
) -> Result<()> {
    if shipped.is_empty() {
        return Ok(());
    }
    let public = key.public().to_base64();
    if shipped
        .iter()
        .any(|s| s.keys.iter().any(|k| k.to_base64() == public))
    {
        return Ok(());
    }
    let dests: Vec<&str> = shipped.iter().map(|s| s.dest.as_str()).collect();
    anyhow::bail!(
        "--sign-key {}: its public key {public} is not one that {} ships ({}); hosts of this \
         tree would refuse the releases it signs. Sign with the key whose public half is \
         shipped, or ship {} in the manifest's [[files]]",
        key_file.display(),
        manifest.display(),
        dests.join(", "),
        signature::public_path_for(key_file).display()
    )
}

/// Where a compose that signs with `key_file` puts its public half when the manifest ships no
/// trusted key: hosts made from the tree then verify every release signed with it, without
/// anyone turning verification on (`require_signature` defaults to on when keys are present).
pub fn ship_signing_key(key: &SecretKey, key_file: &Path) -> FileEntry {
    let name = key_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        .unwrap_or_else(|| "release".to_string());
    FileEntry {
        source: FileSource::Content(format!("{}\n", key.public().to_base64())),
        dest: format!("/{}/{name}.pub", TRUSTED_DIRS[0]),
        mode: Some(0o644),
    }
}

/// The warning an unsigned compose prints.
pub fn unsigned_warning(shipped: &[ShippedKey]) -> String {
    if shipped.is_empty() {
        "warning: no --sign-key: the commit is unsigned; hosts that trust a signing key will \
         refuse it (`cairn-compose keygen`, then ship the .pub under /usr/lib/cairn/trusted.d/)"
            .to_string()
    } else {
        let dests: Vec<&str> = shipped.iter().map(|s| s.dest.as_str()).collect();
        format!(
            "warning: no --sign-key: the commit is unsigned, but the tree trusts {}; its hosts \
             will refuse it",
            dests.join(", ")
        )
    }
}

fn is_trusted_key_path(dest: &str) -> bool {
    let rel = dest.trim_start_matches('/');
    let Some((dir, name)) = rel.rsplit_once('/') else {
        return false;
    };
    TRUSTED_DIRS.contains(&dir)
        && Path::new(name).extension().and_then(|e| e.to_str())
            == Some(signature::PUBLIC_KEY_EXTENSION)
}

fn parse_keys(text: &str) -> Result<Vec<PublicKey>> {
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PublicKey::from_base64)
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        anyhow::bail!("no public key in it");
    }
    Ok(keys)
}

/// Regular files below `dir`: (path relative to `dir` with `/`, full path).
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, d)) = todo.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("Reading directory {}", d.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("Reading directory {}", d.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ty = e
                .file_type()
                .with_context(|| format!("Reading {}", e.path().display()))?;
            if ty.is_dir() {
                todo.push((rel, e.path()));
            } else if ty.is_file() {
                out.push((rel, e.path()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_release::signature::{verify_commit, PublicKey, TrustedKeys};
    use cairn_release::{glib, ostree};

    /// A repository with one tiny commit on `r`.
    fn repo_with_commit(dir: &Path) -> (ostree::Repo, String) {
        let repo = crate::repo::open_or_create(&dir.join("repo")).unwrap();
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
        std::fs::write(tree.join("usr/bin/x"), "x\n").unwrap();
        let commit = crate::commit::commit(
            &repo,
            &crate::commit::CommitRequest {
                tree: &tree,
                osref: "cairn/bookworm/x86_64/stable",
                parent: None,
                subject: "test",
                metadata: glib::VariantDict::new(None).end(),
                timestamp: 1,
                sign_key: None,
            },
            &gio::Cancellable::new(),
        )
        .unwrap();
        (repo, commit)
    }

    fn entry(source: FileSource, dest: &str) -> FileEntry {
        FileEntry {
            source,
            dest: dest.into(),
            mode: None,
        }
    }

    #[test]
    fn a_tree_that_ships_no_key_trusts_the_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keygen(&dir.path().join("build-key.key")).unwrap();
        let key = SecretKey::load(&pair.secret).unwrap();
        let shipped = ship_signing_key(&key, &pair.secret);
        assert_eq!(shipped.dest, "/usr/lib/cairn/trusted.d/build-key.pub");
        // What lands in the tree is a key file the manifest check (and the updater) reads as
        // exactly this key, so the next compose with the same key passes the shipped-key check.
        let found = shipped_keys(std::slice::from_ref(&shipped)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].keys[0].to_base64(), pair.public_key);
        check_key_is_shipped(&key, &pair.secret, Path::new("m.toml"), &found).unwrap();
        let other = keygen(&dir.path().join("other.key")).unwrap();
        let other = SecretKey::load(&other.secret).unwrap();
        assert!(check_key_is_shipped(&other, &pair.secret, Path::new("m.toml"), &found).is_err());
    }

    #[test]
    fn sign_key_must_be_one_the_manifest_ships() {
        let dir = tempfile::tempdir().unwrap();
        let ours = keygen(&dir.path().join("release.key")).unwrap();
        let other = keygen(&dir.path().join("other.key")).unwrap();
        let ours_key = SecretKey::load(&ours.secret).unwrap();
        let other_key = SecretKey::load(&other.secret).unwrap();
        let manifest = dir.path().join("host.toml");
        let keys_dir = dir.path().join("keys/trusted.d");
        std::fs::create_dir_all(&keys_dir).unwrap();
        std::fs::copy(&ours.public, keys_dir.join("release.pub")).unwrap();

        // Nothing shipped: any key is accepted.
        let none = shipped_keys(&[entry(FileSource::Content("hi\n".into()), "/etc/motd")]).unwrap();
        assert!(none.is_empty());
        check_key_is_shipped(&other_key, &other.secret, &manifest, &none).unwrap();
        assert!(unsigned_warning(&none).contains("unsigned"));

        // Each way of shipping: a file, a directory, literal content, into /usr/lib or /etc.
        let ways = [
            entry(
                FileSource::Path(ours.public.clone()),
                "/usr/lib/cairn/trusted.d/release.pub",
            ),
            entry(
                FileSource::Path(ours.public.clone()),
                "/etc/cairn/trusted.d/",
            ),
            entry(
                FileSource::Path(keys_dir.clone()),
                "/usr/lib/cairn/trusted.d",
            ),
            entry(FileSource::Path(dir.path().join("keys")), "/etc/cairn"),
            entry(
                FileSource::Content(format!("# ours\n{}\n", ours.public_key)),
                "/etc/cairn/trusted.d/release.pub",
            ),
        ];
        for way in ways {
            let dest = way.dest.clone();
            let shipped = shipped_keys(&[way]).unwrap();
            assert_eq!(shipped.len(), 1, "{dest}");
            check_key_is_shipped(&ours_key, &ours.secret, &manifest, &shipped).unwrap();
            let err = check_key_is_shipped(&other_key, &other.secret, &manifest, &shipped)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&other.secret.display().to_string()), "{err}");
            assert!(err.contains(&manifest.display().to_string()), "{err}");
            assert!(err.contains(&other.public_key), "{err}");
            assert!(err.contains("trusted.d/release"), "{err}");
            assert!(unsigned_warning(&shipped).contains("will refuse"));
        }

        // A .pub elsewhere is not a trusted key; a broken one under trusted.d is an error.
        let elsewhere = shipped_keys(&[entry(
            FileSource::Path(ours.public.clone()),
            "/usr/share/doc/release.pub",
        )])
        .unwrap();
        assert!(elsewhere.is_empty());
        let broken = shipped_keys(&[entry(
            FileSource::Content("not a key\n".into()),
            "/etc/cairn/trusted.d/x.pub",
        )]);
        assert!(broken.is_err());
    }

    #[test]
    fn keygen_then_sign_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keygen(&dir.path().join("k")).unwrap();
        assert!(keygen(&dir.path().join("k")).is_err());
        let (repo, commit) = repo_with_commit(dir.path());
        let trusted = TrustedKeys {
            keys: PublicKey::load_all(&pair.public).unwrap(),
            searched: vec![],
        };
        assert!(verify_commit(&repo, &commit, &trusted)
            .unwrap_err()
            .to_string()
            .contains("not signed"));
        let signed = sign(
            &dir.path().join("repo"),
            "cairn/bookworm/x86_64/stable",
            &SignWith::Ed25519(pair.secret.clone()),
        )
        .unwrap();
        assert_eq!(signed.commit, commit);
        // The repository object is re-read: open it again.
        let repo = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        verify_commit(&repo, &commit, &trusted).unwrap();
        // A second key adds a second signature; both verify.
        let second = keygen(&dir.path().join("k2")).unwrap();
        sign(
            &dir.path().join("repo"),
            &commit,
            &SignWith::Ed25519(second.secret),
        )
        .unwrap();
        let only_second = TrustedKeys {
            keys: PublicKey::load_all(&second.public).unwrap(),
            searched: vec![],
        };
        verify_commit(&repo, &commit, &only_second).unwrap();
        verify_commit(&repo, &commit, &trusted).unwrap();
        let err = sign(
            &dir.path().join("repo"),
            "9.9.9",
            &SignWith::Ed25519(pair.secret),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("9.9.9"), "{err:#}");
    }

    #[test]
    fn compose_signs_inside_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keygen(&dir.path().join("k")).unwrap();
        let key = SecretKey::load(&pair.secret).unwrap();
        let repo = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr")).unwrap();
        let commit = crate::commit::commit(
            &repo,
            &crate::commit::CommitRequest {
                tree: &tree,
                osref: "r",
                parent: None,
                subject: "s",
                metadata: glib::VariantDict::new(None).end(),
                timestamp: 1,
                sign_key: Some(&key),
            },
            &gio::Cancellable::new(),
        )
        .unwrap();
        let trusted = TrustedKeys {
            keys: vec![key.public()],
            searched: vec![],
        };
        verify_commit(&repo, &commit, &trusted).unwrap();
        assert!(dir
            .path()
            .join(format!(
                "repo/objects/{}/{}.commitmeta",
                &commit[..2],
                &commit[2..]
            ))
            .exists());
    }

    #[test]
    fn gpg_signature_through_libostree() {
        if std::process::Command::new("gpg")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("gpg not installed; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        let st = std::process::Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "Cairn Test <cairn@example.invalid>",
                "ed25519",
                "sign",
                "never",
            ])
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        let (repo, commit) = repo_with_commit(dir.path());
        sign(
            &dir.path().join("repo"),
            &commit,
            &SignWith::Gpg {
                key_id: "cairn@example.invalid".into(),
                homedir: Some(home.clone()),
            },
        )
        .unwrap();
        // Hosts get the exported public key (`ostree remote gpg-import`, or a keyring dir).
        let keyring = dir.path().join("keyring");
        std::fs::create_dir(&keyring).unwrap();
        let export = std::process::Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--export", "cairn@example.invalid"])
            .output()
            .unwrap();
        std::fs::write(keyring.join("cairn.gpg"), export.stdout).unwrap();
        let repo2 = crate::repo::open_or_create(&dir.path().join("repo")).unwrap();
        repo2
            .verify_commit(
                &commit,
                Some(&gio::File::for_path(&keyring)),
                gio::File::NONE,
                gio::Cancellable::NONE,
            )
            .unwrap();
        drop(repo);
        let _ = std::process::Command::new("gpgconf")
            .env("GNUPGHOME", &home)
            .args(["--kill", "all"])
            .status();
    }
}
