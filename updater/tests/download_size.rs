//! What `cairn check` says an update will download and need, against numbers worked out
//! independently here (the served repository's object and delta files, with the ostree CLI),
//! and what the real pull then fetched; and an upgrade refused before its pull when the
//! repository's filesystem (a small loop-mounted ext4 holding the whole sysroot) cannot hold
//! the new objects, unless dropping the deployment the upgrade drops anyway makes room.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn check_json(fx: &Fixture) -> Value {
    let out = fx.cairn(&["check", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The bytes an object pull of `commit` downloads, computed from the served repository:
/// every object of the commit (`ostree ls -R -C`) the host's repository lacks, at the size of
/// its file on the server.
fn missing_object_bytes(fx: &Fixture, commit: &str) -> u64 {
    missing_object_bytes_of(fx, &[commit])
}

/// Like [`missing_object_bytes`], for the objects of any of `commits`.
fn missing_object_bytes_of(fx: &Fixture, commits: &[&str]) -> u64 {
    let mut objects = std::collections::BTreeSet::new();
    for commit in commits {
        let listing = run(Command::new("ostree")
            .arg(format!("--repo={}", fx.srv.display()))
            .args(["ls", "-R", "-C", commit]));
        for line in listing.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with('d') {
                objects.insert((f[4].to_string(), "dirtree"));
                objects.insert((f[5].to_string(), "dirmeta"));
            } else {
                objects.insert((f[4].to_string(), "file"));
            }
        }
    }
    let path = |repo: &Path, sum: &str, ext: &str| {
        repo.join("objects")
            .join(&sum[..2])
            .join(format!("{}.{ext}", &sum[2..]))
    };
    objects
        .iter()
        .filter(|(sum, ext)| !path(&fx.repo(), sum, ext).exists())
        .map(|(sum, ext)| {
            let srv_ext = if *ext == "file" { "filez" } else { ext };
            std::fs::metadata(path(&fx.srv, sum, srv_ext))
                .unwrap()
                .len()
        })
        .sum()
}

fn upgrade_json(fx: &Fixture) -> Value {
    serde_json::from_str(&fx.cairn_ok(&["upgrade", "--json"])).unwrap()
}

#[test]
fn without_a_delta_the_download_is_the_missing_objects() {
    let fx = Fixture::new();
    let big = noise(1, 300_000);
    let kernel = format!("usr/lib/modules/{KVER}/vmlinuz");
    let c1 = fx.publish_with(
        STABLE,
        1,
        20,
        &[
            ("usr/share/big", &big, 0o644),
            (&kernel, "a new kernel\n", 0o644),
        ],
    );
    let check = check_json(&fx);
    assert_eq!(check["download_measured_by"], "objects", "{check}");
    let reported = check["download_bytes"].as_u64().unwrap();
    let expected = missing_object_bytes(&fx, &c1);
    assert_eq!(reported, expected, "{check}");
    assert!(reported > 150_000, "{check}");
    // A new kernel (its size from the commit's object list: its content is not fetched);
    // the initramfs did not change and is shared.
    assert_eq!(check["boot_needed_bytes"], 13, "{check}");
    assert!(check["boot_free_bytes"].as_u64().unwrap() > 0, "{check}");
    let root = check["root_needed_bytes"].as_u64().unwrap();
    assert!((300_000..1_000_000).contains(&root), "{check}");
    assert!(check["root_free_bytes"].as_u64().unwrap() > root, "{check}");
    // Text output, human-readable.
    let text = fx.cairn_ok(&["check"]);
    assert!(
        text.contains("download: ") && text.contains("objects the host lacks"),
        "{text}"
    );
    assert!(text.contains("/boot: 13 B needed"), "{text}");
    // The real pull: what the server sent for the objects, beside the commit object and
    // its detached metadata libostree fetches again.
    let up = upgrade_json(&fx);
    let fetched = up["bytes_fetched"].as_u64().unwrap();
    eprintln!("objects: reported {reported}, independently {expected}, fetched {fetched}");
    assert!(
        fetched >= reported,
        "fetched {fetched} < reported {reported}"
    );
    assert!(
        fetched < reported + 4096,
        "fetched {fetched}, reported {reported}"
    );
    assert_eq!(fx.order(), [version(1), version(0)]);
    fx.fsck();
}

/// Commits that list only their objects new over the parent (as the composer writes them):
/// a host two releases behind fetches the release in between's commit object and joins both
/// lists down to the commit it runs. The estimate is conservative: what the release in
/// between added and the new one dropped again counts too.
#[test]
fn lists_of_new_objects_are_joined_down_to_the_host_commit() {
    let fx = Fixture::new();
    let one = noise(2, 100_000);
    let c1 = fx.publish_listing_new(STABLE, 1, 20, &[("usr/share/one", &one, 0o644)]);
    let c2 = fx.publish_listing_new(
        STABLE,
        2,
        20,
        &[
            ("usr/share/one", &one, 0o644),
            ("usr/share/two", &noise(3, 200_000), 0o644),
        ],
    );
    // The newest commit lists none of what its parent has ("one", the unchanged files).
    let listed = |c: &str| -> Vec<String> {
        let v = fx
            .srv_repo()
            .load_variant(cairn_release::ostree::ObjectType::Commit, c)
            .unwrap();
        match cairn_release::object_sizes::listed(&v).unwrap() {
            cairn_release::object_sizes::Listed::NewOverParent { objects, .. } => {
                objects.into_iter().map(|o| o.checksum).collect()
            }
            other => panic!("{other:?}"),
        }
    };
    let ls = |c: &str, path: &str| {
        run(Command::new("ostree")
            .arg(format!("--repo={}", fx.srv.display()))
            .args(["ls", "-C", c, path]))
        .split_whitespace()
        .nth(4)
        .unwrap()
        .to_string()
    };
    let (one_sum, two_sum) = (ls(&c2, "/usr/share/one"), ls(&c2, "/usr/share/two"));
    assert!(listed(&c1).contains(&one_sum));
    assert!(!listed(&c2).contains(&one_sum));
    assert!(listed(&c2).contains(&two_sum));

    let check = check_json(&fx);
    assert_eq!(check["download_measured_by"], "objects", "{check}");
    let reported = check["download_bytes"].as_u64().unwrap();
    let exact = missing_object_bytes(&fx, &c2);
    assert_eq!(
        reported,
        missing_object_bytes_of(&fx, &[&c1, &c2]),
        "{check}"
    );
    assert!(reported >= exact && exact > 100_000, "{check}");
    // The release in between's commit object was fetched to read its list.
    let host_has = |c: &str| {
        fx.repo()
            .join(format!("objects/{}/{}.commit", &c[..2], &c[2..]))
            .exists()
    };
    assert!(host_has(&c1));
    let root = check["root_needed_bytes"].as_u64().unwrap();
    assert!(root >= 300_000, "{check}");

    let up = upgrade_json(&fx);
    let fetched = up["bytes_fetched"].as_u64().unwrap();
    eprintln!("chain: reported {reported}, exact {exact}, fetched {fetched}");
    assert!(fetched >= exact && fetched < exact + 8192, "{up}");
    assert_eq!(fx.order(), [version(2), version(0)]);
    fx.fsck();
}

/// When the release in between is gone from the server, the lists cannot be joined: the
/// download is unknown (never guessed), and the upgrade still goes ahead.
#[test]
fn a_broken_chain_of_lists_leaves_the_size_unknown() {
    let fx = Fixture::new();
    let c1 = fx.publish_listing_new(STABLE, 1, 5, &[]);
    fx.publish_listing_new(STABLE, 2, 5, &[("usr/share/two", &noise(4, 50_000), 0o644)]);
    std::fs::remove_file(
        fx.srv
            .join(format!("objects/{}/{}.commit", &c1[..2], &c1[2..])),
    )
    .unwrap();
    let check = check_json(&fx);
    assert!(check["download_bytes"].is_null(), "{check}");
    assert!(check["root_needed_bytes"].is_null(), "{check}");
    upgrade_json(&fx);
    assert_eq!(fx.order(), [version(2), version(0)]);
}

#[test]
fn with_a_delta_the_download_is_the_delta_parts() {
    let fx = Fixture::new();
    let c0 = fx.default_commit();
    let big = noise(2, 300_000);
    let c1 = fx.publish_with(STABLE, 1, 20, &[("usr/share/big", &big, 0o644)]);
    run(Command::new("ostree")
        .arg(format!("--repo={}", fx.srv.display()))
        .args(["static-delta", "generate"])
        .arg(format!("--from={c0}"))
        .arg(format!("--to={c1}")));
    run(Command::new("ostree")
        .arg(format!("--repo={}", fx.srv.display()))
        .args(["summary", "-u"]));
    // Independently: the sizes of the delta's part files on the server.
    let mut parts = 0;
    let mut superblock = 0;
    for dir in std::fs::read_dir(fx.srv.join("deltas")).unwrap() {
        for delta in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(delta.unwrap().path()).unwrap() {
                let f = f.unwrap();
                let len = f.metadata().unwrap().len();
                if f.file_name() == "superblock" {
                    superblock += len;
                } else {
                    parts += len;
                }
            }
        }
    }
    assert!(parts > 0 && superblock > 0);
    let check = check_json(&fx);
    assert_eq!(check["download_measured_by"], "delta", "{check}");
    let reported = check["download_bytes"].as_u64().unwrap();
    assert_eq!(reported, parts, "{check}");
    // The objects measure would have said something else: the delta is what counts.
    assert_ne!(reported, missing_object_bytes(&fx, &c1));
    assert!(
        check["root_needed_bytes"].as_u64().unwrap() >= 300_000,
        "{check}"
    );
    // Same kernel and initramfs: shared boot files need no room.
    assert_eq!(check["boot_needed_bytes"], 0, "{check}");
    let text = fx.cairn_ok(&["check"]);
    assert!(text.contains("(static delta)"), "{text}");
    let up = upgrade_json(&fx);
    let fetched = up["bytes_fetched"].as_u64().unwrap();
    eprintln!("delta: reported {reported} (parts), superblock {superblock}, fetched {fetched}");
    assert!(
        fetched >= reported,
        "fetched {fetched} < reported {reported}"
    );
    assert!(
        fetched <= reported + superblock + 4096,
        "fetched {fetched}, reported {reported}"
    );
    assert_eq!(fx.order(), [version(1), version(0)]);
    fx.fsck();
}

