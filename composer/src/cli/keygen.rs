//! `cairn-compose keygen`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Write a new ed25519 signing key pair: KEYFILE (secret, mode 0600) and KEYFILE.pub (install
/// it on hosts as /etc/cairn/trusted.d/NAME.pub).
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The secret key file to write; the public key goes to KEYFILE.pub.
    #[arg(short, long, value_name = "KEYFILE")]
    output: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs keygen.
pub fn run(a: KeygenArgs) -> Result<()> {
    let pair = crate::sign::keygen(&a.output)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&pair)?);
        return Ok(());
    }
    println!("Secret key: {} (keep it off hosts)", pair.secret.display());
    println!(
        "Public key: {} ({})",
        pair.public.display(),
        pair.public_key
    );
    Ok(())
}
