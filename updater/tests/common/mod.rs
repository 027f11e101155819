//! Test fixture: a served OSTree archive repository with tiny synthetic Cairn trees, and a
//! temp sysroot deployed from it the way an image build does (`ostree admin deploy` with the
//! GRUB generator). Each fixture has its own temp dir and HTTP server, so tests run in
//! parallel. Root is required (deploying sets ownership); without it the fixture fails loudly.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_release::metadata;
use cairn_release::signature::{self, SecretKey};
use cairn_release::{gio, ostree};
use serde_json::Value;

pub const STABLE: &str = "cairn/bookworm/x86_64/stable";
pub const TESTING: &str = "cairn/bookworm/x86_64/testing";
pub const OS: &str = "cairn";
pub const KVER: &str = "6.1.0-test";

/// `2026.11.N`.
pub fn version(n: u32) -> String {
    format!("2026.11.{n}")
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert_eq!(
        uid, "0",
        "cairn's integration tests deploy into a temp sysroot and need root (run as root, as CI does)"
    );
}

/// Runs a command, panics with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP server child process; killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, log: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(test_data("server.py"))
            .arg(dir)
            .arg("--log")
            .arg(log)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python3 test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("server printed its port");
        Server {
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/repo", self.port)
    }

    /// How many requests for objects the server has seen.
    pub fn object_requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("/objects/"))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The served archive repository.
    pub srv: PathBuf,
    pub sysroot: PathBuf,
    pub server: Server,
}

