//! `cairn-compose image` against a tiny synthetic bootable commit (fake kernel files): the
//! partition table, the filesystems' contents, the GRUB menu, the deployment, and that loop
//! devices and mounts are released, also when the build fails. Needs root (loop devices).
#![allow(missing_docs, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const REF: &str = "cairn/bookworm/x86_64/stable";
const KVER: &str = "6.1.0-test";

fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(
        uid,
        Some("0"),
        "the image tests need root (loop devices and mounts)"
    );
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("ostree")
            .arg(format!("--repo={}", dir.path().join("repo").display()))
            .args(["init", "--mode=archive"]));
        Fixture { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Commits a synthetic tree as `version`; `generator`: ship /usr/lib/cairn/grub-menu;
    /// `kernel`: ship the (fake) kernel and initramfs.
    fn commit(&self, version: &str, generator: bool, kernel: bool) -> String {
        let tree = self.path(&format!("tree-{version}"));
        let w = |rel: &str, content: &[u8]| {
            let p = tree.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        };
        if kernel {
            w(
                &format!("usr/lib/modules/{KVER}/vmlinuz"),
                b"not a kernel\n",
            );
            w(
                &format!("usr/lib/modules/{KVER}/initramfs.img"),
                b"not an initramfs\n",
            );
        }
        let os_release =
            format!("NAME=Cairn\nID=cairn\nPRETTY_NAME=\"Cairn test\"\nVERSION_ID={version}\n");
        w("usr/lib/os-release", os_release.as_bytes());
        w("usr/etc/os-release", os_release.as_bytes());
        w("usr/etc/hostname", b"cairn-test\n");
        w(
            "usr/lib/cairn/kernel-args",
            b"console=tty0\nconsole=ttyS0,115200n8\n",
        );
        w(
            "usr/lib/cairn/grub.cfg",
            &fs::read(data("updater/data/grub.cfg")).unwrap(),
        );
        if generator {
            w(
                "usr/lib/cairn/grub-menu",
                &fs::read(data("updater/data/grub-menu")).unwrap(),
            );
            run(Command::new("chmod")
                .arg("0755")
                .arg(tree.join("usr/lib/cairn/grub-menu")));
        }
        let commit = run(Command::new("ostree")
            .arg(format!("--repo={}", self.path("repo").display()))
            .arg("commit")
            .arg(format!("--branch={REF}"))
            .arg(format!("--add-metadata-string=version={version}"))
            .arg(format!("--add-metadata-string=ostree.linux={KVER}"))
            .arg("--add-metadata=ostree.bootable=true")
            .arg(format!("--tree=dir={}", tree.display()))
            .arg("--owner-uid=0")
            .arg("--owner-gid=0"));
        commit.trim().to_string()
    }

    fn recipe(&self) -> PathBuf {
        let p = self.path("recipe.toml");
        fs::write(
            &p,
            r##"
size = "200MiB"
kernel-args = ["console=ttyS0,115200n8", "quiet"]
[remote]
url = "http://updates.invalid/repo/"
[[partitions]]
role = "bios-boot"
size = "1MiB"
[[partitions]]
role = "boot"
label = "cairn-boot"
size = "64MiB"
[[partitions]]
role = "root"
[[files]]
dest = "/etc/cairn/config.toml"
content = "# from the recipe\n"
mode = "0600"
"##,
        )
        .unwrap();
        p
    }

    fn image(&self, output: &Path, extra: &[&str]) -> Output {
        self.image_of(&self.recipe(), output, extra)
    }

    /// A UEFI recipe: `bootloader`, `secure-boot`, the partitions in disk order.
    fn efi_recipe(&self, name: &str, bootloader: &str, secure_boot: bool) -> PathBuf {
        let p = self.path(name);
        let bios = if bootloader == "hybrid" {
            "[[partitions]]\nrole = \"bios-boot\"\nsize = \"1MiB\"\n"
        } else {
            ""
        };
        fs::write(
            &p,
            format!(
                r##"
size = "200MiB"
bootloader = "{bootloader}"
secure-boot = {secure_boot}
kernel-args = ["console=ttyS0,115200n8"]
[remote]
url = "http://updates.invalid/repo/"
{bios}[[partitions]]
role = "esp"
label = "cairn-esp"
size = "40MiB"
[[partitions]]
role = "boot"
size = "64MiB"
[[partitions]]
role = "root"
"##
            ),
        )
        .unwrap();
        p
    }

    fn image_of(&self, recipe: &Path, output: &Path, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cairn-compose"))
            .arg("image")
            .arg(recipe)
            .arg("--repo")
            .arg(self.path("repo"))
            .args(["--ref", REF, "--json", "-o"])
            .arg(output)
            .args(extra)
            // The build's work directory goes below the fixture, so leftovers are ours.
            .env("TMPDIR", self.dir.path())
            .output()
            .unwrap()
    }

    /// Loop devices and mounts that belong to this fixture's files, or to any image build.
    fn leftovers(&self) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut found: Vec<String> =
            run(Command::new("losetup").args(["--list", "--noheadings", "-O", "NAME,BACK-FILE"]))
                .lines()
                .filter(|l| l.contains(&dir))
                .map(str::to_string)
                .collect();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        found.extend(
            mounts
                .lines()
                .filter(|l| l.contains(&dir))
                .map(str::to_string),
        );
        found
    }
}

