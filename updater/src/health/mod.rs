//! Health checks after boot, and what follows from them: mark the boot good, or record the
//! failed version, roll back and reboot.
//!
//! Checks are executable files in `/usr/lib/cairn/health.d/{required,wanted}/` (shipped in the
//! tree) and `/etc/cairn/health.d/{required,wanted}/` (the host's own; a file there with the
//! same name as one in `/usr/lib` replaces it, an empty or non-executable one disables it),
//! run in name order, each with a timeout; plus built-in required checks: the container runtime
//! answers (`podman info`) and no unit in `[health] units` has failed. A failed *wanted* check
//! is a warning (journal and `cairn status`); a failed *required* check on a deployment that has
//! never passed before (a new version on trial) records the version as failed
//! ([`crate::failed`]), makes the previous deployment the default and reboots. A deployment
//! that passed once is never rolled back from by this module (that would loop): it is reported
//! unhealthy instead.
//!
//! Boot counting ([`crate::host::bootcount`]) is cleared when the required checks pass; a boot on
//! which GRUB ran out of attempts and fell back to entry 1 is noticed here first.
//!
//! `[health]` in the configuration, validated: [`HealthSettings`].

pub mod runner;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use fn_error_context::context;
use serde::{Deserialize, Serialize};

use crate::failed::{self, Reason};
use crate::host::bootcount::{self, Counter};
use crate::host::reboot;
use crate::host::state;
use crate::host::sysroot::{DeploymentInfo, Host};
use crate::release::Release;

/// File name of the health state under `<var>/lib/cairn/`.
pub const FILE: &str = "health.json";
/// Default timeout of one check.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 120;
/// The unit whose presence in a tree says it runs these checks after boot.
pub const UNIT: &str = "usr/lib/systemd/system/cairn-health.service";

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

/// What one `cairn health run` found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// When, seconds since the epoch.
    pub at: u64,
    /// The deployment checked.
    pub release: Release,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// Whether all required checks passed.
    pub healthy: bool,
    /// Names of failed wanted checks.
    pub warnings: Vec<String>,
    /// What happened: marked good, rolled back, …
    pub action: String,
}

/// What `/var/lib/cairn/health.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// Commits that passed their required checks on this host (newest last, at most 16).
    pub known_good: Vec<String>,
    /// The last report.
    pub last: Option<HealthReport>,
}

/// The health state of the host whose `/var` is `var`.
pub fn load_state(var: &Path) -> HealthState {
    state::load_json(var, FILE).unwrap_or_default()
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

/// What `cairn health run` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// Required checks passed; the boot is marked good.
    Healthy {
        /// The report.
        report: HealthReport,
    },
    /// A required check failed on a new version: recorded, rolled back, (rebooting).
    RolledBack {
        /// The report.
        report: HealthReport,
        /// What boots next now.
        to: Release,
        /// Whether a reboot was started.
        rebooting: bool,
    },
    /// A required check failed, and rolling back is not possible or not safe.
    Unhealthy {
        /// The report.
        report: HealthReport,
    },
}

/// The deployment whose health is checked: the booted one, or (a sysroot that is not booted:
/// tests, images) the default one.
fn current(host: &Host) -> Option<DeploymentInfo> {
    let own = host.own_deployments();
    own.iter()
        .find(|d| d.booted)
        .cloned()
        .or_else(|| own.into_iter().next())
}

/// `cairn health run`: notice a GRUB fallback, run the checks, judge them, then act on the
/// verdict: mark the boot good, or record the version and roll back (and reboot when `reboot`
/// and the host is booted), or report it unhealthy.
#[context("Checking the health of stateroot {}", host.osname())]
pub fn run(host: &Host, settings: &HealthSettings, wait: bool, reboot: bool) -> Result<Outcome> {
    let grubenv = bootcount::path(host.path());
    handle_fallback(host, &grubenv, wait)?;
    let cur = current(host).context("the stateroot has no deployment")?;
    let checks = run_checks(host, settings, &cur);
    let state = load_state(&host.var_dir());
    let verdict = judge(host, &state, &cur, &checks);
    let report = HealthReport {
        at: state::now(),
        release: Release::from(&cur),
        healthy: matches!(verdict, Verdict::Healthy),
        warnings: checks
            .iter()
            .filter(|c| !c.ok && c.kind == Kind::Wanted)
            .map(|c| c.name.clone())
            .collect(),
        checks,
        action: String::new(),
    };
    act(
        host,
        &grubenv,
        state,
        report,
        verdict,
        Rebooting { wait, reboot },
    )
}

/// Runs the check scripts (and, on the running system, the built-in checks) for `cur`, and
/// logs every failure.
fn run_checks(host: &Host, settings: &HealthSettings, cur: &DeploymentInfo) -> Vec<CheckResult> {
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

/// What the checks mean for the deployment.
enum Verdict {
    /// Every required check passed.
    Healthy,
    /// A required check failed on a deployment on trial (it never passed before), and another
    /// deployment not known to fail is there to go back to.
    RollBack {
        /// Which checks failed.
        detail: String,
        /// Where to go back to.
        to: Box<DeploymentInfo>,
    },
    /// A required check failed on a deployment on trial, with nowhere to go back to.
    Stuck {
        /// Which checks failed.
        detail: String,
    },
    /// A required check failed on a deployment that passed before: rolling back from it
    /// automatically could loop.
    Regressed {
        /// Which checks failed.
        detail: String,
    },
}

/// Judges `checks` of `cur`, given what passed before and what failed before.
fn judge(
    host: &Host,
    state: &HealthState,
    cur: &DeploymentInfo,
    checks: &[CheckResult],
) -> Verdict {
    let failed_names: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok && c.kind == Kind::Required)
        .map(|c| c.name.as_str())
        .collect();
    if failed_names.is_empty() {
        return Verdict::Healthy;
    }
    let detail = format!("required health checks failed: {}", failed_names.join(", "));
    if state.known_good.contains(&cur.commit) {
        return Verdict::Regressed { detail };
    }
    let failed_list = failed::load(&host.var_dir());
    let to = host.own_deployments().into_iter().find(|d| {
        d.commit != cur.commit && failed::find(&failed_list, &Release::from(d)).is_none()
    });
    match to {
        Some(to) => Verdict::RollBack {
            detail,
            to: Box::new(to),
        },
        None => Verdict::Stuck { detail },
    }
}

