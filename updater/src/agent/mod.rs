//! The automatic update agent: one run (`cairn agent run-once`, started at boot once the
//! network is online and then by a timer) walks a small state machine ([`Machine`]):
//!
//! ```text
//! Start ─► Initialized ─┬─► ReportedSteady ─┬─► NoNewUpdate
//!                       │                   ├─► UpdateAvailable ─► UpdateStaged ─┬─► Rebooting
//!                       └───────────────────┴─► UpdateStaged (already staged) ───┴─► RebootPostponed
//! ```
//!
//! Each transition is a method; a transition not in this picture is an error
//! ([`IllegalTransition`]), never a panic. What happened and why (above all, why the agent did
//! or did not reboot) is recorded in `/var/lib/cairn/agent.json` ([`AgentRecord`]) for
//! `cairn status`, and logged. The work of a run is in [`run`]; [`manners`] holds a reboot
//! back while someone is logged in or an inhibitor blocks shutdown.

pub mod manners;
pub mod outcomes;
pub mod run;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::release::Release;

/// File name of the agent's record under `<var>/lib/cairn/`.
pub const FILE: &str = "agent.json";

/// The agent's states within one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing done yet.
    Start,
    /// Configuration read, the host opened.
    Initialized,
    /// The running deployment is healthy and the strategy was told (FleetLock: slot released).
    ReportedSteady,
    /// Nothing to apply (up to date, older, or a release that failed here).
    NoNewUpdate,
    /// The remote offers this newer release.
    UpdateAvailable(Release),
    /// This release is staged and boots next.
    UpdateStaged(Release),
    /// Rebooting into it.
    Rebooting(Release),
    /// Not rebooting now; why.
    RebootPostponed(Release, String),
}

impl State {
    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Start => "start",
            State::Initialized => "initialized",
            State::ReportedSteady => "reported-steady",
            State::NoNewUpdate => "no-new-update",
            State::UpdateAvailable(_) => "update-available",
            State::UpdateStaged(_) => "update-staged",
            State::Rebooting(_) => "rebooting",
            State::RebootPostponed(..) => "reboot-postponed",
        }
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    /// The state it was in.
    pub from: &'static str,
    /// The transition attempted.
    pub to: &'static str,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "agent: illegal transition from {} to {}",
            self.from, self.to
        )
    }
}

impl std::error::Error for IllegalTransition {}

/// The state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    state: State,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            state: State::Start,
        }
    }
}

type Step = Result<(), IllegalTransition>;

impl Machine {
    /// A machine in [`State::Start`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    fn go(&mut self, to: State, allowed: bool) -> Step {
        if !allowed {
            return Err(IllegalTransition {
                from: self.state.name(),
                to: to.name(),
            });
        }
        log::debug!("agent: {} -> {}", self.state.name(), to.name());
        self.state = to;
        Ok(())
    }

    /// Start → Initialized.
    pub fn initialized(&mut self) -> Step {
        let ok = self.state == State::Start;
        self.go(State::Initialized, ok)
    }

    /// Initialized → ReportedSteady.
    pub fn reported_steady(&mut self) -> Step {
        let ok = self.state == State::Initialized;
        self.go(State::ReportedSteady, ok)
    }

    fn checked(&self) -> bool {
        matches!(self.state, State::Initialized | State::ReportedSteady)
    }

    /// Initialized or ReportedSteady → NoNewUpdate.
    pub fn no_new_update(&mut self) -> Step {
        let ok = self.checked();
        self.go(State::NoNewUpdate, ok)
    }

    /// Initialized or ReportedSteady → UpdateAvailable.
    pub fn update_available(&mut self, release: Release) -> Step {
        let ok = self.checked();
        self.go(State::UpdateAvailable(release), ok)
    }

    /// UpdateAvailable (the same release) → UpdateStaged; or, when an earlier run staged it,
    /// Initialized or ReportedSteady → UpdateStaged.
    pub fn update_staged(&mut self, release: Release) -> Step {
        let ok = match &self.state {
            State::UpdateAvailable(r) => r.commit == release.commit,
            _ => self.checked(),
        };
        self.go(State::UpdateStaged(release), ok)
    }

    /// UpdateStaged → Rebooting.
    pub fn rebooting(&mut self) -> Step {
        match &self.state {
            State::UpdateStaged(r) => {
                let r = r.clone();
                self.go(State::Rebooting(r), true)
            }
            _ => self.go(State::Rebooting(placeholder()), false),
        }
    }

    /// UpdateStaged → RebootPostponed.
    pub fn reboot_postponed(&mut self, reason: String) -> Step {
        match &self.state {
            State::UpdateStaged(r) => {
                let r = r.clone();
                self.go(State::RebootPostponed(r, reason), true)
            }
            _ => self.go(State::RebootPostponed(placeholder(), reason), false),
        }
    }
}

