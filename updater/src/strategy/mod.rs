//! Update strategies: when the agent may stage an update and when it may reboot into it.
//!
//! One file per strategy behind the [`Strategy`] enum (as Zincati lays them out):
//! [`immediate`] reboots as soon as an update is staged, [`periodic`] only inside weekly
//! maintenance windows, [`fleet_lock`] after taking a slot from a FleetLock server,
//! [`download_only`] never; `off` does nothing at all. The agent ([`crate::agent`]) asks the
//! strategy, records the answer and its reason, and acts on it.
//!
//! `[update]` in `/etc/cairn/config.toml` ([`UpdateConfig`]) is validated into a [`Strategy`]
//! once; a bad value is reported as `FILE:LINE:COL`.

pub mod download_only;
pub mod fleet_lock;
pub mod immediate;
pub mod periodic;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::Invalid;
use crate::host::bootcount;
use crate::weekly;

/// The default number of boot attempts of a new deployment.
pub const DEFAULT_BOOT_ATTEMPTS: u32 = 3;

/// `[update]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// `off`, `immediate` (default), `periodic`, `fleet-lock` or `download-only`.
    pub strategy: Option<Spanned<String>>,
    /// Boot attempts a new deployment gets before GRUB returns to the previous one (1–9,
    /// default 3).
    pub boot_attempts: Option<Spanned<u32>>,
    /// `[update.periodic]`.
    pub periodic: PeriodicConfig,
    /// `[update.fleet_lock]`.
    pub fleet_lock: FleetLockConfig,
}

/// `[update.periodic]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PeriodicConfig {
    /// `[[update.periodic.window]]` entries.
    pub window: Vec<WindowConfig>,
}

/// One `[[update.periodic.window]]`: on each of `days`, from `start_time` (UTC) for
/// `length_minutes`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Day names: `Mon` … `Sun` (or `Monday` …).
    pub days: Spanned<Vec<Spanned<String>>>,
    /// `HH:MM`, UTC.
    pub start_time: Spanned<String>,
    /// Length in minutes (1 to a week).
    pub length_minutes: Spanned<u32>,
}

/// `[update.fleet_lock]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetLockConfig {
    /// The server's base URL (`http://…`); `/v1/pre-reboot` and `/v1/steady-state` are
    /// appended.
    pub base_url: Option<Spanned<String>>,
    /// The reboot group (default `default`).
    pub group: Option<Spanned<String>>,
    /// This node's ID; default: derived from `/etc/machine-id` (an app-specific hash, so the
    /// machine ID itself is not sent).
    pub id: Option<Spanned<String>>,
}

/// What the strategy says about rebooting now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "kebab-case")]
pub enum Decision {
    /// Reboot into the staged deployment; why.
    Reboot(String),
    /// Not now; why.
    Postpone(String),
}

/// What a strategy decides from.
#[derive(Debug, Clone)]
pub struct Moment {
    /// Now, seconds since the epoch (the system clock).
    pub now: u64,
    /// Commit time of the running release (a clock earlier than this is wrong).
    pub booted_timestamp: Option<u64>,
}

/// A validated strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// No automatic updates.
    Off,
    /// Stage and reboot at once.
    Immediate,
    /// Stage at once, reboot inside maintenance windows.
    Periodic(periodic::Periodic),
    /// Stage at once, reboot holding a FleetLock slot.
    FleetLock(fleet_lock::FleetLock),
    /// Stage, never reboot.
    DownloadOnly,
}

impl Strategy {
    /// The name as configured.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Off => "off",
            Strategy::Immediate => "immediate",
            Strategy::Periodic(_) => "periodic",
            Strategy::FleetLock(_) => "fleet-lock",
            Strategy::DownloadOnly => "download-only",
        }
    }

    /// Whether the agent fetches and stages updates at all.
    pub fn stages(&self) -> bool {
        !matches!(self, Strategy::Off)
    }

    /// Whether the agent may reboot into a staged deployment now.
    pub fn decide(&self, moment: &Moment) -> Result<Decision> {
        Ok(match self {
            Strategy::Off => Decision::Postpone("automatic updates are off".into()),
            Strategy::Immediate => immediate::decide(),
            Strategy::Periodic(p) => p.decide(moment),
            Strategy::FleetLock(f) => f.decide()?,
            Strategy::DownloadOnly => download_only::decide(),
        })
    }

    /// Called once the running deployment is healthy and nothing is staged: a FleetLock
    /// strategy gives its slot back (idempotent on the server). Others do nothing.
    pub fn report_steady(&self) -> Result<()> {
        match self {
            Strategy::FleetLock(f) => f.report_steady(),
            _ => Ok(()),
        }
    }

    /// A one-line description for `cairn status`.
    pub fn describe(&self) -> String {
        match self {
            Strategy::Periodic(p) => format!("periodic ({})", p.describe()),
            Strategy::FleetLock(f) => format!("fleet-lock ({})", f.describe()),
            other => other.name().to_string(),
        }
    }
}

