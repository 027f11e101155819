//! Delta bundles beside the repository (`cairn-deltas/FROM-TO.cairnbundle`, written by the
//! composer next to each static delta): `cairn check` measures the update by the bundle's
//! length, `cairn upgrade` fetches it instead of pulling objects and imports it, and a bundle
//! that does not check out falls back to libostree's pull.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use cairn_release::signature::SecretKey;
use common::*;
use serde_json::Value;

/// A signed v1 with a large file, the composer's delta bundle v0 -> v1 beside the served
/// repository; returns the bundle's path there.
fn v1_with_a_delta_bundle(fx: &Fixture) -> (String, std::path::PathBuf) {
    let k = SecretKey::generate().unwrap();
    fx.trust("release", &k);
    let v0 = fx.default_commit();
    let text: String = (0..20_000)
        .map(|i| format!("line {i} of a big file\n"))
        .collect();
    let v1 = fx.publish_with(STABLE, 1, 50, &[("usr/share/big", &text, 0o644)]);
    fx.sign(&v1, &k);
    let key = fx.dir.path().join("release.key");
    k.write_pair(&key).unwrap();
    let written =
        cairn_composer::bundle::write_remote_delta(&fx.srv, STABLE, &v0, &v1, Some(&key)).unwrap();
    assert!(written.signed);
    // A web server serving the repository as another user can read it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&written.output)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    (v1, written.output)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap()
}

#[test]
fn upgrades_fetch_the_delta_bundle_beside_the_repository() {
    let fx = Fixture::new();
    let (v1, file) = v1_with_a_delta_bundle(&fx);
    let size = std::fs::metadata(&file).unwrap().len();
    let check = json(&String::from_utf8(fx.cairn(&["check", "--json"]).stdout).unwrap());
    assert_eq!(check["download_measured_by"], "bundle", "{check}");
    assert_eq!(check["download_bytes"], size, "{check}");
    let objects = fx.server.object_requests();
    let up = json(&fx.cairn_ok(&["upgrade", "--json"]));
    assert_eq!(up["bytes_fetched"], size, "{up}");
    // Only the commit object (and its signatures) came from the repository's objects.
    assert!(
        fx.server.object_requests() <= objects + 2,
        "the upgrade pulled objects: {} -> {}",
        objects,
        fx.server.object_requests()
    );
    assert_eq!(fx.order(), [version(1), version(0)]);
    assert!(fx.host_has_commit(&v1));
    fx.fsck();
}

#[test]
fn a_delta_bundle_that_does_not_check_out_falls_back_to_the_pull() {
    let fx = Fixture::new();
    let (_, file) = v1_with_a_delta_bundle(&fx);
    let bytes = std::fs::read(&file).unwrap();
    let mut bad = bytes.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x40;
    std::fs::write(&file, &bad).unwrap();
    let out = fx.cairn(&["upgrade"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("pulling instead"), "{stderr}");
    assert!(
        fx.server.object_requests() > 10,
        "the fallback pull fetched no objects"
    );
    assert_eq!(fx.order(), [version(1), version(0)]);
    fx.fsck();
}

/// Where the new objects fit but the delta bundle's files would not fit beside them, the
/// upgrade pulls instead of fetching it.
#[test]
fn a_delta_bundle_without_room_beside_the_objects_is_not_fetched() {
    let fx = Fixture::new();
    let k = SecretKey::generate().unwrap();
    fx.trust("release", &k);
    let v0 = fx.default_commit();
    let big = noise(6, 8 << 20);
    let v1 = fx.publish_with(STABLE, 1, 0, &[("usr/share/big", &big, 0o644)]);
    fx.sign(&v1, &k);
    let key = fx.dir.path().join("release.key");
    k.write_pair(&key).unwrap();
    let written =
        cairn_composer::bundle::write_remote_delta(&fx.srv, STABLE, &v0, &v1, Some(&key)).unwrap();
    let small = SmallRoot::new(&fx, 64);
    let check = json(&fx.cairn_ok(&["check", "--json"]));
    assert_eq!(check["download_measured_by"], "bundle", "{check}");
    let free = check["root_free_bytes"].as_u64().unwrap();
    let need = check["root_needed_bytes"].as_u64().unwrap();
    // The objects and 4 MiB more; the bundle (~4 MiB), its members and its delta unpacked
    // (8 MiB) need more than that.
    small.leave_free(free, need + (4 << 20));
    let objects = fx.server.object_requests();
    let out = fx.cairn(&["upgrade", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the bundle needs"), "{stderr}");
    assert!(stderr.contains("pulling instead"), "{stderr}");
    let up = json(&String::from_utf8(out.stdout).unwrap());
    assert_ne!(up["bytes_fetched"], written.size, "{up}");
    assert!(fx.server.object_requests() > objects, "nothing was pulled");
    assert_eq!(fx.order(), [version(1), version(0)]);
    fx.fsck();
    drop(small);
}
