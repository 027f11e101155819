//! A FleetLock client: the reboot-coordination protocol Zincati speaks
//! (<https://coreos.github.io/zincati/development/fleetlock/protocol/>).
//!
//! `POST {base}/v1/pre-reboot` takes a slot before rebooting, `POST {base}/v1/steady-state`
//! gives it back once the node is healthy. Both carry the header `fleet-lock-protocol: true`
//! and the body `{"client_params": {"id": ID, "group": GROUP}}`. 200 means yes; anything else
//! carries `{"kind": …, "value": …}`. Both calls are idempotent on the server, so the agent
//! simply repeats them on its next run after a failure.
//!
//! `http://` and `https://` base URLs; the transport is [`crate::host::http`] (ureq, rustls), which
//! verifies an https server against the system's CAs and an optional CA file.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::host::http;

/// Timeout for connecting and for each read and write.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed `http[s]://host[:port][/path]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://` (TLS) rather than `http://`.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix without a trailing `/` (may be empty).
    pub path: String,
}

impl Endpoint {
    /// Parses a base URL.
    pub fn parse(url: &str) -> Result<Self> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            bail!("{url:?} is not an http:// or https:// URL");
        };
        if rest.contains(['?', '#', '@']) {
            bail!("{url:?}: a base URL has no user, query or fragment");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').context("unclosed '[' in the host")?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            bail!("{url:?} names no host");
        }
        if host.contains(|c: char| c.is_whitespace() || c == '/') {
            bail!("{url:?}: bad host {host:?}");
        }
        let port = match port {
            Some(p) => p
                .parse()
                .with_context(|| format!("{url:?}: bad port {p:?}"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// The answer to a pre-reboot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// The node holds a slot and may reboot.
    Granted,
    /// No slot; the server's explanation.
    Denied(String),
}

/// Whether `s` is a valid FleetLock group or node ID: the protocol's `^[a-zA-Z0-9.-]+$`,
/// at most 253 characters (as `cairn-fleet` enforces).
pub fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// A client for one node in one group.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    transport: http::Transport,
    group: String,
    id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    kind: Option<String>,
    value: Option<String>,
}

impl Client {
    /// A client for node `id` in `group`; an https server is verified against the system's
    /// CAs and those in `ca_file` (PEM), read now.
    pub fn new(endpoint: Endpoint, group: &str, id: &str, ca_file: Option<&Path>) -> Result<Self> {
        let transport = http::Transport::new(endpoint.tls, ca_file, TIMEOUT)?;
        Ok(Client {
            endpoint,
            transport,
            group: group.to_string(),
            id: id.to_string(),
        })
    }

    /// This node's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn body(&self, extra: Option<(&str, serde_json::Value)>) -> String {
        let mut body = serde_json::json!({"client_params": {"id": self.id, "group": self.group}});
        if let (Some((key, value)), Some(map)) = (extra, body.as_object_mut()) {
            map.insert(key.to_string(), value);
        }
        body.to_string()
    }

    fn post(&self, op: &str, extra: Option<(&str, serde_json::Value)>) -> Result<http::Response> {
        let url = format!("{}/v1/{op}", self.endpoint);
        self.transport
            .post_json(&url, &[("fleet-lock-protocol", "true")], &self.body(extra))
            .with_context(|| format!("FleetLock {op} at {}", self.endpoint))
    }

    /// `POST /v1/pre-reboot`: may this node reboot now, into `target` (a commit checksum;
    /// sent as Cairn's `"target"` beside `client_params`, which other servers ignore)?
    pub fn pre_reboot(&self, target: &str) -> Result<Lock> {
        let r = self.post(
            "pre-reboot",
            Some(("target", serde_json::json!({ "commit": target }))),
        )?;
        if r.status == 200 {
            return Ok(Lock::Granted);
        }
        Ok(Lock::Denied(explain(&r)))
    }

    /// `POST /v1/steady-state`: this node no longer needs its slot.
    pub fn steady_state(&self) -> Result<()> {
        let r = self.post("steady-state", None)?;
        if r.status != 200 {
            bail!(
                "FleetLock steady-state at {} refused: {}",
                self.endpoint,
                explain(&r)
            );
        }
        Ok(())
    }

    /// `POST /v1/report` (Cairn's extension, served by `cairn-fleet`): how an update ended.
    /// Returns whether the server has halted that release.
    pub fn report(&self, report: &OutcomeReport) -> Result<bool> {
        let r = self.post("report", Some(("report", serde_json::to_value(report)?)))?;
        if r.status != 200 {
            bail!(
                "the outcome report to {} was refused: {}",
                self.endpoint,
                explain(&r)
            );
        }
        let answer: ReportAnswer = serde_json::from_slice(&r.body)
            .with_context(|| format!("{}/v1/report answered no JSON", self.endpoint))?;
        Ok(answer.halted)
    }

    /// `GET /v1/halts` (Cairn's extension): the releases the fleet halted.
    pub fn halts(&self) -> Result<Vec<HaltedRelease>> {
        let url = format!("{}/v1/halts", self.endpoint);
        let r = self
            .transport
            .get(&url, 1 << 20)
            .with_context(|| format!("Asking {url} for halted releases"))?;
        if r.status != 200 {
            bail!("{url}: {}", explain(&r));
        }
        let list: HaltList =
            serde_json::from_slice(&r.body).with_context(|| format!("{url} answered no list"))?;
        Ok(list.halts)
    }
}

/// What the agent reports about one update.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutcomeReport {
    /// The stream's ref.
    pub stream: String,
    /// The release's version.
    pub version: String,
    /// Its commit.
    pub commit: String,
    /// `ok`, `rolled-back` or `boot-attempts`.
    pub outcome: &'static str,
}