fn placeholder() -> Release {
    Release {
        commit: String::new(),
        version: None,
        timestamp: 0,
    }
}

/// What the last run did, in `/var/lib/cairn/agent.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// When the run ended, seconds since the epoch.
    pub ran_at: u64,
    /// The strategy in effect.
    pub strategy: String,
    /// The state the run ended in.
    pub state: String,
    /// What the remote offered, if it was asked.
    pub offered: Option<Release>,
    /// What the agent staged and has not booted yet.
    pub staged: Option<Release>,
    /// The release the agent last rebooted into (for FleetLock's steady-state).
    pub rebooted_into: Option<Release>,
    /// Whether a FleetLock slot may still be held by this node.
    pub lock_held: bool,
    /// Why it did or did not reboot (or why nothing was done).
    pub message: String,
    /// The error that ended the run, if any.
    pub error: Option<String>,
    /// Local `/etc` files the staged update kept although their default changed.
    #[serde(default)]
    pub etc_conflicts: Vec<crate::ops::etc::EtcConflict>,
    /// Why the reboot into the staged release waits for people or programs on the machine.
    #[serde(default)]
    pub reboot_held: Option<manners::RebootHold>,
    /// Outcome reports sent to the fleet (`commit:outcome`), so each is sent once.
    #[serde(default)]
    pub reported: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(c: &str) -> Release {
        Release {
            commit: c.into(),
            version: Some("1".into()),
            timestamp: 1,
        }
    }

    #[test]
    fn happy_path_to_reboot() {
        let mut m = Machine::new();
        m.initialized().unwrap();
        m.reported_steady().unwrap();
        m.update_available(rel("a")).unwrap();
        m.update_staged(rel("a")).unwrap();
        m.rebooting().unwrap();
        assert_eq!(m.state(), &State::Rebooting(rel("a")));
    }

    #[test]
    fn postpone_and_already_staged() {
        let mut m = Machine::new();
        m.initialized().unwrap();
        m.update_staged(rel("a")).unwrap();
        m.reboot_postponed("outside window".into()).unwrap();
        assert_eq!(m.state().name(), "reboot-postponed");
    }

    #[test]
    fn no_update_ends_the_run() {
        let mut m = Machine::new();
        m.initialized().unwrap();
        m.no_new_update().unwrap();
        assert!(m.rebooting().is_err());
        assert!(m.update_staged(rel("a")).is_err());
    }

    #[test]
    fn illegal_transitions_are_errors() {
        let mut m = Machine::new();
        let e = m.rebooting().unwrap_err();
        assert_eq!((e.from, e.to), ("start", "rebooting"));
        assert!(m.reported_steady().is_err());
        m.initialized().unwrap();
        assert!(m.initialized().is_err());
        m.update_available(rel("a")).unwrap();
        assert!(m.update_staged(rel("b")).is_err(), "staged another release");
        assert_eq!(m.state(), &State::UpdateAvailable(rel("a")));
    }
}
