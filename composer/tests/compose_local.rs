//! Root integration tests: compose against a local apt repository of tiny packages built at
//! test time, plus Debian's essential set from the machine's apt sources.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::Path;

use support::*;

const MANIFEST: &str = r#"
os = "testos"
version-prefix = "2026.11"
bootable = false
packages = ["cairn-hello", "cairn-tool"]
remove-files = ["/usr/share/doc/cairn-*", "/opt/escape/*"]

[sources]
suite = "bookworm"

[[files]]
dest = "/etc/motd"
content = "welcome to testos\n"

# The package ships /opt/escape -> /tmp/...; this must land inside the tree.
[[files]]
dest = "/opt/escape/pwned"
content = "x"

[[postprocess]]
name = "stamp"
run = "echo stamped > /usr/share/cairn-stamp"
"#;

fn write_manifest(dir: &Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("test.toml");
    fs::write(&p, format!("{MANIFEST}{extra}")).unwrap();
    p
}

fn tree_args(manifest: &Path, repo: &Path, local: &Path, dir: &Path) -> Vec<String> {
    let mut a = vec![
        "tree".to_string(),
        manifest.display().to_string(),
        "--repo".into(),
        repo.display().to_string(),
        "--cache-dir".into(),
        shared_cache().display().to_string(),
    ];
    a.extend(sources_args(local, dir));
    a
}

