//! Integration tests of the `cairn` binary against real libostree sysroots in temp dirs and a
//! real HTTP server on 127.0.0.1. Every test asserts the deployment order and the default
//! entry of the GRUB menu that `updater/data/grub-menu` generated.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::*;

#[test]
fn status_reports_the_deployment() {
    let fx = Fixture::new();
    let s = fx.status();
    assert_eq!(s["osname"], "cairn");
    assert_eq!(s["booted_system"], false);
    let d = &s["deployments"][0];
    assert_eq!(d["version"], "2026.11.0");
    assert_eq!(d["refspec"], format!("origin:{STABLE}"));
    assert_eq!(d["default"], true);
    assert_eq!(d["booted"], false);
    assert_eq!(d["pinned"], false);
    assert!(d["timestamp"].as_u64().unwrap() > 0);
    assert_eq!(s["update_available"], false);
    assert!(s["last_check"].is_null());
    fx.assert_boots(0);
    let text = fx.cairn_ok(&["status"]);
    assert!(
        text.contains("2026.11.0") && text.contains("boots next"),
        "{text}"
    );
    let help = fx.cairn_ok(&["--help"]);
    assert!(help.contains("77") && help.contains("75"), "{help}");
    fx.cairn_ok(&["upgrade", "--help"]);
}

#[test]
fn check_upgrade_and_up_to_date() {
    let fx = Fixture::new();
    fx.cairn_fails(&["check"], 77);
    fx.publish(STABLE, 1, 0);
    let out = fx.cairn_ok(&["check", "--json"]);
    let check: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check["update_available"], true);
    assert_eq!(check["remote"]["version"], "2026.11.1");
    // check fetched metadata only: the sysroot is unchanged and status knows the result.
    assert_eq!(fx.order(), ["2026.11.0"]);
    assert_eq!(fx.status()["update_available"], true);
    fx.assert_boots(0);

    let out = fx.cairn_ok(&["upgrade"]);
    assert!(out.contains("2026.11.1"), "{out}");
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
    fx.assert_boots(1);
    assert_eq!(fx.status()["update_available"], false);
    assert_eq!(fx.status()["deployments"][1]["rollback"], true);

    let out = fx.cairn_ok(&["upgrade"]);
    assert!(out.contains("Already at 2026.11.1"), "{out}");
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
    fx.cairn_fails(&["check"], 77);
    fx.fsck();
}

#[test]
fn etc_and_kargs_survive_upgrade_and_rollback() {
    let fx = Fixture::new();
    let etc = fx.deployment_dir(0).join("etc");
    std::fs::write(etc.join("hostname"), "edited-on-v0\n").unwrap();
    std::fs::write(etc.join("local.conf"), "mine\n").unwrap();
    fx.publish(STABLE, 1, 0);
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(1);
    let new_etc = fx.deployment_dir(0).join("etc");
    assert_ne!(new_etc, etc);
    assert_eq!(
        std::fs::read_to_string(new_etc.join("hostname")).unwrap(),
        "edited-on-v0\n"
    );
    assert_eq!(
        std::fs::read_to_string(new_etc.join("local.conf")).unwrap(),
        "mine\n"
    );
    // An untouched /etc file follows the new tree.
    assert_eq!(
        std::fs::read_to_string(new_etc.join("cairn-release")).unwrap(),
        "2026.11.1\n"
    );
    let (_, linux) = fx.grub_default();
    assert!(
        linux.contains("root=LABEL=cairn-root") && linux.contains("quiet"),
        "{linux}"
    );

    fx.cairn_ok(&["rollback"]);
    fx.assert_boots(0);
    let etc0 = fx.deployment_dir(0).join("etc");
    assert_eq!(
        std::fs::read_to_string(etc0.join("hostname")).unwrap(),
        "edited-on-v0\n"
    );
    fx.cairn_ok(&["rollback"]);
    fx.assert_boots(1);
    let etc1 = fx.deployment_dir(0).join("etc");
    assert_eq!(
        std::fs::read_to_string(etc1.join("local.conf")).unwrap(),
        "mine\n"
    );
    fx.fsck();
}

