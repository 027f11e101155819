//! The configuration file: TOML read into input structs that keep their spans, then validated
//! once into [`Settings`], the only type the rest of the program sees.
//!
//! Every error names `FILE:LINE:COL` of the value that is wrong and says what would be right.
//! The file is read again on every FleetLock request (see [`Watched`]), so a changed slot count
//! or `max_lost` takes effect on the next request without a restart; `listen` and `[etcd]`
//! are read once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use fn_error_context::context;
use serde::Deserialize;
use toml::Spanned;

use crate::halt::Rule;
use crate::position::file_line_col;
use crate::token;

/// Where `serve`, `status` and `resume` look without `--config`.
pub const DEFAULT_PATH: &str = "/etc/cairn/fleet.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    listen: Spanned<String>,
    #[serde(default)]
    request_timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_body: Option<Spanned<i64>>,
    #[serde(default)]
    max_connections: Option<Spanned<i64>>,
    etcd: Spanned<EtcdInput>,
    #[serde(default)]
    groups: BTreeMap<Spanned<String>, GroupInput>,
    #[serde(default)]
    halt: Option<HaltInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HaltInput {
    after: Spanned<AfterInput>,
    #[serde(default)]
    min_reports: Option<Spanned<i64>>,
}

/// `after = 3` (failed updates) or `after = "30%"` (of the reports).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AfterInput {
    Failures(i64),
    Share(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EtcdInput {
    endpoints: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupInput {
    slots: Spanned<i64>,
    reboot_timeout: Spanned<String>,
    #[serde(default)]
    max_lost: Option<Spanned<i64>>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The address the FleetLock server listens on.
    pub listen: SocketAddr,
    /// How long a client may take to send one request (headers and body).
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// At most this many client connections are served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How to reach etcd.
    pub etcd: EtcdSettings,
    /// The reboot groups, by name.
    pub groups: BTreeMap<String, Group>,
    /// `[halt]`: when a release whose updates fail is halted; `None`: never automatically.
    pub halt: Option<Rule>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Base URLs of the etcd members' client ports (`http://HOST:PORT`), tried in order.
    pub endpoints: Vec<String>,
    /// Every key cairn-fleet writes starts with this.
    pub prefix: String,
    /// How long one call to one member may take before the next member is tried.
    pub timeout: Duration,
}

/// One reboot group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// How many hosts may reboot at once.
    pub slots: u32,
    /// The TTL of the etcd lease behind a slot: a host that has not reported steady state by
    /// then loses its slot and is counted lost.
    pub reboot_timeout: Duration,
    /// After this many lost hosts the group grants no slot until `cairn-fleet resume`.
    pub max_lost: u32,
}

const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_BODY: usize = 4096;
const DEFAULT_MAX_CONNECTIONS: usize = 512;
const DEFAULT_PREFIX: &str = "/cairn-fleet/";
const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(5);

impl Settings {
    /// The configured group names, comma-separated, for messages about an unknown group.
    pub fn group_names(&self) -> String {
        self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Reads and validates `path`.
    #[context("Reading the configuration {}", path.display())]
    pub fn load(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)?;
        Settings::parse(path, &text)
    }

    /// Validates `text`, the content of `path` (used in messages only).
    pub fn parse(path: &Path, text: &str) -> Result<Settings> {
        let at = |span: std::ops::Range<usize>| file_line_col(path, text, span.start);
        let input: Input = toml::from_str(text).map_err(|e| {
            let pos = e.span().map_or_else(|| path.display().to_string(), &at);
            anyhow!("{pos}: {}", e.message().trim_end())
        })?;
        let bad = |span: std::ops::Range<usize>, what: String| anyhow!("{}: {what}", at(span));

        let positive = |n: &Spanned<i64>, what: &str, max: i64| -> Result<i64> {
            let v = *n.get_ref();
            if v < 1 || v > max {
                return Err(bad(
                    n.span(),
                    format!("{what} = {v}: must be from 1 to {max}"),
                ));
            }
            Ok(v)
        };
        let listen = input.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            bad(
                input.listen.span(),
                format!(
                    "listen = {:?} is not an address and port such as \"0.0.0.0:3333\"",
                    input.listen.get_ref()
                ),
            )
        })?;
        let at_most = |s: &Spanned<String>, what: &str, max: Duration| -> Result<Duration> {
            let d = duration(s).map_err(|e| bad(s.span(), format!("{what}: {e}")))?;
            if d > max {
                return Err(bad(
                    s.span(),
                    format!(
                        "{what} = {:?} is more than the {}s allowed",
                        s.get_ref(),
                        max.as_secs()
                    ),
                ));
            }
            Ok(d)
        };
        let request_timeout = match &input.request_timeout {
            Some(s) => at_most(s, "request_timeout", Duration::from_secs(300))?,
            None => DEFAULT_REQUEST_TIMEOUT,
        };
        let max_body = match &input.max_body {
            Some(n) => positive(n, "max_body", 1 << 20)? as usize,
            None => DEFAULT_MAX_BODY,
        };
        let max_connections = match &input.max_connections {
            Some(n) => positive(n, "max_connections", 1 << 20)? as usize,
            None => DEFAULT_MAX_CONNECTIONS,
        };

        let etcd_in = input.etcd.get_ref();
        if etcd_in.endpoints.get_ref().is_empty() {
            return Err(bad(
                etcd_in.endpoints.span(),
                "etcd.endpoints is empty: name at least one member, e.g. \"http://127.0.0.1:2379\""
                    .into(),
            ));
        }
        let mut endpoints = Vec::new();
        for e in etcd_in.endpoints.get_ref() {
            let url = endpoint(e.get_ref()).map_err(|why| bad(e.span(), why))?;
            endpoints.push(url);
        }
        let prefix = match &etcd_in.prefix {
            Some(p) => {
                let v = p.get_ref();
                if !v.starts_with('/') || !v.ends_with('/') || v.len() < 2 {
                    return Err(bad(
                        p.span(),
                        format!("etcd.prefix = {v:?} must start and end with '/', e.g. \"/cairn-fleet/\""),
                    ));
                }
                v.clone()
            }
            None => DEFAULT_PREFIX.to_string(),
        };
        let etcd_timeout = match &etcd_in.timeout {
            Some(s) => at_most(s, "etcd.timeout", Duration::from_secs(60))?,
            None => DEFAULT_ETCD_TIMEOUT,
        };

        let mut groups = BTreeMap::new();
        for (name, g) in &input.groups {
            if !token::valid(name.get_ref()) {
                return Err(bad(
                    name.span(),
                    format!(
                        "group name {:?} is outside the FleetLock alphabet [a-zA-Z0-9.-] \
                         (at most {} characters)",
                        name.get_ref(),
                        token::MAX_LEN
                    ),
                ));
            }
            let slots = positive(&g.slots, "slots", 1 << 20)? as u32;
            let reboot_timeout = duration(&g.reboot_timeout)
                .map_err(|e| bad(g.reboot_timeout.span(), format!("reboot_timeout: {e}")))?;
            if reboot_timeout < Duration::from_secs(2) {
                return Err(bad(
                    g.reboot_timeout.span(),
                    "reboot_timeout must be at least 2s (etcd's shortest lease)".into(),
                ));
            }
            let max_lost = match &g.max_lost {
                Some(n) => positive(n, "max_lost", 1 << 20)? as u32,
                None => 1,
            };
            groups.insert(
                name.get_ref().clone(),
                Group {
                    slots,
                    reboot_timeout,
                    max_lost,
                },
            );
        }
        let halt = match &input.halt {
            None => None,
            Some(h) => Some(halt_rule(h, &bad)?),
        };
        if groups.is_empty() {
            bail!(
                "{}: no [groups.NAME] table: configure at least one reboot group \
                 (Zincati's default group is \"default\")",
                path.display()
            );
        }
        Ok(Settings {
            listen,
            request_timeout,
            max_body,
            max_connections,
            etcd: EtcdSettings {
                endpoints,
                prefix,
                timeout: etcd_timeout,
            },
            groups,
            halt,
        })
    }
}

