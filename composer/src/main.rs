//! `cairn-compose`: package manifests to versioned OSTree commits. Logging, then
//! [`cairn_composer::cli::run`], then one place that prints an error and picks the exit code
//! ([`cairn_composer::exit`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    cairn_composer::logging::init();
    match cairn_composer::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cairn_composer::logging::to_journal() {
                log::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            cairn_composer::exit::for_error(&e)
        }
    }
}