#[test]
fn deploy_older_rollback_and_refuse_downgrade() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    let v2 = fx.publish(STABLE, 2, 0);
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.0"]);
    fx.assert_boots(2);

    fx.cairn_ok(&["deploy", "2026.11.1"]);
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.2"]);
    fx.assert_boots(1);
    // By commit prefix.
    fx.cairn_ok(&["deploy", &v2[..12]]);
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.1"]);
    fx.assert_boots(2);

    fx.cairn_ok(&["rollback"]);
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.2"]);
    fx.assert_boots(1);
    fx.cairn_ok(&["rollback"]);
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.1"]);
    fx.assert_boots(2);

    // The server moves the ref back to 2026.11.1: upgrade must not follow it.
    let v1 = fx.status()["deployments"][1]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    fx.reset_ref(STABLE, &v1);
    let before = fx.deployment_ids();
    let menu = fx.grub_menu();
    let err = fx.cairn_fails(&["upgrade"], 1);
    assert!(err.contains("refusing to downgrade"), "{err}");
    assert_eq!(fx.deployment_ids(), before);
    assert_eq!(fx.grub_menu(), menu);
    fx.cairn_fails(&["check"], 77);
    fx.fsck();
}

#[test]
fn rebase_to_another_stream() {
    let fx = Fixture::new();
    fx.publish(TESTING, 5, 0);
    let out = fx.cairn_ok(&["rebase", "testing"]);
    assert!(out.contains("2026.11.5"), "{out}");
    let s = fx.status();
    assert_eq!(s["deployments"][0]["refspec"], format!("origin:{TESTING}"));
    assert_eq!(s["deployments"][1]["refspec"], format!("origin:{STABLE}"));
    fx.assert_boots(5);
    // Upgrades now follow testing.
    fx.publish(STABLE, 6, 0);
    fx.cairn_fails(&["check"], 77);
    fx.publish(TESTING, 7, 0);
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.order(), ["2026.11.7", "2026.11.5"]);
    fx.assert_boots(7);
    // And back, with a full REMOTE:REF.
    fx.cairn_ok(&["rebase", &format!("origin:{STABLE}")]);
    assert_eq!(fx.order(), ["2026.11.6", "2026.11.7"]);
    fx.assert_boots(6);
    fx.fsck();
}

#[test]
fn pin_unpin_and_cleanup() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    fx.cairn_ok(&["upgrade"]);
    fx.cairn_ok(&["pin", "1"]);
    assert_eq!(fx.status()["deployments"][1]["pinned"], true);
    fx.publish(STABLE, 2, 0);
    fx.cairn_ok(&["upgrade"]);
    // The pinned 2026.11.0 outlives the upgrade that would have dropped it.
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.1", "2026.11.0"]);
    fx.assert_boots(2);

    let out = fx.cairn_ok(&["cleanup"]);
    assert!(out.contains("Removed deployment 1"), "{out}");
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.0"]);
    assert_eq!(fx.status()["deployments"][1]["pinned"], true);
    fx.assert_boots(2);

    fx.cairn_ok(&["unpin", "1"]);
    assert_eq!(fx.status()["deployments"][1]["pinned"], false);
    fx.cairn_ok(&["cleanup"]);
    assert_eq!(fx.order(), ["2026.11.2"]);
    fx.assert_boots(2);
    fx.cairn_fails(&["pin", "5"], 1);
    fx.fsck();
}

