//! [`Settings`]: the configuration validated once, in the types the rest of the program
//! uses (a [`Strategy`], a number of boot attempts, [`HealthSettings`], …). It is built from
//! the [`ConfigFile`] right after parsing; an invalid value is an error then, pointing at the
//! value as `FILE:LINE:COL`, and never later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_release::rollout::Wave;

use super::file::{ConfigFile, FleetLockConfig, HealthConfig, Invalid, UpdateConfig};
use crate::fleet_lock::{valid_token, Endpoint};
use crate::health::settings::{HealthSettings, Runtime, DEFAULT_TIMEOUT_SECONDS};
use crate::host::bootcount::MAX_ATTEMPTS;
use crate::host::source::Overrides;
use crate::strategy::fleet_lock::FleetLock;
use crate::strategy::periodic::Periodic;
use crate::strategy::Strategy;
use crate::weekly;

/// The default number of boot attempts of a new deployment.
pub const DEFAULT_BOOT_ATTEMPTS: u32 = 3;

/// The default seconds between the agent's warning and its reboot.
pub const DEFAULT_REBOOT_DELAY_SECONDS: u64 = 60;

/// The longest `reboot_delay` accepted: the agent waits in its run, and a longer notice is a
/// maintenance window (`strategy = "periodic"`).
pub const MAX_REBOOT_DELAY_SECONDS: u64 = 3600;

/// `[update] reboot_when_logged_in` and `reboot_delay`: how the agent reboots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootManners {
    /// Reboot although someone is logged in (their session is warned first).
    pub when_logged_in: bool,
    /// Between the warning to logged-in users and the reboot.
    pub delay: Duration,
}

impl Default for RebootManners {
    fn default() -> Self {
        RebootManners {
            when_logged_in: false,
            delay: Duration::from_secs(DEFAULT_REBOOT_DELAY_SECONDS),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `[source]`: what to follow instead of what the deployment's origin says.
    pub source: Overrides,
    /// `[bootloader] grub_generator`: the GRUB menu generator, if not the tree's default.
    pub grub_generator: Option<PathBuf>,
    /// `[verify] require_signature`, if set (the default depends on the trusted keys).
    pub require_signature: Option<bool>,
    /// `[update] strategy` and its section.
    pub strategy: Strategy,
    /// `[update] boot_attempts`: boot attempts of a new deployment.
    pub boot_attempts: u32,
    /// `[update] reboot_when_logged_in`, `reboot_delay`.
    pub reboot: RebootManners,
    /// `[update.rollout] wariness`: this host's wave in every rollout, if set.
    pub wariness: Option<Wave>,
    /// `[health]`.
    pub health: HealthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source: Overrides::default(),
            grub_generator: None,
            require_signature: None,
            strategy: Strategy::Immediate,
            boot_attempts: DEFAULT_BOOT_ATTEMPTS,
            reboot: RebootManners::default(),
            wariness: None,
            health: HealthSettings::default(),
        }
    }
}

impl Settings {
    /// Validates `file`, whose `text` was read from `path` (for positions in messages).
    pub(super) fn from_file(file: &ConfigFile, text: &str, path: &Path) -> Result<Self> {
        check_plain_values(file).with_context(|| format!("{}", path.display()))?;
        let in_file = |e: Invalid| e.in_file(text, path);
        let strategy = file.update.strategy().map_err(in_file)?;
        let boot_attempts = file.update.boot_attempts().map_err(in_file)?;
        let reboot = file.update.reboot_manners().map_err(in_file)?;
        let wariness = file.update.wariness().map_err(in_file)?;
        let health = file.health.settings().map_err(in_file)?;
        Ok(Settings {
            source: Overrides {
                remote: file.source.remote.clone(),
                url: file.source.url.clone(),
                stream: file.source.stream.clone(),
            },
            grub_generator: file.bootloader.grub_generator.clone(),
            require_signature: file.verify.require_signature,
            strategy,
            boot_attempts,
            reboot,
            wariness,
            health,
        })
    }
}

