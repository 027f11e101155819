//! `cairn-compose`'s exit codes, in one place (shown by `--help`, the man page and README).
//!
//! Fewer than `cairn`'s: a compose either did what was asked (a new version, or "unchanged",
//! which is not an error) or failed and left the repository as it was.

use std::process::ExitCode;

/// Done; for `tree`: a new version, or nothing to do because the inputs did not change.
pub const SUCCESS: u8 = 0;
/// Failed, interrupted included; the message says what. The repository and its refs are as
/// they were before the command.
pub const FAILURE: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;

/// The text `--help` shows about exit codes.
pub const HELP: &str = "\
Exit codes:
  0   success; for `tree`: a new version was committed, or the inputs did not change
  1   failure or interrupt (Ctrl-C, SIGTERM); the repository and its refs are as they were
  2   bad command line";

/// The exit code for an error that reached `main`.
pub fn for_error(_err: &anyhow::Error) -> ExitCode {
    ExitCode::from(FAILURE)
}
