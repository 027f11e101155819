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

    // 1. First compose.
    let first = compose_json(&args);
    assert_eq!(first["result"], "committed", "{first}");
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
    let second = compose_json(&args);
    assert_eq!(second["result"], "committed", "{second}");
    assert_eq!(second["version"], "2026.11.1");
    let c2 = second["commit"].as_str().unwrap().to_string();
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

    // 4. The first lockfile composes the first package set again, as a new version.
    let mut locked = args.clone();
    locked.extend(["--lockfile".into(), lock1.clone()]);
    let third = compose_json(&locked);
    assert_eq!(third["result"], "committed", "{third}");
    assert_eq!(third["version"], "2026.11.2");
    let c3 = third["commit"].as_str().unwrap().to_string();
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
    run(std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .arg("fsck"));
}

#[test]
fn a_package_that_does_not_exist_is_named() {
    require_root();
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

    let mut child = compose()
        .args(&args)
        .arg("--force")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        // Interrupt once mmdebstrap is installing into the tree (its mounts are up).
        if line.contains("extracting archives") || line.contains("installing") {
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
        "an interrupted compose must fail: {seen}"
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
    run(std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .arg("fsck"));
}
