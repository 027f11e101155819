//! The FleetLock client (`cairn_updater::fleet_lock`) against the real coordinator: a single
//! `etcd` member and `cairn-fleet serve` on 127.0.0.1, over plain http and over https through
//! a TLS-terminating proxy whose certificate a test CA (made here with `openssl`) signed.
//!
//! The last test runs the whole halt chain: agents on temp sysroots report outcomes, the
//! coordinator halts a failing release, another host leaves it alone.
//!
//! `cairn-fleet` is the workspace's binary beside this test's profile directory
//! (`target/<profile>/cairn-fleet`): `cargo test --workspace` builds it; alone, run
//! `cargo build -p cairn-fleet` (with the same `--release` or not) first.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_updater::fleet_lock::{Client, Endpoint, Lock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[path = "../../fleet/tests/common/processes.rs"]
mod processes;

mod common;

const PREFIX: &str = "/cairn-updater-test/";

/// The commit the round-trip nodes say they reboot into.
const TARGET: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One etcd member, `cairn-fleet serve` on it (group `workers`, 1 slot), and their temp dir.
struct Fleet {
    etcd: Proc,
    _server: Proc,
    etcd_url: String,
    /// `127.0.0.1:PORT` of cairn-fleet.
    addr: String,
    dir: tempfile::TempDir,
}

