//! `/etc/cairn/containers/NAME.toml`: one container the host runs, as written and validated.
//!
//! The format (`cairn-containers(5)` in updater/README.md, "Declared containers"):
//!
//! ```toml
//! image = "registry.example.net/web:1.4"   # required; passed to podman as written
//! command = ["httpd", "-f"]                # optional: the image's own command otherwise
//! ports = ["8080:80", "127.0.0.1:9090:90/udp"]
//! volumes = ["/var/lib/web:/data", "/var/log/web:/logs:ro"]   # host side under /var
//! environment = { MODE = "production" }
//! restart = "always"                       # always | on-failure | no
//! pull = "missing"                         # missing | always | never
//! required = true                          # a health check needs it running
//! ```

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::toml_file::TomlFile;
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Where declarations live on a host.
pub const DIR: &str = "/etc/cairn/containers";

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    image: Spanned<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    ports: Vec<Spanned<String>>,
    #[serde(default)]
    volumes: Vec<Spanned<String>>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    restart: Option<Spanned<String>>,
    pull: Option<Spanned<String>>,
    required: Option<bool>,
}

/// When systemd starts the container again after it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Whatever way it ended.
    Always,
    /// Only after a non-zero exit or a signal.
    OnFailure,
    /// Never.
    No,
}

impl Restart {
    /// systemd's `Restart=` value.
    pub fn systemd(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::No => "no",
        }
    }
}

/// When the image is pulled before the container starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pull {
    /// When the host's storage lacks it.
    Missing,
    /// On every start (a moving tag).
    Always,
    /// Never: the image must already be there (loaded by provisioning).
    Never,
}

impl Pull {
    /// podman's `--pull` value.
    pub fn podman(self) -> &'static str {
        match self {
            Pull::Missing => "missing",
            Pull::Always => "always",
            Pull::Never => "never",
        }
    }
}

/// One bind mount: a host directory under `/var` into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// On the host, absolute, under `/var` (the state that outlives OS updates).
    pub host: PathBuf,
    /// In the container, absolute.
    pub container: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// One declared container, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    /// The file name without `.toml`; the unit is `cairn-container@NAME.service`, the podman
    /// container `cairn-NAME`.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// The command and its arguments; empty: the image's.
    pub command: Vec<String>,
    /// podman `--publish` values.
    pub ports: Vec<String>,
    /// Bind mounts.
    pub volumes: Vec<Volume>,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// systemd's restart policy.
    pub restart: Restart,
    /// Pull policy.
    pub pull: Pull,
    /// Whether the health check requires it to run.
    pub required: bool,
}

impl ContainerSpec {
    /// The systemd unit that runs it.
    pub fn unit(&self) -> String {
        unit_of(&self.name)
    }

    /// The podman container's name.
    pub fn container_name(&self) -> String {
        format!("cairn-{}", self.name)
    }
}

/// `cairn-container@NAME.service`.
pub fn unit_of(name: &str) -> String {
    format!("cairn-container@{name}.service")
}

/// A name usable as a file name, a systemd instance and a podman container name.
fn check_name(name: &str, path: &Path) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        bail!(
            "{}: the container name {name:?} (the file name without .toml) must be 1-64 \
             letters, digits, '-', '_' or '.', starting with a letter or digit; rename the file",
            path.display()
        );
    }
    Ok(())
}

/// Reads and validates `path` (`DIR/NAME.toml`).
pub fn load(path: &Path) -> Result<ContainerSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(path, &text)
}

/// Validates the text of `path`.
pub fn parse(path: &Path, text: &str) -> Result<ContainerSpec> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".toml"))
        .unwrap_or_default()
        .to_string();
    check_name(&name, path)?;
    let file = TomlFile::new(path, text);
    let raw: Raw = file.parse()?;
    if raw.image.get_ref().trim().is_empty() || raw.image.get_ref().starts_with('-') {
        return Err(file.err(
            &raw.image,
            "`image` must name an image, e.g. \"registry.example.net/web:1\"",
        ));
    }
    for p in &raw.ports {
        check_port(p.get_ref()).map_err(|e| file.err(p, e))?;
    }
    let mut volumes = Vec::new();
    for v in &raw.volumes {
        volumes.push(parse_volume(v.get_ref()).map_err(|e| file.err(v, e))?);
    }
    if let Some(k) = raw
        .environment
        .keys()
        .find(|k| k.is_empty() || k.contains('='))
    {
        bail!(
            "{}: environment variable name {k:?} is empty or contains '='",
            path.display()
        );
    }
    let restart = match raw.restart.as_ref().map(|r| r.get_ref().as_str()) {
        None | Some("always") => Restart::Always,
        Some("on-failure") => Restart::OnFailure,
        Some("no") => Restart::No,
        Some(other) => {
            return Err(file.err(
                raw.restart.as_ref().unwrap_or(&raw.image),
                format!("`restart` is \"always\", \"on-failure\" or \"no\", not {other:?}"),
            ))
        }
    };
    let pull = match raw.pull.as_ref().map(|r| r.get_ref().as_str()) {
        None | Some("missing") => Pull::Missing,
        Some("always") => Pull::Always,
        Some("never") => Pull::Never,
        Some(other) => {
            return Err(file.err(
                raw.pull.as_ref().unwrap_or(&raw.image),
                format!("`pull` is \"missing\", \"always\" or \"never\", not {other:?}"),
            ))
        }
    };
    Ok(ContainerSpec {
        name,
        image: raw.image.into_inner(),
        command: raw.command,
        ports: raw.ports.into_iter().map(Spanned::into_inner).collect(),
        volumes,
        environment: raw.environment,
        restart,
        pull,
        required: raw.required.unwrap_or(true),
    })
}

