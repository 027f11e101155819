//! Running programs inside the build tree: a private mount namespace with `/proc` and `/dev`,
//! and no network, so a script cannot reach out and its mounts vanish with it.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::command::CommandExt;

/// A command that runs `argv` chrooted into `tree`, without network.
pub fn command(tree: &Path, argv: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    // The shell runs outside the tree, in the new namespaces, and sets up the mounts there.
    cmd.args([
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc=/proc",
        "--",
        "sh",
        "-euc",
    ])
    .arg(concat!(
        "tree=$1; shift; ",
        "mount -t proc proc \"$tree/proc\"; ",
        "mount --rbind /dev \"$tree/dev\"; ",
        "mount -t tmpfs tmpfs \"$tree/run\"; ",
        "exec chroot \"$tree\" \"$@\""
    ))
    .arg("sh")
    .arg(tree)
    .args(argv)
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    .env("LC_ALL", "C.UTF-8")
    .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// Runs `argv` in the tree and returns stdout.
pub fn output(tree: &Path, argv: &[&str]) -> Result<String> {
    command(tree, argv).output_checked()
}