fn cairn_fleet_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/<profile>/cairn-fleet
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("cairn-fleet");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test --workspace` builds it, or run `cargo build -p cairn-fleet` \
         with this test's profile first",
        bin.display()
    );
    bin
}

fn etcdctl_ok(endpoint: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=1s", "--command-timeout=2s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running etcdctl (Debian's etcd-client)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Fleet {
    fn start() -> Fleet {
        Fleet::start_with("")
    }

    /// With `extra` appended to the configuration (e.g. a `[halt]` table).
    fn start_with(extra: &str) -> Fleet {
        let bin = cairn_fleet_binary();
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2);
        let client = format!("http://127.0.0.1:{}", ports[0]);
        let peer = format!("http://127.0.0.1:{}", ports[1]);
        let log = File::create(dir.path().join("etcd.log")).unwrap();
        let etcd = processes::etcd_member(
            "m0",
            &dir.path().join("etcd"),
            &client,
            &peer,
            &format!("m0={peer}"),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting etcd (Debian's etcd-server)");
        let etcd = Proc(etcd);
        let start = Instant::now();
        while etcdctl_ok(&client, &["endpoint", "health"]).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "etcd did not become healthy: {}",
                std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let config = dir.path().join("fleet.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n[etcd]\nendpoints = [\"{client}\"]\n\
                 prefix = \"{PREFIX}\"\ntimeout = \"2s\"\n\n[groups.workers]\nslots = 1\n\
                 reboot_timeout = \"60s\"\n{extra}"
            ),
        )
        .unwrap();
        let log = dir.path().join("fleet.log");
        let (child, line) = processes::serve(&bin, &config, &log);
        let server = Proc(child);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        Fleet {
            etcd,
            _server: server,
            etcd_url: client,
            addr: v["listen"].as_str().unwrap().to_string(),
            dir,
        }
    }

    /// Stops the etcd member (the coordinator keeps running).
    fn stop_etcd(&mut self) {
        let _ = self.etcd.0.kill();
        let _ = self.etcd.0.wait();
    }

    /// The ids holding a slot of `workers`, as etcd has them.
    fn holders(&self) -> Vec<String> {
        let prefix = format!("{PREFIX}groups/workers/slot/");
        etcdctl_ok(&self.etcd_url, &["get", "--prefix", &prefix, "--keys-only"])
            .expect("etcdctl get")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
            .collect()
    }
}

fn client(url: &str, id: &str, ca: Option<&Path>) -> Client {
    Client::new(Endpoint::parse(url).unwrap(), "workers", id, ca).unwrap()
}

/// One slot, two nodes: the protocol round trip, with etcd as the witness.
fn one_slot_round_trip(fleet: &Fleet, base: &str, ca: Option<&Path>) {
    let a = client(base, "node-a", ca);
    let b = client(base, "node-b", ca);
    assert_eq!(a.pre_reboot(TARGET).unwrap(), Lock::Granted);
    assert_eq!(a.pre_reboot(TARGET).unwrap(), Lock::Granted, "idempotent");
    assert_eq!(fleet.holders(), ["node-a"]);
    match b.pre_reboot(TARGET).unwrap() {
        Lock::Denied(why) => assert!(
            why.starts_with("HTTP 409: no_slot") && why.contains("node-a"),
            "{why}"
        ),
        Lock::Granted => panic!("two holders of one slot"),
    }
    a.steady_state().unwrap();
    assert!(fleet.holders().is_empty());
    assert_eq!(b.pre_reboot(TARGET).unwrap(), Lock::Granted);
    assert_eq!(fleet.holders(), ["node-b"]);
    b.steady_state().unwrap();
    b.steady_state().unwrap();
    assert!(fleet.holders().is_empty());
}

#[test]
fn plain_http_against_cairn_fleet() {
    let fleet = Fleet::start();
    let base = format!("http://{}", fleet.addr);
    one_slot_round_trip(&fleet, &base, None);
    // The server's JSON error, as the agent reports it.
    let other = Client::new(Endpoint::parse(&base).unwrap(), "nightly", "n", None).unwrap();
    match other.pre_reboot(TARGET).unwrap() {
        Lock::Denied(why) => assert!(why.starts_with("HTTP 400: unknown_group"), "{why}"),
        Lock::Granted => panic!("granted in an unconfigured group"),
    }
    let e = format!("{:#}", other.steady_state().unwrap_err());
    assert!(e.contains("refused: HTTP 400: unknown_group"), "{e}");
    // A path prefix the server does not serve: 404 with its JSON.
    let wrong = client(&format!("{base}/lock"), "n", None);
    match wrong.pre_reboot(TARGET).unwrap() {
        Lock::Denied(why) => assert!(why.starts_with("HTTP 404: not_found"), "{why}"),
        Lock::Granted => panic!("granted at a wrong path"),
    }
}

/// A test CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=cairn test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// A TLS-terminating proxy on 127.0.0.1 in front of `upstream` (rustls server side): reads one
/// request per connection, forwards it with `connection: close`, returns the answer. A
/// connection whose handshake the client refuses is dropped. Its port.
fn tls_proxy(pki: &Pki, upstream: String) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let (config, upstream) = (config.clone(), upstream.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let _ = proxy_one(&mut tls, &upstream);
            });
        }
    });
    port
}

fn proxy_one(tls: &mut impl ReadWrite, upstream: &str) -> std::io::Result<()> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&req[..head_end]).into_owned();
    let mut length = 0;
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if i > 0 && lower.starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    let mut body = req[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    tls.write_all(&answer)?;
    tls.flush()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn https_with_the_ca_file_works_and_without_it_fails_on_the_certificate() {
    let fleet = Fleet::start();
    let pki = make_pki(fleet.dir.path());
    let port = tls_proxy(&pki, fleet.addr.clone());

    // Verified against the test CA, by address and by name.
    one_slot_round_trip(&fleet, &format!("https://127.0.0.1:{port}"), Some(&pki.ca));
    one_slot_round_trip(&fleet, &format!("https://localhost:{port}"), Some(&pki.ca));

    // Without the CA the system's roots do not know the server: a certificate error, which
    // says what to do, and nothing taken.
    let c = client(&format!("https://127.0.0.1:{port}"), "node-a", None);
    let e = format!("{:#}", c.pre_reboot(TARGET).unwrap_err());
    assert!(
        e.contains("TLS certificate error") && e.contains("ca_file") && e.contains("UnknownIssuer"),
        "{e}"
    );
    assert!(fleet.holders().is_empty());

    // A certificate from another CA than the one configured: refused too.
    let other = tempfile::tempdir().unwrap();
    let other_pki = make_pki(other.path());
    let c = client(
        &format!("https://127.0.0.1:{port}"),
        "node-a",
        Some(&other_pki.ca),
    );
    let e = format!("{:#}", c.pre_reboot(TARGET).unwrap_err());
    assert!(
        e.contains("TLS certificate error") && e.contains(&other_pki.ca.display().to_string()),
        "{e}"
    );

    // Plain http to a TLS port fails, not hangs; https to the plain port fails too.
    let c = client(&format!("https://{}", fleet.addr), "node-a", Some(&pki.ca));
    assert!(c.pre_reboot(TARGET).is_err());
    assert!(fleet.holders().is_empty());
}

#[test]
fn a_bad_ca_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::parse("https://127.0.0.1:1").unwrap();
    let missing = dir.path().join("missing.pem");
    let e = format!(
        "{:#}",
        Client::new(endpoint.clone(), "g", "n", Some(&missing)).unwrap_err()
    );
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = format!(
        "{:#}",
        Client::new(endpoint, "g", "n", Some(&junk)).unwrap_err()
    );
    assert!(
        e.contains("holds no PEM certificate") && e.contains("junk.pem"),
        "{e}"
    );
}

fn fleet_config(fx: &common::Fixture, fleet: &Fleet, id: &str, extra: &str) -> PathBuf {
    fx.write_config(&format!(
        "[update]\nstrategy = \"fleet-lock\"\n[update.fleet_lock]\nbase_url = \"http://{}\"\n\
         group = \"workers\"\nid = \"{id}\"\n{extra}\n[health]\ncontainer_runtime = \"none\"\n\
         timeout_seconds = 5\n",
        fleet.addr
    ))
}

/// The whole chain with the real coordinator: a release fails its health checks on host A, A's
/// agent reports it, `cairn-fleet` halts it (`[halt] after = 1`), host B following the same
/// repository does not stage it and may not reboot into it; `cairn-fleet unhalt` lifts that.
#[test]
fn a_release_that_fails_on_one_host_is_halted_for_the_others() {
    let mut fleet = Fleet::start_with("\n[halt]\nafter = 1\n");
    let a = common::Fixture::new();
    let cfg_a = fleet_config(&a, &fleet, "host-a", "");
    let v1 = a.publish_with(
        common::STABLE,
        1,
        0,
        &[
            (
                "usr/lib/systemd/system/cairn-health.service",
                "[Service]\nExecStart=/usr/bin/cairn health run\n",
                0o644,
            ),
            (
                "usr/lib/cairn/health.d/required/10-broken",
                "#!/bin/sh\necho 'this release is broken' >&2\nexit 1\n",
                0o755,
            ),
        ],
    );

    // A stages v1 with a slot, "reboots", fails its health check and rolls back.
    let rec = a.agent(&cfg_a);
    assert_eq!(rec["state"], "rebooting", "{rec:#}");
    let out = a.cairn(&[
        "--config",
        cfg_a.to_str().unwrap(),
        "health",
        "run",
        "--no-reboot",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the health run should roll back"
    );
    a.assert_boots(0);

    // A's next run reports the failure; the fleet halts v1.
    let rec = a.agent(&cfg_a);
    assert!(
        rec["reported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == format!("{v1}:rolled-back").as_str()),
        "{rec:#}"
    );
    let watcher = client(&format!("http://{}", fleet.addr), "host-c", None);
    let halts = watcher.halts().unwrap();
    assert_eq!(halts.len(), 1, "{halts:?}");
    assert_eq!(halts[0].commit, v1);
    assert_eq!((halts[0].failures, halts[0].reports), (1, 1));
    // A second run sends nothing twice.
    let again = a.agent(&cfg_a);
    assert_eq!(again["reported"], rec["reported"]);

    // B follows A's repository: it sees v1, and leaves it alone.
    let b = common::Fixture::new();
    let cfg_b = fleet_config(
        &b,
        &fleet,
        "host-b",
        &format!("[source]\nurl = \"{}\"\n", a.server.url()),
    );
    let rec = b.agent(&cfg_b);
    let msg = rec["message"].as_str().unwrap();
    assert!(
        msg.contains("not taking") && msg.contains("halted it: 1 of 1 update(s) failed"),
        "{rec:#}"
    );
    assert!(rec["staged"].is_null(), "{rec:#}");
    b.assert_boots(0);
    assert_eq!(b.order().len(), 1, "B deployed something: {:?}", b.order());
    let check = b.cairn(&["--config", cfg_b.to_str().unwrap(), "check", "--json"]);
    assert_eq!(check.status.code(), Some(77));
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(check["update_available"], false);
    assert!(check["halted"].as_str().unwrap().contains("halted it"));
    // A host that names v1 as its reboot target gets no slot.
    match watcher.pre_reboot(&v1).unwrap() {
        Lock::Denied(why) => assert!(why.starts_with("HTTP 409: release_halted"), "{why}"),
        Lock::Granted => panic!("a slot to reboot into a halted release"),
    }
    assert!(fleet.holders().is_empty());

    // The operator lifts the halt: B takes v1.
    let out = Command::new(cairn_fleet_binary())
        .args(["unhalt", &v1, "--config"])
        .arg(fleet.dir.path().join("fleet.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(watcher.halts().unwrap().is_empty());
    let check = b.cairn(&["--config", cfg_b.to_str().unwrap(), "check", "--json"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // etcd goes away: the coordinator fails closed, and B stages v1 but does not reboot.
    fleet.stop_etcd();
    let rec = b.agent(&cfg_b);
    assert_eq!(rec["state"], "reboot-postponed", "{rec:#}");
    assert_eq!(rec["staged"]["commit"], v1.as_str());
    let msg = rec["message"].as_str().unwrap();
    assert!(msg.contains("HTTP 503: etcd_unavailable"), "{msg}");
}