#[test]
fn compose_recompose_upgrade_diff_lockfile_and_failure() {
    require_root();
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let local = dir.join("apt-repo");
    let repo = dir.join("repo");
    let escape = Path::new("/tmp").join(format!("cairn-escape-{}", std::process::id()));
    let _ = fs::remove_dir_all(&escape);
    build_deb(
        &local,
        &Deb {
            name: "cairn-hello",
            version: "1.0",
            depends: "cairn-tool",
            files: &[
                ("/usr/share/cairn-hello/greeting", "hello 1.0\n"),
                ("/usr/share/doc/cairn-hello/README", "doc"),
            ],
        },
    );
    build_deb(
        &local,
        &Deb {
            name: "cairn-tool",
            version: "1.0",
            depends: "",
            files: &[
                ("/usr/bin/cairn-tool", "#!/bin/sh\necho tool\n"),
                ("/var/lib/cairn-tool/state", "initial\n"),
                ("/opt/escape", &format!("->{}", escape.display())),
            ],
        },
    );
    index_repo(&local);
    let manifest = write_manifest(dir, "");
    let args = tree_args(&manifest, &repo, &local, dir);

    // 1. First compose, every package from scratch (the shared cache may hold an install of
    //    this ref from an earlier run).
    let mut fresh = args.clone();
    fresh.push("--fresh-install".into());
    let first = compose_json(&fresh);
    assert_eq!(first["result"], "committed", "{first}");
    assert_eq!(first["install"]["mode"], "fresh", "{first}");
    assert_eq!(first["version"], "2026.11.0");
    let c1 = first["commit"].as_str().unwrap().to_string();
    let osref = "testos/bookworm/x86_64/stable";
    assert_eq!(refs_state(&repo), vec![(osref.to_string(), c1.clone())]);
    assert_eq!(
        ostree_cat(&repo, &c1, "/usr/etc/motd").unwrap(),
        "welcome to testos\n"
    );
    assert_eq!(
        ostree_cat(&repo, &c1, "/usr/share/cairn-stamp").unwrap(),
        "stamped\n"
    );
    assert!(
        ostree_ls(&repo, &c1, "/etc").is_none(),
        "/etc must be moved to /usr/etc"
    );
    assert!(
        ostree_ls(&repo, &c1, "/usr/share/doc/cairn-hello").is_none(),
        "remove-files applies"
    );
    assert_eq!(
        ostree_ls(&repo, &c1, "/var").unwrap().lines().count(),
        1,
        "/var is empty"
    );
    let tmpfiles = ostree_cat(&repo, &c1, "/usr/lib/tmpfiles.d/cairn-var.conf").unwrap();
    assert!(
        tmpfiles.contains(
            "C /var/lib/cairn-tool/state - - - - /usr/share/factory/var/lib/cairn-tool/state"
        ),
        "{tmpfiles}"
    );
    assert!(
        ostree_ls(&repo, &c1, "/usr/lib/sysimage/dpkg/status").is_some(),
        "dpkg db under /usr"
    );
    assert!(
        ostree_ls(&repo, &c1, "/dev/null").is_none(),
        "no device nodes"
    );
    let top: Vec<String> = ostree_ls(&repo, &c1, "/")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap().to_string())
        .collect();
    for name in &top {
        let known = [
            "/", "/bin", "/boot", "/dev", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
            "/ostree", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/sysroot", "/tmp",
            "/usr", "/var",
        ];
        assert!(
            known.contains(&name.as_str()),
            "unexpected top-level entry {name} in {top:?}"
        );
    }
    assert!(
        !escape.exists(),
        "a symlink in a package made the composer write outside the tree"
    );
    let lock1 = first["lockfile"].as_str().unwrap().to_string();
    let lock_json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&lock1).unwrap()).unwrap();
    let hello = lock_json["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cairn-hello")
        .unwrap();
    assert_eq!(hello["version"], "1.0");
    assert_eq!(hello["sha256"].as_str().unwrap().len(), 64);

    // 2. Nothing changed: nothing written.
    let again = compose_json(&args);
    assert_eq!(again["result"], "unchanged", "{again}");
    assert_eq!(refs_state(&repo), vec![(osref.to_string(), c1.clone())]);

    // 3. One package changes in the archive: the next version, and the diff says so.
    build_deb(
        &local,
        &Deb {
            name: "cairn-hello",
            version: "1.1",
            depends: "cairn-tool",
            files: &[
                ("/usr/share/cairn-hello/greeting", "hello 1.1\n"),
                ("/usr/share/cairn-hello/new", "new\n"),
            ],
        },
    );
    index_repo(&local);
    let key = dir.join("release.key");
    compose_json(&["keygen".into(), "-o".into(), key.display().to_string()]);
    let mut signed = args.clone();
    signed.extend(["--sign-key".into(), key.display().to_string()]);
    let second = compose_json(&signed);
    assert_eq!(second["result"], "committed", "{second}");
    assert_eq!(second["version"], "2026.11.1");
    assert_eq!(second["signed"], true, "{second}");
    assert_eq!(second["deltas_from"], serde_json::json!(["2026.11.0"]));
    // Only the changed package was installed, on a copy of the first compose's install.
    assert_eq!(second["install"]["mode"], "incremental", "{second}");
    assert_eq!(second["install"]["changed"], 1, "{second}");
    assert_eq!(second["install"]["purged"], 0, "{second}");
    let base = second["install"]["base"].as_str().unwrap().to_string();
    assert_eq!(base.len(), 64, "{second}");
    let commitmeta = repo.join(format!(
        "objects/{}/{}.commitmeta",
        &second["commit"].as_str().unwrap()[..2],
        &second["commit"].as_str().unwrap()[2..]
    ));
    assert!(
        commitmeta.exists(),
        "the signature is in the detached metadata"
    );
    let c2 = second["commit"].as_str().unwrap().to_string();
    // The manifest ships no trusted key, so the tree trusts the one it was signed with.
    let public = fs::read_to_string(dir.join("release.key.pub")).unwrap();
    assert_eq!(
        ostree_cat(&repo, &c2, "/usr/lib/cairn/trusted.d/release.pub").unwrap(),
        public
    );
    assert_eq!(
        ostree_cat(&repo, &c2, "/usr/share/cairn-hello/greeting").unwrap(),
        "hello 1.1\n"
    );
    let diff = compose_json(&[
        "diff".into(),
        "2026.11.0".into(),
        "2026.11.1".into(),
        "--repo".into(),
        repo.display().to_string(),
    ]);
    assert_eq!(
        diff["upgraded"],
        serde_json::json!([{"name": "cairn-hello", "from": "1.0", "to": "1.1"}]),
        "{diff}"
    );
    assert_eq!(diff["added"], serde_json::json!([]));
    assert_eq!(diff["removed"], serde_json::json!([]));
    // The new file, plus dpkg's database entries for the package; nothing else of the tree.
    let files = &diff["files"];
    assert!(files["added"].as_u64().unwrap() >= 1, "{diff}");
    assert!(files["changed"].as_u64().unwrap() >= 1, "{diff}");
    let total: u64 = ["added", "removed", "changed"]
        .iter()
        .map(|k| files[k].as_u64().unwrap())
        .sum();
    assert!(total < 20, "a one-package change touches few paths: {diff}");
    let back = compose_json(&[
        "diff".into(),
        c2.clone(),
        c1.clone(),
        "--repo".into(),
        repo.display().to_string(),
    ]);
    assert_eq!(back["downgraded"][0]["name"], "cairn-hello", "{back}");

    let log = compose_json(&[
        "log".into(),
        osref.into(),
        "--repo".into(),
        repo.display().to_string(),
    ]);
    let versions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2026.11.1", "2026.11.0"]);
    assert_eq!(log[0]["install_base"], base.as_str(), "{log}");
    assert!(
        log[1]["install_base"].is_null(),
        "the first is fresh: {log}"
    );

    // 3b. The incremental tree equals a fresh install of the same lockfile (which becomes
    //     the cached install).
    let repo_fresh = dir.join("repo-fresh");
    let mut fresh2 = tree_args(&manifest, &repo_fresh, &local, dir);
    fresh2.extend([
        "--fresh-install".into(),
        "--lockfile".into(),
        second["lockfile"].as_str().unwrap().to_string(),
        "--write-lockfile".into(),
        dir.join("fresh2.lock.json").display().to_string(),
        // Signed as c2 was, so the tree trusts the same key file.
        "--sign-key".into(),
        key.display().to_string(),
    ]);
    let fresh2 = compose_json(&fresh2);
    assert_eq!(fresh2["install"]["mode"], "fresh", "{fresh2}");
    run(std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo_fresh.display()))
        .args(["pull-local", repo.to_str().unwrap(), &c2]));
    assert_same_files(&repo_fresh, &c2, fresh2["commit"].as_str().unwrap());

    // 4. The first lockfile composes the first package set again, as a new version.
    let mut locked = args.clone();
    locked.extend(["--lockfile".into(), lock1.clone()]);
    let third = compose_json(&locked);
    assert_eq!(third["result"], "committed", "{third}");
    assert_eq!(third["version"], "2026.11.2");
    assert_eq!(
        third["deltas_from"],
        serde_json::json!(["2026.11.1", "2026.11.0"])
    );
    assert_eq!(third["install"]["mode"], "incremental", "{third}");
    assert_eq!(third["install"]["changed"], 1, "a downgrade: {third}");
    assert_ne!(
        third["install"]["base"],
        base.as_str(),
        "the base is 3b's: {third}"
    );
    let c3 = third["commit"].as_str().unwrap().to_string();
    assert_eq!(
        ostree_show_metadata(&repo, &c3, "cairn.install-base").as_deref(),
        Some(format!("'{}'", third["install"]["base"].as_str().unwrap()).as_str()),
        "the commit names the install it started from"
    );
    assert_eq!(
        ostree_cat(&repo, &c3, "/usr/share/cairn-hello/greeting").unwrap(),
        "hello 1.0\n"
    );
    let same = compose_json(&[
        "diff".into(),
        c1.clone(),
        c3.clone(),
        "--repo".into(),
        repo.display().to_string(),
    ]);
    for k in ["added", "removed", "upgraded", "downgraded"] {
        assert_eq!(
            same[k],
            serde_json::json!([]),
            "lockfile compose differs from the first in {k}: {same}"
        );
    }

    // The downgrade on the cached install gives the first compose's tree again: the same
    // files with the same contents (the package's 1.1-only file is gone).
    assert_same_files(&repo, &c1, &c3);

    // 5. A failing post-process script: a clear error, and the repository as it was.
    let before = refs_state(&repo);
    let objects_before = count_objects(&repo);
    let bad = write_manifest(
        dir,
        "\n[[postprocess]]\nname = \"breaks\"\nrun = \"echo about to fail; exit 3\"\n",
    );
    let child = compose()
        .args(tree_args(&bad, &repo, &local, dir))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"breaks\"") && err.contains("test.toml"),
        "{err}"
    );
    assert!(
        err.contains("about to fail"),
        "the script's output is shown: {err}"
    );
    assert_eq!(refs_state(&repo), before);
    assert_eq!(
        count_objects(&repo),
        objects_before,
        "no objects were added"
    );
    // Other tests share the cache and may be composing: this compose's own tree must be gone.
    let work = shared_cache().join("work");
    assert!(
        !work.join(format!("work-{pid}")).exists(),
        "temporary trees are removed"
    );
    // 6. Sign an existing version, bundle, prune.
    run(compose()
        .args(["sign", "2026.11.2", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&key));
    let bundle = dir.join("update.cairnbundle");
    let b = compose_json(&[
        "bundle".into(),
        "--repo".into(),
        repo.display().to_string(),
        "--from".into(),
        "2026.11.0".into(),
        "--to".into(),
        "2026.11.2".into(),
        "-o".into(),
        bundle.display().to_string(),
        "--sign-key".into(),
        key.display().to_string(),
    ]);
    assert_eq!(b["commit_signed"], true, "{b}");
    assert_eq!(b["manifest"]["ref"], osref);
    assert!(bundle.exists());
    let p = compose_json(&[
        "prune".into(),
        "--repo".into(),
        repo.display().to_string(),
        "--keep".into(),
        "1".into(),
        "--keep-version".into(),
        "2026.11.0".into(),
    ]);
    assert_eq!(p["removed"][0]["version"], "2026.11.1", "{p}");
    assert_eq!(p["removed"].as_array().unwrap().len(), 1, "{p}");
    let log = compose_json(&[
        "log".into(),
        osref.into(),
        "--repo".into(),
        repo.display().to_string(),
    ]);
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    // 7. A damaged cached install (its dpkg database gone): the compose notices, installs
    //     from scratch, and keeps that install as the new base.
    write_manifest(dir, ""); // step 5 left its failing script in it
    let slot = cached_install_of(osref);
    fs::remove_file(slot.join("tree/var/lib/dpkg/status")).unwrap();
    let mut again = locked.clone();
    again.push("--force".into());
    let fourth = compose_json(&again);
    assert_eq!(fourth["result"], "committed", "{fourth}");
    assert_eq!(fourth["install"]["mode"], "fresh", "{fourth}");
    assert!(
        fourth["install"]["fresh_because"]
            .as_str()
            .unwrap()
            .contains("applying the changes failed"),
        "{fourth}"
    );
    assert!(cached_install_of(osref)
        .join("tree/var/lib/dpkg/status")
        .exists());
    let c4 = fourth["commit"].as_str().unwrap().to_string();
    assert_eq!(
        ostree_cat(&repo, &c4, "/usr/share/cairn-hello/greeting").unwrap(),
        "hello 1.0\n"
    );

    run(std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .arg("fsck"));
}

