//! Shared set-up for the composer's root integration tests: tiny `.deb`s built with dpkg-deb,
//! a local apt repository, and the machine's own apt sources for Debian's essential set.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fails the test (never skips it) when not root: these tests need chroot and mounts.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_eq!(
        uid, "0",
        "the composer integration tests need root (mmdebstrap --mode=root); run them as root"
    );
}

/// A package to build.
pub struct Deb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub depends: &'a str,
    /// (path in the package, content); a content starting with "->" makes a symlink.
    pub files: &'a [(&'a str, &'a str)],
}

/// Builds `deb` into `repo_dir` with dpkg-deb and returns its path.
pub fn build_deb(repo_dir: &Path, deb: &Deb) -> PathBuf {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("DEBIAN")).unwrap();
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: Cairn tests <tests@cairn.invalid>\nDescription: test package {}\n",
        deb.name, deb.version, deb.name
    );
    if !deb.depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", deb.depends));
    }
    fs::write(r.join("DEBIAN/control"), control).unwrap();
    for (path, content) in deb.files {
        let p = r.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        match content.strip_prefix("->") {
            Some(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
            None => fs::write(&p, content).unwrap(),
        }
    }
    fs::create_dir_all(repo_dir).unwrap();
    let out = repo_dir.join(format!("{}_{}_all.deb", deb.name, deb.version));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(r)
        .arg(&out));
    out
}

/// Writes the flat repository index of `repo_dir`.
pub fn index_repo(repo_dir: &Path) {
    let out = run(Command::new("apt-ftparchive")
        .args(["packages", "."])
        .current_dir(repo_dir));
    fs::write(repo_dir.join("Packages"), out.stdout).unwrap();
}

/// Sources files for a compose: the machine's apt sources plus the local repository.
pub fn sources_args(local_repo: &Path, dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    let mut host = Vec::new();
    if Path::new("/etc/apt/sources.list").is_file() {
        host.push(PathBuf::from("/etc/apt/sources.list"));
    }
    for e in fs::read_dir("/etc/apt/sources.list.d").unwrap().flatten() {
        let p = e.path();
        if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("list" | "sources")
        ) {
            host.push(p);
        }
    }
    assert!(
        !host.is_empty(),
        "this machine has no apt sources; the tests need Debian's archive"
    );
    for p in host {
        args.push("--sources".into());
        args.push(p.display().to_string());
    }
    let local = dir.join("local-test.list");
    fs::write(
        &local,
        format!("deb [trusted=yes] file:{} ./\n", local_repo.display()),
    )
    .unwrap();
    args.push("--sources".into());
    args.push(local.display().to_string());
    args
}

/// A shared package cache, so the essential set is downloaded once for all tests.
/// Tests that compose share [`shared_cache`] and build same-named test packages with different
/// contents, and one of them checks that the cache's work area is empty: they must not run at
/// the same time. Each takes this guard first.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The package cache of README's compose and the VM tests (`build/cache`): what these tests
/// download and install from the real archive is what `tests/vm/e2e.py` composes next, so a
/// fresh machine fetches Debian's packages once and the VM test starts from the container
/// host's cached install. Everything in it is keyed by content; the composes take its lock.
pub fn shared_cache() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/cache");
    fs::create_dir_all(&p).unwrap();
    // Spelled with `..` on purpose: the composer must cope (it canonicalizes the cache).
    p
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cairn-compose` with arguments.
pub fn compose() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn-compose"))
}

/// Runs `cairn-compose` and parses its JSON stdout.
pub fn compose_json(args: &[String]) -> serde_json::Value {
    let out = run(compose().args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {args:?}: {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Every ref and its commit, as `ostree refs` + `rev-parse` see them.
pub fn refs_state(repo: &Path) -> Vec<(String, String)> {
    let out = run(Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .arg("refs"));
    let mut refs: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|r| {
            let c = run(Command::new("ostree")
                .arg(format!("--repo={}", repo.display()))
                .args(["rev-parse", r]));
            (
                r.to_string(),
                String::from_utf8_lossy(&c.stdout).trim().to_string(),
            )
        })
        .collect();
    refs.sort();
    refs
}

/// Lists a committed path with `ostree ls`.
pub fn ostree_ls(repo: &Path, rev: &str, path: &str) -> Option<String> {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["ls", rev, path])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads a committed file with `ostree cat`.
/// A commit's metadata value for `key`, in GVariant text form (`'text'` for a string).
pub fn ostree_show_metadata(repo: &Path, rev: &str, key: &str) -> Option<String> {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["show", rev, &format!("--print-metadata-key={key}")])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn ostree_cat(repo: &Path, rev: &str, path: &str) -> Option<String> {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["cat", rev, path])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