impl Fixture {
    /// Publishes 2026.11.0 on stable and deploys it into a fresh sysroot.
    pub fn new() -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir()
            .unwrap();
        let srv = dir.path().join("www/repo");
        std::fs::create_dir_all(&srv).unwrap();
        run(Command::new("ostree")
            .arg(format!("--repo={}", srv.display()))
            .args(["init", "--mode=archive"]));
        let server = Server::start(&dir.path().join("www"), &dir.path().join("server.log"), &[]);
        let sysroot = dir.path().join("sysroot");
        let fx = Fixture {
            srv,
            sysroot,
            server,
            dir,
        };
        fx.publish(STABLE, 0, 0);
        let s = &fx.sysroot;
        std::fs::create_dir_all(s).unwrap();
        run(Command::new("ostree").args(["admin", "init-fs"]).arg(s));
        run(Command::new("ostree")
            .args(["admin", "os-init", OS])
            .arg(format!("--sysroot={}", s.display())));
        run(Command::new("ostree")
            .arg(format!("--repo={}", fx.repo().display()))
            .args(["remote", "add", "--no-gpg-verify", "origin"])
            .arg(fx.server.url()));
        run(Command::new("ostree")
            .arg(format!("--repo={}", fx.repo().display()))
            .args(["pull", "origin", STABLE]));
        std::fs::create_dir_all(s.join("boot/grub")).unwrap();
        std::fs::copy(data("grub.cfg"), s.join("boot/grub/grub.cfg")).unwrap();
        run(Command::new("ostree")
            .env("OSTREE_GRUB2_EXEC", data("grub-menu"))
            .args(["admin", "deploy", "--os", OS])
            .arg(format!("--sysroot={}", s.display()))
            .args(["--karg=root=LABEL=cairn-root", "--karg=quiet"])
            .arg(format!("origin:{STABLE}")));
        fx
    }

    pub fn repo(&self) -> PathBuf {
        self.sysroot.join("ostree/repo")
    }

    /// Commits version `n` onto `ref_` in the served repository, with `extra_files` filler
    /// files (for a pull that takes many requests). Returns the commit.
    pub fn publish(&self, ref_: &str, n: u32, extra_files: usize) -> String {
        self.publish_with(ref_, n, extra_files, &[])
    }

    /// Like [`publish`], with extra files `(path, content, mode)` in the tree.
    pub fn publish_with(
        &self,
        ref_: &str,
        n: u32,
        extra_files: usize,
        files: &[(&str, &str, u32)],
    ) -> String {
        let tree = self.dir.path().join(format!("tree-{n}"));
        let _ = std::fs::remove_dir_all(&tree);
        let w = |rel: &str, content: &str| {
            let p = tree.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        };
        let v = version(n);
        w(&format!("usr/lib/modules/{KVER}/vmlinuz"), "not a kernel\n");
        w(
            &format!("usr/lib/modules/{KVER}/initramfs.img"),
            "not an initramfs\n",
        );
        let os_release =
            format!("NAME=Cairn\nID=cairn\nPRETTY_NAME=\"Cairn test\"\nVERSION_ID={v}\n");
        w("usr/lib/os-release", &os_release);
        w("usr/etc/os-release", &os_release);
        w("usr/etc/hostname", "cairn-test\n");
        w("usr/etc/cairn-release", &format!("{v}\n"));
        w("usr/bin/something", &format!("#!/bin/sh\necho {v}\n"));
        for i in 0..extra_files {
            w(
                &format!("usr/share/filler/{i:04}"),
                &format!("{v} filler {i}\n"),
            );
        }
        for (path, content, mode) in files {
            use std::os::unix::fs::PermissionsExt;
            w(path, content);
            std::fs::set_permissions(tree.join(path), std::fs::Permissions::from_mode(*mode))
                .unwrap();
        }
        let commit = run(Command::new("ostree")
            .arg(format!("--repo={}", self.srv.display()))
            .arg("commit")
            // The object list with sizes (`ostree.sizes`) the composer writes too.
            .arg("--generate-sizes")
            .arg(format!("--branch={ref_}"))
            .arg(format!("--add-metadata-string={}={v}", metadata::VERSION))
            .arg(format!("--add-metadata-string={}={KVER}", metadata::LINUX))
            .arg(format!("--add-metadata={}=true", metadata::BOOTABLE))
            .arg(format!("--tree=dir={}", tree.display()))
            .arg(format!("--subject=Cairn {v}")));
        run(Command::new("ostree")
            .arg(format!("--repo={}", self.srv.display()))
            .args(["summary", "-u"]));
        commit.trim().to_string()
    }

    /// Like [`publish_with`], as the composer lists a commit's objects over a parent: only
    /// those the parent does not reach (`cairn.sizes-new`). The tree is committed by the
    /// ostree CLI, then committed again with that list in place of `ostree.sizes`.
    pub fn publish_listing_new(
        &self,
        ref_: &str,
        n: u32,
        extra_files: usize,
        files: &[(&str, &str, u32)],
    ) -> String {
        use cairn_release::glib;
        use cairn_release::object_sizes;
        use cairn_release::ostree::prelude::*;
        let full = self.publish_with(ref_, n, extra_files, files);
        let repo = self.srv_repo();
        let (variant, _) = repo.load_commit(&full).unwrap();
        let parent = ostree::commit_get_parent(&variant).map(|p| p.to_string());
        let (root, _) = repo.read_commit(&full, gio::Cancellable::NONE).unwrap();
        let root = root.downcast::<ostree::RepoFile>().unwrap();
        let (key, list) = object_sizes::commit_entry(
            &repo,
            &root.tree_get_contents_checksum().unwrap(),
            &root.tree_get_metadata_checksum().unwrap(),
            parent.as_deref(),
        )
        .unwrap();
        assert_eq!(key, object_sizes::NEW_KEY, "commit {n} has a parent");
        let metadata = glib::VariantDict::new(Some(&variant.child_value(0)));
        metadata.remove(object_sizes::ALL_KEY);
        metadata.insert_value(key, &list);
        repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
        let commit = repo
            .write_commit_with_time(
                parent.as_deref(),
                Some(&format!("Cairn {}", version(n))),
                None,
                Some(&metadata.end()),
                &root,
                ostree::commit_get_timestamp(&variant),
                gio::Cancellable::NONE,
            )
            .unwrap();
        repo.transaction_set_ref(None, ref_, Some(&commit));
        repo.commit_transaction(gio::Cancellable::NONE).unwrap();
        run(Command::new("ostree")
            .arg(format!("--repo={}", self.srv.display()))
            .args(["summary", "-u"]));
        commit.to_string()
    }

    /// The commit of the first deployment (the one that boots next).
    pub fn default_commit(&self) -> String {
        self.status()["deployments"][0]["commit"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The served repository, opened.
    pub fn srv_repo(&self) -> ostree::Repo {
        let repo = ostree::Repo::new(&gio::File::for_path(&self.srv));
        repo.open(gio::Cancellable::NONE).unwrap();
        repo
    }

    /// Signs `commit` in the served repository with `key` (as `cairn-compose sign` does).
    pub fn sign(&self, commit: &str, key: &SecretKey) {
        signature::sign_commit(&self.srv_repo(), commit, key).unwrap();
    }

    /// Publishes version `n` on `ref_`, signed with `key`.
    pub fn publish_signed(&self, ref_: &str, n: u32, key: &SecretKey) -> String {
        let c = self.publish(ref_, n, 0);
        self.sign(&c, key);
        c
    }

    /// Installs `key`'s public half as `/etc/cairn/trusted.d/NAME.pub` of the default
    /// deployment (the `/etc` the host runs with; upgrades carry it over).
    pub fn trust(&self, name: &str, key: &SecretKey) {
        let dir = self.deployment_dir(0).join("etc/cairn/trusted.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{name}.pub")),
            format!("{}\n", key.public().to_base64()),
        )
        .unwrap();
    }

    /// The path of `commit`'s object file in the served repository (with `ext`).
    pub fn srv_object(&self, commit: &str, ext: &str) -> PathBuf {
        self.srv
            .join("objects")
            .join(&commit[..2])
            .join(format!("{}.{ext}", &commit[2..]))
    }

    /// How many content objects (`.filez`) the server has sent.
    pub fn content_requests(&self) -> usize {
        std::fs::read_to_string(&self.server.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(".filez"))
            .count()
    }

    /// Writes a bundle (the shared format of `cairn-compose bundle`) of the served repository
    /// from `from` (or a full one) to `to`, its manifest signed with `key`.
    pub fn bundle(&self, from: Option<&str>, to: &str, key: Option<&SecretKey>) -> PathBuf {
        use cairn_release::bundle;
        let work = self.dir.path().join(format!("bundle-work-{to}"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let mut cmd = Command::new("ostree");
        cmd.arg(format!("--repo={}", self.srv.display()))
            .args(["static-delta", "generate", "--inline"])
            .arg(format!("--filename={}", work.join(bundle::DELTA).display()))
            .arg(format!("--to={to}"));
        match from {
            Some(f) => cmd.arg(format!("--from={f}")),
            None => cmd.arg("--empty"),
        };
        run(&mut cmd);
        let repo = self.srv_repo();
        std::fs::write(
            work.join(bundle::COMMIT),
            signature::commit_bytes(&repo, to).unwrap(),
        )
        .unwrap();
        std::fs::write(
            work.join(bundle::COMMITMETA),
            signature::detached_bytes(&repo, to).unwrap(),
        )
        .unwrap();
        let out = self.dir.path().join(format!("{}.cairnbundle", &to[..12]));
        bundle::write(
            &out,
            &work,
            bundle::Manifest {
                format: bundle::FORMAT,
                osref: STABLE.into(),
                from: from.map(str::to_string),
                from_version: None,
                to: to.into(),
                to_version: None,
                members: Default::default(),
                chunks: Vec::new(),
                reference: Vec::new(),
            },
            key,
        )
        .unwrap();
        out
    }

    /// A bundle of the served repository from `from` to `to` as `cairn-compose bundle` writes
    /// it (the composer's own code): from a commit, its delta is compressed against the
    /// objects the host has (format 3).
    pub fn compose_bundle(&self, from: Option<&str>, to: &str, key: &SecretKey) -> PathBuf {
        let key_path = self.dir.path().join("bundle-signing.key");
        key.write_pair(&key_path).unwrap();
        let out = self
            .dir
            .path()
            .join(format!("{}.composed.cairnbundle", &to[..12]));
        cairn_composer::bundle::write(&cairn_composer::bundle::BundleOptions {
            repo: self.srv.clone(),
            osref: Some(STABLE.into()),
            from: from.map(str::to_string),
            to: to.into(),
            output: out.clone(),
            sign_key: Some(key_path),
        })
        .unwrap();
        out
    }

    /// Whether the host's repository holds commit `commit`.
    pub fn host_has_commit(&self, commit: &str) -> bool {
        let repo = ostree::Repo::new(&gio::File::for_path(self.repo()));
        repo.open(gio::Cancellable::NONE).unwrap();
        repo.has_object(ostree::ObjectType::Commit, commit, gio::Cancellable::NONE)
            .unwrap()
    }

    /// Points `ref_` of the served repository at `commit` (a server-side rollback).
    pub fn reset_ref(&self, ref_: &str, commit: &str) {
        run(Command::new("ostree")
            .arg(format!("--repo={}", self.srv.display()))
            .args(["reset", ref_, commit]));
        run(Command::new("ostree")
            .arg(format!("--repo={}", self.srv.display()))
            .args(["summary", "-u"]));
    }

    /// A `cairn` command against this sysroot, using the repository's GRUB generator.
    pub fn cairn_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("--sysroot")
            .arg(&self.sysroot)
            .args(args)
            .env("OSTREE_GRUB2_EXEC", data("grub-menu"))
            .env_remove("JOURNAL_STREAM");
        cmd
    }

    pub fn cairn(&self, args: &[&str]) -> Output {
        self.cairn_cmd(args).output().unwrap()
    }

    /// Runs cairn, asserts success, returns stdout.
    pub fn cairn_ok(&self, args: &[&str]) -> String {
        let out = self.cairn(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs cairn, asserts it fails with `code`, returns stderr.
    pub fn cairn_fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cairn(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "cairn {args:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.cairn_ok(&["status", "--json"])).unwrap()
    }

    /// Versions of the deployments, in order (index 0 boots next).
    pub fn order(&self) -> Vec<String> {
        self.status()["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["version"].as_str().unwrap().to_string())
            .collect()
    }

    /// (commit, serial) of every deployment, in order.
    pub fn deployment_ids(&self) -> Vec<(String, i64)> {
        self.status()["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["commit"].as_str().unwrap().to_string(),
                    d["serial"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// The menu GRUB reads (through the `loader` symlink).
    pub fn grub_menu(&self) -> String {
        std::fs::read_to_string(self.sysroot.join("boot/loader/grub.cfg")).unwrap()
    }

    /// Title and `linux` line of the menu's default entry; checks `set default=0`, no
    /// `load_video`, and one entry per deployment.
    pub fn grub_default(&self) -> (String, String) {
        let menu = self.grub_menu();
        assert!(menu.contains("set default=0"), "{menu}");
        assert!(!menu.contains("load_video"), "{menu}");
        let entries = menu.matches("menuentry ").count();
        assert_eq!(entries, self.order().len(), "{menu}");
        let title = menu
            .lines()
            .find_map(|l| l.strip_prefix("menuentry '"))
            .and_then(|l| l.split('\'').next())
            .unwrap_or_else(|| panic!("no menuentry in {menu}"))
            .to_string();
        let linux = menu
            .lines()
            .find(|l| l.trim_start().starts_with("linux "))
            .unwrap()
            .trim()
            .to_string();
        (title, linux)
    }

    /// Asserts the menu's default entry is version `n` and that it points at a kernel that
    /// exists under /boot.
    pub fn assert_boots(&self, n: u32) {
        let (title, linux) = self.grub_default();
        assert!(
            title.contains(&format!("{} (ostree:0)", version(n))),
            "default GRUB entry {title:?} is not version {}",
            version(n)
        );
        let kernel = linux.split_whitespace().nth(1).unwrap();
        assert!(
            self.sysroot
                .join("boot")
                .join(kernel.trim_start_matches('/'))
                .exists(),
            "{kernel} missing under /boot"
        );
        assert_eq!(self.order()[0], version(n));
    }

    /// The checkout directory of deployment `index`.
    pub fn deployment_dir(&self, index: usize) -> PathBuf {
        PathBuf::from(
            self.status()["deployments"][index]["path"]
                .as_str()
                .unwrap(),
        )
    }

    pub fn fsck(&self) {
        run(Command::new("ostree")
            .arg(format!("--repo={}", self.repo().display()))
            .arg("fsck"));
    }

    /// `cairn --config CONFIG agent run-once --network-retries 0 --json`: the agent's record.
    pub fn agent(&self, config: &Path) -> Value {
        let out = self.cairn_ok(&[
            "--config",
            config.to_str().unwrap(),
            "agent",
            "run-once",
            "--network-retries",
            "0",
            "--json",
        ]);
        // libostree itself prints "Freed objects: …" on stdout when a deploy prunes.
        let json = out.find("\n{").map_or(out.as_str(), |i| &out[i + 1..]);
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Writes /etc/cairn/config.toml into the default deployment.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Fixture {
    /// libostree marks deployment roots immutable (`chattr +i`); clear that so the temp dir
    /// can be removed.
    fn drop(&mut self) {
        let deploy = self.sysroot.join("ostree/deploy");
        let Ok(stateroots) = std::fs::read_dir(&deploy) else {
            return;
        };
        for stateroot in stateroots.flatten() {
            let Ok(deployments) = std::fs::read_dir(stateroot.path().join("deploy")) else {
                continue;
            };
            for d in deployments.flatten() {
                if d.path().is_dir() {
                    let _ = Command::new("chattr").arg("-i").arg(d.path()).status();
                }
            }
        }
    }
}

/// A python FleetLock server (`tests/data/fleetlock.py`) on 127.0.0.1.
pub fn fleetlock_server(log: &Path) -> Server {
    let mut child = Command::new("python3")
        .arg(test_data("fleetlock.py"))
        .arg("--log")
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the FleetLock test server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("server printed its port");
    Server {
        child,
        port,
        log: log.to_path_buf(),
    }
}

/// Waits until `cond` holds, up to `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a process group with SIGKILL.
pub fn kill_group(pid: u32) {
    run(Command::new("kill").args(["-9", "--", &format!("-{pid}")]));
}

/// The whole sysroot moved onto a loop-mounted ext4 of `mib` MiB (4 KiB blocks); moved back
/// out of the way and unmounted on drop.
pub struct SmallRoot {
    mount: PathBuf,
    orig: PathBuf,
}

impl SmallRoot {
    pub fn new(fx: &Fixture, mib: u64) -> Self {
        let img = fx.dir.path().join("root.img");
        run(Command::new("truncate")
            .arg(format!("--size={mib}M"))
            .arg(&img));
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-m", "0"])
            .arg(&img));
        let orig = fx.dir.path().join("sysroot.orig");
        std::fs::rename(&fx.sysroot, &orig).unwrap();
        std::fs::create_dir(&fx.sysroot).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&fx.sysroot));
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", orig.display()))
            .arg(&fx.sysroot));
        std::fs::remove_dir_all(fx.sysroot.join("lost+found")).unwrap();
        SmallRoot {
            mount: fx.sysroot.clone(),
            orig,
        }
    }

    /// Fills the filesystem so that `free` bytes stay available.
    pub fn leave_free(&self, free_now: u64, free: u64) {
        let filler = self.mount.join("filler");
        let len = std::fs::metadata(&filler).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&filler);
        let size = free_now + len - free;
        run(Command::new("fallocate")
            .arg(format!("--length={size}"))
            .arg(&filler));
    }
}

impl Drop for SmallRoot {
    fn drop(&mut self) {
        for root in [&self.mount, &self.orig] {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "chattr -i {}/ostree/deploy/*/deploy/* 2>/dev/null",
                    root.display()
                ))
                .status();
        }
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// `len` bytes of text that compress poorly (hex of an LCG), so archived sizes are real.
pub fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut s = String::with_capacity(len);
    while s.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push_str(&format!("{:016x}", x));
    }
    s.truncate(len);
    s
}
