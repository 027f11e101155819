//! The `cairn` binary: logging, then [`cairn_updater::cli::run`], then one place that turns an
//! error into a message and an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cairn_updater::cli::Cli::parse();
    cairn_updater::logging::init(cli.global.verbose);
    let json = cli.wants_json();
    match cairn_updater::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if json {
                // Best effort: the message is on stderr already.
                let _ = cairn_updater::cli::print_json_error(&err);
            }
            cairn_updater::exit::for_error(&err)
        }
    }
}
