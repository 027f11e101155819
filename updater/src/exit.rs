//! Exit codes, in one place (also listed in `cairn --help` and `updater/README.md`).

use std::fmt;
use std::process::ExitCode;

/// Success; for `cairn check`: an update is available.
pub const OK: u8 = 0;
/// Any failure not listed below.
pub const FAILURE: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// The sysroot is locked by another process and `--no-wait` was given (`EX_TEMPFAIL`).
pub const LOCKED: u8 = 75;
/// `cairn check`: the host is up to date (the "skip" code of test harnesses, 77).
pub const UP_TO_DATE: u8 = 77;

/// The text `--help` shows about exit codes.
pub const HELP: &str = "\
Exit codes:
  0   success; for `check`: an update is available
  1   failure (the message says what failed; nothing was changed unless it says so)
  2   bad command line
  75  the sysroot is locked by another cairn/ostree process and --no-wait was given
  77  `check` only: the host is up to date";

/// Marks an error as "the sysroot lock is held elsewhere", so that [`for_error`] maps it to
/// [`LOCKED`].
#[derive(Debug)]
pub struct Locked;

impl fmt::Display for Locked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sysroot lock is held by another process (--no-wait given)")
    }
}

impl std::error::Error for Locked {}

/// The exit code for an error that reached `main`.
pub fn for_error(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(code_for(err))
}

/// The exit code for an error that reached `main`, as a number (also in `--json` errors).
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.downcast_ref::<Locked>().is_some()) {
        LOCKED
    } else {
        FAILURE
    }
}