/// Attaches one partition read-only and mounts it; undone on drop.
struct PartMount {
    dev: String,
    dir: PathBuf,
}

impl PartMount {
    fn new(disk: &Path, start: u64, size: u64, dir: PathBuf) -> PartMount {
        let dev = run(Command::new("losetup")
            .args(["--find", "--show", "--read-only", "--offset"])
            .arg((start * 512).to_string())
            .arg("--sizelimit")
            .arg((size * 512).to_string())
            .arg(disk))
        .trim()
        .to_string();
        fs::create_dir_all(&dir).unwrap();
        run(Command::new("mount").args(["-o", "ro"]).arg(&dev).arg(&dir));
        PartMount { dev, dir }
    }
}

impl Drop for PartMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

#[test]
fn builds_a_bootable_disk() {
    let fx = Fixture::new();
    let commit = fx.commit("2026.11.7", true, true);
    let disk = fx.path("disk.raw");
    let result = built(fx.image(&disk, &["--remote-url", "http://10.0.2.2:8080/"]));
    assert_eq!(result["commit"], commit.as_str());
    assert_eq!(result["version"], "2026.11.7");
    assert_eq!(result["format"], "raw");
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
    assert_eq!(fs::metadata(&disk).unwrap().len(), 200 << 20);

    // The partition table.
    let (table, parts) = partition_table(&disk);
    assert_eq!(table["partitiontable"]["label"], "gpt");
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["type"], "21686148-6449-6E6F-744E-656564454649");
    assert_eq!(parts[0]["size"], 2048);
    assert_eq!(parts[1]["name"], "cairn-boot");
    assert_eq!(parts[1]["size"], 64 * 2048);
    assert_eq!(parts[2]["name"], "root");
    let extent = |p: &Value| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());

    // GRUB's boot code in the MBR.
    let mbr = fs::read(&disk).unwrap()[..512].to_vec();
    assert_eq!(&mbr[510..], &[0x55, 0xaa]);
    assert!(
        mbr.windows(4).any(|w| w == b"GRUB"),
        "no GRUB boot code in the MBR"
    );

    let (rs, rl) = extent(&parts[2]);
    let root = PartMount::new(&disk, rs, rl, fx.path("mnt-root"));
    let (bs, bl) = extent(&parts[1]);
    let boot = PartMount::new(&disk, bs, bl, fx.path("mnt-root/boot"));
    let boot_uuid = run(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(&boot.dev))
    .trim()
    .to_string();
    let root_uuid = run(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(&root.dev))
    .trim()
    .to_string();

    // /boot: the static grub.cfg, GRUB's modules, the menu from the generator.
    assert_eq!(
        fs::read_to_string(boot.dir.join("grub/grub.cfg")).unwrap(),
        fs::read_to_string(data("updater/data/grub.cfg")).unwrap()
    );
    assert!(boot.dir.join("grub/i386-pc/core.img").exists());
    let menu = fs::read_to_string(boot.dir.join("loader/grub.cfg")).unwrap();
    assert!(menu.starts_with("# Written by cairn grub-menu"), "{menu}");
    let first = menu.lines().find(|l| l.starts_with("menuentry")).unwrap();
    assert!(
        first.contains("2026.11.7") || menu.contains("Cairn test"),
        "{menu}"
    );
    let linux = menu
        .lines()
        .find(|l| l.trim_start().starts_with("linux "))
        .unwrap();
    assert!(
        linux.contains(&format!(
            "console=tty0 console=ttyS0,115200n8 quiet root=UUID={root_uuid} rw ostree=/ostree/boot."
        )),
        "{linux}"
    );
    assert!(!menu.contains("load_video"));

    // The sysroot: remote, ref, deployment, origin, /etc.
    let config = fs::read_to_string(root.dir.join("ostree/repo/config")).unwrap();
    assert!(
        config.contains("[remote \"cairn\"]") && config.contains("url=http://10.0.2.2:8080/"),
        "{config}"
    );
    assert!(config.contains("gpg-verify=false"), "{config}");
    let refs = run(Command::new("ostree")
        .arg(format!("--repo={}", root.dir.join("ostree/repo").display()))
        .arg("refs"));
    // Ours, and the one libostree keeps for the deployment (ostree/B/S/N).
    assert!(refs.lines().any(|l| l == format!("cairn:{REF}")), "{refs}");
    assert!(
        refs.lines()
            .all(|l| l == format!("cairn:{REF}") || l.starts_with("ostree/")),
        "{refs}"
    );
    let dep = root
        .dir
        .join(format!("ostree/deploy/cairn/deploy/{commit}.0"));
    let origin = fs::read_to_string(dep.with_extension("0.origin")).unwrap();
    assert!(origin.contains(&format!("refspec=cairn:{REF}")), "{origin}");
    let fstab = fs::read_to_string(dep.join("etc/fstab")).unwrap();
    assert!(
        fstab.contains(&format!("UUID={boot_uuid} /boot ext4")),
        "{fstab}"
    );
    let cfg = dep.join("etc/cairn/config.toml");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "# from the recipe\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&cfg).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(
        fs::read_to_string(dep.join("etc/hostname")).unwrap(),
        "cairn-test\n"
    );

    // `ostree admin status` sees it (/boot mounted on the sysroot's boot/).
    let status = run(Command::new("ostree")
        .args(["admin", "status"])
        .arg(format!("--sysroot={}", root.dir.display())));
    assert!(
        status.contains(&commit) && status.contains("Version: 2026.11.7"),
        "{status}"
    );
    drop(boot);
    drop(root);
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
}