#[test]
fn kargs_change_makes_a_new_deployment() {
    let fx = Fixture::new();
    assert_eq!(
        fx.cairn_ok(&["kargs"]).trim(),
        "root=LABEL=cairn-root quiet"
    );
    let before = fx.deployment_ids();
    fx.cairn_ok(&["kargs", "--append", "console=ttyS0", "--delete", "quiet"]);
    let after = fx.deployment_ids();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].0, before[0].0, "same commit");
    assert_ne!(after[0].1, before[0].1, "new deployment serial");
    assert_eq!(
        fx.cairn_ok(&["kargs"]).trim(),
        "root=LABEL=cairn-root console=ttyS0"
    );
    let (_, linux) = fx.grub_default();
    assert!(
        linux.contains("console=ttyS0") && !linux.contains("quiet"),
        "{linux}"
    );
    // Kernel arguments carry over to the next upgrade.
    fx.publish(STABLE, 1, 0);
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(1);
    let (_, linux) = fx.grub_default();
    assert!(
        linux.contains("console=ttyS0") && !linux.contains("quiet"),
        "{linux}"
    );
    // Rolling back restores the old arguments.
    fx.cairn_ok(&["rollback"]);
    let (_, linux) = fx.grub_default();
    assert!(linux.contains("console=ttyS0"), "{linux}");
    // Deleting what is not there fails and changes nothing.
    let ids = fx.deployment_ids();
    let err = fx.cairn_fails(&["kargs", "--delete", "nosuch"], 1);
    assert!(err.contains("\"nosuch\" is not set"), "{err}");
    assert_eq!(fx.deployment_ids(), ids);
    let json: Vec<String> = serde_json::from_str(&fx.cairn_ok(&["kargs", "--json"])).unwrap();
    assert!(json.contains(&"console=ttyS0".to_string()));
    fx.fsck();
}

/// Runs `args` expecting failure with a message containing `needle`; asserts the sysroot,
/// the menu and the repository are as before.
fn fails_changing_nothing(fx: &Fixture, args: &[&str], needle: &str) {
    let before = fx.deployment_ids();
    let menu = fx.grub_menu();
    let err = fx.cairn_fails(args, 1);
    assert!(
        err.contains(needle),
        "cairn {args:?}: {err:?} lacks {needle:?}"
    );
    assert_eq!(fx.deployment_ids(), before);
    assert_eq!(fx.grub_menu(), menu);
    fx.fsck();
}

#[test]
fn bad_inputs_change_nothing() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    fails_changing_nothing(
        &fx,
        &["deploy", "2026.11.9"],
        "\"2026.11.9\" is neither a version nor a commit on origin:cairn/bookworm/x86_64/stable (versions there, newest first: 2026.11.1, 2026.11.0)",
    );
    fails_changing_nothing(
        &fx,
        &["rebase", "nosuchstream"],
        "ref cairn/bookworm/x86_64/nosuchstream does not exist on remote origin",
    );
    fails_changing_nothing(&fx, &["rebase", "cairn/bookworm"], "is not of the form");
    fails_changing_nothing(
        &fx,
        &["rebase", "nosuchremote:cairn/bookworm/x86_64/stable"],
        "remote \"nosuchremote\" is not configured",
    );
    fails_changing_nothing(
        &fx,
        &["--os", "nosuch", "upgrade"],
        "no stateroot \"nosuch\"",
    );
    let bad = fx.write_config("[source]\nremote = \"origin\"\nstraem = \"stable\"\n");
    fails_changing_nothing(
        &fx,
        &["--config", bad.to_str().unwrap(), "upgrade"],
        &format!("{}:3:1: unknown field `straem`", bad.display()),
    );
    fx.assert_boots(0);
}

#[test]
fn garbage_and_unreachable_remotes_change_nothing() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    let junk = Server::start(fx.dir.path(), &fx.dir.path().join("junk.log"), &["--junk"]);
    let cfg = fx.write_config(&format!("[source]\nurl = \"{}\"\n", junk.url()));
    let cfg = cfg.to_str().unwrap();
    fails_changing_nothing(&fx, &["--config", cfg, "upgrade"], &junk.url());
    fails_changing_nothing(&fx, &["--config", cfg, "check"], "failed");
    fails_changing_nothing(&fx, &["--config", cfg, "deploy", "2026.11.1"], "failed");
    let port = junk.port;
    drop(junk);
    let cfg = fx.write_config(&format!(
        "[source]\nurl = \"http://127.0.0.1:{port}/repo\"\n"
    ));
    fails_changing_nothing(
        &fx,
        &["--config", cfg.to_str().unwrap(), "upgrade"],
        "failed",
    );
    fx.assert_boots(0);
    // The real server still works afterwards.
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(1);
    fx.fsck();
}

