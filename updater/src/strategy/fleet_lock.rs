//! `fleet-lock`: stage at once; before rebooting take a slot from a FleetLock server
//! (`POST /v1/pre-reboot`), give it back once the new deployment is healthy
//! (`POST /v1/steady-state`). The protocol client is [`crate::fleet_lock`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::Decision;
use crate::fleet_lock::{Client, Endpoint, HaltedRelease, Lock, OutcomeReport};

/// The fleet-lock strategy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetLock {
    /// The server.
    pub endpoint: Endpoint,
    /// The reboot group.
    pub group: String,
    /// This node's ID, if configured; else derived from the machine ID.
    pub id: Option<String>,
    /// CA certificates (PEM) trusted for an https server beside the system's.
    pub ca_file: Option<PathBuf>,
}

impl FleetLock {
    fn client(&self) -> Result<Client> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => node_id_from_machine_id()?,
        };
        Client::new(
            self.endpoint.clone(),
            &self.group,
            &id,
            self.ca_file.as_deref(),
        )
    }

    /// Asks for a reboot slot to reboot into `target` (a commit).
    pub fn decide(&self, target: &str) -> Result<Decision> {
        let client = self.client()?;
        Ok(match client.pre_reboot(target)? {
            Lock::Granted => Decision::Reboot(format!(
                "strategy fleet-lock: {} granted a reboot slot to {} (group {})",
                self.endpoint,
                client.id(),
                self.group
            )),
            Lock::Denied(why) => Decision::Postpone(format!(
                "strategy fleet-lock: {} gave no reboot slot to {} (group {}): {why}",
                self.endpoint,
                client.id(),
                self.group
            )),
        })
    }

    /// Gives the slot back.
    pub fn report_steady(&self) -> Result<()> {
        let client = self.client()?;
        client.steady_state()?;
        log::info!(
            "fleet-lock: reported steady state of {} to {}",
            client.id(),
            self.endpoint
        );
        Ok(())
    }

    /// Reports how an update ended; returns whether the server halted that release.
    pub fn report(&self, report: &OutcomeReport) -> Result<bool> {
        let halted = self.client()?.report(report)?;
        log::info!(
            "fleet-lock: reported {} of {} ({}) to {}{}",
            report.outcome,
            report.version,
            report.commit,
            self.endpoint,
            if halted {
                "; the fleet has halted it"
            } else {
                ""
            }
        );
        Ok(halted)
    }

    /// The releases the fleet halted.
    pub fn halts(&self) -> Result<Vec<HaltedRelease>> {
        self.client()?.halts()
    }

    /// For `cairn status`.
    pub fn describe(&self) -> String {
        format!("{}, group {}", self.endpoint, self.group)
    }
}

/// An app-specific node ID: sha256 of `/etc/machine-id` with a fixed key, 32 hex digits (the
/// machine ID itself is not sent to the server).
pub fn node_id_from_machine_id() -> Result<String> {
    let mid = std::fs::read_to_string("/etc/machine-id").context(
        "Reading /etc/machine-id for the FleetLock node ID (or set [update.fleet_lock] id)",
    )?;
    let mut h = Sha256::new();
    h.update(b"cairn-fleet-lock:");
    h.update(mid.trim().as_bytes());
    Ok(hex::encode(h.finalize())[..32].to_string())
}
