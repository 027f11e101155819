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
    /// How often systemd restarted the unit by its `Restart=` policy since it was started
    /// (`NRestarts`).
    pub restarts: u64,
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
            let shown = output(
                "systemctl",
                &[
                    "show",
                    "--property=ActiveState",
                    "--property=NRestarts",
                    &unit,
                ],
            )
            .unwrap_or_default();
            let property = |key: &str| {
                shown
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .map(str::to_string)
            };
            let unit_state = property("ActiveState").unwrap_or_else(|| "unknown".into());
            let restarts = property("NRestarts")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
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
                restarts,
                running,
                error,
            }
        })
        .collect()
}

/// Automatic restarts after which a container that still does not run is crash-looping: the
/// unit restarts every 10 s and never gives up (`cairn-container@.service`), so waiting out
/// the health check's timeout would only delay the verdict (and a rollback).
pub const CRASH_LOOP_RESTARTS: u64 = 3;

/// Whether a container that does not run will not run without someone acting: its
/// declaration does not parse, its unit failed for good, or it is crash-looping. A unit that
/// is still starting (pulling its image) or was restarted fewer times may yet come up.
fn given_up(c: &ContainerState) -> bool {
    c.error.is_some() || c.unit_state == "failed" || c.restarts >= CRASH_LOOP_RESTARTS
}

/// Why a required container does not run, for the health report.
fn why_not_running(c: &ContainerState) -> String {
    match &c.error {
        Some(e) => format!("{} ({e})", c.name),
        None if c.restarts > 0 => format!(
            "{} (unit {}: {}, restarted {} times)",
            c.name, c.unit, c.unit_state, c.restarts
        ),
        None => format!("{} (unit {}: {})", c.name, c.unit, c.unit_state),
    }
}

/// Waits up to `timeout` for every required container to run (a unit may still be pulling or
/// restarting), or until each one that does not has given up; returns the required ones that
/// do not run, with why.
pub fn required_not_running(dir: &Path, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<ContainerState> = all(dir)
            .into_iter()
            .filter(|c| c.required && !c.running)
            .collect();
        if missing.is_empty() || Instant::now() >= deadline || missing.iter().all(given_up) {
            return missing.iter().map(why_not_running).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(unit_state: &str, restarts: u64, error: Option<&str>) -> ContainerState {
        ContainerState {
            name: "web".into(),
            unit: "cairn-container@web.service".into(),
            image: Some("localhost/web".into()),
            required: true,
            unit_state: unit_state.into(),
            restarts,
            running: false,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn crash_loops_and_failed_units_are_not_waited_for() {
        assert!(!given_up(&state("activating", 0, None)), "still starting");
        assert!(!given_up(&state("activating", 2, None)), "may yet come up");
        assert!(!given_up(&state("inactive", 0, None)), "not started yet");
        assert!(given_up(&state("activating", CRASH_LOOP_RESTARTS, None)));
        assert!(given_up(&state("failed", 0, None)));
        assert!(given_up(&state("inactive", 0, Some("web.toml:1:1: bad"))));
        assert_eq!(
            why_not_running(&state("activating", 3, None)),
            "web (unit cairn-container@web.service: activating, restarted 3 times)"
        );
        assert_eq!(
            why_not_running(&state("failed", 0, None)),
            "web (unit cairn-container@web.service: failed)"
        );
    }
}
