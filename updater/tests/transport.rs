//! Integration tests of how releases travel: hosts pull static deltas the composer wrote, and
//! hosts on a version the server pruned still update (full pull). The server side is built
//! with the composer's own delta and prune code.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::process::Command;

use cairn_composer::{delta, prune};
use common::*;

fn summary(fx: &Fixture) {
    run(Command::new("ostree")
        .arg(format!("--repo={}", fx.srv.display()))
        .args(["summary", "-u"]));
}

fn delta_requests(fx: &Fixture) -> usize {
    std::fs::read_to_string(&fx.server.log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("/deltas/"))
        .count()
}

#[test]
fn hosts_pull_the_static_delta() {
    let fx = Fixture::new();
    let v1 = fx.publish(STABLE, 1, 50);
    let written = delta::generate_from_ancestors(&fx.srv_repo(), &v1, 2).unwrap();
    assert_eq!(written.len(), 1);
    summary(&fx);
    let before = fx.content_requests();
    fx.cairn_ok(&["upgrade"]);
    fx.assert_boots(1);
    assert!(delta_requests(&fx) > 0, "no delta was fetched");
    assert_eq!(fx.content_requests(), before, "objects fetched one by one");
    fx.fsck();
}

#[test]
fn a_host_on_a_pruned_version_still_updates() {
    let fx = Fixture::new();
    for n in 1..=4 {
        let c = fx.publish(STABLE, n, 0);
        delta::generate_from_ancestors(&fx.srv_repo(), &c, 2).unwrap();
    }
    summary(&fx);
    let p = prune::prune(&prune::PruneOptions {
        repo: fx.srv.clone(),
        keep: 2,
        osref: None,
        keep_versions: vec![version(1)],
    })
    .unwrap();
    let removed: Vec<_> = p.removed.iter().filter_map(|r| r.version.clone()).collect();
    assert_eq!(removed, [version(2), version(0)]);
    // Deltas from 2026.11.2 (to .3 and .4) and from 2026.11.1/0 (to .2/.3) went with them;
    // 2026.11.3 -> .4 and 2026.11.1 -> .3 remain.
    let repo = fx.srv_repo();
    let left = delta::list(&repo).unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    run(Command::new("ostree")
        .arg(format!("--repo={}", fx.srv.display()))
        .arg("fsck"));

    // The host is on 2026.11.0, which the server no longer has: a full pull.
    let out = fx.cairn_ok(&["upgrade"]);
    assert!(out.contains("2026.11.4"), "{out}");
    fx.assert_boots(4);
    // The shortened history still lists what is left, and deploys from it.
    fx.cairn_ok(&["deploy", &version(3)]);
    fx.assert_boots(3);
    let err = fx.cairn_fails(&["deploy", &version(2)], 1);
    assert!(err.contains("2026.11.4, 2026.11.3"), "{err}");
    fx.fsck();
}
