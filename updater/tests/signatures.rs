//! Integration tests of signature verification: the host refuses unsigned commits, commits
//! signed by other keys and altered commits before fetching their trees, and accepts commits
//! signed by any trusted key (rotation). Real libostree sysroots, a real HTTP server.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use cairn_release::signature::SecretKey;
use common::*;

fn key() -> SecretKey {
    SecretKey::generate().unwrap()
}

/// Asserts that `cairn upgrade` fails mentioning `needle`, fetches no content object and
/// leaves the deployments as they were.
fn upgrade_refused(fx: &Fixture, needle: &str) {
    let before = fx.deployment_ids();
    let fetched = fx.content_requests();
    let err = fx.cairn_fails(&["upgrade"], 1);
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert_eq!(fx.deployment_ids(), before);
    assert_eq!(
        fx.content_requests(),
        fetched,
        "the tree was fetched before the signature was checked"
    );
    fx.assert_boots(0);
    fx.fsck();
}

#[test]
fn signed_commit_is_accepted() {
    let fx = Fixture::new();
    let k = key();
    fx.trust("release", &k);
    fx.publish_signed(STABLE, 1, &k);
    let out = fx.cairn_ok(&["upgrade", "-v"]);
    assert!(out.contains("2026.11.1"), "{out}");
    fx.assert_boots(1);
    // deploy VERSION verifies too.
    fx.publish_signed(STABLE, 2, &k);
    fx.cairn_ok(&["deploy", "2026.11.2"]);
    fx.assert_boots(2);
    fx.fsck();
}

#[test]
fn unsigned_commit_is_refused() {
    let fx = Fixture::new();
    fx.trust("release", &key());
    fx.publish(STABLE, 1, 0);
    upgrade_refused(&fx, "is not signed");
    let err = fx.cairn_fails(&["deploy", "2026.11.1"], 1);
    assert!(err.contains("is not signed"), "{err}");
    // The administrator may turn the check off explicitly.
    let cfg = fx.write_config("[verify]\nrequire_signature = false\n");
    fx.cairn_ok(&["--config", cfg.to_str().unwrap(), "upgrade"]);
    fx.assert_boots(1);
}

#[test]
fn commit_signed_by_another_key_is_refused() {
    let fx = Fixture::new();
    fx.trust("release", &key());
    fx.publish_signed(STABLE, 1, &key());
    upgrade_refused(&fx, "signed by another key");
}

#[test]
fn altered_commit_is_refused() {
    let fx = Fixture::new();
    let k = key();
    fx.trust("release", &k);
    let v1 = fx.publish_signed(STABLE, 1, &k);
    // Another commit carrying v1's valid signature: its bytes are not what was signed.
    let forged = fx.publish(STABLE, 2, 0);
    std::fs::copy(
        fx.srv_object(&v1, "commitmeta"),
        fx.srv_object(&forged, "commitmeta"),
    )
    .unwrap();
    upgrade_refused(&fx, "altered after signing");
}

#[test]
fn two_trusted_keys_rotate() {
    let fx = Fixture::new();
    let (old, new) = (key(), key());
    fx.trust("old", &old);
    fx.publish_signed(STABLE, 1, &old);
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(1);
    // The new key is shipped next to the old one; releases are signed with the new key.
    fx.trust("new", &new);
    fx.publish_signed(STABLE, 2, &new);
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(2);
    // The old key is dropped: its signatures no longer count.
    std::fs::remove_file(fx.deployment_dir(0).join("etc/cairn/trusted.d/old.pub")).unwrap();
    fx.publish_signed(STABLE, 3, &old);
    let err = fx.cairn_fails(&["upgrade"], 1);
    assert!(err.contains("signed by another key"), "{err}");
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.1"]);
}

#[test]
fn signature_required_without_keys_fails_clearly() {
    let fx = Fixture::new();
    fx.publish(STABLE, 1, 0);
    let cfg = fx.write_config("[verify]\nrequire_signature = true\n");
    let err = fx.cairn_fails(&["--config", cfg.to_str().unwrap(), "upgrade"], 1);
    assert!(err.contains("no trusted keys"), "{err}");
    assert!(err.contains("trusted.d"), "{err}");
    assert_eq!(fx.order(), ["2026.11.0"]);
}

#[test]
fn check_verifies_the_offered_commit() {
    let fx = Fixture::new();
    let k = key();
    fx.trust("release", &k);
    let v1 = fx.publish_signed(STABLE, 1, &k);
    let out = fx.cairn_ok(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["update_available"], true);
    assert!(
        v["signed_by"].as_str().unwrap().contains("release.pub"),
        "{v}"
    );
    // A forged release: v1's signature on other bytes.
    let forged = fx.publish(STABLE, 2, 0);
    std::fs::copy(
        fx.srv_object(&v1, "commitmeta"),
        fx.srv_object(&forged, "commitmeta"),
    )
    .unwrap();
    let fetched = fx.content_requests();
    let err = fx.cairn_fails(&["check"], 1);
    assert!(err.contains("altered after signing"), "{err}");
    assert!(err.contains("does not trust"), "{err}");
    let out = fx.cairn(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("altered after signing"),
        "{v}"
    );
    assert_eq!(v["exit_code"], 1);
    // Metadata only, and the forged release is not recorded as available.
    assert_eq!(fx.content_requests(), fetched);
    assert_ne!(fx.status()["last_check"]["commit"], forged.as_str());
    // An unsigned one likewise.
    fx.publish(STABLE, 3, 0);
    let err = fx.cairn_fails(&["check"], 1);
    assert!(err.contains("is not signed"), "{err}");
}
