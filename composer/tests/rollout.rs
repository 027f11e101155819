//! `cairn-compose rollout` end to end: a tiny repository made with the `ostree` CLI, every
//! command through the real binary, the result checked the way a host checks it.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::run;

use cairn_release::rollout::{offer, verify, Decision, Wave};
use cairn_release::signature::{PublicKey, TrustedKeys};

const S: &str = "cairn/bookworm/x86_64/stable";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        run(Command::new("ostree")
            .arg(format!("--repo={}", f.repo().display()))
            .args(["init", "--mode=archive"]));
        f
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("release.key")
    }

    fn commit(&self, version: &str) -> String {
        let tree = self.dir.path().join(format!("tree-{version}"));
        fs::create_dir_all(tree.join("usr/lib")).unwrap();
        fs::write(
            tree.join("usr/lib/os-release"),
            format!("VERSION_ID={version}\n"),
        )
        .unwrap();
        let out = run(Command::new("ostree")
            .arg(format!("--repo={}", self.repo().display()))
            .arg("commit")
            .arg(format!("--branch={S}"))
            .arg(format!("--add-metadata-string=version={version}"))
            .arg(format!("--tree=dir={}", tree.display())));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn compose(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cairn-compose"))
            .arg("rollout")
            .args(args)
            .arg("--repo")
            .arg(self.repo())
            .output()
            .unwrap()
    }

    /// Runs an edit command with --sign-key and --json; returns its JSON.
    fn edit(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        let key = self.key().display().to_string();
        all.extend(["--sign-key", &key, "--json"]);
        let out = self.compose(&all);
        assert!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn host_policy(&self) -> cairn_release::rollout::Policy {
        let trusted = TrustedKeys {
            keys: PublicKey::load_all(&self.dir.path().join("release.key.pub")).unwrap(),
            searched: vec![],
        };
        let repo = self.repo();
        verify(
            "cairn-policy.json",
            &fs::read(repo.join("cairn-policy.json")).unwrap(),
            Some(&fs::read(repo.join("cairn-policy.json.sig")).unwrap()),
            &trusted,
            None,
            cairn_release::rollout::policy::now(),
        )
        .unwrap()
        .policy
    }
}

fn target(version: &str) -> Vec<&str> {
    vec!["--stream", S, "--version", version]
}

fn leftovers(repo: &Path) -> Vec<String> {
    fs::read_dir(repo)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cairn-policy"))
        .collect()
}

#[test]
fn rollout_commands_edit_and_sign_the_policy() {
    let f = Fixture::new();
    let c1 = f.commit("2026.12.0");
    let c2 = f.commit("2026.12.1");
    let c3 = f.commit("2026.12.2");
    run(Command::new(env!("CARGO_BIN_EXE_cairn-compose"))
        .args(["keygen", "-o"])
        .arg(f.key()));

    // start: a version on the ref's history, 10% now, all within 48 h.
    let mut start = vec!["start"];
    start.extend(target("2026.12.1"));
    start.extend(["--percentage", "10", "--duration", "48h"]);
    let e = f.edit(&start);
    assert_eq!(e["serial"], 1);
    assert_eq!(e["release"]["commit"], c2.as_str());
    assert_eq!(e["release"]["rollout"]["start_percentage"], 10);
    assert_eq!(e["release"]["rollout"]["duration_secs"], 172_800);
    let p = f.host_policy();
    let d = offer(
        &p,
        S,
        Some("2026.12.0"),
        Wave::wariness(0.0).unwrap(),
        p.releases(S)[0].rollout.unwrap().start,
    );
    assert!(
        matches!(d, Decision::Offer { ref commit, .. } if *commit == c2),
        "{d:?}"
    );

    // A version that is not on the ref's history is refused, naming what is there.
    let mut bad = vec!["start"];
    bad.extend(target("2027.1.0"));
    let key = f.key().display().to_string();
    bad.extend(["--sign-key", &key]);
    let out = f.compose(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2027.1.0")
            && err.contains("not on the history")
            && err.contains("2026.12.2, 2026.12.1, 2026.12.0"),
        "{err}"
    );

    // barrier, pause, resume, deadend, pull: each bumps the serial.
    let mut barrier = vec!["barrier"];
    barrier.extend(target("2026.12.1"));
    assert_eq!(f.edit(&barrier)["release"]["barrier"], true);
    let mut pause = vec!["pause"];
    pause.extend(target("2026.12.1"));
    assert_eq!(f.edit(&pause)["release"]["halted"], true);
    assert!(f.host_policy().release(S, "2026.12.1").unwrap().halted);
    let mut resume = vec!["resume"];
    resume.extend(target("2026.12.1"));
    assert_eq!(f.edit(&resume)["release"]["halted"], false);
    let mut deadend = vec!["deadend"];
    deadend.extend(target("2026.12.2"));
    let e = f.edit(&deadend);
    assert_eq!(e["release"]["deadend"], true);
    assert_eq!(e["release"]["commit"], c3.as_str());
    assert_eq!(e["serial"], 5);
    let mut pull = vec!["pull"];
    pull.extend(target("2026.12.2"));
    let e = f.edit(&pull);
    assert!(e["release"].is_null());
    assert_eq!(e["before"]["version"], "2026.12.2");
    assert!(f.host_policy().release(S, "2026.12.2").is_none());
    let e = f.edit(&["refresh", "--valid-for", "36h"]);
    assert_eq!(e["serial"], 7);

    // show, as text and JSON.
    let out = f.compose(&["show", "--json"]);
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["serial"], 7);
    assert_eq!(shown["signatures"], 1);
    assert_eq!(shown["expired"], false);
    assert_eq!(shown["streams"][S][0]["version"], "2026.12.1");
    assert_eq!(shown["streams"][S][0]["barrier"], true);
    let out = f.compose(&["show"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("serial 7") && text.contains("2026.12.1") && text.contains("[barrier]"),
        "{text}"
    );

    assert!(
        leftovers(&f.repo()).is_empty(),
        "{:?}",
        leftovers(&f.repo())
    );
    assert_ne!(c1, c2);
}

#[test]
fn show_without_a_policy_and_edits_without_a_key_fail_clearly() {
    let f = Fixture::new();
    f.commit("1.0");
    let out = f.compose(&["show"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cairn-policy.json does not exist"), "{err}");
    let mut start = vec!["start"];
    start.extend(target("1.0"));
    start.extend(["--sign-key", "/nonexistent/key"]);
    let out = f.compose(&start);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/key"), "{err}");
    assert!(!f.repo().join("cairn-policy.json").exists());
}
