//! One run of the agent: report steady state, check, stage, decide, reboot or not.

use std::time::Duration;

use anyhow::{Context, Result};
use fn_error_context::context;

use super::manners::{self, Present, RebootHold};
use super::outcomes;
use super::{AgentRecord, Machine, State, FILE};
use crate::config::Settings;
use crate::failed;
use crate::health;
use crate::host::source::Source;
use crate::host::state;
use crate::host::sysroot::Host;
use crate::ops::apply::Outcome;
use crate::release::Release;
use crate::strategy::{Decision, Moment, Strategy};

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How often to retry a failed check (the network may not be up at boot); the delay
    /// doubles from 5 s up to 60 s.
    pub network_retries: u32,
    /// Wait for the sysroot lock.
    pub wait: bool,
}

/// The record of the last run, if any.
pub fn load_record(host: &Host) -> Option<AgentRecord> {
    state::load_json(&host.var_dir(), FILE)
}

/// Runs the agent once; the record is saved whatever happens, and returned.
#[context("Running the update agent on stateroot {}", host.osname())]
pub fn run_once(host: &Host, settings: &Settings, opts: &RunOptions) -> Result<AgentRecord> {
    let strategy = &settings.strategy;
    let previous = load_record(host).unwrap_or_default();
    let mut rec = AgentRecord {
        strategy: strategy.describe(),
        lock_held: previous.lock_held,
        rebooted_into: previous.rebooted_into.clone(),
        reported: previous.reported.clone(),
        ..AgentRecord::default()
    };
    let mut m = Machine::new();
    let result = steps(host, settings, strategy, opts, &previous, &mut m, &mut rec);
    rec.ran_at = state::now();
    rec.state = m.state().name().to_string();
    if let Err(e) = &result {
        rec.error = Some(format!("{e:#}"));
        if rec.message.is_empty() {
            rec.message = "the run failed; the timer retries".into();
        }
    }
    state::save_json(&host.var_dir(), FILE, &rec)?;
    result?;
    Ok(rec)
}

fn steps(
    host: &Host,
    settings: &Settings,
    strategy: &Strategy,
    opts: &RunOptions,
    previous: &AgentRecord,
    m: &mut Machine,
    rec: &mut AgentRecord,
) -> Result<()> {
    m.initialized()?;
    if !strategy.stages() {
        rec.message = "automatic updates are off ([update] strategy = \"off\")".into();
        log::info!("{}", rec.message);
        return Ok(());
    }
    let var = host.var_dir();
    let own = host.own_deployments();
    let current = own
        .iter()
        .find(|d| d.booted)
        .or_else(|| own.first())
        .context("the stateroot has no deployment")?
        .clone();
    // A deployment this agent staged on an earlier run and has not rebooted into yet.
    let pending = own.first().filter(|d| {
        let staged_by_us = previous
            .staged
            .as_ref()
            .is_some_and(|s| s.commit == d.commit);
        let rebooted = previous
            .rebooted_into
            .as_ref()
            .is_some_and(|r| r.commit == d.commit);
        staged_by_us && !rebooted && !d.booted
    });

    // Steady state: the running deployment passed its health checks and nothing is pending.
    // FleetLock's steady-state is idempotent, so it is sent on every such run: it also frees
    // a slot that an interrupted earlier run could not record.
    let healthy = health::load_state(&var)
        .known_good
        .contains(&current.commit)
        || !current.path.join(health::UNIT).exists();
    if let Strategy::FleetLock(fleet) = strategy {
        // The release the agent rebooted into, once healthy, and the failed ones.
        let rebooted_into_current = previous
            .rebooted_into
            .as_ref()
            .is_some_and(|r| r.commit == current.commit);
        let ok = (healthy && rebooted_into_current).then_some(&current);
        match Source::for_host(host, &settings.source) {
            Ok(source) => {
                rec.reported = outcomes::send(fleet, &var, &source.ref_, ok, &rec.reported);
            }
            Err(e) => log::warn!("{e:#}; outcome reports wait for the next run"),
        }
    }
    if healthy && pending.is_none() && matches!(strategy, Strategy::FleetLock(_)) {
        match strategy.report_steady() {
            Ok(()) => {
                rec.lock_held = false;
                m.reported_steady()?;
            }
            Err(e) if rec.lock_held => log::warn!("{e:#}; retrying on the next run"),
            Err(e) => log::debug!("{e:#}"),
        }
    }

    let staged = match pending {
        Some(p) => {
            let r = Release::from(p);
            log::info!(
                "{} is staged already; deciding about the reboot",
                r.describe()
            );
            m.update_staged(r.clone())?;
            r
        }
        None => {
            let check = check_with_retries(host, settings, opts)?;
            rec.offered = Some(check.remote.clone());
            let tip = check.remote;
            if !check.update_available {
                let next = check
                    .current
                    .as_ref()
                    .map_or("nothing".into(), Release::describe);
                rec.message = match (&check.halted, &check.rollout) {
                    (Some(h), _) => {
                        format!("not taking {}: {h}; {next} boots next", tip.describe())
                    }
                    (None, Some(r)) => format!("up to date: {}; {next} boots next", r.describe()),
                    (None, None) => format!(
                        "up to date: {} offers {}, {next} boots next",
                        check.refspec,
                        tip.describe()
                    ),
                };
                log::info!("{}", rec.message);
                m.no_new_update()?;
                return Ok(());
            }
            if let Some(f) = failed::find(&failed::load(&var), &tip) {
                rec.message = format!(
                    "not applying {}: it {} ({}); waiting for a newer release",
                    tip.describe(),
                    f.reason.describe(),
                    f.detail
                );
                log::warn!("{}", rec.message);
                m.no_new_update()?;
                return Ok(());
            }
            m.update_available(tip.clone())?;
            log::info!("update available: {}; staging it", tip.describe());
            let outcome =
                crate::ops::update::deploy_revision(host, settings, &tip.commit, opts.wait)?;
            let to = match outcome {
                Outcome::Deployed {
                    to, etc_conflicts, ..
                } => {
                    rec.etc_conflicts = etc_conflicts;
                    to
                }
                Outcome::Unchanged { current, .. } => current,
            };
            m.update_staged(to.clone())?;
            to
        }
    };
    rec.staged = Some(staged.clone());

    // Manners before the strategy: a reboot held back must not take a FleetLock slot.
    if strategy.reboots() {
        if let Some(hold) = reboot_hold(host, settings, previous, &staged) {
            return postpone_for(m, rec, &staged, hold);
        }
    }

    let moment = Moment {
        now: state::now(),
        booted_timestamp: current.timestamp,
    };
    let decision = strategy
        .decide(&moment, &staged.commit)
        .unwrap_or_else(|e| Decision::Postpone(format!("{e:#}; retrying on the next run")));
    match decision {
        Decision::Reboot(why) => {
            if host.is_booted() {
                let delay = settings.reboot.delay;
                crate::host::reboot::announce(&manners::announcement(
                    &staged.describe(),
                    delay.as_secs(),
                ));
                if !delay.is_zero() {
                    log::info!(
                        "rebooting into {} in {} s: {why}",
                        staged.describe(),
                        delay.as_secs()
                    );
                    std::thread::sleep(delay);
                    // Someone may have logged in, or taken an inhibitor, meanwhile.
                    if let Some(hold) = reboot_hold(host, settings, previous, &staged) {
                        if let Err(e) = strategy.report_steady() {
                            log::warn!("{e:#}; the reboot slot stays taken until the next run");
                        }
                        return postpone_for(m, rec, &staged, hold);
                    }
                }
            }
            m.rebooting()?;
            rec.message = format!("rebooting into {}: {why}", staged.describe());
            rec.rebooted_into = Some(staged.clone());
            rec.lock_held = matches!(strategy, Strategy::FleetLock(_));
            log::info!("{}", rec.message);
            // Saved before the reboot: systemd may stop us at any moment after it starts.
            let mut saved = rec.clone();
            saved.ran_at = state::now();
            saved.state = m.state().name().to_string();
            state::save_json(&var, FILE, &saved)?;
            if host.is_booted() {
                crate::host::reboot::reboot(host)?;
            } else {
                log::info!(
                    "not rebooting: {} is not the booted sysroot",
                    host.path().display()
                );
            }
        }
        Decision::Postpone(why) => {
            rec.message = format!("{} is staged; not rebooting: {why}", staged.describe());
            log::info!("{}", rec.message);
            m.reboot_postponed(why)?;
        }
    }
    debug_assert!(matches!(
        m.state(),
        State::Rebooting(_) | State::RebootPostponed(..)
    ));
    Ok(())
}