/// Content objects (`.file`) in the host's repository.
fn content_objects(fx: &Fixture) -> usize {
    let out = run(Command::new("find")
        .arg(fx.repo().join("objects"))
        .args(["-name", "*.file"]));
    out.lines().count()
}

fn ostree_refs(fx: &Fixture) -> String {
    run(Command::new("ostree")
        .arg(format!("--repo={}", fx.repo().display()))
        .arg("refs"))
}

#[test]
fn a_full_root_refuses_the_upgrade_before_the_pull() {
    let fx = Fixture::new();
    let small = SmallRoot::new(&fx, 64);
    let big = noise(3, 8 << 20);
    fx.publish_with(STABLE, 1, 0, &[("usr/share/big", &big, 0o644)]);
    let check = check_json(&fx);
    let need = check["root_needed_bytes"].as_u64().unwrap();
    let free = check["root_free_bytes"].as_u64().unwrap();
    assert_eq!(check["root_freeable_bytes"], 0, "{check}");
    assert!(need >= 8 << 20 && need < free, "{check}");
    // Leave half of what the new objects need.
    small.leave_free(free, need / 2);
    let check = check_json(&fx);
    let free = check["root_free_bytes"].as_u64().unwrap();
    assert!(free < need, "{check}");
    let deployments = fx.deployment_ids();
    let objects = content_objects(&fx);
    let refs = ostree_refs(&fx);
    let err = fx.cairn_fails(&["upgrade"], 1);
    assert!(
        err.contains(&format!("mounted at {}", fx.sysroot.display())),
        "{err}"
    );
    // The bytes missing, as the error says; `cairn check` wrote its state file in between,
    // so allow a few blocks.
    let missing: u64 = err
        .split(" bytes) missing")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {err}"));
    assert!(
        missing.abs_diff(need - free) <= 4 * 4096,
        "need {need}, free {free}, missing {missing}: {err}"
    );
    assert!(err.contains("cairn cleanup"), "{err}");
    // Nothing was fetched or changed but the commit object check fetched already.
    assert_eq!(fx.deployment_ids(), deployments);
    assert_eq!(content_objects(&fx), objects);
    assert_eq!(ostree_refs(&fx), refs);
    fx.fsck();
    // With room again it goes through.
    std::fs::remove_file(fx.sysroot.join("filler")).unwrap();
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.order(), [version(1), version(0)]);
    fx.fsck();
    drop(small);
}

