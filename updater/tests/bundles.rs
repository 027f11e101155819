//! Integration tests of `cairn upgrade --bundle`: an offline update applies without the
//! server, and a truncated, altered or foreign-signed bundle is refused before anything is
//! written into the host's repository.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::process::Command;

use cairn_release::signature::SecretKey;
use common::*;

fn signed_v1(fx: &Fixture) -> (SecretKey, String, String) {
    let k = SecretKey::generate().unwrap();
    fx.trust("release", &k);
    let v0 = fx.default_commit();
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

/// A host on v1 (from the network, signed by `k`) and v2 on the server: v1 has a large file
/// that v2 changes in one line.
fn one_line_changed(fx: &Fixture) -> (SecretKey, String, String) {
    let k = SecretKey::generate().unwrap();
    fx.trust("release", &k);
    let text: String = (0..20_000)
        .map(|i| format!("line {i} of a big file\n"))
        .collect();
    let changed = text.replace("line 777 of", "line 777 (changed) of");
    let v1 = fx.publish_with(STABLE, 1, 200, &[("usr/share/big", &text, 0o644)]);
    fx.sign(&v1, &k);
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.order(), ["2026.11.1", "2026.11.0"]);
    let v2 = fx.publish_with(STABLE, 2, 200, &[("usr/share/big", &changed, 0o644)]);
    fx.sign(&v2, &k);
    (k, v1, v2)
}

/// The composer's bundle from the host's version: its delta is compressed against the
/// host's own objects at the paths that changed (format 3), smaller than the libostree
/// delta (lzma and bsdiff) of the same change, and it applies offline.
#[test]
fn composed_bundle_compressed_against_the_host_upgrades_offline() {
    let fx = Fixture::new();
    let (k, v1, v2) = one_line_changed(&fx);
    let composed = fx.compose_bundle(Some(&v1), &v2, &k);
    let stock = fx.bundle(Some(&v1), &v2, Some(&k));
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    eprintln!(
        "bundle v1 -> v2: composer {} B, libostree delta {} B",
        size(&composed),
        size(&stock)
    );
    assert!(size(&composed) < size(&stock));
    let requests = fx.server.object_requests();
    let out = fx.cairn_ok(&["upgrade", "--bundle", composed.to_str().unwrap()]);
    assert!(out.contains("2026.11.2"), "{out}");
    assert_eq!(
        fx.server.object_requests(),
        requests,
        "the bundle used the network"
    );
    assert_eq!(fx.order(), ["2026.11.2", "2026.11.1"]);
    fx.fsck();
}

/// A host whose copy of a reference object differs (a damaged repository) cannot decompress
/// the delta: the upgrade fails saying so, and nothing is written.
#[test]
fn a_host_with_a_damaged_reference_object_refuses_the_bundle() {
    let fx = Fixture::new();
    let (k, v1, v2) = one_line_changed(&fx);
    let file = fx.compose_bundle(Some(&v1), &v2, &k);
    let x = tempfile::tempdir().unwrap();
    let trusted = cairn_release::signature::TrustedKeys {
        keys: vec![k.public()],
        searched: vec![],
    };
    let opened = cairn_release::bundle::open(&file, x.path(), &trusted, true).unwrap();
    assert_eq!(opened.manifest.format, 3);
    // The big file's old version, which the new one matches but for a line; in the host's
    // bare repository its object is the file itself.
    let object = |sum: &str| {
        fx.repo()
            .join(format!("objects/{}/{}.file", &sum[..2], &sum[2..]))
    };
    let path = opened
        .manifest
        .chunks
        .iter()
        .flat_map(|c| &c.reference)
        .filter(|r| r.kind == cairn_release::delta_reference::Kind::File)
        .map(|r| object(&r.checksum))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 100_000);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let before = fx.deployment_ids();
    let err = fx.cairn_fails(&["upgrade", "--bundle", file.to_str().unwrap()], 1);
    assert!(err.contains("against the host's objects"), "{err}");
    assert_eq!(fx.deployment_ids(), before);
    assert!(
        !fx.host_has_commit(&v2),
        "the refused bundle wrote the commit"
    );
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

/// A bundle whose unpacked delta and new objects do not fit beside its extracted files is
/// refused before anything is written into the repository, saying what it needs; with room
/// it applies.
#[test]
fn a_bundle_without_room_to_unpack_is_refused() {
    let fx = Fixture::new();
    let k = SecretKey::generate().unwrap();
    fx.trust("release", &k);
    let v0 = fx.default_commit();
    let big = noise(5, 8 << 20);
    let v1 = fx.publish_with(STABLE, 1, 0, &[("usr/share/big", &big, 0o644)]);
    fx.sign(&v1, &k);
    let file = fx.compose_bundle(Some(&v0), &v1, &k);
    let small = SmallRoot::new(&fx, 64);
    let check: serde_json::Value =
        serde_json::from_str(&fx.cairn_ok(&["check", "--json"])).unwrap();
    let free = check["root_free_bytes"].as_u64().unwrap();
    // Room for the extracted members (the compressed delta, ~4 MiB) and the new objects
    // (8 MiB), not for the delta unpacked beside them as well.
    small.leave_free(free, 12 << 20);
    let deployments = fx.deployment_ids();
    let files = || {
        run(Command::new("find")
            .arg(fx.repo().join("objects"))
            .args(["-name", "*.file"]))
        .lines()
        .count()
    };
    let before = files();
    let err = fx.cairn_fails(&["upgrade", "--bundle", file.to_str().unwrap()], 1);
    assert!(err.contains("the bundle needs"), "{err}");
    assert!(err.contains("for its delta unpacked"), "{err}");
    assert!(
        err.contains(&format!("mounted at {}", fx.sysroot.display())),
        "{err}"
    );
    assert_eq!(fx.deployment_ids(), deployments);
    assert_eq!(files(), before, "the refused bundle wrote objects");
    let tmp = std::fs::read_dir(fx.repo().join("tmp"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("cairn-bundle-")
        })
        .count();
    assert_eq!(tmp, 0, "the scratch directory was left behind");
    fx.fsck();
    std::fs::remove_file(fx.sysroot.join("filler")).unwrap();
    fx.cairn_ok(&["upgrade", "--bundle", file.to_str().unwrap()]);
    assert_eq!(fx.order(), [version(1), version(0)]);
    fx.fsck();
    drop(small);
}
