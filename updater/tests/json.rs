//! `--json` of every command that changes the host: one object on stdout, parsed here, on a
//! temp sysroot served by a local HTTP server.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

fn json(fx: &Fixture, args: &[&str]) -> Value {
    let out = fx.cairn_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("cairn {args:?}: {e}\n{out}"))
}

fn versions(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["version"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[test]
fn upgrade_deploy_rebase_print_what_changed() {
    let fx = Fixture::new();
    let c1 = fx.publish(STABLE, 1, 3);
    let u = json(&fx, &["upgrade", "--json"]);
    assert_eq!(u["command"], "upgrade");
    assert_eq!(u["result"], "deployed");
    assert_eq!(u["from"]["version"], "2026.11.0");
    assert_eq!(u["to"]["version"], "2026.11.1");
    assert_eq!(u["to"]["commit"], c1.as_str());
    assert_eq!(u["refspec"], format!("origin:{STABLE}"));
    assert_eq!(u["mode"], "written");
    assert!(u["bytes_fetched"].as_u64().unwrap() > 0, "{u}");
    assert_eq!(u["reboot_pending"], false);
    assert_eq!(versions(&u["deployments_before"]), ["2026.11.0"]);
    assert_eq!(
        versions(&u["deployments_after"]),
        ["2026.11.1", "2026.11.0"]
    );

    let same = json(&fx, &["upgrade", "--json"]);
    assert_eq!(same["result"], "unchanged");
    assert_eq!(same["to"]["version"], "2026.11.1");
    assert!(same["mode"].is_null());
    assert_eq!(same["deployments_before"], same["deployments_after"]);

    let d = json(&fx, &["deploy", "2026.11.0", "--json"]);
    assert_eq!(d["command"], "deploy");
    assert_eq!(d["result"], "deployed");
    assert_eq!(d["from"]["version"], "2026.11.1");
    assert_eq!(d["to"]["version"], "2026.11.0");
    assert_eq!(versions(&d["deployments_after"])[0], "2026.11.0");

    fx.publish(TESTING, 5, 0);
    let r = json(&fx, &["rebase", "testing", "--json"]);
    assert_eq!(r["command"], "rebase");
    assert_eq!(r["refspec"], format!("origin:{TESTING}"));
    assert_eq!(r["to"]["version"], "2026.11.5");
    assert_eq!(fx.order()[0], "2026.11.5");
    fx.assert_boots(5);
}

#[test]
fn rollback_pin_unpin_cleanup_print_what_changed() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    fx.cairn_ok(&["upgrade"]);

    let r = json(&fx, &["rollback", "--json"]);
    assert_eq!(r["command"], "rollback");
    assert_eq!(r["from"]["version"], "2026.11.1");
    assert_eq!(r["to"]["version"], "2026.11.0");
    assert_eq!(
        versions(&r["deployments_before"]),
        ["2026.11.1", "2026.11.0"]
    );
    assert_eq!(
        versions(&r["deployments_after"]),
        ["2026.11.0", "2026.11.1"]
    );
    assert_eq!(r["reboot_pending"], false);

    let p = json(&fx, &["pin", "1", "--json"]);
    assert_eq!(p["command"], "pin");
    assert_eq!(p["index"], 1);
    assert_eq!(p["pinned"], true);
    assert_eq!(p["changed"], true);
    assert_eq!(p["deployment"]["version"], "2026.11.1");
    assert_eq!(p["deployments_before"][1]["pinned"], false);
    assert_eq!(p["deployments_after"][1]["pinned"], true);
    let again = json(&fx, &["pin", "1", "--json"]);
    assert_eq!(again["changed"], false);

    let u = json(&fx, &["unpin", "1", "--json"]);
    assert_eq!(u["command"], "unpin");
    assert_eq!(u["pinned"], false);
    assert_eq!(u["changed"], true);

    let c = json(&fx, &["cleanup", "--json"]);
    assert_eq!(c["command"], "cleanup");
    assert_eq!(c["removed"][0]["version"], "2026.11.1");
    assert!(c["objects_pruned"].as_i64().is_some(), "{c}");
    assert!(c["bytes_freed"].as_u64().is_some());
    assert_eq!(versions(&c["deployments_after"]), ["2026.11.0"]);
    fx.assert_boots(0);
}

#[test]
fn errors_with_json_keep_their_exit_codes() {
    let fx = Fixture::new();
    let out = fx.cairn(&["pin", "7", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 1);
    assert!(
        v["error"].as_str().unwrap().contains("no deployment 7"),
        "{v}"
    );
    // The message is on stderr as without --json.
    assert!(String::from_utf8_lossy(&out.stderr).contains("no deployment 7"));
    let out = fx.cairn(&["rollback", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("roll back"), "{v}");
}

#[test]
fn etc_files_kept_over_a_new_default_are_reported_until_the_next_update() {
    let fx = Fixture::new();
    let etc = fx.deployment_dir(0).join("etc");
    // Its default changes with every release; this host changed it.
    std::fs::write(etc.join("cairn-release"), "mine\n").unwrap();
    // Changed here, but its default stays: nothing was missed.
    std::fs::write(etc.join("hostname"), "edited\n").unwrap();
    fx.publish(STABLE, 1, 0);
    let u = json(&fx, &["upgrade", "--json"]);
    assert_eq!(
        u["etc_conflicts"],
        serde_json::json!([{
            "path": "/etc/cairn-release",
            "local": "modified",
            "default": "changed",
            "new_default_applied": false,
        }])
    );
    // The merge itself is what it was: the local file is kept.
    let new_etc = fx.deployment_dir(0).join("etc");
    assert_eq!(
        std::fs::read_to_string(new_etc.join("cairn-release")).unwrap(),
        "mine\n"
    );
    let s = fx.status();
    assert_eq!(s["etc_conflicts"]["release"]["version"], "2026.11.1");
    assert_eq!(s["etc_conflicts"]["files"][0]["path"], "/etc/cairn-release");
    let text = fx.cairn_ok(&["status"]);
    assert!(
        text.contains("/etc/cairn-release") && text.contains("not applied"),
        "{text}"
    );

    // The administrator takes the default; the next update has no conflict and status forgets.
    std::fs::write(new_etc.join("cairn-release"), format!("{}\n", version(1))).unwrap();
    fx.publish(STABLE, 2, 0);
    let out = fx.cairn_ok(&["upgrade"]);
    assert!(!out.contains("Kept your"), "{out}");
    assert!(fx.status()["etc_conflicts"].is_null());
    assert!(!fx.cairn_ok(&["status"]).contains("/etc/cairn-release"));

    // Text output names the file.
    std::fs::write(fx.deployment_dir(0).join("etc/cairn-release"), "mine\n").unwrap();
    fx.publish(STABLE, 3, 0);
    let out = fx.cairn_ok(&["upgrade"]);
    assert!(
        out.contains("Kept your /etc/cairn-release") && out.contains("not applied"),
        "{out}"
    );
}
