//! Ctrl-C and SIGTERM: stop at the next safe point and clean up, instead of dying mid-write.
//!
//! The handler only raises a flag and cancels the libostree operation in flight; the compose
//! checks the flag between steps and unwinds through the normal error path, which aborts the
//! repo transaction and removes temporary trees.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use cairn_release::gio;
use cairn_release::gio::prelude::*;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CANCELLABLE: OnceLock<gio::Cancellable> = OnceLock::new();

/// Installs the handler (once per process).
pub fn install() -> Result<()> {
    let cancellable = CANCELLABLE.get_or_init(gio::Cancellable::new).clone();
    ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::SeqCst);
        cancellable.cancel();
    })
    .map_err(|e| anyhow::anyhow!("Installing the Ctrl-C handler: {e}"))
}

/// A cancellable that is cancelled when the user interrupts.
pub fn cancellable() -> gio::Cancellable {
    CANCELLABLE.get_or_init(gio::Cancellable::new).clone()
}

/// Fails if the user asked to stop.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted; nothing was committed");
    }
    Ok(())
}
