//! `[health]` of the configuration, validated (by [`crate::config::settings`]).

use std::time::Duration;

/// Default timeout of one check.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 120;

/// `[health]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// The timeout of one check.
    pub timeout: Duration,
    /// The container runtime check.
    pub runtime: Runtime,
    /// Units that must not be in the failed state.
    pub units: Vec<String>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            runtime: Runtime::Auto,
            units: Vec::new(),
        }
    }
}

/// Which container runtime check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// podman if the tree has `/usr/bin/podman`.
    Auto,
    /// `podman info` must answer.
    Podman,
    /// No runtime check.
    None,
}