/// The default `[halt] min_reports` of a ratio rule.
const DEFAULT_MIN_REPORTS: u32 = 10;

fn halt_rule(
    h: &HaltInput,
    bad: &dyn Fn(std::ops::Range<usize>, String) -> anyhow::Error,
) -> Result<Rule> {
    let wrong = || {
        bad(
            h.after.span(),
            "halt.after must be a number of failed updates (after = 3) or a share of the \
             reports (after = \"30%\")"
                .into(),
        )
    };
    let rule = match h.after.get_ref() {
        AfterInput::Failures(n) if (1..=1_000_000).contains(n) => Rule::Failures(*n as u32),
        AfterInput::Failures(_) => return Err(wrong()),
        AfterInput::Share(text) => {
            let percent = text
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<u8>().ok())
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(wrong)?;
            let min_reports = match &h.min_reports {
                None => DEFAULT_MIN_REPORTS,
                Some(n) if (1..=1_000_000).contains(n.get_ref()) => *n.get_ref() as u32,
                Some(n) => {
                    return Err(bad(
                        n.span(),
                        "halt.min_reports must be from 1 to 1000000".into(),
                    ))
                }
            };
            Rule::Ratio {
                percent,
                min_reports,
            }
        }
    };
    if let (Rule::Failures(_), Some(n)) = (rule, &h.min_reports) {
        return Err(bad(
            n.span(),
            "halt.min_reports applies to a share (after = \"30%\"), not to a count".into(),
        ));
    }
    Ok(rule)
}

