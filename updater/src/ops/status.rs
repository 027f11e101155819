//! `cairn status`: the deployments, which boots next, what the last check found, and the
//! automatic updates: strategy, the agent's last run and why it did or did not reboot, the last
//! health report, the boot counter and the versions that will not be applied again.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::agent::AgentRecord;
use crate::config::Settings;
use crate::failed::FailedVersion;
use crate::health::HealthReport;
use crate::host::bootcount::{self, Counter};
use crate::host::state::{self, LastCheck};
use crate::host::sysroot::{DeploymentInfo, Host};
use crate::ops::etc::{self, EtcConflicts};
use crate::release::{describe, is_older, Release};

/// Everything `cairn status --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// The sysroot path.
    pub sysroot: PathBuf,
    /// The stateroot cairn works on.
    pub osname: String,
    /// Whether this sysroot is the running system's.
    pub booted_system: bool,
    /// All deployments, index 0 boots next.
    pub deployments: Vec<DeploymentInfo>,
    /// The last recorded `cairn check`, if any.
    pub last_check: Option<LastCheck>,
    /// Whether the last check's release is newer than what boots next (on the same ref).
    pub update_available: bool,
    /// Local `/etc` files the last update kept although their default changed (`null`: none).
    pub etc_conflicts: Option<EtcConflicts>,
    /// Automatic updates and health.
    pub automatic: AutoStatus,
}

/// The automatic-update part of `cairn status`.
#[derive(Debug, Clone, Serialize)]
pub struct AutoStatus {
    /// The configured strategy, described.
    pub strategy: String,
    /// The agent's last run.
    pub agent: Option<AgentRecord>,
    /// The last health report.
    pub health: Option<HealthReport>,
    /// GRUB's boot counter.
    pub boot_counter: Option<Counter>,
    /// Releases the agent will not apply again.
    pub failed_versions: Vec<FailedVersion>,
}

/// Collects the host's status (reads only; takes no lock).
pub fn collect(host: &Host, settings: &Settings) -> HostStatus {
    let deployments = host.deployments();
    let last_check = state::load_last_check(&host.var_dir());
    let default = deployments.iter().find(|d| d.osname == host.osname());
    let update_available = match (&last_check, default) {
        (Some(c), Some(d)) => {
            let remote = Release {
                commit: c.commit.clone(),
                version: c.version.clone(),
                timestamp: c.timestamp,
            };
            d.refspec.as_deref() == Some(c.refspec.as_str())
                && c.commit != d.commit
                && !is_older(&remote, &Release::from(d))
        }
        _ => false,
    };
    let var = host.var_dir();
    let automatic = AutoStatus {
        strategy: settings.strategy.describe(),
        agent: state::load_json(&var, crate::agent::FILE),
        health: crate::health::load_state(&var).last,
        boot_counter: bootcount::counter(&bootcount::path(host.path())).ok(),
        failed_versions: crate::failed::load(&var),
    };
    HostStatus {
        etc_conflicts: etc::load(&var),
        automatic,
        sysroot: host.path().to_path_buf(),
        osname: host.osname().to_string(),
        booted_system: host.is_booted(),
        deployments,
        last_check,
        update_available,
    }
}

