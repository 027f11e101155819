//! Where the composer's messages go: under systemd (`JOURNAL_STREAM` set, e.g. a compose run by
//! a timer or `systemd-run`) each step, warning and the final error is a journal record tagged
//! `cairn-compose` with its priority (`journalctl -t cairn-compose`); otherwise [`Progress`]
//! prints to stderr (a spinner on a terminal). `cairn` does the same with its own records
//! (`updater/src/logging.rs`).
//!
//! [`Progress`]: crate::progress::Progress

use std::sync::atomic::{AtomicBool, Ordering};

use systemd_journal_logger::JournalLog;

static TO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Sends messages to the journal when running under systemd and the journal answers.
pub fn init() {
    if std::env::var_os("JOURNAL_STREAM").is_none() {
        return;
    }
    let installed = JournalLog::new()
        .map(|j| j.with_syslog_identifier("cairn-compose".to_string()))
        .and_then(|j| j.install().map_err(std::io::Error::other));
    if installed.is_ok() {
        log::set_max_level(log::LevelFilter::Info);
        TO_JOURNAL.store(true, Ordering::SeqCst);
    }
}

/// Whether messages go to the journal (else to stderr).
pub fn to_journal() -> bool {
    TO_JOURNAL.load(Ordering::SeqCst)
}

/// One message: `warning: …` lines at warning priority, the rest at info.
pub fn message(line: &str) {
    match line.strip_prefix("warning: ") {
        Some(w) => log::warn!("{w}"),
        None => log::info!("{line}"),
    }
}