#[derive(Debug, Deserialize)]
struct ReportAnswer {
    halted: bool,
}

/// A release the fleet halted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HaltedRelease {
    /// Its version.
    pub version: String,
    /// Its commit.
    pub commit: String,
    /// Failed updates when it was halted.
    pub failures: u32,
    /// Reports when it was halted.
    pub reports: u32,
}

#[derive(Debug, Deserialize)]
struct HaltList {
    halts: Vec<HaltedRelease>,
}

fn explain(r: &http::Response) -> String {
    let text = String::from_utf8_lossy(&r.body);
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(ErrorBody { kind, value }) => format!(
            "HTTP {}: {}{}",
            r.status,
            kind.unwrap_or_else(|| "error".into()),
            value.map(|v| format!(": {v}")).unwrap_or_default()
        ),
        Err(_) => format!("HTTP {}: {}", r.status, text.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://10.0.2.2:8080/lock/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("10.0.2.2", 8080, "/lock")
        );
        assert_eq!(e.to_string(), "http://10.0.2.2:8080/lock");
        let e = Endpoint::parse("http://[::1]:81").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 81));
        assert_eq!(Endpoint::parse("http://fleet").unwrap().port, 80);
        let e = Endpoint::parse("https://fleet.example/x").unwrap();
        assert_eq!((e.tls, e.port, e.path.as_str()), (true, 443, "/x"));
        assert_eq!(e.to_string(), "https://fleet.example:443/x");
        assert!(!Endpoint::parse("http://fleet").unwrap().tls);
        assert!(Endpoint::parse("ftp://fleet").is_err());
        assert!(Endpoint::parse("fleet:80").is_err());
        assert!(Endpoint::parse("http://:80").is_err());
        assert!(Endpoint::parse("http://h:x").is_err());
        assert!(Endpoint::parse("http://u@h").is_err());
        assert!(Endpoint::parse("http://h/?q").is_err());
    }

    #[test]
    fn tokens_follow_the_protocol_alphabet() {
        for ok in ["a", "node-1", "workers.eu-west", "A9", &"x".repeat(253)] {
            assert!(valid_token(ok), "{ok:?}");
        }
        for bad in [
            "",
            "node_1",
            "a b",
            "a/b",
            "ü",
            "a:b",
            "a\n",
            &"x".repeat(254),
        ] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }
}
