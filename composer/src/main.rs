//! `cairn-compose`: package manifests to versioned OSTree commits.

use std::process::ExitCode;

fn main() -> ExitCode {
    match cairn_composer::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