/// `[IP:]HOST:CONTAINER[/tcp|udp]` with ports as numbers (ranges are not taken).
fn check_port(p: &str) -> Result<(), String> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    if proto != "tcp" && proto != "udp" {
        return Err(format!("port {p:?}: the protocol is tcp or udp"));
    }
    let parts: Vec<&str> = ports.rsplitn(3, ':').collect();
    let numbers = match parts.as_slice() {
        [c, h] | [c, h, _] => [*c, *h],
        _ => {
            return Err(format!(
                "port {p:?} is not [IP:]HOST:CONTAINER[/tcp|udp], e.g. \"8080:80\""
            ))
        }
    };
    for n in numbers {
        if !n.parse::<u16>().is_ok_and(|n| n > 0) {
            return Err(format!("port {p:?}: {n:?} is not a port number (1-65535)"));
        }
    }
    Ok(())
}

/// `HOST:CONTAINER[:ro|rw]`, HOST absolute under `/var` with no `..`.
fn parse_volume(v: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => {
            return Err(format!(
                "volume {v:?} is not HOST:CONTAINER[:ro], e.g. \"/var/lib/web:/data\""
            ))
        }
    };
    let host_path = Path::new(host);
    let under_var = host_path.is_absolute()
        && host_path.starts_with("/var/")
        && host_path.components().all(|c| c != Component::ParentDir);
    if !under_var {
        return Err(format!(
            "volume {v:?}: the host side must be a directory under /var (the state that \
             survives OS updates; /usr is read-only and /etc belongs to each deployment)"
        ));
    }
    if !container.starts_with('/') {
        return Err(format!(
            "volume {v:?}: the container side must be an absolute path"
        ));
    }
    Ok(Volume {
        host: host_path.to_path_buf(),
        container: container.to_string(),
        read_only,
    })
}

/// The declarations in `dir`, by name; each file's error separately (one bad file does not
/// hide the others). No directory: none.
pub fn load_all(dir: &Path) -> Vec<(String, Result<ContainerSpec>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, load(&p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<ContainerSpec> {
        parse(Path::new("/etc/cairn/containers/web.toml"), text)
    }

    #[test]
    fn a_full_declaration_is_read_with_its_defaults() {
        let s = spec(
            "image = \"localhost/web:1\"\ncommand = [\"httpd\", \"-f\"]\n\
             ports = [\"8080:80\", \"127.0.0.1:53:53/udp\"]\n\
             volumes = [\"/var/lib/web:/data\", \"/var/log/web:/logs:ro\"]\n\
             environment = { MODE = \"prod\" }\n",
        )
        .unwrap();
        assert_eq!(s.name, "web");
        assert_eq!(s.unit(), "cairn-container@web.service");
        assert_eq!(s.restart, Restart::Always);
        assert_eq!(s.pull, Pull::Missing);
        assert!(s.required);
        assert!(s.volumes[1].read_only);
        assert_eq!(s.volumes[0].host, Path::new("/var/lib/web"));
    }

    #[test]
    fn errors_name_the_file_line_and_value() {
        let e = spec("image = \"x\"\nvolumes = [\"/etc/web:/data\"]\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("/etc/cairn/containers/web.toml:2:12:"),
            "{msg}"
        );
        assert!(msg.contains("under /var"), "{msg}");
        let e = spec("image = \"x\"\nvolumes = [\"/var/../etc:/d\"]\n").unwrap_err();
        assert!(format!("{e:#}").contains("under /var"));
        let e = spec("image = \"x\"\nports = [\"80\"]\n").unwrap_err();
        assert!(format!("{e:#}").contains("web.toml:2:10"), "{e:#}");
        let e = spec("image = \"x\"\nports = [\"8080:99999\"]\n").unwrap_err();
        assert!(format!("{e:#}").contains("not a port number"), "{e:#}");
        let e = spec("image = \"x\"\nrestart = \"sometimes\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("web.toml:2:11"), "{e:#}");
        let e = spec("image = \"x\"\nimages = 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("web.toml:2:1"), "{e:#}");
        let e = spec("command = []\n").unwrap_err();
        assert!(format!("{e:#}").contains("image"), "{e:#}");
    }

    #[test]
    fn file_names_must_be_usable_as_unit_instances() {
        let e = parse(Path::new("/x/-bad.toml"), "image = \"x\"").unwrap_err();
        assert!(format!("{e:#}").contains("rename the file"));
        assert!(parse(Path::new("/x/a b.toml"), "image = \"x\"").is_err());
        assert!(parse(Path::new("/x/db-1.2_x.toml"), "image = \"x\"").is_ok());
    }
}