#[test]
fn killed_mid_pull_leaves_the_host_intact() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 300);
    let slow = Server::start(
        &fx.dir.path().join("www"),
        &fx.dir.path().join("slow.log"),
        &["--delay", "0.02"],
    );
    let cfg = fx.write_config(&format!("[source]\nurl = \"{}\"\n", slow.url()));
    let before = fx.deployment_ids();
    let menu = fx.grub_menu();
    let mut child = fx
        .cairn_cmd(&["--config", cfg.to_str().unwrap(), "upgrade"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for(60, "the pull to fetch some objects", || {
        slow.object_requests() >= 30
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "upgrade finished too early"
    );
    kill_group(child.id());
    child.wait().unwrap();
    assert!(slow.object_requests() < 300, "the pull was not cut short");
    assert_eq!(fx.deployment_ids(), before);
    assert_eq!(fx.grub_menu(), menu);
    fx.assert_boots(0);
    fx.fsck();
    // The next upgrade completes (from the fast server), reusing the objects that arrived.
    let cut = slow.object_requests();
    let setup = fx.server.object_requests();
    fx.cairn_ok(&["upgrade"]);
    let resumed = fx.server.object_requests() - setup;
    eprintln!("killed after {cut} object requests; the resumed pull made {resumed}");
    fx.assert_boots(1);
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
    fx.fsck();
}

/// A GRUB generator that signals it started, then hangs: the deployment is checked out and
/// the new boot entries are written, but libostree has not switched `loader` yet.
fn hanging_generator(fx: &Fixture) -> (std::path::PathBuf, std::path::PathBuf) {
    let marker = fx.dir.path().join("generator-started");
    let script = fx.dir.path().join("hanging-grub-menu");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\nsleep 60\nexec '{}' \"$@\"\n",
            marker.display(),
            data("grub-menu").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, marker)
}

#[test]
fn killed_mid_deploy_leaves_the_host_intact() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    let (script, marker) = hanging_generator(&fx);
    let before = fx.deployment_ids();
    let menu = fx.grub_menu();
    let mut child = fx
        .cairn_cmd(&["upgrade"])
        .env("OSTREE_GRUB2_EXEC", &script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for(60, "the deployment to reach the bootloader step", || {
        marker.exists()
    });
    kill_group(child.id());
    child.wait().unwrap();
    assert_eq!(fx.deployment_ids(), before);
    assert_eq!(fx.grub_menu(), menu);
    fx.assert_boots(0);
    fx.fsck();
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(1);
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
    fx.fsck();
}

/// The entries of the stateroot's `deploy/` directory: checkouts and their origin files.
fn deploy_dir_entries(fx: &Fixture) -> Vec<String> {
    let dir = fx.sysroot.join("ostree/deploy").join(OS).join("deploy");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_failed_deploy_leaves_no_checkout_behind() {
    let fx = Fixture::new();
    let v1 = fx.publish(STABLE, 1, 0);
    // The boot menu cannot be written: the deploy fails after libostree checked the tree out.
    let script = fx.dir.path().join("failing-grub-menu");
    std::fs::write(&script, "#!/bin/sh\necho 'no menu today' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let entries = deploy_dir_entries(&fx);
    let before = fx.deployment_ids();
    let menu = fx.grub_menu();
    let out = fx
        .cairn_cmd(&["upgrade"])
        .env("OSTREE_GRUB2_EXEC", &script)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(deploy_dir_entries(&fx), entries);
    assert_eq!(fx.deployment_ids(), before);
    assert_eq!(fx.grub_menu(), menu);
    fx.assert_boots(0);
    // What was pulled stays: the next attempt fetches no content again.
    assert!(fx.host_has_commit(&v1));
    let fetched = fx.content_requests();
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.content_requests(), fetched);
    fx.assert_boots(1);
    fx.fsck();
}

#[test]
fn a_second_cairn_waits_for_the_lock_or_fails_with_no_wait() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    let (script, marker) = hanging_generator(&fx);
    // Hang for 3 s instead of 60.
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("sleep 60", "sleep 3");
    std::fs::write(&script, text).unwrap();
    let first = fx
        .cairn_cmd(&["upgrade"])
        .env("OSTREE_GRUB2_EXEC", &script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(60, "the first cairn to hold the lock", || marker.exists());
    let err = fx.cairn_fails(&["--no-wait", "rollback"], 75);
    assert!(err.contains("sysroot lock"), "{err}");
    let out = fx.cairn(&["rollback"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Waiting for the sysroot lock held by another process"),
        "{stderr}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    // The upgrade finished first, then the rollback reordered.
    assert_eq!(fx.order(), ["2026.11.0", "2026.11.1"]);
    fx.assert_boots(0);
    fx.fsck();
}

#[test]
fn the_config_in_the_deployment_etc_is_read() {
    let fx = Fixture::new();
    fx.publish(TESTING, 3, 0);
    let cfg_dir = fx.deployment_dir(0).join("etc/cairn");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("config.toml"),
        "[source]\nstream = \"testing\"\n",
    )
    .unwrap();
    let out = fx.cairn_ok(&["check"]);
    assert!(
        out.contains("origin:cairn/bookworm/x86_64/testing"),
        "{out}"
    );
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(3);
    assert_eq!(
        fx.status()["deployments"][0]["refspec"],
        format!("origin:{TESTING}")
    );
    // The config was merged into the new deployment's /etc with the rest.
    std::fs::write(
        fx.deployment_dir(0).join("etc/cairn/config.toml"),
        "[source]\nstream = \"testing\"\nbogus = 1\n",
    )
    .unwrap();
    let err = fx.cairn_fails(&["status"], 1);
    assert!(
        err.contains("etc/cairn/config.toml:3:1: unknown field `bogus`"),
        "{err}"
    );
}

#[test]
fn grub_menu_orders_entries_by_bls_version() {
    let dir = tempfile::tempdir().unwrap();
    let entries = dir.path().join("loader.1/entries");
    std::fs::create_dir_all(&entries).unwrap();
    for (file, version, title) in [
        ("ostree-9-cairn.conf", 9, "Nine"),
        ("ostree-10-cairn.conf", 10, "It's ten"),
        ("ostree-2-cairn.conf", 2, "Two"),
    ] {
        std::fs::write(
            entries.join(file),
            format!(
                "title {title}\nversion {version}\noptions root=x ostree=/ostree/boot.1/a/b/{version}\n\
                 linux /ostree/a/vmlinuz\ninitrd /ostree/a/initramfs.img\n"
            ),
        )
        .unwrap();
    }
    let output = dir.path().join("loader.1/grub.cfg");
    let out = std::process::Command::new(data("grub-menu"))
        .arg("-o")
        .arg(&output)
        .env("_OSTREE_GRUB2_BOOTVERSION", "1")
        .env("CAIRN_GRUB_TIMEOUT", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let menu = std::fs::read_to_string(&output).unwrap();
    let titles: Vec<&str> = menu
        .lines()
        .filter(|l| l.starts_with("menuentry "))
        .collect();
    assert_eq!(
        titles,
        [
            "menuentry 'It'\\''s ten' --id 'ostree-0' {",
            "menuentry 'Nine' --id 'ostree-1' {",
            "menuentry 'Two' --id 'ostree-2' {",
        ]
    );
    assert!(menu.contains("set default=0\nset timeout=3\n"), "{menu}");
    // The first boot's arguments and embedded Ignition config come from GRUB variables that
    // are empty once /ignition.firstboot is gone.
    assert!(
        menu.contains(
            "    linux /ostree/a/vmlinuz root=x ostree=/ostree/boot.1/a/b/10 ${cairn_firstboot_kargs}\n"
        ),
        "{menu}"
    );
    assert!(
        menu.contains("        initrd /ostree/a/initramfs.img ${cairn_firstboot_initrd}\n"),
        "{menu}"
    );
    assert!(
        menu.contains("    else\n        initrd /ostree/a/initramfs.img\n"),
        "{menu}"
    );
    assert!(!menu.contains("load_video"));
    // No temporary file left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("loader.1"))
            .unwrap()
            .count(),
        2
    );
    // Bad usage fails.
    let bad = std::process::Command::new(data("grub-menu"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
