//! The command line: parse, call an operation, print. No work happens here.

mod bundle;
mod diff;
mod image;
mod keygen;
mod log;
mod prune;
mod rollout;
mod sign;
mod tree;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Composes Debian package manifests into versioned OSTree commits.
#[derive(Debug, Parser)]
#[command(name = "cairn-compose", version, about, after_help = crate::exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Tree(tree::TreeArgs),
    Diff(diff::DiffArgs),
    Log(log::LogArgs),
    Image(image::ImageArgs),
    Keygen(keygen::KeygenArgs),
    Sign(sign::SignArgs),
    Bundle(bundle::BundleArgs),
    Prune(prune::PruneArgs),
    Rollout(rollout::RolloutArgs),
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Tree(a) => tree::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Log(a) => log::run(a),
        Command::Image(a) => image::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Bundle(a) => bundle::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Rollout(a) => rollout::run(a),
    }
}

/// Formats seconds since the epoch as UTC.
fn format_time(ts: u64) -> String {
    chrono::DateTime::from_timestamp(ts as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ts.to_string())
}
