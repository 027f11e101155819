//! `cairn status`: the deployments, which boots next, and what the last check found.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::deploy::{describe, is_older, Release};
use crate::state::{self, LastCheck};
use crate::sysroot::{DeploymentInfo, Host};

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
}

/// Collects the host's status (reads only; takes no lock).
pub fn collect(host: &Host) -> HostStatus {
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
    HostStatus {
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
        Some(c) if s.update_available => {
            let _ = writeln!(
                out,
                "Update available: {} on {} (checked {}); run `cairn upgrade`",
                describe(c.version.as_deref(), &c.commit),
                c.refspec,
                crate::state::format_time(c.checked_at)
            );
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "No newer release known on {} (checked {})",
                c.refspec,
                crate::state::format_time(c.checked_at)
            );
        }
        None => {
            let _ = writeln!(out, "Not checked for updates yet (`cairn check`).");
        }
    }
    out
}
