//! `cairn-fleet resume GROUP`.

use anyhow::{bail, Context, Result};

use super::Global;
use crate::config::Settings;
use crate::coordinator::Coordinator;

/// Forgets the group's lost hosts.
pub async fn run(global: &Global, settings: &Settings, group: &str) -> Result<()> {
    if !settings.groups.contains_key(group) {
        bail!(
            "group {group:?} is not in {} (configured: {})",
            global.config.display(),
            settings.group_names()
        );
    }
    let forgotten = Coordinator::new(settings)
        .resume(group)
        .await
        .with_context(|| format!("Resuming group {group}"))?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"group": group, "forgotten": forgotten})
        );
    } else if forgotten.is_empty() {
        println!("group {group} was not paused; nothing to forget");
    } else {
        println!(
            "group {group} resumed; forgot lost host(s): {}",
            forgotten.join(", ")
        );
    }
    Ok(())
}