/// `[source]` and `[bootloader]`: plain values, reported with the file name only.
fn check_plain_values(file: &ConfigFile) -> Result<()> {
    if let Some(stream) = &file.source.stream {
        if stream.is_empty()
            || !stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!("[source] stream {stream:?} must be letters, digits, '-', '_' or '.'");
        }
    }
    if let Some(remote) = &file.source.remote {
        if remote.is_empty() || remote.contains(['/', ':', ' ']) {
            bail!("[source] remote {remote:?} is not a valid OSTree remote name");
        }
    }
    if let Some(url) = &file.source.url {
        if !["http://", "https://", "file://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            bail!("[source] url {url:?} must start with http://, https:// or file://");
        }
    }
    if let Some(g) = &file.bootloader.grub_generator {
        if !g.is_absolute() {
            bail!(
                "[bootloader] grub_generator {} must be an absolute path",
                g.display()
            );
        }
    }
    Ok(())
}

impl UpdateConfig {
    /// Boot attempts of a new deployment.
    fn boot_attempts(&self) -> Result<u32, Invalid> {
        match &self.boot_attempts {
            None => Ok(DEFAULT_BOOT_ATTEMPTS),
            Some(n) if (1..=MAX_ATTEMPTS).contains(n.get_ref()) => Ok(*n.get_ref()),
            Some(n) => Err(Invalid::at(
                n,
                format!("[update] boot_attempts must be 1 to {}", MAX_ATTEMPTS),
            )),
        }
    }

    /// `[update.rollout] wariness`.
    fn wariness(&self) -> Result<Option<Wave>, Invalid> {
        self.rollout
            .wariness
            .as_ref()
            .map(|w| {
                Wave::wariness(*w.get_ref())
                    .map_err(|e| Invalid::at(w, format!("[update.rollout] {e}")))
            })
            .transpose()
    }

    /// How the agent reboots.
    fn reboot_manners(&self) -> Result<RebootManners, Invalid> {
        let delay = match &self.reboot_delay {
            None => DEFAULT_REBOOT_DELAY_SECONDS,
            Some(d) if *d.get_ref() <= MAX_REBOOT_DELAY_SECONDS => *d.get_ref(),
            Some(d) => {
                return Err(Invalid::at(
                    d,
                    format!(
                        "[update] reboot_delay must be 0 to {MAX_REBOOT_DELAY_SECONDS} seconds; \
                         for a later reboot use strategy = \"periodic\" with a window"
                    ),
                ))
            }
        };
        Ok(RebootManners {
            when_logged_in: self.reboot_when_logged_in.unwrap_or(false),
            delay: Duration::from_secs(delay),
        })
    }

