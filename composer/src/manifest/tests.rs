//! Parsing, merging and validation of manifests.

use std::fs;
use std::path::Path;

use super::Manifest;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

const BASE: &str = r#"
os = "cairn"
version-prefix = "2026.11"
packages = ["systemd", "udev"]
kernel-args = ["quiet"]
[sources]
suite = "bookworm"
[units]
enable = ["systemd-networkd.service"]
"#;

#[test]
fn minimal_manifest_derives_the_ref() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manifest::load(&write(dir.path(), "base.toml", BASE)).unwrap();
    assert_eq!(m.osref, "cairn/bookworm/x86_64/stable");
    assert_eq!(m.version_prefix, "2026.11");
    assert!(m.bootable);
    assert!(!m.install_recommends);
}

#[test]
fn includes_merge_lists_append_scalars_override() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    let top = write(
        dir.path(),
        "host.toml",
        r#"
include = ["base.toml"]
stream = "testing"
version-prefix = "2026.12"
packages = ["podman", "systemd"]
kernel-args = ["console=ttyS0"]
[units]
enable = ["podman.socket"]
"#,
    );
    let m = Manifest::load(&top).unwrap();
    assert_eq!(m.version_prefix, "2026.12");
    assert_eq!(m.osref, "cairn/bookworm/x86_64/testing");
    assert_eq!(m.packages, ["podman", "systemd", "udev"]);
    assert_eq!(m.kernel_args, ["quiet", "console=ttyS0"]);
    assert_eq!(
        m.enable_units,
        ["systemd-networkd.service", "podman.socket"]
    );
    assert_eq!(m.files_read.len(), 2);
    assert!(m.files_read[0].ends_with("base.toml"));
}

#[test]
fn later_includes_override_earlier_ones_and_diamonds_merge_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    write(
        dir.path(),
        "a.toml",
        "include = [\"base.toml\"]\nstream = \"a\"\nkernel-args = [\"a=1\"]\n",
    );
    write(
        dir.path(),
        "b.toml",
        "include = [\"base.toml\"]\nstream = \"b\"\n",
    );
    let top = write(
        dir.path(),
        "top.toml",
        "include = [\"a.toml\", \"b.toml\"]\n",
    );
    let m = Manifest::load(&top).unwrap();
    assert_eq!(m.osref, "cairn/bookworm/x86_64/b");
    assert_eq!(m.kernel_args, ["quiet", "a=1"], "base merged once");
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.toml",
        "os = \"cairn\"\npakages = [\"x\"]\n",
    );
    let err = format!("{:#}", Manifest::load(&p).unwrap_err());
    assert!(err.contains("bad.toml:2:1"), "{err}");
    assert!(err.contains("unknown field `pakages`"), "{err}");
}

#[test]
fn wrong_type_names_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.toml",
        "os = \"cairn\"\nbootable = \"yes\"\n",
    );
    let err = format!("{:#}", Manifest::load(&p).unwrap_err());
    assert!(err.contains("bad.toml:2:12"), "{err}");
}

#[test]
fn missing_required_key_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.toml",
        "os = \"cairn\"\n[sources]\nsuite = \"bookworm\"\n",
    );
    let err = format!("{:#}", Manifest::load(&p).unwrap_err());
    assert!(err.contains("version-prefix"), "{err}");
}

#[test]
fn invalid_values_point_at_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("version-prefix = \"2026..11\"\n", ":1:18"),
        ("ref = \"cairn/stable\"\n", ":1:7"),
        ("packages = [\"ok\", \"not ok\"]\n", ":1:19"),
        ("[units]\nenable = [\"podman\"]\n", ":2:11"),
        (
            "[[files]]\ndest = \"relative/path\"\ncontent = \"x\"\n",
            ":2:8",
        ),
        (
            "[[files]]\ndest = \"/etc/x\"\ncontent = \"x\"\nmode = \"0999\"\n",
            ":4:8",
        ),
        ("remove-files = [\"/usr/../etc\"]\n", ":1:17"),
        ("local-debs = [\"missing.deb\"]\n", ":1:15"),
        ("[[postprocess]]\nname = \"x\"\n", ":2:8"),
    ];
    for (text, at) in cases {
        let p = write(dir.path(), "v.toml", text);
        let err = format!("{:#}", Manifest::load(&p).unwrap_err());
        assert!(err.contains(&format!("v.toml{at}")), "{text:?} gave {err}");
    }
}

#[test]
fn include_loops_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "include = [\"b.toml\"]\n");
    let b = write(dir.path(), "b.toml", "include = [\"a.toml\"]\n");
    let err = format!("{:#}", Manifest::load(&b).unwrap_err());
    assert!(err.contains("include loop"), "{err}");
}

#[test]
fn paths_resolve_against_the_manifest_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/motd"), "hello").unwrap();
    write(
        dir.path(),
        "sub/files.toml",
        "[[files]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
    );
    let top = write(
        dir.path(),
        "top.toml",
        &format!("include = [\"sub/files.toml\"]\n{BASE}"),
    );
    let m = Manifest::load(&top).unwrap();
    match &m.files[0].source {
        super::FileSource::Path(p) => assert!(p.ends_with("sub/motd")),
        other => panic!("{other:?}"),
    }
}