/// How [`act`] may take the sysroot lock and whether it may reboot.
struct Rebooting {
    wait: bool,
    reboot: bool,
}

/// Acts on `verdict`, records `report` (with what was done) in the health state, and returns
/// the outcome.
fn act(
    host: &Host,
    grubenv: &Path,
    mut st: HealthState,
    mut report: HealthReport,
    verdict: Verdict,
    how: Rebooting,
) -> Result<Outcome> {
    let var = host.var_dir();
    let release = report.release.clone();
    let commit = release.commit.clone();
    match verdict {
        Verdict::Healthy => {
            st.known_good.retain(|c| c != &commit);
            st.known_good.push(commit.clone());
            let excess = st.known_good.len().saturating_sub(16);
            st.known_good.drain(..excess);
            let is_default = host.own_deployments().first().map(|d| &d.commit) == Some(&commit);
            if is_default && bootcount::clear(grubenv)? {
                log::info!(
                    "boot of {} marked good (boot counter cleared)",
                    release.describe()
                );
            }
            if failed::forget(&var, &commit)? {
                log::info!(
                    "{} passed its health checks: taken off the failed list",
                    release.describe()
                );
            }
            report.action = format!(
                "{} is healthy{}",
                release.describe(),
                if report.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" (warnings: {})", report.warnings.join(", "))
                }
            );
            log::info!("{}", report.action);
            st.last = Some(report.clone());
            state::save_json(&var, FILE, &st)?;
            Ok(Outcome::Healthy { report })
        }
        Verdict::RollBack { detail, to } => {
            failed::record(&var, &release, Reason::HealthCheck, &detail)?;
            let to_release = Release::from(to.as_ref());
            {
                let lock = host.lock(how.wait)?;
                host.make_default(&lock, to.index)?;
            }
            bootcount::clear(grubenv)?;
            report.action = format!(
                "{detail}; {} recorded as failed, rolled back to {}",
                release.describe(),
                to_release.describe()
            );
            log::error!("{}", report.action);
            let rebooting = how.reboot && host.is_booted();
            st.last = Some(report.clone());
            state::save_json(&var, FILE, &st)?;
            if rebooting {
                reboot::reboot(host)?;
            }
            Ok(Outcome::RolledBack {
                report,
                to: to_release,
                rebooting,
            })
        }
        Verdict::Stuck { detail } => {
            failed::record(&var, &release, Reason::HealthCheck, &detail)?;
            report.action = format!("{detail}; no other deployment to roll back to");
            unhealthy(&var, st, report)
        }
        Verdict::Regressed { detail } => {
            report.action = format!(
                "{detail}; {} passed its checks before, so it is not rolled back from automatically",
                release.describe()
            );
            unhealthy(&var, st, report)
        }
    }
}

/// Logs and records a report whose required checks failed, without a rollback.
fn unhealthy(var: &Path, mut st: HealthState, report: HealthReport) -> Result<Outcome> {
    log::error!("{}", report.action);
    st.last = Some(report.clone());
    state::save_json(var, FILE, &st)?;
    Ok(Outcome::Unhealthy { report })
}

/// If GRUB ran out of boot attempts for the default deployment and booted another, record the
/// default as failed and make the booted one the default again.
fn handle_fallback(host: &Host, grubenv: &Path, wait: bool) -> Result<()> {
    if bootcount::counter(grubenv)? != Counter::Exhausted {
        return Ok(());
    }
    let own = host.own_deployments();
    let Some(default) = own.first() else {
        return Ok(());
    };
    let booted = own.iter().find(|d| d.booted);
    match booted {
        Some(b) if b.index != default.index => {
            let bad = Release::from(default);
            failed::record(
                &host.var_dir(),
                &bad,
                Reason::BootAttempts,
                "it did not come up within its boot attempts; GRUB booted the previous deployment",
            )?;
            let lock = host.lock(wait)?;
            // The booted one first, the failed default left out (removed).
            let all = host.deployments();
            let mut order = vec![b.index];
            order.extend(
                all.iter()
                    .filter(|d| d.index != b.index && d.index != default.index)
                    .map(|d| d.index),
            );
            host.write_order(&lock, &order)?;
            log::error!(
                "GRUB fell back from {} to {} after its boot attempts ran out; {} is the default again",
                bad.describe(),
                Release::from(b).describe(),
                Release::from(b).describe()
            );
        }
        _ => {
            // Exhausted but the default booted (a manual choice in the menu): nothing failed.
            log::info!("boot counter exhausted but the default deployment booted");
        }
    }
    bootcount::clear(grubenv)?;
    Ok(())
}
