//! Test harness: real etcd members and real `cairn-fleet serve` processes on loopback, each
//! owned by a guard that kills it on drop; a FleetLock client; `etcdctl` as the witness that
//! reads what is really in etcd.

#![allow(dead_code)]
// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod processes;

/// The key prefix every test configuration uses.
pub const PREFIX: &str = "/test-fleet/";

/// Fails with the package to install when a program is missing (never skips).
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not in PATH: these tests run real etcd members; install Debian's \
         etcd-server package (etcd) and etcd-client (etcdctl)"
    );
}

/// `n` distinct free loopback ports (held open together while choosing, so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// An etcd cluster of real `etcd` processes on loopback, killed on drop.
pub struct Etcd {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    tmp: tempfile::TempDir,
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers.
    pub fn start(n: usize) -> Etcd {
        require("etcd");
        require("etcdctl");
        let tmp = tempfile::tempdir().unwrap();
        let ports = free_ports(2 * n);
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                dir: tmp.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("cairn-test-{}-{}", std::process::id(), ports[0]);
        let mut etcd = Etcd {
            members,
            initial_cluster,
            token,
            tmp,
        };
        for i in 0..n {
            etcd.spawn(i);
        }
        etcd.wait_healthy(&(0..n).collect::<Vec<_>>(), Duration::from_secs(30));
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.tmp.path().join(format!("{}.log", m.name)))
            .unwrap();
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = processes::etcd_member(&m.name, &m.dir, &client, &peer, &self.initial_cluster)
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        self.members[i].child = Some(child);
    }

    /// Client URLs of all members.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client)
    }

    /// Kills member `i` (SIGKILL: it gets no chance to hand over).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i);
    }

    /// Waits until members `live` answer a linearizable read (which needs quorum).
    pub fn wait_healthy(&self, live: &[usize], within: Duration) {
        let eps: Vec<String> = live.iter().map(|i| self.endpoint(*i)).collect();
        let start = Instant::now();
        loop {
            let all_ok = eps.iter().all(|e| {
                // etcdctl prints the verdict on stderr; its exit status is what counts.
                etcdctl(e, &["--command-timeout=1s", "endpoint", "health"]).is_ok()
            });
            if all_ok {
                return;
            }
            if start.elapsed() > within {
                let logs: String = self
                    .members
                    .iter()
                    .map(|m| {
                        let p = self.tmp.path().join(format!("{}.log", m.name));
                        let t = std::fs::read_to_string(p).unwrap_or_default();
                        format!("--- {}:\n{}", m.name, tail(&t, 1500))
                    })
                    .collect();
                panic!("etcd members {live:?} not healthy within {within:?}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The temporary directory (for configuration files and logs).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs etcdctl (API v3) against `endpoints` (comma-separated); its stdout, or stderr as error.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=1s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running etcdctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The ids holding a slot in `group`, read with etcdctl. `serializable` reads the member's
/// local copy (works without quorum).
pub fn holders_at(endpoints: &str, group: &str, serializable: bool) -> BTreeSet<String> {
    let prefix = format!("{PREFIX}groups/{group}/slot/");
    let mut args = vec![
        "--command-timeout=5s",
        "get",
        "--prefix",
        &prefix,
        "--keys-only",
    ];
    if serializable {
        args.push("--consistency=s");
    }
    let out = etcdctl(endpoints, &args).unwrap_or_else(|e| panic!("etcdctl get: {e}"));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect()
}

/// Every key and value under the test prefix, with revisions and leases (etcdctl's JSON).
pub fn dump(endpoints: &str) -> Vec<serde_json::Value> {
    let out = etcdctl(
        endpoints,
        &[
            "--command-timeout=5s",
            "get",
            "--prefix",
            PREFIX,
            "-w",
            "json",
        ],
    )
    .unwrap_or_else(|e| panic!("etcdctl get: {e}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.get("kvs")
        .and_then(|k| k.as_array())
        .cloned()
        .unwrap_or_default()
}

/// The store's current revision.
pub fn revision(endpoints: &str) -> i64 {
    let out = etcdctl(
        endpoints,
        &["get", "--limit=1", "--prefix", PREFIX, "-w", "json"],
    )
    .unwrap_or_else(|e| panic!("etcdctl get: {e}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

/// How many slot keys `group` had at `rev`.
pub fn holders_count_at_revision(endpoints: &str, group: &str, rev: i64) -> i64 {
    let prefix = format!("{PREFIX}groups/{group}/slot/");
    let rev = format!("--rev={rev}");
    let out = etcdctl(
        endpoints,
        &[
            "get",
            "--prefix",
            &prefix,
            &rev,
            "--keys-only",
            "-w",
            "json",
        ],
    )
    .unwrap_or_else(|e| panic!("etcdctl get: {e}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.get("count").and_then(|c| c.as_i64()).unwrap_or(0)
}

/// A configuration file for `cairn-fleet` with one group.
pub fn write_config(
    path: &Path,
    endpoints: &[String],
    group: &str,
    slots: u32,
    reboot_timeout: &str,
    extra: &str,
) {
    let eps = endpoints
        .iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[etcd]\nendpoints = [{eps}]\nprefix = \"{PREFIX}\"\n\
         timeout = \"2s\"\n\n[groups.{group}]\nslots = {slots}\nreboot_timeout = \"{reboot_timeout}\"\n"
    );
    std::fs::write(path, text).unwrap();
}

/// A running `cairn-fleet serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    config: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts the built binary on `config` and waits for its address.
    pub fn start(config: &Path, name: &str) -> Server {
        let log = config.with_file_name(format!("{name}.log"));
        let (child, line) =
            processes::serve(Path::new(env!("CARGO_BIN_EXE_cairn-fleet")), config, &log);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        Server {
            addr: v["listen"].as_str().unwrap().to_string(),
            child,
            config: config.to_path_buf(),
            log,
        }
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cairn-fleet ARGS --config CONFIG`; (exit success, stdout, stderr).
pub fn cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-fleet"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A FleetLock client (hyper) for the tests.
#[derive(Clone)]
pub struct Fleet {
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The error kind of a non-200 answer.
    pub fn kind(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["kind"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl Fleet {
    /// A client.
    pub fn new() -> Fleet {
        Fleet {
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `POST /v1/{op}` for `id` in `group` at `addr`, within 20 s.
    pub async fn post(&self, addr: &str, op: &str, group: &str, id: &str) -> Answer {
        let body = serde_json::json!({"client_params": {"id": id, "group": group}}).to_string();
        let req = hyper::Request::post(format!("http://{addr}/v1/{op}"))
            .header("fleet-lock-protocol", "true")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let work = async {
            let resp = self.http.request(req).await.expect("FleetLock request");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            Answer {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        };
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("FleetLock request timed out")
    }

    /// pre-reboot.
    pub async fn pre(&self, addr: &str, group: &str, id: &str) -> Answer {
        self.post(addr, "pre-reboot", group, id).await
    }

    /// steady-state.
    pub async fn steady(&self, addr: &str, group: &str, id: &str) -> Answer {
        self.post(addr, "steady-state", group, id).await
    }
}
