//! `cairn-fleet unhalt COMMIT`.

use anyhow::{Context, Result};

use super::Global;
use crate::config::Settings;
use crate::coordinator::Coordinator;
use crate::halt;

/// Lifts the halt of a release and forgets its reports.
pub async fn run(global: &Global, settings: &Settings, commit: &str) -> Result<()> {
    let c = Coordinator::new(settings);
    let lifted = halt::lift(c.etcd(), &settings.etcd.prefix, commit)
        .await
        .with_context(|| format!("Lifting the halt of {commit}"))?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"commit": commit, "lifted": lifted})
        );
    } else {
        match lifted {
            Some(h) => println!(
                "{} ({commit}) on {} is no longer halted; its {} report(s) are forgotten",
                h.version, h.stream, h.reports
            ),
            None => println!("{commit} was not halted; its reports, if any, are forgotten"),
        }
    }
    Ok(())
}