/// `"90s"`, `"500ms"`, `"10m"`, `"2h"`, `"1d"`: a whole number and a unit.
fn duration(s: &Spanned<String>) -> std::result::Result<Duration, String> {
    parse_duration(s.get_ref())
}

/// Parses `"90s"`, `"500ms"`, `"10m"`, `"2h"` or `"1d"`.
pub fn parse_duration(v: &str) -> std::result::Result<Duration, String> {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = v.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a duration such as \"90s\", \"10m\" or \"2h\""))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "{v:?} has no unit: write e.g. \"{n}s\" (units: ms, s, m, h, d)"
            ))
        }
    };
    match ms {
        Some(ms) if ms > 0 && ms <= 366 * 86_400_000 => Ok(Duration::from_millis(ms)),
        _ => Err(format!("{v:?} must be more than 0 and at most a year")),
    }
}

/// Checks an etcd endpoint: `http://HOST:PORT` and nothing else.
fn endpoint(v: &str) -> std::result::Result<String, String> {
    let hint = "an etcd client URL such as \"http://127.0.0.1:2379\"";
    let Some(rest) = v.strip_prefix("http://") else {
        return Err(format!(
            "{v:?} is not {hint} (https is not supported yet: put etcd on a trusted network)"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let uri: hyper::Uri = v.parse().map_err(|_| format!("{v:?} is not {hint}"))?;
    if uri.host().is_none() || uri.port().is_none() || rest.contains('/') || rest.contains('@') {
        return Err(format!("{v:?} is not {hint} (host and port, no path)"));
    }
    Ok(format!("http://{rest}"))
}

/// The configuration file, read again when it changed (size or modification time), for the
/// values that apply per request. A file that became invalid is reported once and the last
/// valid settings stay in force, so an editing mistake does not stop a running fleet.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    state: Mutex<(Option<(SystemTime, u64)>, Settings)>,
}

impl Watched {
    /// Starts from settings already loaded from `path`.
    pub fn new(path: &Path, settings: Settings) -> Self {
        let stamp = stamp(path);
        Watched {
            path: path.to_path_buf(),
            state: Mutex::new((stamp, settings)),
        }
    }

    /// The current settings.
    pub fn current(&self) -> Settings {
        let stamp = stamp(&self.path);
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if stamp.is_some() && stamp != state.0 {
            state.0 = stamp;
            match Settings::load(&self.path) {
                Ok(s) => {
                    if s != state.1 {
                        log::info!(
                            "{}: configuration changed; now in force",
                            self.path.display()
                        );
                    }
                    state.1 = s;
                }
                Err(e) => log::error!(
                    "{e:#}; keeping the configuration read before until the file is fixed"
                ),
            }
        }
        state.1.clone()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reads `path`, with a hint when it is missing.
pub fn load_or_explain(path: &Path) -> Result<Settings> {
    if !path.exists() {
        return Err(anyhow!(
            "{} does not exist: write one (see config.example.toml beside cairn-fleet's \
             README) or pass --config FILE",
            path.display()
        ));
    }
    Settings::load(path).context("Loading cairn-fleet's configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:3333"
[etcd]
endpoints = ["http://127.0.0.1:2379", "http://[::1]:2479/"]
[groups.default]
slots = 2
reboot_timeout = "10m"
[groups.workers]
slots = 1
reboot_timeout = "90s"
max_lost = 3
"#;

    fn err(text: &str) -> String {
        format!(
            "{:#}",
            Settings::parse(Path::new("f.toml"), text).unwrap_err()
        )
    }

    #[test]
    fn a_good_file() {
        let s = Settings::parse(Path::new("f.toml"), GOOD).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:3333");
        assert_eq!(
            s.etcd.endpoints,
            ["http://127.0.0.1:2379", "http://[::1]:2479"]
        );
        assert_eq!(s.etcd.prefix, "/cairn-fleet/");
        assert_eq!(s.max_body, DEFAULT_MAX_BODY);
        assert_eq!(
            s.groups["default"],
            Group {
                slots: 2,
                reboot_timeout: Duration::from_secs(600),
                max_lost: 1
            }
        );
        assert_eq!(s.groups["workers"].max_lost, 3);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = err(&GOOD.replace("slots = 2", "slots = 0"));
        assert!(
            e.starts_with("f.toml:6:9: slots = 0: must be from 1"),
            "{e}"
        );
        let e = err(&GOOD.replace("slots = 2", "slot = 2"));
        assert!(e.starts_with("f.toml:6:1: unknown field `slot`"), "{e}");
        let e = err(&GOOD.replace("[groups.default]", "[groups.my_group]"));
        assert!(
            e.starts_with("f.toml:5:9: group name \"my_group\" is outside"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"10m\"", "\"10\""));
        assert!(
            e.starts_with("f.toml:7:18: reboot_timeout: \"10\" has no unit"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"10m\"", "\"1s\""));
        assert!(
            e.starts_with("f.toml:7:18: reboot_timeout must be at least 2s"),
            "{e}"
        );
        let e = err(&GOOD.replace("127.0.0.1:3333", "localhost"));
        assert!(e.starts_with("f.toml:2:10: listen = \"localhost\""), "{e}");
        let e = err(&GOOD.replace("http://127.0.0.1:2379", "https://127.0.0.1:2379"));
        assert!(e.starts_with("f.toml:4:14: \"https://"), "{e}");
        let e = err(&GOOD.replace("http://127.0.0.1:2379", "http://127.0.0.1:2379/v3"));
        assert!(e.contains("no path"), "{e}");
        let e = err(&GOOD.replace("max_lost = 3", "max_lost = -1"));
        assert!(e.starts_with("f.toml:11:12: max_lost = -1"), "{e}");
        let e = err(&GOOD.replace("slots = 1", "slots = \"one\""));
        assert!(e.starts_with("f.toml:9:9: invalid type"), "{e}");
        let e = err("listen = \"127.0.0.1:1\"\n[etcd]\nendpoints = []\n");
        assert!(e.starts_with("f.toml:3:13: etcd.endpoints is empty"), "{e}");
        let e = err("listen = \"127.0.0.1:1\"\n[etcd]\nendpoints = [\"http://a:1\"]\n");
        assert!(e.starts_with("f.toml: no [groups.NAME] table"), "{e}");
        let e = err(&GOOD.replace("[etcd]", "request_timeout = \"1h\"\n[etcd]"));
        assert!(
            e.starts_with("f.toml:3:19: request_timeout = \"1h\" is more"),
            "{e}"
        );
        let e = err("listen = \n");
        assert!(e.starts_with("f.toml:1:"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/config.example.toml"
        ));
        let s = Settings::load(path).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:3333");
        assert_eq!(
            s.groups["default"].reboot_timeout,
            Duration::from_secs(1800)
        );
        assert_eq!(s.groups["workers"].slots, 3);
        assert_eq!(s.halt, Some(Rule::Failures(3)));
    }

    #[test]
    fn halt_rules() {
        let parse = |t: &str| Settings::parse(Path::new("f.toml"), &format!("{GOOD}{t}"));
        assert_eq!(parse("").unwrap().halt, None);
        assert_eq!(
            parse("[halt]\nafter = 2\n").unwrap().halt,
            Some(Rule::Failures(2))
        );
        assert_eq!(
            parse("[halt]\nafter = \"25%\"\nmin_reports = 4\n")
                .unwrap()
                .halt,
            Some(Rule::Ratio {
                percent: 25,
                min_reports: 4
            })
        );
        let e = err(&format!("{GOOD}[halt]\nafter = 0\n"));
        assert!(e.starts_with("f.toml:13:9: halt.after must be"), "{e}");
        let e = err(&format!("{GOOD}[halt]\nafter = \"120%\"\n"));
        assert!(e.contains("halt.after must be"), "{e}");
        let e = err(&format!("{GOOD}[halt]\nafter = 3\nmin_reports = 5\n"));
        assert!(e.starts_with("f.toml:14:15:") && e.contains("share"), "{e}");
    }

    #[test]
    fn the_file_is_read_again_when_it_changes_and_a_broken_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.toml");
        std::fs::write(&path, GOOD).unwrap();
        let w = Watched::new(&path, Settings::load(&path).unwrap());
        assert_eq!(w.current().groups["default"].slots, 2);
        std::fs::write(&path, GOOD.replace("slots = 2", "slots = 5")).unwrap();
        assert_eq!(w.current().groups["default"].slots, 5);
        std::fs::write(&path, GOOD.replace("slots = 2", "slots = 0")).unwrap();
        assert_eq!(w.current().groups["default"].slots, 5);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(w.current().groups["default"].slots, 5);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "",
            "s",
            "0s",
            "-1s",
            "1.5s",
            "3 s",
            "99999999999999999999s",
            "400d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
