//! `cairn-fleet sim` through the real binary: 10,000 hosts in seconds, within bounds.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sim_of_ten_thousand_hosts_runs_in_seconds_within_bounds() {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-fleet"))
        .args(["sim", "--hosts", "10000", "--seed", "7", "--json"])
        .args(["--config", "/nonexistent/fleet.toml"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["hosts"], 10_000);
    assert_eq!(r["within_bounds"], true);
    assert_eq!(
        r["ticks"].as_array().unwrap().last().unwrap()["updated"],
        10_000
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
}
