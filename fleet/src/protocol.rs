//! The FleetLock protocol's messages, as Zincati and airlock exchange them
//! (<https://coreos.github.io/zincati/development/fleetlock/protocol/>): the request body
//! `{"client_params": {"id": ID, "group": GROUP}}` and the error body `{"kind", "value"}`.
//!
//! Parsing here is pure (bytes in, a checked request or an [`Rejection`] out), so the HTTP
//! layer only moves bytes and the rules are unit-tested.

use serde::{Deserialize, Serialize};

use crate::token;

/// The header every FleetLock request carries, with the value `true`.
pub const PROTOCOL_HEADER: &str = "fleet-lock-protocol";

/// The operations: FleetLock's two, and Cairn's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/pre-reboot`: may this host reboot now?
    PreReboot,
    /// `POST /v1/steady-state`: this host is back and needs no slot.
    SteadyState,
    /// `POST /v1/report` (Cairn's extension): how an update ended ([`crate::halt`]).
    Report,
}

/// The path of Cairn's extension that lists halted releases (`GET`).
pub const HALTS_PATH: &str = "/v1/halts";

impl Operation {
    /// The operation at `path`, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        match path {
            "/v1/pre-reboot" => Some(Operation::PreReboot),
            "/v1/steady-state" => Some(Operation::SteadyState),
            "/v1/report" => Some(Operation::Report),
            _ => None,
        }
    }
}

/// A checked request: both fields in the protocol's alphabet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientParams {
    /// The host's id.
    pub id: String,
    /// The host's reboot group.
    pub group: String,
}

#[derive(Debug, Deserialize)]
struct Body {
    client_params: RawParams,
}

#[derive(Debug, Deserialize)]
struct RawParams {
    id: String,
    group: String,
}

/// The error body every non-200 answer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// A stable, machine-readable reason.
    pub kind: String,
    /// What happened, for a person.
    pub value: String,
}

impl Rejection {
    /// A rejection of `kind` saying `value`.
    pub fn new(kind: &str, value: impl Into<String>) -> Self {
        Rejection {
            kind: kind.to_string(),
            value: value.into(),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::json!({"kind": self.kind, "value": self.value}).to_string()
    }
}

/// Checks the protocol header's value.
pub fn check_header(value: Option<&[u8]>) -> Result<(), Rejection> {
    match value {
        Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"true") => Ok(()),
        Some(_) => Err(Rejection::new(
            "bad_protocol_header",
            format!("header {PROTOCOL_HEADER} must be \"true\""),
        )),
        None => Err(Rejection::new(
            "missing_protocol_header",
            format!("FleetLock requests carry the header \"{PROTOCOL_HEADER}: true\""),
        )),
    }
}

/// Parses and checks a request body.
pub fn parse_body(body: &[u8]) -> Result<ClientParams, Rejection> {
    let raw: Body = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(
            "malformed_request",
            format!("the body is not {{\"client_params\":{{\"id\":…,\"group\":…}}}}: {e}"),
        )
    })?;
    let RawParams { id, group } = raw.client_params;
    let alphabet = |what: &str, v: &str| {
        Rejection::new(
            &format!("invalid_{what}"),
            format!(
                "{what} {:?} must match ^[a-zA-Z0-9.-]+$ and be at most {} characters",
                v.chars().take(64).collect::<String>(),
                token::MAX_LEN
            ),
        )
    };
    if !token::valid(&group) {
        return Err(alphabet("group", &group));
    }
    if !token::valid(&id) {
        return Err(alphabet("id", &id));
    }
    Ok(ClientParams { id, group })
}

#[derive(Debug, Deserialize)]
struct ReportBody {
    report: crate::halt::Report,
}

/// The `report` of a `/v1/report` body (beside its `client_params`, parsed by [`parse_body`]).
pub fn parse_report(body: &[u8]) -> Result<crate::halt::Report, Rejection> {
    let raw: ReportBody = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(
            "malformed_report",
            format!(
                "the body needs \"report\": {{\"stream\", \"version\", \"commit\", \
                 \"outcome\": \"ok\" | \"rolled-back\" | \"boot-attempts\"}}: {e}"
            ),
        )
    })?;
    raw.report
        .check()
        .map_err(|why| Rejection::new("malformed_report", why))?;
    Ok(raw.report)
}

#[derive(Debug, Deserialize)]
struct TargetBody {
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    commit: String,
}

/// The commit a pre-reboot says it reboots into, when it says (Cairn hosts do, as
/// `"target": {"commit": …}` beside `client_params`; Zincati's do not).
pub fn target_commit(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<TargetBody>(body)
        .ok()
        .and_then(|b| b.target)
        .map(|t| t.commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_bodies() {
        let p = parse_body(br#"{"client_params":{"id":"n1","group":"default"}}"#).unwrap();
        assert_eq!(
            p,
            ClientParams {
                id: "n1".into(),
                group: "default".into()
            }
        );
        // Fields the protocol may add later are ignored.
        let p = parse_body(br#"{"client_params":{"group":"g","id":"a.b-c","x":1},"y":[]}"#);
        assert!(p.is_ok());
    }

    #[test]
    fn bad_bodies() {
        let kind = |b: &[u8]| parse_body(b).unwrap_err().kind;
        assert_eq!(kind(b""), "malformed_request");
        assert_eq!(kind(b"{"), "malformed_request");
        assert_eq!(
            kind(br#"{"client_params":{"id":"n1","group":"d"#),
            "malformed_request"
        );
        assert_eq!(
            kind(br#"{"client_params":{"id":"n1"}}"#),
            "malformed_request"
        );
        assert_eq!(
            kind(br#"{"client_params":{"id":1,"group":"g"}}"#),
            "malformed_request"
        );
        assert_eq!(kind(br#"{"client_params":null}"#), "malformed_request");
        assert_eq!(kind(b"\xff\xfe"), "malformed_request");
        assert_eq!(kind(&[b'['; 3000]), "malformed_request");
        assert_eq!(
            kind(br#"{"client_params":{"id":"n_1","group":"g"}}"#),
            "invalid_id"
        );
        assert_eq!(
            kind(br#"{"client_params":{"id":"","group":"g"}}"#),
            "invalid_id"
        );
        assert_eq!(
            kind(br#"{"client_params":{"id":"n","group":"a/b"}}"#),
            "invalid_group"
        );
        assert_eq!(
            kind(br#"{"client_params":{"id":"n","group":"../x"}}"#),
            "invalid_group"
        );
        let e = parse_body(br#"{"client_params":{"id":"n","group":"\u00e9"}}"#).unwrap_err();
        assert_eq!(e.kind, "invalid_group");
        assert!(e
            .to_json()
            .starts_with(r#"{"kind":"invalid_group","value":"group \"é\""#));
    }

    #[test]
    fn headers_and_paths() {
        assert!(check_header(Some(b"true")).is_ok());
        assert!(check_header(Some(b" True ")).is_ok());
        assert_eq!(
            check_header(Some(b"1")).unwrap_err().kind,
            "bad_protocol_header"
        );
        assert_eq!(
            check_header(None).unwrap_err().kind,
            "missing_protocol_header"
        );
        assert_eq!(
            Operation::from_path("/v1/pre-reboot"),
            Some(Operation::PreReboot)
        );
        assert_eq!(
            Operation::from_path("/v1/steady-state"),
            Some(Operation::SteadyState)
        );
        assert_eq!(Operation::from_path("/v1/pre-reboot/"), None);
    }
}
