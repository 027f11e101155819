//! Logging: to the journal when running under systemd (`JOURNAL_STREAM` set), else to stderr.
//!
//! Every grant, release, lost host and pause is logged at `info` or `warn`, so that
//! `journalctl -t cairn-fleet` tells a group's story; command output (`status`) is printed.

use log::LevelFilter;
use systemd_journal_logger::JournalLog;

/// Sets up the global logger. `verbose` raises the level from `info` to `debug`.
pub fn init(verbose: bool) {
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journal) = JournalLog::new() {
            let journal = journal.with_syslog_identifier("cairn-fleet".to_string());
            if journal.install().is_ok() {
                log::set_max_level(level);
                return;
            }
        }
    }
    env_logger::Builder::new()
        .filter_level(level)
        .filter_module("hyper", LevelFilter::Warn)
        .filter_module("hyper_util", LevelFilter::Warn)
        .parse_env("CAIRN_FLEET_LOG")
        .format_target(false)
        .format_timestamp_secs()
        .init();
}