/// What holds the reboot into `staged` back on this machine now, if anything; the hold keeps
/// the time it began when an earlier run held the same release.
fn reboot_hold(
    host: &Host,
    settings: &Settings,
    previous: &AgentRecord,
    staged: &Release,
) -> Option<RebootHold> {
    if !host.is_booted() {
        // Nobody uses a sysroot that is not running, and the agent does not reboot it.
        return None;
    }
    let since = previous
        .reboot_held
        .as_ref()
        .filter(|_| previous.staged.as_ref().map(|s| &s.commit) == Some(&staged.commit))
        .map_or_else(state::now, |h| h.since);
    match Present::ask() {
        Ok(present) => {
            let (reason, by) = manners::hold(&settings.reboot, &present)?;
            Some(RebootHold {
                since,
                reason,
                sessions: by.sessions,
                inhibitors: by.inhibitors,
            })
        }
        // Rebooting blind could cut someone off; the timer asks again.
        Err(e) => Some(RebootHold {
            since,
            reason: format!("cannot tell who is logged in ({e:#})"),
            sessions: Vec::new(),
            inhibitors: Vec::new(),
        }),
    }
}

fn postpone_for(
    m: &mut Machine,
    rec: &mut AgentRecord,
    staged: &Release,
    hold: RebootHold,
) -> Result<()> {
    rec.message = format!(
        "{} is staged; not rebooting: {}; the timer tries again",
        staged.describe(),
        hold.reason
    );
    log::info!("{}", rec.message);
    m.reboot_postponed(hold.reason.clone())?;
    rec.reboot_held = Some(hold);
    Ok(())
}

fn check_with_retries(
    host: &Host,
    settings: &Settings,
    opts: &RunOptions,
) -> Result<crate::ops::check::CheckResult> {
    let mut delay = Duration::from_secs(5);
    let mut attempt = 0;
    loop {
        match crate::ops::check::check(host, settings, opts.wait) {
            Ok(r) => return Ok(r),
            Err(e) if attempt < opts.network_retries && !crate::ops::check::is_untrusted(&e) => {
                attempt += 1;
                log::warn!(
                    "{e:#}; retrying in {} s ({attempt}/{})",
                    delay.as_secs(),
                    opts.network_retries
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(60));
            }
            Err(e) => return Err(e),
        }
    }
}
