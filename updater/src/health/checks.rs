//! The checks: finding the scripts (`/usr/lib` and `/etc`, by name), running them with a
//! timeout, the built-in ones (container runtime, failed units), and what each found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::runner;
use super::settings::{HealthSettings, Runtime};
use crate::host::sysroot::{DeploymentInfo, Host};

/// Required or wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Failure means the deployment is bad.
    Required,
    /// Failure is a warning.
    Wanted,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Required => "required",
            Kind::Wanted => "wanted",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// File name, or `builtin:NAME`.
    pub name: String,
    /// Required or wanted.
    pub kind: Kind,
    /// Whether it passed.
    pub ok: bool,
    /// `passed`, `exit status 1`, `timed out after 120 s`, …
    pub outcome: String,
    /// The end of its output.
    pub output: String,
    /// Milliseconds it took.
    pub millis: u64,
}

/// Where checks are found for a tree rooted at `tree` with its `/etc` at `etc`.
pub fn check_dirs(tree: &Path, etc: &Path, kind: Kind) -> [PathBuf; 2] {
    [
        tree.join("usr/lib/cairn/health.d").join(kind.dir()),
        etc.join("cairn/health.d").join(kind.dir()),
    ]
}

/// The check programs of one kind, by name; `/etc` entries replace `/usr/lib` ones of the same
/// name; non-executable or empty files disable a check.
pub fn discover(dirs: &[PathBuf]) -> Vec<(String, PathBuf)> {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    let mut found: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let usable = std::fs::metadata(&path)
                .is_ok_and(|m| m.is_file() && m.len() > 0 && m.permissions().mode() & 0o111 != 0);
            found.insert(name, usable.then_some(path));
        }
    }
    found
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
        .collect()
}

/// Runs the scripts of both kinds from `dirs_of(kind)`, each with `timeout`.
pub fn run_scripts(dirs_of: impl Fn(Kind) -> Vec<PathBuf>, timeout: Duration) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for kind in [Kind::Required, Kind::Wanted] {
        for (name, path) in discover(&dirs_of(kind)) {
            log::debug!("health check {}", path.display());
            let f = runner::run(&path, &[], timeout);
            out.push(result(name, kind, f, timeout));
        }
    }
    out
}

fn result(name: String, kind: Kind, f: runner::Finished, timeout: Duration) -> CheckResult {
    let (ok, outcome) = match &f.ending {
        runner::Ending::Passed => (true, "passed".to_string()),
        runner::Ending::Failed(Some(c)) => (false, format!("exit status {c}")),
        runner::Ending::Failed(None) => (false, "killed by a signal".to_string()),
        runner::Ending::TimedOut => (false, format!("timed out after {} s", timeout.as_secs())),
        runner::Ending::NotRun(e) => (false, e.clone()),
    };
    CheckResult {
        name,
        kind,
        ok,
        outcome,
        output: f.output,
        millis: u64::try_from(f.duration.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The built-in checks, on the running system only.
fn builtin_checks(settings: &HealthSettings, tree: &Path) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let timeout = settings.timeout;
    let podman = match settings.runtime {
        Runtime::None => false,
        Runtime::Podman => true,
        Runtime::Auto => tree.join("usr/bin/podman").exists(),
    };
    if podman {
        let f = runner::run(
            Path::new("podman"),
            &["info", "--format", "{{.Host.OCIRuntime.Name}}"],
            timeout,
        );
        out.push(result(
            "builtin:container-runtime".into(),
            Kind::Required,
            f,
            timeout,
        ));
    }
    if let Some(c) = declared_containers(Path::new(crate::containers::spec::DIR), timeout) {
        out.push(c);
    }
    let mut failed_units = Vec::new();
    for u in &settings.units {
        let f = runner::run(
            Path::new("systemctl"),
            &["is-failed", "--quiet", u],
            timeout,
        );
        // `is-failed` exits 0 when the unit *is* failed.
        if f.ending == runner::Ending::Passed {
            failed_units.push(u.clone());
        }
    }
    if !settings.units.is_empty() {
        out.push(CheckResult {
            name: "builtin:units".into(),
            kind: Kind::Required,
            ok: failed_units.is_empty(),
            outcome: if failed_units.is_empty() {
                "passed".into()
            } else {
                format!("failed units: {}", failed_units.join(", "))
            },
            output: String::new(),
            millis: 0,
        });
    }
    out
}

/// `builtin:containers`: every container declared in `dir` as required runs (waiting up to
/// `timeout` for units still pulling or restarting). None declared: no check.
fn declared_containers(dir: &Path, timeout: Duration) -> Option<CheckResult> {
    let declared = crate::containers::state::all(dir);
    if !declared.iter().any(|c| c.required) {
        return None;
    }
    let started = std::time::Instant::now();
    let missing = crate::containers::state::required_not_running(dir, timeout);
    Some(CheckResult {
        name: "builtin:containers".into(),
        kind: Kind::Required,
        ok: missing.is_empty(),
        outcome: if missing.is_empty() {
            "passed".into()
        } else {
            format!("required containers not running: {}", missing.join(", "))
        },
        output: String::new(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Runs the check scripts (and, on the running system, the built-in checks) for `cur`, and
/// logs every failure.
pub(super) fn run_checks(
    host: &Host,
    settings: &HealthSettings,
    cur: &DeploymentInfo,
) -> Vec<CheckResult> {
    let etc = host.etc_dir().unwrap_or_else(|| cur.path.join("etc"));
    let tree = if host.is_booted() {
        PathBuf::from("/")
    } else {
        cur.path.clone()
    };
    let mut checks = run_scripts(|k| check_dirs(&tree, &etc, k).to_vec(), settings.timeout);
    if host.is_booted() {
        checks.extend(builtin_checks(settings, &tree));
    }
    for c in checks.iter().filter(|c| !c.ok) {
        let msg = format!(
            "{} health check {} failed: {}{}",
            match c.kind {
                Kind::Required => "required",
                Kind::Wanted => "wanted",
            },
            c.name,
            c.outcome,
            if c.output.is_empty() {
                String::new()
            } else {
                format!(" — {}", c.output.lines().last().unwrap_or_default())
            }
        );
        match c.kind {
            Kind::Required => log::error!("{msg}"),
            Kind::Wanted => log::warn!("{msg}"),
        }
    }
    checks
}
