//! Integration tests of staged rollouts on a host: `cairn check`, `cairn upgrade` and the agent
//! follow the update policy served beside the repository (`cairn-policy.json` + `.sig`), take
//! what it offers this host's wave and nothing else, and refuse a policy they cannot trust.
//! Real libostree sysroots, a real HTTP server; the policy is written and signed with the
//! release crate, as `cairn-compose rollout` writes it.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use cairn_release::rollout::policy::{FILE_NAME, SIG_FILE_NAME};
use cairn_release::rollout::verify::sign;
use cairn_release::rollout::{Policy, Rollout, Wave};
use cairn_release::signature::SecretKey;
use common::*;
use serde_json::Value;

const HOUR: u64 = 3600;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A host on 2026.11.0 trusting `key`, with 2026.11.1 and 2026.11.2 (the tip) published,
/// signed.
struct Setup {
    fx: Fixture,
    key: SecretKey,
    v1: String,
    v2: String,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let key = SecretKey::generate().unwrap();
    fx.trust("release", &key);
    let v1 = fx.publish_signed(STABLE, 1, &key);
    let v2 = fx.publish_signed(STABLE, 2, &key);
    Setup { fx, key, v1, v2 }
}

/// One release line of a policy: version, commit, rollout.
type Line<'a> = (&'a str, &'a str, Option<Rollout>);

