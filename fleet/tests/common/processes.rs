//! The real processes the etcd-backed tests start: one `etcd` member on loopback, and
//! `cairn-fleet serve` until it says where it listens. Shared by the fleet's own tests and the
//! updater's FleetLock client test, which includes this file by path (it uses only std, so it
//! needs none of the fleet harness's dependencies).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `etcd` serving `client` and `peer` (URLs) from `data_dir`, member `name` of
/// `initial_cluster` (`name=peer,…`), logging warnings only.
pub fn etcd_member(
    name: &str,
    data_dir: &Path,
    client: &str,
    peer: &str,
    initial_cluster: &str,
) -> Command {
    let mut cmd = Command::new("etcd");
    cmd.args(["--name", name])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen-client-urls", client])
        .args(["--advertise-client-urls", client])
        .args(["--listen-peer-urls", peer])
        .args(["--initial-advertise-peer-urls", peer])
        .args(["--initial-cluster", initial_cluster])
        .args(["--logger", "zap", "--log-level", "warn"]);
    cmd
}

/// Starts `bin serve --json --config CONFIG` (stderr to `log`) and returns it with the line it
/// prints once it listens; fails the test with the log when it exits first.
pub fn serve(bin: &Path, config: &Path, log: &Path) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log).expect("creating the server log"))
        .spawn()
        .expect("starting cairn-fleet serve");
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading cairn-fleet's first line");
    }
    if line.is_empty() {
        let _ = child.kill();
        panic!(
            "cairn-fleet serve exited: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    (child, line)
}
