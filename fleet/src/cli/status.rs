//! `cairn-fleet status`.

use anyhow::{Context, Result};
use serde::Serialize;

use super::Global;
use crate::config::Settings;
use crate::coordinator::{Coordinator, GroupStatus};
use crate::halt::{self, Halt};

#[derive(Debug, Serialize)]
struct Status {
    etcd: Vec<String>,
    prefix: String,
    groups: Vec<GroupStatus>,
    halts: Vec<Halt>,
}

fn when(unix: u64) -> String {
    crate::coordinator::rfc3339(unix)
}

/// Prints every configured group's state.
pub async fn run(global: &Global, settings: &Settings) -> Result<()> {
    let c = Coordinator::new(settings);
    let mut groups = Vec::new();
    for (name, cfg) in &settings.groups {
        groups.push(
            c.status(name, cfg)
                .await
                .with_context(|| format!("Reading group {name} from etcd"))?,
        );
    }
    let halts = halt::all(c.etcd(), &settings.etcd.prefix)
        .await
        .context("Reading the halted releases from etcd")?;
    if global.json {
        let s = Status {
            etcd: settings.etcd.endpoints.clone(),
            prefix: settings.etcd.prefix.clone(),
            groups,
            halts,
        };
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    for g in &groups {
        println!(
            "group {}: {} of {} slot(s) taken, reboot_timeout {}s, max_lost {}{}",
            g.group,
            g.holders.len(),
            g.slots,
            g.reboot_timeout_secs,
            g.max_lost,
            if g.paused {
                format!(" -- PAUSED: run `cairn-fleet resume {}`", g.group)
            } else {
                String::new()
            }
        );
        for h in &g.holders {
            let left = h
                .expires_in
                .map_or_else(|| "expired".into(), |s| format!("expires in {s}s"));
            println!("  holder {} since {} (lease {left})", h.id, when(h.since));
        }
        for l in &g.lost {
            let detected = l.detected.map_or_else(
                || "not yet recorded".into(),
                |d| format!("recorded {}", when(d)),
            );
            println!(
                "  lost   {} (slot taken {}, {detected})",
                l.id,
                when(l.since)
            );
        }
    }
    for h in &halts {
        println!(
            "halted {} ({}) on {} since {}: {} of {} update(s) failed -- `cairn-fleet unhalt {}`",
            h.version,
            h.commit,
            h.stream,
            when(h.at),
            h.failures,
            h.reports,
            h.commit
        );
    }
    Ok(())
}