impl Setup {
    /// Writes and signs a policy with `lines` for the stable stream.
    fn policy(&self, serial: u64, expires: u64, lines: &[Line<'_>]) -> Policy {
        let mut p = Policy::empty(serial, expires);
        for (version, commit, rollout) in lines {
            p.release_mut(STABLE, version, commit).rollout = *rollout;
        }
        self.publish_policy(&p, Some(&self.key));
        p
    }

    fn publish_policy(&self, p: &Policy, key: Option<&SecretKey>) {
        let bytes = p.to_bytes().unwrap();
        std::fs::write(self.fx.srv.join(FILE_NAME), &bytes).unwrap();
        let sig = self.fx.srv.join(SIG_FILE_NAME);
        match key {
            Some(k) => std::fs::write(sig, sign(&bytes, k)).unwrap(),
            None => {
                let _ = std::fs::remove_file(sig);
            }
        }
    }

    fn config(&self, wariness: Option<f64>) -> PathBuf {
        self.fx.write_config(&match wariness {
            Some(w) => format!("[update.rollout]\nwariness = {w}\n"),
            None => String::new(),
        })
    }

    /// `cairn check --json` (exit 0 or 77).
    fn check(&self, cfg: &Path) -> Value {
        let out = self
            .fx
            .cairn(&["--config", cfg.to_str().unwrap(), "check", "--json"]);
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 77,
            "cairn check exited {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn check_fails(&self, cfg: &Path) -> String {
        self.fx
            .cairn_fails(&["--config", cfg.to_str().unwrap(), "check"], 1)
    }

    fn cairn_ok(&self, cfg: &Path, args: &[&str]) -> String {
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        self.fx.cairn_ok(&all)
    }
}

fn started(ago: u64, percentage: u8, duration_secs: u64) -> Option<Rollout> {
    Some(Rollout {
        start: now() - ago,
        start_percentage: percentage,
        duration_secs,
    })
}

#[test]
fn hosts_take_what_the_rollout_offers_them_not_the_tip() {
    let s = setup();
    let cfg = s.config(Some(0.5));
    let later = now() + 10 * HOUR;
    s.policy(
        1,
        now() + 24 * HOUR,
        &[
            ("2026.11.1", &s.v1, started(HOUR, 100, 0)),
            (
                "2026.11.2",
                &s.v2,
                Some(Rollout {
                    start: later,
                    start_percentage: 100,
                    duration_secs: 0,
                }),
            ),
        ],
    );
    let c = s.check(&cfg);
    assert_eq!(c["update_available"], true, "{c}");
    assert_eq!(
        c["remote"]["version"], "2026.11.1",
        "the tip is 2026.11.2: {c}"
    );
    assert_eq!(c["rollout"]["decision"]["decision"], "offer", "{c}");
    assert_eq!(c["rollout"]["serial"], 1);
    assert_eq!(c["rollout"]["wave"], 0.5);
    assert_eq!(c["rollout"]["wave_from"], "wariness");

    s.cairn_ok(&cfg, &["upgrade"]);
    s.fx.assert_boots(1);

    // 2026.11.2 reaches this host in ten hours: nothing now, and it says when.
    let c = s.check(&cfg);
    assert_eq!(c["update_available"], false, "{c}");
    assert_eq!(c["rollout"]["decision"]["decision"], "wait", "{c}");
    assert_eq!(c["rollout"]["decision"]["version"], "2026.11.2");
    assert_eq!(c["rollout"]["decision"]["at"], later);
    s.cairn_ok(&cfg, &["upgrade"]);
    s.fx.assert_boots(1);
    let status = s.cairn_ok(&cfg, &["status"]);
    assert!(
        status.contains("Rollout: the update policy (serial 1")
            && status.contains("offers 2026.11.2 to this host from"),
        "{status}"
    );

    // The administrator can take it ahead of the rollout.
    s.cairn_ok(&cfg, &["deploy", "2026.11.2"]);
    s.fx.assert_boots(2);
    s.fx.fsck();
}

#[test]
fn the_wave_decides_within_a_started_rollout() {
    let s = setup();
    // Started an hour ago at 0 %, all hosts after ten hours: about 10 % now.
    let rollout = started(HOUR, 0, 10 * HOUR);
    s.policy(
        1,
        now() + 24 * HOUR,
        &[("2026.11.1", &s.v1, rollout), ("2026.11.2", &s.v2, None)],
    );
    let canary = s.check(&s.config(Some(0.0)));
    assert_eq!(canary["update_available"], true, "{canary}");
    assert_eq!(canary["remote"]["version"], "2026.11.1");

    let wary = s.check(&s.config(Some(0.9)));
    assert_eq!(wary["update_available"], false, "{wary}");
    assert_eq!(wary["rollout"]["decision"]["decision"], "wait");
    let at = wary["rollout"]["decision"]["at"].as_u64().unwrap();
    let expected = rollout.unwrap().start + 9 * HOUR;
    assert!(at.abs_diff(expected) <= 1, "at {at}, expected {expected}");

    // Without a wariness the wave comes from the host's machine-id and the stream.
    let id = "0123456789abcdef0123456789abcdef\n";
    std::fs::write(s.fx.deployment_dir(0).join("etc/machine-id"), id).unwrap();
    let c = s.check(&s.config(None));
    assert_eq!(c["rollout"]["wave_from"], "machine-id", "{c}");
    let wave = Wave::of_host(id, STABLE).value();
    assert_eq!(c["rollout"]["wave"].as_f64().unwrap(), wave);
    let share = (now() - rollout.unwrap().start) as f64 / (10 * HOUR) as f64;
    // Far from the edge either way, so the second the test runs in does not matter.
    if (wave - share).abs() > 0.01 {
        assert_eq!(
            c["update_available"],
            wave < share,
            "wave {wave}, share {share}: {c}"
        );
    }
}

#[test]
fn a_policy_the_host_cannot_trust_is_an_error_and_changes_nothing() {
    let s = setup();
    let cfg = s.config(Some(0.0));
    let lines = |s: &Setup| -> Policy {
        let mut p = Policy::empty(5, now() + 24 * HOUR);
        p.release_mut(STABLE, "2026.11.1", &s.v1).rollout = started(HOUR, 100, 0);
        p
    };
    let refused = |needle: &str| {
        let before = s.fx.deployment_ids();
        let err = s.check_fails(&cfg);
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
        let err =
            s.fx.cairn_fails(&["--config", cfg.to_str().unwrap(), "upgrade"], 1);
        assert!(
            err.contains(needle),
            "upgrade: expected {needle:?} in:\n{err}"
        );
        assert_eq!(s.fx.deployment_ids(), before);
    };

    s.publish_policy(&lines(&s), None);
    refused("is not signed");
    s.publish_policy(&lines(&s), Some(&SecretKey::generate().unwrap()));
    refused("none valid for a trusted key");
    let mut expired = lines(&s);
    expired.expires = now() - 60;
    s.publish_policy(&expired, Some(&s.key));
    refused("expired at");

    // Serial 5 accepted; then an older serial, and then no policy at all, are refused.
    s.publish_policy(&lines(&s), Some(&s.key));
    assert_eq!(s.check(&cfg)["rollout"]["serial"], 5);
    let mut older = lines(&s);
    older.serial = 4;
    s.publish_policy(&older, Some(&s.key));
    refused("older than serial 5 accepted before");
    std::fs::remove_file(s.fx.srv.join(FILE_NAME)).unwrap();
    refused("is gone, but this host accepted an update policy");
    s.fx.assert_boots(0);
    s.fx.fsck();
}

#[test]
fn the_agent_stages_the_release_offered_to_it() {
    let s = setup();
    s.policy(
        1,
        now() + 24 * HOUR,
        &[
            ("2026.11.1", &s.v1, started(HOUR, 100, 0)),
            ("2026.11.2", &s.v2, None),
        ],
    );
    let cfg = s.fx.write_config(
        "[update]\nstrategy = \"immediate\"\n[update.rollout]\nwariness = 0.3\n\
         [health]\ncontainer_runtime = \"none\"\n",
    );
    let rec = s.fx.agent(&cfg);
    assert_eq!(rec["staged"]["version"], "2026.11.1", "{rec}");
    s.fx.assert_boots(1);

    // On the next run nothing more is offered: 2026.11.2 has no rollout.
    let rec = s.fx.agent(&cfg);
    let msg = rec["message"].as_str().unwrap();
    assert!(
        msg.contains("lists 2026.11.2 but schedules no rollout for it"),
        "{rec}"
    );
    s.fx.assert_boots(1);
}
