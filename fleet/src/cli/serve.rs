//! `cairn-fleet serve`.

use std::io::Write;

use anyhow::Result;

use super::Global;
use crate::config::Settings;
use crate::server;

/// Serves until a signal; says where once listening (one line on stdout).
pub async fn run(global: &Global, settings: Settings) -> Result<()> {
    let json = global.json;
    server::serve(&global.config, settings, |l| {
        let mut out = std::io::stdout().lock();
        let line = if json {
            serde_json::to_string(l).unwrap_or_default()
        } else {
            format!("cairn-fleet: serving FleetLock on {}", l.listen)
        };
        // stdout may be closed (a service without one); the log says the same.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    })
    .await
}
