//! The `cairn-fleet` binary: logging, then [`cairn_fleet::cli::run`], then one place that
//! turns an error into a message and an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cairn_fleet::cli::Cli::parse();
    cairn_fleet::logging::init(cli.global.verbose);
    match cairn_fleet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
