//! Integration tests of `cairn upgrade --bundle`: an offline update applies without the
//! server, and a truncated, altered or foreign-signed bundle is refused before anything is
//! written into the host's repository.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use cairn_release::signature::SecretKey;
use common::*;

fn signed_v1(fx: &Fixture) -> (SecretKey, String, String) {
    let k = SecretKey::generate().unwrap();
    fx.trust("release", &k);
    let v0 = fx.status()["deployments"][0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    let v1 = fx.publish_signed(STABLE, 1, &k);
    (k, v0, v1)
}

#[test]
fn delta_bundle_upgrades_offline() {
    let fx = Fixture::new();
    let (k, v0, v1) = signed_v1(&fx);
    let file = fx.bundle(Some(&v0), &v1, Some(&k));
    let requests = fx.server.object_requests();
    let out = fx.cairn_ok(&["upgrade", "--bundle", file.to_str().unwrap()]);
    assert!(out.contains("2026.11.1"), "{out}");
    assert_eq!(
        fx.server.object_requests(),
        requests,
        "the bundle used the network"
    );
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
    fx.assert_boots(1);
    fx.fsck();
    // Again: nothing to do.
    let out = fx.cairn_ok(&["upgrade", "--bundle", file.to_str().unwrap()]);
    assert!(out.contains("Already at"), "{out}");
}

#[test]
fn full_bundle_upgrades_offline() {
    let fx = Fixture::new();
    let (k, _, v1) = signed_v1(&fx);
    let file = fx.bundle(None, &v1, Some(&k));
    fx.cairn_ok(&["upgrade", "--bundle", file.to_str().unwrap()]);
    fx.assert_boots(1);
    fx.fsck();
}

/// Asserts the bundle is refused with `needle` and the host's repository and deployments
/// are untouched.
fn refused(fx: &Fixture, file: &std::path::Path, v1: &str, needle: &str) {
    let before = fx.deployment_ids();
    let err = fx.cairn_fails(&["upgrade", "--bundle", file.to_str().unwrap()], 1);
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert_eq!(fx.deployment_ids(), before);
    assert!(
        !fx.host_has_commit(v1),
        "the refused bundle wrote the commit"
    );
    let leftovers: Vec<_> = std::fs::read_dir(fx.repo().join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cairn-bundle-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fx.fsck();
}

#[test]
fn truncated_altered_or_foreign_bundles_are_refused() {
    let fx = Fixture::new();
    let (k, v0, v1) = signed_v1(&fx);
    let file = fx.dir.path().join("good.cairnbundle");
    std::fs::rename(fx.bundle(Some(&v0), &v1, Some(&k)), &file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let bad = fx.dir.path().join("bad.cairnbundle");

    std::fs::write(&bad, &bytes[..bytes.len() - 100]).unwrap();
    refused(&fx, &bad, &v1, "truncated or corrupt");

    // A flipped byte anywhere: zstd's checksum, tar, a member hash or the signature fails.
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 40] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        std::fs::write(&bad, &flipped).unwrap();
        refused(&fx, &bad, &v1, "bundle");
    }

    let foreign = fx.bundle(Some(&v0), &v1, Some(&SecretKey::generate().unwrap()));
    refused(&fx, &foreign, &v1, "signed by another key");
    let unsigned = fx.bundle(Some(&v0), &v1, None);
    refused(&fx, &unsigned, &v1, "is not signed");

    // The good bundle still applies.
    fx.cairn_ok(&["upgrade", "--bundle", file.to_str().unwrap()]);
    fx.assert_boots(1);
}

#[test]
fn bundle_from_a_version_the_host_lacks_is_refused() {
    let fx = Fixture::new();
    let (k, _, v1) = signed_v1(&fx);
    let v2 = fx.publish_signed(STABLE, 2, &k);
    let file = fx.bundle(Some(&v1), &v2, Some(&k));
    let err = fx.cairn_fails(&["upgrade", "--bundle", file.to_str().unwrap()], 1);
    assert!(err.contains("does not have"), "{err}");
    assert_eq!(fx.order(), ["2026.11.0"]);
}
