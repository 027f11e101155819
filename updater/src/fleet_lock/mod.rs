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

    fn body(&self) -> String {
        serde_json::json!({"client_params": {"id": self.id, "group": self.group}}).to_string()
    }

    fn post(&self, op: &str) -> Result<http::Response> {
        let url = format!("{}/v1/{op}", self.endpoint);
        self.transport
            .post_json(&url, &[("fleet-lock-protocol", "true")], &self.body())
            .with_context(|| format!("FleetLock {op} at {}", self.endpoint))
    }

    /// `POST /v1/pre-reboot`: may this node reboot now?
    pub fn pre_reboot(&self) -> Result<Lock> {
        let r = self.post("pre-reboot")?;
        if r.status == 200 {
            return Ok(Lock::Granted);
        }
        Ok(Lock::Denied(explain(&r)))
    }

    /// `POST /v1/steady-state`: this node no longer needs its slot.
    pub fn steady_state(&self) -> Result<()> {
        let r = self.post("steady-state")?;
        if r.status != 200 {
            bail!(
                "FleetLock steady-state at {} refused: {}",
                self.endpoint,
                explain(&r)
            );
        }
        Ok(())
    }
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
