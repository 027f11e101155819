//! Ctrl-C and SIGTERM: stop at the next safe point and clean up, instead of dying mid-write.
//!
//! The handler only raises a flag and cancels the libostree operation in flight; the compose
//! checks the flag between steps and unwinds through the normal error path, which aborts the
//! repo transaction and removes temporary trees.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use cairn_release::gio;
use cairn_release::gio::prelude::*;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CANCELLABLE: OnceLock<gio::Cancellable> = OnceLock::new();
/// The subprocess running now (0: none); it gets SIGTERM on an interrupt, so a long mmdebstrap
/// stops and cleans up its own mounts instead of running to the end.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Installs the handler (once per process).
pub fn install() -> Result<()> {
    let cancellable = CANCELLABLE.get_or_init(gio::Cancellable::new).clone();
    ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::SeqCst);
        cancellable.cancel();
        let child = CHILD.load(Ordering::SeqCst);
        if let Some(pid) = rustix::process::Pid::from_raw(child) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
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

/// Records the running subprocess (`None` when it ended).
pub fn set_child(pid: Option<u32>) {
    let raw = pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    CHILD.store(raw, Ordering::SeqCst);
}
