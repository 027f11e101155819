//! What the declared containers are doing: their unit's state (systemd) and whether podman
//! has the container running. For `cairn container list` and the health check.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::spec;

/// One declared container on the running host.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerState {
    /// The declaration's name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// The image it declares (null: the declaration does not parse).
    pub image: Option<String>,
    /// Whether the health check requires it.
    pub required: bool,
    /// systemd's ActiveState of the unit (`active`, `activating`, `failed`, …).
    pub unit_state: String,
    /// podman says the container is running.
    pub running: bool,
    /// The declaration's error, if it has one.
    pub error: Option<String>,
}

/// The state of every declaration in `dir`.
pub fn all(dir: &Path) -> Vec<ContainerState> {
    spec::load_all(dir)
        .into_iter()
        .map(|(name, parsed)| {
            let unit = spec::unit_of(&name);
            let unit_state = output(
                "systemctl",
                &["show", "--property=ActiveState", "--value", &unit],
            )
            .unwrap_or_else(|| "unknown".into());
            let running = output(
                "podman",
                &[
                    "container",
                    "inspect",
                    "--format",
                    "{{.State.Running}}",
                    &format!("cairn-{name}"),
                ],
            )
            .is_some_and(|s| s == "true");
            let (image, required, error) = match parsed {
                Ok(s) => (Some(s.image), s.required, None),
                // A declaration that does not parse is meant to run: count it as required.
                Err(e) => (None, true, Some(format!("{e:#}"))),
            };
            ContainerState {
                name,
                unit,
                image,
                required,
                unit_state,
                running,
                error,
            }
        })
        .collect()
}

/// Waits up to `timeout` for every required container to run (a unit may still be pulling or
/// restarting); returns the required ones that do not, with why.
pub fn required_not_running(dir: &Path, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<String> = all(dir)
            .into_iter()
            .filter(|c| c.required && !c.running)
            .map(|c| match c.error {
                Some(e) => format!("{} ({e})", c.name),
                None => format!("{} (unit {}: {})", c.name, c.unit, c.unit_state),
            })
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The trimmed stdout of a command that succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
