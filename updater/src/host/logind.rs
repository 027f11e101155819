//! Who a reboot would disturb, as systemd-logind knows it: the sessions of people logged in
//! (on a console, a serial line or over SSH) and the inhibitors that block shutdown.
//!
//! logind is asked over D-Bus with `busctl --json=short` (its `ListSessions` and
//! `ListInhibitors` methods) and `loginctl show-session` (each session's class, terminal and
//! remote host): the tools of the systemd the host runs, so the answer is logind's own.

use std::collections::HashMap;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A session of someone logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// logind's session ID.
    pub id: String,
    /// The user name.
    pub user: String,
    /// The user ID.
    pub uid: u32,
    /// The terminal (`ttyS0`, `pts/1`), empty when there is none.
    pub tty: String,
    /// Where a remote session (SSH) comes from, empty for a local one.
    pub remote_host: String,
}

impl Session {
    /// `root on ttyS0`, `alice on pts/0 from 10.0.0.5`, `bob (session 4)`.
    pub fn describe(&self) -> String {
        let mut s = self.user.clone();
        if self.tty.is_empty() {
            s.push_str(&format!(" (session {})", self.id));
        } else {
            s.push_str(&format!(" on {}", self.tty));
        }
        if !self.remote_host.is_empty() {
            s.push_str(&format!(" from {}", self.remote_host));
        }
        s
    }
}

/// An inhibitor lock that blocks shutdown (`systemd-inhibit --what=shutdown --mode=block`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inhibitor {
    /// Who holds it, as it says.
    pub who: String,
    /// Why, as it says.
    pub why: String,
    /// What it inhibits (`shutdown`, `shutdown:sleep`, …).
    pub what: String,
    /// The holder's user ID.
    pub uid: u32,
    /// The holder's process ID.
    pub pid: u32,
}

impl Inhibitor {
    /// `"e2e" (pid 812): holding the reboot`.
    pub fn describe(&self) -> String {
        format!("{:?} (pid {}): {}", self.who, self.pid, self.why)
    }
}

