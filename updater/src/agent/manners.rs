//! Reboot manners: the agent does not restart a machine someone is using. Before its reboot
//! it asks logind who is logged in and what blocks shutdown ([`Present`]); a shutdown
//! inhibitor in `block` mode always holds the reboot back, a logged-in user does unless
//! `[update] reboot_when_logged_in = true`. A held reboot is postponed (the timer tries again)
//! and recorded as a [`RebootHold`] for `cairn status`. A reboot that goes ahead is announced
//! to logged-in users (wall) `reboot_delay` seconds before, and who is present is asked again
//! when the delay is over.
//!
//! Reboots an administrator asks for (`cairn upgrade --reboot`) and health rollbacks are not
//! held back: the first says who is logged in ([`warn_present`]), the second must not wait.

use serde::{Deserialize, Serialize};

use crate::config::settings::RebootManners;
use crate::host::logind::{self, Inhibitor, Session};

/// Who is at the machine and what blocks shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Present {
    /// Users logged in.
    pub sessions: Vec<Session>,
    /// Shutdown inhibitors in block mode.
    pub inhibitors: Vec<Inhibitor>,
}

impl Present {
    /// Asks logind.
    pub fn ask() -> anyhow::Result<Self> {
        Ok(Present {
            sessions: logind::user_sessions()?,
            inhibitors: logind::shutdown_blockers()?,
        })
    }
}

/// Why an automatic reboot waits, in `agent.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootHold {
    /// Since when (seconds since the epoch) the reboot into this release has been held.
    pub since: u64,
    /// What holds it, in words.
    pub reason: String,
    /// The logged-in users that hold it (empty when they may be rebooted on).
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// The inhibitors that hold it.
    #[serde(default)]
    pub inhibitors: Vec<Inhibitor>,
}

/// What holds an automatic reboot back, if anything: the blocking inhibitors, and the users
/// logged in unless the configuration allows rebooting on them.
pub fn hold(manners: &RebootManners, present: &Present) -> Option<(String, Present)> {
    let sessions = if manners.when_logged_in {
        Vec::new()
    } else {
        present.sessions.clone()
    };
    let inhibitors = present.inhibitors.clone();
    let mut why = Vec::new();
    if !sessions.is_empty() {
        why.push(format!(
            "{} logged in ([update] reboot_when_logged_in = false)",
            users(&sessions)
        ));
    }
    if !inhibitors.is_empty() {
        why.push(format!(
            "shutdown inhibited by {}",
            inhibitors
                .iter()
                .map(Inhibitor::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if why.is_empty() {
        return None;
    }
    Some((
        why.join("; "),
        Present {
            sessions,
            inhibitors,
        },
    ))
}

/// The wall message sent before an automatic reboot.
pub fn announcement(release: &str, seconds: u64) -> String {
    format!(
        "Cairn: this machine reboots in {seconds} s into {release}, an automatic update. \
         Save your work; to hold it back, log in (reboot_when_logged_in = false) or take a \
         shutdown inhibitor (systemd-inhibit --what=shutdown)."
    )
}

/// Logs, for a reboot an administrator asked for, who it will disturb. Nothing holds it back.
pub fn warn_present() {
    match Present::ask() {
        Ok(p) => {
            if !p.sessions.is_empty() {
                log::warn!("rebooting although {} logged in", users(&p.sessions));
            }
            for i in &p.inhibitors {
                log::warn!(
                    "rebooting although shutdown is inhibited by {}",
                    i.describe()
                );
            }
        }
        Err(e) => log::debug!("cannot tell who is logged in: {e:#}"),
    }
}

/// `root on ttyS0 is`, `root on ttyS0, alice on pts/0 from 10.0.0.5 are`.
fn users(sessions: &[Session]) -> String {
    let names: Vec<String> = sessions.iter().map(Session::describe).collect();
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn root_on_serial() -> Session {
        Session {
            id: "3".into(),
            user: "root".into(),
            uid: 0,
            tty: "ttyS0".into(),
            remote_host: String::new(),
        }
    }

    fn inhibitor() -> Inhibitor {
        Inhibitor {
            who: "backup".into(),
            why: "nightly copy".into(),
            what: "shutdown".into(),
            uid: 0,
            pid: 900,
        }
    }

    fn manners(when_logged_in: bool) -> RebootManners {
        RebootManners {
            when_logged_in,
            delay: Duration::ZERO,
        }
    }

    #[test]
    fn nobody_present_holds_nothing() {
        assert_eq!(hold(&manners(false), &Present::default()), None);
    }

    #[test]
    fn a_logged_in_user_holds_the_reboot_unless_allowed() {
        let p = Present {
            sessions: vec![root_on_serial()],
            inhibitors: vec![],
        };
        let (why, by) = hold(&manners(false), &p).unwrap();
        assert_eq!(
            why,
            "root on ttyS0 is logged in ([update] reboot_when_logged_in = false)"
        );
        assert_eq!(by.sessions, p.sessions);
        assert_eq!(hold(&manners(true), &p), None);
    }

    #[test]
    fn an_inhibitor_holds_the_reboot_always() {
        let p = Present {
            sessions: vec![root_on_serial(), root_on_serial()],
            inhibitors: vec![inhibitor()],
        };
        let (why, by) = hold(&manners(true), &p).unwrap();
        assert_eq!(
            why,
            "shutdown inhibited by \"backup\" (pid 900): nightly copy"
        );
        assert!(by.sessions.is_empty(), "users may be rebooted on: {by:?}");
        let (why, _) = hold(&manners(false), &p).unwrap();
        assert!(
            why.starts_with("root on ttyS0, root on ttyS0 are logged in"),
            "{why}"
        );
        assert!(why.contains("; shutdown inhibited by"), "{why}");
    }

    #[test]
    fn the_announcement_names_release_and_delay() {
        let a = announcement("1.2 (abc1234)", 60);
        assert!(a.contains("reboots in 60 s into 1.2 (abc1234)"), "{a}");
    }
}