/// The human-readable form.
pub fn render(s: &HostStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Sysroot {} (stateroot {}), {}",
        s.sysroot.display(),
        s.osname,
        if s.booted_system {
            "booted"
        } else {
            "not booted: deployments are written directly"
        }
    );
    if s.deployments.is_empty() {
        let _ = writeln!(out, "No deployments.");
    }
    for d in &s.deployments {
        let mut tags = Vec::new();
        if d.default {
            tags.push("boots next");
        }
        if d.booted {
            tags.push("booted");
        }
        if d.staged {
            tags.push("staged");
        } else if d.pending {
            tags.push("pending");
        }
        if d.rollback {
            tags.push("rollback");
        }
        if d.pinned {
            tags.push("pinned");
        }
        if s.automatic
            .failed_versions
            .iter()
            .any(|f| f.commit == d.commit)
        {
            tags.push("failed here");
        }
        let _ = writeln!(
            out,
            "{} {} {}  {}  {}",
            if d.booted { "●" } else { " " },
            d.index,
            describe(d.version.as_deref(), &d.commit),
            d.time.as_deref().unwrap_or("-"),
            tags.join(", ")
        );
        let _ = writeln!(
            out,
            "      {}{}",
            d.refspec.as_deref().unwrap_or("(no origin)"),
            if d.osname == s.osname {
                String::new()
            } else {
                format!("  [stateroot {}]", d.osname)
            }
        );
    }
    match &s.last_check {
        Some(c)
            if s.update_available
                && s.automatic
                    .failed_versions
                    .iter()
                    .any(|f| f.commit == c.commit) =>
        {
            let _ = writeln!(
                out,
                "Newest on {}: {} (checked {}), which failed here: not applied automatically",
                c.refspec,
                describe(c.version.as_deref(), &c.commit),
                crate::host::state::format_time(c.checked_at)
            );
        }
        Some(c) if s.update_available => {
            let _ = writeln!(
                out,
                "Update available: {} on {} (checked {}); run `cairn upgrade`",
                describe(c.version.as_deref(), &c.commit),
                c.refspec,
                crate::host::state::format_time(c.checked_at)
            );
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "No newer release known on {} (checked {})",
                c.refspec,
                crate::host::state::format_time(c.checked_at)
            );
        }
        None => {
            let _ = writeln!(out, "Not checked for updates yet (`cairn check`).");
        }
    }
    if let Some(r) = s.last_check.as_ref().and_then(|c| c.rollout.as_ref()) {
        let _ = writeln!(out, "  Rollout: {}", r.describe());
    }
    if let Some(c) = &s.etc_conflicts {
        let _ = writeln!(
            out,
            "Local /etc files kept by the update to {} ({}); their new default was not applied:",
            c.release.describe(),
            crate::host::state::format_time(c.at)
        );
        for f in &c.files {
            let _ = writeln!(
                out,
                "  {} (local: {}, default: {})",
                f.path, f.local, f.default
            );
        }
    }
    render_auto(&mut out, &s.automatic);
    out
}

fn render_auto(out: &mut String, a: &AutoStatus) {
    let _ = writeln!(out, "Automatic updates: {}", a.strategy);
    match &a.agent {
        Some(r) => {
            let _ = writeln!(
                out,
                "  last run {} ({}): {}",
                crate::host::state::format_time(r.ran_at),
                r.state,
                r.message
            );
            if let Some(s) = &r.staged {
                let _ = writeln!(out, "  staged by the agent: {}", s.describe());
            }
            if let Some(h) = &r.reboot_held {
                let _ = writeln!(
                    out,
                    "  reboot held back since {}: {}",
                    crate::host::state::format_time(h.since),
                    h.reason
                );
            }
            if let Some(e) = &r.error {
                let _ = writeln!(out, "  error: {e}");
            }
        }
        None => {
            let _ = writeln!(out, "  the agent has not run yet");
        }
    }
    match &a.health {
        Some(h) => {
            let _ = writeln!(
                out,
                "Health ({}, {}): {}",
                h.release.describe(),
                crate::host::state::format_time(h.at),
                h.action
            );
            for c in h.checks.iter().filter(|c| !c.ok) {
                let _ = writeln!(
                    out,
                    "  {} {}: {}",
                    match c.kind {
                        crate::health::Kind::Required => "FAILED required",
                        crate::health::Kind::Wanted => "warning: wanted",
                    },
                    c.name,
                    c.outcome
                );
            }
        }
        None => {
            let _ = writeln!(out, "Health: not checked yet");
        }
    }
    match a.boot_counter {
        Some(Counter::Pending { left }) => {
            let _ = writeln!(
                out,
                "Boot counter: new deployment on trial, {left} attempts left"
            );
        }
        Some(Counter::Exhausted) => {
            let _ = writeln!(
                out,
                "Boot counter: attempts ran out; GRUB boots the previous deployment"
            );
        }
        _ => {}
    }
    for f in &a.failed_versions {
        let _ = writeln!(
            out,
            "Not applied again: {} {} ({}, {})",
            describe(f.version.as_deref(), &f.commit),
            f.reason.describe(),
            f.detail,
            crate::host::state::format_time(f.at)
        );
    }
}