#[test]
fn qcow2_output() {
    let fx = Fixture::new();
    let first = fx.commit("2026.11.1", true, true);
    fx.commit("2026.11.2", true, true);
    let disk = fx.path("disk.qcow2");
    // An older version from the ref's history.
    let result = built(fx.image(&disk, &["--version", "2026.11.1"]));
    assert_eq!(result["commit"], first.as_str());
    assert_eq!(result["format"], "qcow2");
    let info: Value = serde_json::from_str(&run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&disk)))
    .unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 200u64 << 20);
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
    let names: Vec<_> = fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("partial")),
        "{names:?}"
    );
}

#[test]
fn failures_release_loop_devices_and_leave_no_image() {
    let fx = Fixture::new();
    // Fails after the filesystems are mounted (no generator in the commit).
    fx.commit("2026.11.1", false, true);
    let disk = fx.path("disk.raw");
    let out = fx.image(&disk, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/usr/lib/cairn/grub-menu"), "{err}");
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
    assert!(!disk.exists());

    // Fails in `ostree admin deploy`, after the pull (no kernel in the tree).
    fx.commit("2026.11.2", true, false);
    let out = fx.image(&disk, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Deploying"), "{err}");
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
    assert!(!disk.exists());
    let names: Vec<_> = fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("partial")),
        "{names:?}"
    );

    // An unknown version is refused before anything is created.
    let out = fx.image(&disk, &["--version", "9.9.9"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("9.9.9 is not in the history"));
}

/// `sfdisk --json` of `disk`: the whole table and its partitions.
fn partition_table(disk: &Path) -> (Value, Vec<Value>) {
    let table: Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(disk))).unwrap();
    let parts = table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .clone();
    (table, parts)
}

/// The files under `dir` of the FAT filesystem at `offset` (sectors) in `disk`, upper-cased.
fn fat_files(disk: &Path, offset: u64, dir: &str) -> Vec<String> {
    let image = PathBuf::from(format!("{}@@{}", disk.display(), offset * 512));
    cairn_composer::image::bootloader::fat_files(&image, dir).unwrap()
}

