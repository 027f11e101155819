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
use cairn_release::signature::{self, SecretKey};
use fn_error_context::context;
use serde::Serialize;

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