#[test]
fn a_package_that_does_not_exist_is_named() {
    require_root();
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let local = dir.join("apt-repo");
    build_deb(
        &local,
        &Deb {
            name: "cairn-tool",
            version: "1.0",
            depends: "",
            files: &[("/usr/bin/t", "t")],
        },
    );
    index_repo(&local);
    let manifest = dir.join("m.toml");
    fs::write(&manifest, "os = \"t\"\nversion-prefix = \"1\"\nbootable = false\npackages = [\"cairn-no-such-package\"]\n[sources]\nsuite = \"bookworm\"\n").unwrap();
    let repo = dir.join("repo");
    let out = compose()
        .args(tree_args(&manifest, &repo, &local, dir))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cairn-no-such-package"), "{err}");
    assert!(refs_state(&repo).is_empty());
}

/// Two commits of `repo` hold the same paths with the same contents.
fn assert_same_files(repo: &Path, a: &str, b: &str) {
    let out = run(std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["diff", a, b]));
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.trim().is_empty(),
        "an incremental install differs from a fresh one:\n{diff}"
    );
}

/// The cached fresh install of `osref` in the shared cache.
fn cached_install_of(osref: &str) -> std::path::PathBuf {
    let installs = shared_cache().join("installs");
    for entry in fs::read_dir(&installs).unwrap().flatten() {
        let Ok(text) = fs::read_to_string(entry.path().join("base.json")) else {
            continue;
        };
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        if info["ref"] == osref {
            return entry.path();
        }
    }
    panic!("no cached install of {osref} in {}", installs.display());
}

