//! `cairn-compose sign`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::sign::{sign, SignWith};

/// Sign a commit (a version, commit checksum or ref) with an ed25519 key, or a GPG key.
/// Only the commit's detached metadata changes (the checksum and refs stay).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The revision: a version, a commit checksum or a ref.
    #[arg(value_name = "REV")]
    rev: String,
    /// The OSTree repository.
    #[arg(long)]
    repo: PathBuf,
    /// The ed25519 secret key file (from `cairn-compose keygen`).
    #[arg(long, value_name = "KEYFILE", conflicts_with = "gpg_key")]
    key: Option<PathBuf>,
    /// Sign with this GPG key id (through libostree) instead.
    #[arg(long, value_name = "KEYID")]
    gpg_key: Option<String>,
    /// GnuPG home directory for --gpg-key.
    #[arg(long, value_name = "DIR", requires = "gpg_key")]
    gpg_homedir: Option<PathBuf>,
}

/// Runs sign.
pub fn run(a: SignArgs) -> Result<()> {
    let with = match (a.key, a.gpg_key) {
        (Some(k), None) => SignWith::Ed25519(k),
        (None, Some(id)) => SignWith::Gpg {
            key_id: id,
            homedir: a.gpg_homedir,
        },
        _ => bail!("give --key KEYFILE (ed25519) or --gpg-key KEYID"),
    };
    let s = sign(&a.repo, &a.rev, &with)?;
    println!(
        "Signed {} ({}) with {}",
        s.version.as_deref().unwrap_or("unversioned"),
        s.commit,
        s.kind
    );
    Ok(())
}