#[test]
fn the_deployment_an_upgrade_drops_anyway_makes_room_first() {
    let fx = Fixture::new();
    let small = SmallRoot::new(&fx, 96);
    fx.publish_with(STABLE, 1, 0, &[("usr/share/x", &noise(4, 8 << 20), 0o644)]);
    fx.cairn_ok(&["upgrade"]);
    fx.publish_with(STABLE, 2, 0, &[("usr/share/y", &noise(5, 8 << 20), 0o644)]);
    fx.cairn_ok(&["upgrade"]);
    assert_eq!(fx.order(), [version(2), version(1)]);
    // Version 3 drops version 1 (not the merge deployment), whose x nobody else has.
    fx.publish_with(STABLE, 3, 0, &[("usr/share/z", &noise(6, 8 << 20), 0o644)]);
    let check = check_json(&fx);
    let need = check["root_needed_bytes"].as_u64().unwrap();
    let free = check["root_free_bytes"].as_u64().unwrap();
    let freeable = check["root_freeable_bytes"].as_u64().unwrap();
    assert!(freeable >= 8 << 20, "{check}");
    // Room only with what dropping version 1 frees.
    small.leave_free(free, need - freeable / 2);
    let check = check_json(&fx);
    let free = check["root_free_bytes"].as_u64().unwrap();
    assert!(free < need && need <= free + freeable, "{check}");
    let out = fx.cairn(&["upgrade", "--verbose"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("before the pull"), "{stderr}");
    assert_eq!(fx.order(), [version(3), version(2)]);
    fx.fsck();
    drop(small);
}