impl UpdateConfig {
    /// Checks every value; errors point at the value.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.strategy()?;
        self.boot_attempts()?;
        Ok(())
    }

    /// Boot attempts of a new deployment.
    pub fn boot_attempts(&self) -> Result<u32, Invalid> {
        match &self.boot_attempts {
            None => Ok(DEFAULT_BOOT_ATTEMPTS),
            Some(n) if (1..=bootcount::MAX_ATTEMPTS).contains(n.get_ref()) => Ok(*n.get_ref()),
            Some(n) => Err(Invalid::at(
                n,
                format!(
                    "[update] boot_attempts must be 1 to {}",
                    bootcount::MAX_ATTEMPTS
                ),
            )),
        }
    }

    /// The validated strategy (default `immediate`).
    pub fn strategy(&self) -> Result<Strategy, Invalid> {
        let name = self.strategy.as_ref().map_or("immediate", |s| s.get_ref());
        // Every section is validated, whichever strategy is chosen: a mistake surfaces now,
        // not when someone switches strategies.
        let periodic = self.periodic_calendar()?;
        let fleet_lock = if self.fleet_lock != FleetLockConfig::default() || name == "fleet-lock" {
            Some(self.fleet_lock()?)
        } else {
            None
        };
        let strategy = match name {
            "off" => Strategy::Off,
            "immediate" => Strategy::Immediate,
            "download-only" => Strategy::DownloadOnly,
            "periodic" => {
                if periodic.windows.is_empty() {
                    return Err(self.strategy_error(
                        "strategy \"periodic\" needs at least one [[update.periodic.window]]",
                    ));
                }
                Strategy::Periodic(periodic::Periodic { calendar: periodic })
            }
            "fleet-lock" => match fleet_lock {
                Some(f) => Strategy::FleetLock(f),
                None => {
                    return Err(
                        self.strategy_error("strategy \"fleet-lock\" needs [update.fleet_lock]")
                    )
                }
            },
            other => {
                return Err(self.strategy_error(&format!(
                    "unknown strategy {other:?}; expected off, immediate, periodic, fleet-lock \
                     or download-only"
                )))
            }
        };
        Ok(strategy)
    }

    fn strategy_error(&self, message: &str) -> Invalid {
        let message = format!("[update] {message}");
        match &self.strategy {
            Some(s) => Invalid::at(s, message),
            None => Invalid::new(message),
        }
    }

    fn periodic_calendar(&self) -> Result<weekly::Calendar, Invalid> {
        let mut cal = weekly::Calendar::default();
        for w in &self.periodic.window {
            let mut days = Vec::new();
            for d in w.days.get_ref() {
                days.push(
                    weekly::parse_day(d.get_ref())
                        .map_err(|e| Invalid::at(d, format!("[[update.periodic.window]] {e}")))?,
                );
            }
            if days.is_empty() {
                return Err(Invalid::at(
                    &w.days,
                    "[[update.periodic.window]] days must name at least one day",
                ));
            }
            let start = weekly::parse_time_of_day(w.start_time.get_ref()).map_err(|e| {
                Invalid::at(&w.start_time, format!("[[update.periodic.window]] {e}"))
            })?;
            let len = *w.length_minutes.get_ref();
            if len == 0 || len > weekly::WEEK_MINUTES {
                return Err(Invalid::at(
                    &w.length_minutes,
                    format!(
                        "[[update.periodic.window]] length_minutes must be 1 to {}",
                        weekly::WEEK_MINUTES
                    ),
                ));
            }
            cal.add(&days, start, len);
        }
        Ok(cal)
    }

    fn fleet_lock(&self) -> Result<fleet_lock::FleetLock, Invalid> {
        let cfg = &self.fleet_lock;
        let Some(url) = &cfg.base_url else {
            return Err(
                self.strategy_error("strategy \"fleet-lock\" needs [update.fleet_lock] base_url")
            );
        };
        let endpoint = crate::fleet_lock::Endpoint::parse(url.get_ref())
            .map_err(|e| Invalid::at(url, format!("[update.fleet_lock] base_url: {e:#}")))?;
        let group = match &cfg.group {
            Some(g) => {
                if !valid_token(g.get_ref()) {
                    return Err(Invalid::at(
                        g,
                        "[update.fleet_lock] group must be letters, digits, '-', '_' or '.'",
                    ));
                }
                g.get_ref().clone()
            }
            None => "default".to_string(),
        };
        let id = match &cfg.id {
            Some(i) if !valid_token(i.get_ref()) => {
                return Err(Invalid::at(
                    i,
                    "[update.fleet_lock] id must be letters, digits, '-', '_' or '.'",
                ))
            }
            Some(i) => Some(i.get_ref().clone()),
            None => None,
        };
        Ok(fleet_lock::FleetLock {
            endpoint,
            group,
            id,
        })
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    use super::*;

    fn strategy(text: &str) -> anyhow::Result<Strategy> {
        let c = Config::parse(text, Path::new("/etc/cairn/config.toml"))?;
        c.update.strategy().map_err(|e| anyhow::anyhow!(e.message))
    }

    #[test]
    fn default_is_immediate_with_three_attempts() {
        let c = Config::parse("", Path::new("c")).unwrap();
        assert_eq!(c.update.strategy().unwrap(), Strategy::Immediate);
        assert_eq!(c.update.boot_attempts().unwrap(), 3);
    }

    #[test]
    fn every_strategy_parses() {
        for s in ["off", "immediate", "download-only"] {
            assert_eq!(
                strategy(&format!("[update]\nstrategy = \"{s}\"\n"))
                    .unwrap()
                    .name(),
                s
            );
        }
        let p = strategy(
            "[update]\nstrategy = \"periodic\"\n[[update.periodic.window]]\n\
             days = [\"Sat\", \"Sun\"]\nstart_time = \"23:30\"\nlength_minutes = 60\n",
        )
        .unwrap();
        assert_eq!(
            p.describe(),
            "periodic (Sat 23:30 UTC for 60 min, Sun 23:30 UTC for 60 min)"
        );
        let f = strategy(
            "[update]\nstrategy = \"fleet-lock\"\n[update.fleet_lock]\n\
             base_url = \"http://10.0.0.1:8080\"\ngroup = \"workers\"\n",
        )
        .unwrap();
        assert_eq!(f.name(), "fleet-lock");
    }

    #[test]
    fn bad_values_name_file_line_and_column() {
        let err = |text: &str| {
            Config::parse(text, Path::new("/etc/cairn/config.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[update]\nstrategy = \"sometimes\"\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:2:12: [update] unknown strategy"),
            "{e}"
        );
        let e = err(
            "[update]\nstrategy = \"periodic\"\n[[update.periodic.window]]\n\
             days = [\"Sat\", \"Caturday\"]\nstart_time = \"23:30\"\nlength_minutes = 60\n",
        );
        assert!(e.starts_with("/etc/cairn/config.toml:4:16:"), "{e}");
        let e = err(
            "[[update.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"25:00\"\n\
             length_minutes = 60\n",
        );
        assert!(e.starts_with("/etc/cairn/config.toml:3:14:"), "{e}");
        let e = err("[update]\nstrategy = \"periodic\"\n");
        assert!(e.contains("at least one [[update.periodic.window]]"), "{e}");
        let e = err("[update]\nstrategy = \"fleet-lock\"\n");
        assert!(e.contains("base_url"), "{e}");
        let e = err("[update.fleet_lock]\nbase_url = \"https://x\"\n");
        assert!(e.starts_with("/etc/cairn/config.toml:2:12:"), "{e}");
        let e = err("[update]\nboot_attempts = 12\n");
        assert!(e.starts_with("/etc/cairn/config.toml:2:17:"), "{e}");
        let e = err("[update]\nstratgy = \"off\"\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:2:1: unknown field `stratgy`"),
            "{e}"
        );
    }
}
