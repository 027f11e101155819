//! Logging: to the journal when running under systemd (`JOURNAL_STREAM` set), else to stderr.
//!
//! Every change to the sysroot is logged at `info` level, so that `journalctl -t cairn` tells
//! the story of a host; user-facing output (status tables, progress) is printed, not logged.

use cairn_release::glib;
use log::LevelFilter;
use systemd_journal_logger::JournalLog;

/// Sets up the global logger. `verbose` raises the level from `info` to `debug`.
pub fn init(verbose: bool) {
    // libostree prints some of its news with g_print ("Freed objects: ..." when a deploy
    // prunes): on stdout that would break `--json`, so it goes to the log.
    glib::set_print_handler(|message| log::info!("{}", message.trim_end()));
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journal) = JournalLog::new() {
            let journal = journal.with_syslog_identifier("cairn".to_string());
            if journal.install().is_ok() {
                log::set_max_level(level);
                return;
            }
        }
    }
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("CAIRN_LOG")
        .format_target(false)
        .format_timestamp(None)
        .init();
}
