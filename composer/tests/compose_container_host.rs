//! Root integration test: compose the shipped `manifests/container-host.toml` from the real
//! Debian archive (the machine's apt sources) and check the commit can boot and run containers.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

#[test]
fn container_host_manifest_composes_a_bootable_container_host() {
    require_root();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // The manifest ships the updater binary built by `cargo build --release`.
    run(Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "cairn-updater"])
        .current_dir(workspace));
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let result = compose_json(&[
        "tree".into(),
        workspace
            .join("manifests/container-host.toml")
            .display()
            .to_string(),
        "--repo".into(),
        repo.display().to_string(),
        "--cache-dir".into(),
        shared_cache().display().to_string(),
    ]);
    assert_eq!(result["result"], "committed", "{result}");
    assert_eq!(result["ref"], "cairn/bookworm/x86_64/stable");
    let commit = result["commit"].as_str().unwrap();
    let kver = result["kernel"].as_str().unwrap().to_string();

    let meta = |key: &str| {
        let out = run(Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args(["show", commit, &format!("--print-metadata-key={key}")]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(meta("ostree.linux"), format!("'{kver}'"));
    assert_eq!(meta("ostree.bootable"), "true");
    assert!(meta("version").starts_with("'2026.11."));
    assert!(meta("cairn.packages").contains("'podman'"));

    let modules = format!("/usr/lib/modules/{kver}");
    assert!(ostree_ls(&repo, commit, &format!("{modules}/vmlinuz")).is_some());
    let initramfs = tmp.path().join("initramfs.img");
    let out = run(Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["cat", commit, &format!("{modules}/initramfs.img")]));
    std::fs::write(&initramfs, out.stdout).unwrap();
    let listing = run(Command::new("sh")
        .arg("-c")
        .arg("zstdcat \"$1\" | cpio -t 2>/dev/null")
        .arg("sh")
        .arg(&initramfs));
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("usr/lib/ostree/ostree-prepare-root"),
        "the initramfs must carry ostree-prepare-root"
    );
    assert!(
        ostree_ls(&repo, commit, "/usr/etc/systemd").is_some(),
        "/etc is committed as /usr/etc"
    );
    assert!(ostree_ls(&repo, commit, "/etc").is_none());
    assert!(
        ostree_ls(&repo, commit, "/boot").unwrap().lines().count() == 1,
        "/boot is empty"
    );
    for binary in [
        "/usr/bin/podman",
        "/usr/bin/crun",
        "/usr/bin/conmon",
        "/usr/bin/cairn",
        "/usr/lib/cairn/grub-menu",
        "/usr/share/man/man8/cairn.8",
        "/usr/share/man/man8/cairn-upgrade.8",
        "/usr/share/man/man5/cairn-config.5",
        "/usr/share/bash-completion/completions/cairn",
        "/usr/share/zsh/vendor-completions/_cairn",
    ] {
        assert!(
            ostree_ls(&repo, commit, binary).is_some(),
            "{binary} is missing"
        );
    }
    assert!(
        ostree_ls(&repo, commit, "/usr/share/man/man1/podman.1.gz").is_none(),
        "packages' man pages are removed, Cairn's kept"
    );
    assert_eq!(
        ostree_cat(&repo, commit, "/usr/etc/machine-id").unwrap(),
        "",
        "no machine-id"
    );
    assert!(ostree_ls(&repo, commit, "/usr/lib/sysimage/dpkg/status").is_some());
    let kargs = ostree_cat(&repo, commit, "/usr/lib/cairn/kernel-args").unwrap();
    assert!(kargs.contains("console=ttyS0"), "{kargs}");
}