/// A file of the FAT filesystem at `offset` (sectors) in `disk`.
fn fat_read(disk: &Path, offset: u64, path: &str, scratch: &Path) -> Vec<u8> {
    let _ = fs::remove_file(scratch);
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{}", disk.display(), offset * 512))
        .arg(format!("::{path}"))
        .arg(scratch));
    fs::read(scratch).unwrap()
}

/// The JSON of an image build that must have succeeded (its stderr in the failure).
fn built(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "image failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Builds a UEFI disk and checks its partitions, ESP, /boot and menu; returns the ESP's files.
fn check_uefi_disk(fx: &Fixture, bootloader: &str, secure_boot: bool) -> Vec<String> {
    let name = format!("{bootloader}-{secure_boot}");
    let recipe = fx.efi_recipe(&format!("{name}.toml"), bootloader, secure_boot);
    let disk = fx.path(&format!("{name}.raw"));
    let result = built(fx.image_of(&recipe, &disk, &[]));
    assert_eq!(result["bootloader"], bootloader);
    assert_eq!(result["secure_boot"], secure_boot);
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );

    let (_, parts) = partition_table(&disk);
    let hybrid = bootloader == "hybrid";
    assert_eq!(parts.len(), if hybrid { 4 } else { 3 });
    let first = if hybrid {
        assert_eq!(parts[0]["type"], "21686148-6449-6E6F-744E-656564454649");
        1
    } else {
        0
    };
    let (esp, boot, root) = (&parts[first], &parts[first + 1], &parts[first + 2]);
    assert_eq!(esp["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(esp["name"], "cairn-esp");
    assert_eq!(esp["size"], 40 * 2048);
    assert_eq!(boot["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    assert_eq!(root["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    let extent = |p: &Value| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());

    // BIOS boot code only on a hybrid disk.
    let mbr = fs::read(&disk).unwrap()[..512].to_vec();
    assert_eq!(mbr.windows(4).any(|w| w == b"GRUB"), hybrid);

    // The ESP: FAT32 labelled CAIRN-ESP, the removable-media path.
    let (es, el) = extent(esp);
    let esp_dev = run(Command::new("losetup")
        .args(["--find", "--show", "--read-only", "--offset"])
        .arg((es * 512).to_string())
        .arg("--sizelimit")
        .arg((el * 512).to_string())
        .arg(&disk))
    .trim()
    .to_string();
    let probe = run(Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(&esp_dev));
    run(Command::new("losetup").arg("-d").arg(&esp_dev));
    assert!(
        probe.contains("TYPE=vfat") && probe.contains("VERSION=FAT32"),
        "{probe}"
    );
    assert!(probe.contains("LABEL=CAIRN-ESP"), "{probe}");
    assert_eq!(fat_files(&disk, es, "/"), ["EFI"]);
    assert_eq!(fat_files(&disk, es, "/EFI"), ["BOOT"]);
    let files = fat_files(&disk, es, "/EFI/BOOT");
    assert_eq!(
        result["esp_files"],
        serde_json::to_value(&files).unwrap(),
        "{result}"
    );

    let (rs, rl) = extent(root);
    let rootm = PartMount::new(&disk, rs, rl, fx.path(&format!("mnt-{name}")));
    let (bs, bl) = extent(boot);
    let bootm = PartMount::new(&disk, bs, bl, fx.path(&format!("mnt-{name}/boot")));
    let boot_uuid = run(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(&bootm.dev))
    .trim()
    .to_string();
    let scratch = fx.path("scratch");
    let bootx64 = fat_read(&disk, es, "/EFI/BOOT/BOOTX64.EFI", &scratch);
    assert_eq!(&bootx64[..2], b"MZ", "BOOTX64.EFI is not a PE image");
    if secure_boot {
        assert_eq!(
            files,
            ["BOOTX64.EFI", "GRUB.CFG", "GRUBX64.EFI", "MMX64.EFI"]
        );
        assert_eq!(
            bootx64,
            fs::read("/usr/lib/shim/shimx64.efi.signed").unwrap()
        );
        assert_eq!(
            fat_read(&disk, es, "/EFI/BOOT/grubx64.efi", &scratch),
            fs::read("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed").unwrap()
        );
        let cfg = String::from_utf8(fat_read(&disk, es, "/EFI/BOOT/grub.cfg", &scratch)).unwrap();
        assert!(
            cfg.contains(&format!(
                "search --no-floppy --fs-uuid --set=root {boot_uuid}\n"
            )),
            "{cfg}"
        );
        assert!(cfg.contains("set prefix=($root)/grub\n"), "{cfg}");
        assert!(cfg.contains("configfile ($root)/grub/grub.cfg\n"), "{cfg}");
        assert!(!bootm.dir.join("grub/x86_64-efi").exists());
    } else {
        assert_eq!(files, ["BOOTX64.EFI"]);
        // The core image finds /boot by UUID; its modules are on /boot.
        let needle = format!("search.fs_uuid {boot_uuid} root");
        assert!(
            bootx64
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "BOOTX64.EFI does not search for /boot ({boot_uuid})"
        );
        assert!(bootm.dir.join("grub/x86_64-efi/normal.mod").exists());
        assert!(bootm.dir.join("grub/x86_64-efi/loadenv.mod").exists());
    }
    assert_eq!(bootm.dir.join("grub/i386-pc/core.img").exists(), hybrid);

    // /boot as for BIOS: the static grub.cfg, the environment block, the generated menu.
    assert_eq!(
        fs::read_to_string(bootm.dir.join("grub/grub.cfg")).unwrap(),
        fs::read_to_string(data("updater/data/grub.cfg")).unwrap()
    );
    let env = fs::read(bootm.dir.join("grub/grubenv")).unwrap();
    assert_eq!(env.len(), 1024);
    assert!(env.starts_with(b"# GRUB Environment Block\n"));
    let menu = fs::read_to_string(bootm.dir.join("loader/grub.cfg")).unwrap();
    assert!(menu.starts_with("# Written by cairn grub-menu"), "{menu}");
    assert!(
        menu.contains("load_env cairn_boot_pending cairn_boot_left"),
        "{menu}"
    );
    assert!(fs::symlink_metadata(bootm.dir.join("loader"))
        .unwrap()
        .file_type()
        .is_symlink());
    drop(bootm);
    drop(rootm);
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
    files
}

#[test]
fn uefi_disks() {
    let fx = Fixture::new();
    fx.commit("2026.11.3", true, true);
    check_uefi_disk(&fx, "grub-efi", false);
    check_uefi_disk(&fx, "grub-efi", true);
    check_uefi_disk(&fx, "hybrid", true);
}

#[test]
fn uefi_recipe_errors_name_the_position() {
    let fx = Fixture::new();
    fx.commit("2026.11.1", true, true);
    let recipe = fx.efi_recipe("bad.toml", "grub-efi", true);
    let text = fs::read_to_string(&recipe).unwrap().replace(
        "role = \"esp\"\nlabel = \"cairn-esp\"\nsize = \"40MiB\"\n[[partitions]]\n",
        "",
    );
    fs::write(&recipe, text).unwrap();
    let disk = fx.path("bad.raw");
    let out = fx.image_of(&recipe, &disk, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:", recipe.display()))
            && err.contains("partition is required (grub-efi needs esp, boot, root)"),
        "{err}"
    );
    assert!(!disk.exists());
}

#[test]
fn ignition_first_boot_and_embedded_config() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let disk = fx.path("disk.raw");
    let config = fx.path("host.ign");
    fs::write(
        &config,
        r#"{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/etc/hostname", "contents": {"source": "data:,alpha"}}]}}"#,
    )
    .unwrap();

    // A tree without Ignition: no flag, and --ignition is refused before anything is made.
    fx.commit("2026.11.1", true, true);
    let out = fx.image(&disk, &["--ignition", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("has no Ignition") && err.contains("manifests/ignition.toml"),
        "{err}"
    );
    assert!(!disk.exists());

    // A tree with Ignition's dracut module.
    let marker = fx.path("tree-2026.11.2/usr/lib/dracut/modules.d/30ignition/module-setup.sh");
    fs::create_dir_all(marker.parent().unwrap()).unwrap();
    fs::write(&marker, "# Ignition's dracut module\n").unwrap();
    fx.commit("2026.11.2", true, true);

    // An invalid config is refused with the file and ignition-validate's words.
    let bad = fx.path("bad.ign");
    fs::write(&bad, r#"{"ignition": {"version": "9.9.9"}}"#).unwrap();
    let out = fx.image(&disk, &["--ignition", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.ign is not a valid Ignition config")
            && err.contains("unsupported config version"),
        "{err}"
    );
    assert!(!disk.exists());
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );

    let result = built(fx.image(&disk, &["--ignition", config.to_str().unwrap()]));
    assert_eq!(result["ignition_first_boot"], true);
    // Embedded: no first-boot kernel arguments (no network needed).
    assert_eq!(result["ignition_first_boot_kargs"], Value::Null);
    let kargs: Vec<&str> = result["kernel_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(kargs.contains(&"ignition.platform.id=metal"), "{kargs:?}");
    assert!(!kargs.contains(&"ignition.firstboot"), "{kargs:?}");

    let (_, parts) = partition_table(&disk);
    let (bs, bl) = (
        parts[1]["start"].as_u64().unwrap(),
        parts[1]["size"].as_u64().unwrap(),
    );
    let boot = PartMount::new(&disk, bs, bl, fx.path("mnt-boot"));
    assert!(boot.dir.join("ignition.firstboot").is_file());
    let cpio = boot.dir.join("ignition/config.cpio");
    assert_eq!(
        fs::metadata(&cpio).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listing = run(Command::new("cpio")
        .args(["-it", "--quiet", "-F"])
        .arg(&cpio));
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [
            "usr",
            "usr/lib",
            "usr/lib/ignition",
            "usr/lib/ignition/user.ign"
        ]
    );
    let unpacked = fx.path("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("cpio")
        .args(["-id", "--quiet", "-F"])
        .arg(&cpio)
        .current_dir(&unpacked));
    assert_eq!(
        fs::read(unpacked.join("usr/lib/ignition/user.ign")).unwrap(),
        fs::read(&config).unwrap()
    );
    // The menu adds the flag's arguments and the config only while the flag is there.
    let menu = fs::read_to_string(boot.dir.join("loader/grub.cfg")).unwrap();
    assert!(menu.contains("if [ -f /ignition.firstboot ]"), "{menu}");
    assert!(
        menu.contains("${cairn_firstboot_kargs}") && menu.contains("${cairn_firstboot_initrd}"),
        "{menu}"
    );
    drop(boot);

    // Without --ignition: the flag (Ignition reads the platform's config), no embedded one.
    fs::remove_file(&disk).unwrap();
    let out = fx.image(&disk, &[]);
    assert!(out.status.success());
    let boot = PartMount::new(&disk, bs, bl, fx.path("mnt-boot"));
    assert!(boot.dir.join("ignition.firstboot").is_file());
    assert!(!boot.dir.join("ignition").exists());
    drop(boot);
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );

    // --ignition-url: the flag carries the first boot's kernel arguments (the recipe's
    // platform is metal); a URL GRUB or Ignition cannot take, or one beside --ignition, is
    // refused before anything is made.
    fs::remove_file(&disk).unwrap();
    for (bad, says) in [
        (
            &["--ignition-url", "ftp://10.0.2.2/h.ign"][..],
            "http://, https:// or tftp://",
        ),
        (
            &["--ignition-url", "http://10.0.2.2/$h.ign"][..],
            "percent-encode",
        ),
        (
            &[
                "--ignition-url",
                "http://10.0.2.2/h.ign",
                "--ignition",
                config.to_str().unwrap(),
            ][..],
            "cannot be used with",
        ),
    ] {
        let out = fx.image(&disk, bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{bad:?}: {err}"
        );
        assert!(!disk.exists());
    }
    let url = "http://10.0.2.2:8080/hosts/alpha.ign?token=a%20b";
    let result = built(fx.image(&disk, &["--ignition-url", url]));
    assert_eq!(result["ignition_url"], url);
    assert_eq!(
        result["ignition_first_boot_kargs"],
        format!("ignition.config.url={url} ip=dhcp rd.neednet=1")
    );
    let boot = PartMount::new(&disk, bs, bl, fx.path("mnt-boot"));
    let flag = fs::read_to_string(boot.dir.join("ignition.firstboot")).unwrap();
    assert!(
        flag.lines().any(|l| l
            == format!(
                "set cairn_firstboot_kargs=\"ignition.config.url={url} ip=dhcp rd.neednet=1\""
            )),
        "{flag}"
    );
    assert!(!boot.dir.join("ignition").exists());
    drop(boot);
}