    /// The validated strategy (default `immediate`).
    fn strategy(&self) -> Result<Strategy, Invalid> {
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
                Strategy::Periodic(Periodic { calendar: periodic })
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

    fn fleet_lock(&self) -> Result<FleetLock, Invalid> {
        let cfg = &self.fleet_lock;
        let Some(url) = &cfg.base_url else {
            return Err(
                self.strategy_error("strategy \"fleet-lock\" needs [update.fleet_lock] base_url")
            );
        };
        let endpoint = Endpoint::parse(url.get_ref())
            .map_err(|e| Invalid::at(url, format!("[update.fleet_lock] base_url: {e:#}")))?;
        let group = match &cfg.group {
            Some(g) => {
                if !valid_token(g.get_ref()) {
                    return Err(Invalid::at(
                        g,
                        "[update.fleet_lock] group must be 1 to 253 letters, digits, '-' or '.' \
                         (the FleetLock protocol's alphabet)",
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
                    "[update.fleet_lock] id must be 1 to 253 letters, digits, '-' or '.' \
                     (the FleetLock protocol's alphabet)",
                ))
            }
            Some(i) => Some(i.get_ref().clone()),
            None => None,
        };
        let ca_file = match &cfg.ca_file {
            Some(f) if !endpoint.tls => {
                return Err(Invalid::at(
                    f,
                    "[update.fleet_lock] ca_file needs an https:// base_url",
                ))
            }
            Some(f) if !Path::new(f.get_ref()).is_absolute() => {
                return Err(Invalid::at(
                    f,
                    "[update.fleet_lock] ca_file must be an absolute path",
                ))
            }
            Some(f) => Some(PathBuf::from(f.get_ref())),
            None => None,
        };
        Ok(FleetLock {
            endpoint,
            group,
            id,
            ca_file,
        })
    }
}

impl HealthConfig {
    /// The validated `[health]`.
    fn settings(&self) -> Result<HealthSettings, Invalid> {
        let timeout_seconds = match &self.timeout_seconds {
            Some(t) if !(1..=3600).contains(t.get_ref()) => {
                return Err(Invalid::at(t, "[health] timeout_seconds must be 1 to 3600"));
            }
            Some(t) => *t.get_ref(),
            None => DEFAULT_TIMEOUT_SECONDS,
        };
        let runtime = self.runtime()?;
        let mut units = Vec::new();
        for u in &self.units {
            let name = u.get_ref();
            if name.is_empty() || !name.contains('.') || name.contains(['/', ' ']) {
                return Err(Invalid::at(
                    u,
                    format!("[health] units: {name:?} is not a unit name (like podman.socket)"),
                ));
            }
            units.push(name.clone());
        }
        Ok(HealthSettings {
            timeout: Duration::from_secs(timeout_seconds),
            runtime,
            units,
        })
    }

    fn runtime(&self) -> Result<Runtime, Invalid> {
        let Some(r) = &self.container_runtime else {
            return Ok(Runtime::Auto);
        };
        match r.get_ref().as_str() {
            "auto" => Ok(Runtime::Auto),
            "podman" => Ok(Runtime::Podman),
            "none" => Ok(Runtime::None),
            other => Err(Invalid::at(
                r,
                format!("[health] container_runtime {other:?}: expected auto, podman or none"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    fn strategy(text: &str) -> anyhow::Result<Strategy> {
        Ok(parse(text, Path::new("/etc/cairn/config.toml"))?.strategy)
    }

    #[test]
    fn default_is_immediate_with_three_attempts() {
        let c = parse("", Path::new("c")).unwrap();
        assert_eq!(c.strategy, Strategy::Immediate);
        assert_eq!(c.boot_attempts, 3);
        assert_eq!(c.reboot, RebootManners::default());
        assert!(!c.reboot.when_logged_in);
        assert_eq!(c.reboot.delay, Duration::from_secs(60));
    }

    #[test]
    fn reboot_manners_parse() {
        let c = parse(
            "[update]\nreboot_when_logged_in = true\nreboot_delay = 0\n",
            Path::new("c"),
        )
        .unwrap();
        assert!(c.reboot.when_logged_in);
        assert_eq!(c.reboot.delay, Duration::ZERO);
        let c = parse("[update.rollout]\nwariness = 0.0\n", Path::new("c")).unwrap();
        assert_eq!(c.wariness.map(Wave::value), Some(0.0));
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
            parse(text, Path::new("/etc/cairn/config.toml"))
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
        let e = err("[update.fleet_lock]\nbase_url = \"ftp://x\"\n");
        assert!(e.starts_with("/etc/cairn/config.toml:2:12:"), "{e}");
        let e = err("[update.fleet_lock]\nbase_url = \"http://x\"\ngroup = \"a_b\"\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:3:9:") && e.contains("alphabet"),
            "{e}"
        );
        let e = err("[update.fleet_lock]\nbase_url = \"http://x\"\nid = \"n_1\"\n");
        assert!(e.starts_with("/etc/cairn/config.toml:3:6:"), "{e}");
        let e = err("[update.fleet_lock]\nbase_url = \"http://x\"\nca_file = \"/ca.pem\"\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:3:11:") && e.contains("https://"),
            "{e}"
        );
        let e = err("[update.fleet_lock]\nbase_url = \"https://x\"\nca_file = \"ca.pem\"\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:3:11:") && e.contains("absolute"),
            "{e}"
        );
        let e = err("[update]\nboot_attempts = 12\n");
        assert!(e.starts_with("/etc/cairn/config.toml:2:17:"), "{e}");
        let e = err("[update]\nreboot_delay = 7200\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:2:16:") && e.contains("periodic"),
            "{e}"
        );
        let e = err("[update.rollout]\nwariness = 1.5\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:2:12: [update.rollout] wariness 1.5"),
            "{e}"
        );
        let e = err("[update]\nstratgy = \"off\"\n");
        assert!(
            e.starts_with("/etc/cairn/config.toml:2:1: unknown field `stratgy`"),
            "{e}"
        );
    }
}