/// The sessions of users logged in: logind's sessions of class `user` that are not closing
/// (greeters, lock screens and background sessions are not someone at the machine).
pub fn user_sessions() -> Result<Vec<Session>> {
    let listed = busctl_call("ListSessions")?;
    let mut out = Vec::new();
    for (id, uid, user) in parse_session_list(&listed)? {
        // One --property per name: loginctl 252 takes no comma-separated list (it reads
        // "Class,State" as one unknown name and prints nothing; seen in the VM test).
        let text = run(
            "loginctl",
            &[
                "show-session",
                &id,
                "--property=Class",
                "--property=State",
                "--property=TTY",
                "--property=RemoteHost",
            ],
        )?;
        let props = parse_properties(&text);
        let class = props.get("Class").map_or("", String::as_str);
        let state = props.get("State").map_or("", String::as_str);
        if class != "user" || state == "closing" {
            continue;
        }
        out.push(Session {
            id,
            user,
            uid,
            tty: props.get("TTY").cloned().unwrap_or_default(),
            remote_host: props.get("RemoteHost").cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The inhibitors in `block` mode that cover shutdown (a reboot is one). `delay` locks only
/// postpone a shutdown by seconds, and sleep locks do not concern a reboot.
pub fn shutdown_blockers() -> Result<Vec<Inhibitor>> {
    parse_inhibitors(&busctl_call("ListInhibitors")?)
}

fn busctl_call(method: &str) -> Result<String> {
    run(
        "busctl",
        &[
            "--json=short",
            "call",
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
            method,
        ],
    )
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("Running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The structs of a `busctl --json=short call` answer whose one return value is an array of
/// structs: `{"type":"a(...)","data":[[[field, …], …]]}`.
fn structs(json: &str) -> Result<Vec<Vec<Value>>> {
    let v: Value = serde_json::from_str(json.trim())
        .with_context(|| format!("logind's answer is not JSON: {json:?}"))?;
    let rows = v
        .get("data")
        .and_then(|d| d.get(0))
        .and_then(Value::as_array)
        .with_context(|| format!("logind's answer has no array of structs: {json:?}"))?;
    rows.iter()
        .map(|r| {
            r.as_array()
                .cloned()
                .with_context(|| format!("logind's answer holds a non-struct {r}"))
        })
        .collect()
}

fn text(row: &[Value], i: usize) -> Result<String> {
    row.get(i)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("field {i} of {row:?} is not a string"))
}

fn number(row: &[Value], i: usize) -> Result<u32> {
    row.get(i)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .with_context(|| format!("field {i} of {row:?} is not a 32-bit number"))
}

/// `ListSessions` → `a(susso)`: session ID, user ID, user name, seat, object path.
fn parse_session_list(json: &str) -> Result<Vec<(String, u32, String)>> {
    structs(json)?
        .iter()
        .map(|r| Ok((text(r, 0)?, number(r, 1)?, text(r, 2)?)))
        .collect()
}

/// `ListInhibitors` → `a(ssssuu)`: what, who, why, mode, user ID, process ID; only the
/// shutdown blockers.
fn parse_inhibitors(json: &str) -> Result<Vec<Inhibitor>> {
    let mut out = Vec::new();
    for r in structs(json)? {
        let what = text(&r, 0)?;
        let mode = text(&r, 3)?;
        if mode != "block" || !what.split(':').any(|w| w == "shutdown") {
            continue;
        }
        out.push(Inhibitor {
            what,
            who: text(&r, 1)?,
            why: text(&r, 2)?,
            uid: number(&r, 4)?,
            pid: number(&r, 5)?,
        });
    }
    Ok(out)
}

/// `KEY=VALUE` lines (`loginctl show-session`).
fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_read_from_list_sessions() {
        let json = r#"{"type":"a(susso)","data":[[["3",0,"root","","/org/freedesktop/login1/session/_33"],["c1",1000,"alice","seat0","/org/freedesktop/login1/session/c1"]]]}"#;
        assert_eq!(
            parse_session_list(json).unwrap(),
            vec![
                ("3".into(), 0, "root".into()),
                ("c1".into(), 1000, "alice".into())
            ]
        );
        assert!(parse_session_list(r#"{"type":"a(susso)","data":[[]]}"#)
            .unwrap()
            .is_empty());
        assert!(parse_session_list("Failed to connect").is_err());
        assert!(
            parse_session_list(r#"{"type":"a(susso)","data":[[["3","zero","root"]]]}"#).is_err()
        );
    }

    #[test]
    fn only_blocking_shutdown_inhibitors_count() {
        let json = r#"{"type":"a(ssssuu)","data":[[
            ["shutdown","e2e","holding the reboot","block",0,812],
            ["sleep","NetworkManager","network","delay",0,400],
            ["shutdown:sleep","backup","nightly copy","block",1000,900],
            ["shutdown","unattended-upgrades","upgrading","delay",0,500]
        ]]}"#;
        let got = parse_inhibitors(json).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].describe(), "\"e2e\" (pid 812): holding the reboot");
        assert_eq!(got[1].what, "shutdown:sleep");
        assert_eq!(got[1].uid, 1000);
    }

    #[test]
    fn properties_and_descriptions() {
        let p = parse_properties("Class=user\nState=active\nTTY=ttyS0\nRemoteHost=\n");
        assert_eq!(p["Class"], "user");
        assert_eq!(p["RemoteHost"], "");
        let mut s = Session {
            id: "3".into(),
            user: "root".into(),
            uid: 0,
            tty: "ttyS0".into(),
            remote_host: String::new(),
        };
        assert_eq!(s.describe(), "root on ttyS0");
        s.tty = "pts/0".into();
        s.remote_host = "10.0.2.2".into();
        assert_eq!(s.describe(), "root on pts/0 from 10.0.2.2");
        s.tty.clear();
        s.remote_host.clear();
        assert_eq!(s.describe(), "root (session 3)");
    }
}