fn count_objects(repo: &Path) -> usize {
    let mut n = 0;
    for d in fs::read_dir(repo.join("objects")).unwrap().flatten() {
        n += fs::read_dir(d.path()).unwrap().count();
    }
    n
}

#[test]
fn ctrl_c_during_install_leaves_the_repo_and_no_trees_behind() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    require_root();
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let local = dir.join("apt-repo");
    build_deb(
        &local,
        &Deb {
            name: "cairn-hello",
            version: "1.0",
            depends: "",
            files: &[("/usr/share/h", "h")],
        },
    );
    build_deb(
        &local,
        &Deb {
            name: "cairn-tool",
            version: "1.0",
            depends: "",
            files: &[("/usr/bin/t", "t")],
        },
    );
    index_repo(&local);
    let manifest = dir.join("m.toml");
    fs::write(&manifest, "os = \"t\"\nversion-prefix = \"1\"\nbootable = false\npackages = [\"cairn-hello\"]\n[sources]\nsuite = \"bookworm\"\n").unwrap();
    let repo = dir.join("repo");
    let args = tree_args(&manifest, &repo, &local, dir);
    assert_eq!(compose_json(&args)["result"], "committed");
    let before = refs_state(&repo);

    // Once in mmdebstrap's fresh install, once while apt changes a copy of the cached install.
    for (how, when) in [
        (&["--force", "--fresh-install"][..], "extracting archives"),
        (&["--force"][..], "on the cached install"),
    ] {
        let mut child = compose()
            .args(&args)
            .args(how)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 {
            seen.push_str(&line);
            // Interrupt once the install has begun in the tree (its mounts are up).
            if line.contains(when) {
                run(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
                break;
            }
            line.clear();
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        seen.push_str(&rest);
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "an interrupted compose must fail ({how:?}): {seen}"
        );
        assert!(seen.contains("interrupted"), "{seen}");
        assert_eq!(refs_state(&repo), before, "the ref did not move");
        // Other tests share the cache and may be composing: this compose's own tree must be gone.
        let work = shared_cache().join("work");
        assert!(
            !work.join(format!("work-{}", child.id())).exists(),
            "no tree left: {seen}"
        );
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(work.to_str().unwrap()),
            "no mounts left under {}",
            work.display()
        );
    }
    run(std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .arg("fsck"));
}
