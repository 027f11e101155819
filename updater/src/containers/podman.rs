//! The podman command line of a declaration, and running it in place of `cairn`.
//!
//! The unit is `Type=notify` with `--sdnotify=conmon`: podman detaches (`-d`), conmon tells
//! systemd the container started and stays the unit's main process, so systemd sees the
//! container stop and applies the restart policy. `--replace` removes a leftover container of
//! the same name (a crash, a power cut), `--rm` removes it when it stops, and `--cgroups=no-conmon`
//! leaves conmon in the unit's own cgroup (the pattern `podman generate systemd --new` writes).

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result};

use super::spec::ContainerSpec;

/// The arguments after `podman`.
pub fn run_args(spec: &ContainerSpec) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "run",
        "--detach",
        "--replace",
        "--rm",
        "--sdnotify=conmon",
        "--cgroups=no-conmon",
        "--log-driver=journald",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(format!("--name={}", spec.container_name()).into());
    args.push(format!("--pull={}", spec.pull.podman()).into());
    args.push(format!("--label=cairn.container={}", spec.name).into());
    for p in &spec.ports {
        args.push(format!("--publish={p}").into());
    }
    for v in &spec.volumes {
        let mut s = OsString::from("--volume=");
        s.push(&v.host);
        s.push(format!(":{}", v.container));
        if v.read_only {
            s.push(":ro");
        }
        args.push(s);
    }
    for (k, v) in &spec.environment {
        args.push(format!("--env={k}={v}").into());
    }
    args.push(spec.image.clone().into());
    args.extend(spec.command.iter().map(OsString::from));
    args
}

/// Creates the volumes' host directories and replaces this process with `podman run`.
/// Returns only on failure.
pub fn exec(spec: &ContainerSpec) -> Result<std::convert::Infallible> {
    for v in &spec.volumes {
        std::fs::create_dir_all(&v.host).with_context(|| {
            format!(
                "cannot create {} for container {}",
                v.host.display(),
                spec.name
            )
        })?;
    }
    let args = run_args(spec);
    log::info!(
        "container {}: podman {}",
        spec.name,
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(podman()).args(&args).exec();
    Err(err).context("cannot run podman")
}

/// podman on the host.
fn podman() -> &'static Path {
    Path::new("podman")
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse;
    use super::*;

    #[test]
    fn a_declaration_becomes_one_podman_run() {
        let s = parse(
            Path::new("/etc/cairn/containers/web.toml"),
            "image = \"localhost/web:1\"\ncommand = [\"httpd\", \"-f\"]\nports = [\"8080:80\"]\n\
             volumes = [\"/var/lib/web:/data:ro\"]\nenvironment = { A = \"b c\" }\npull = \"never\"\n",
        )
        .unwrap();
        let args: Vec<String> = run_args(&s)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let image = args.iter().position(|a| a == "localhost/web:1").unwrap();
        assert_eq!(&args[image + 1..], ["httpd", "-f"]);
        for want in [
            "--name=cairn-web",
            "--pull=never",
            "--publish=8080:80",
            "--volume=/var/lib/web:/data:ro",
            "--env=A=b c",
            "--sdnotify=conmon",
        ] {
            let at = args.iter().position(|a| a == want);
            assert!(
                at.is_some_and(|i| i < image),
                "{want} before the image in {args:?}"
            );
        }
    }
}
