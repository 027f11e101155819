//! The manifest file format as written: one TOML file, before includes are merged.
//!
//! Every struct denies unknown keys, and values that are checked later keep their span so an
//! error can point at `file:line:col`. Nothing here is trusted yet; `layer.rs` validates it.

use serde::Deserialize;
use toml::Spanned;

/// One manifest file as parsed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawManifest {
    /// Other manifests merged before this one, relative to this file.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// OS name: the first part of the ref and the stateroot on hosts.
    pub os: Option<Spanned<String>>,
    /// Release stream, the last part of the ref (default `stable`).
    pub stream: Option<Spanned<String>>,
    /// The full ref, when it should not be derived from os/suite/arch/stream.
    #[serde(rename = "ref")]
    pub ref_: Option<Spanned<String>>,
    /// Versions are `PREFIX.N`.
    pub version_prefix: Option<Spanned<String>>,
    /// Whether the tree must carry a kernel and initramfs (default true).
    pub bootable: Option<bool>,
    /// Where packages come from.
    #[serde(default)]
    pub sources: RawSources,
    /// Packages to install, beyond Debian's essential and required ones.
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    /// Whether apt installs Recommends (default false).
    pub install_recommends: Option<bool>,
    /// Local `.deb` files to install, relative to this file.
    #[serde(default)]
    pub local_debs: Vec<Spanned<String>>,
    /// Files added to the tree.
    #[serde(default)]
    pub files: Vec<RawFile>,
    /// systemd units to enable, disable or mask.
    #[serde(default)]
    pub units: RawUnits,
    /// Groups to create.
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    /// Users to create.
    #[serde(default)]
    pub users: Vec<RawUser>,
    /// Default kernel arguments of deployments of this tree.
    #[serde(default)]
    pub kernel_args: Vec<Spanned<String>>,
    /// Paths to delete from the tree (globs, absolute).
    #[serde(default)]
    pub remove_files: Vec<Spanned<String>>,
    /// Scripts run inside the tree, without network, after packages and files are in.
    #[serde(default)]
    pub postprocess: Vec<RawScript>,
}

/// `[sources]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSources {
    /// Debian suite (codename), e.g. `bookworm`.
    pub suite: Option<Spanned<String>>,
    /// Debian architecture, e.g. `amd64`.
    pub architecture: Option<Spanned<String>>,
    /// Mirrors; when no manifest names one, the build machine's apt sources are used.
    #[serde(default)]
    pub mirrors: Vec<RawMirror>,
}

/// `[[sources.mirrors]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMirror {
    /// `http://`, `https://` or `file:` URI of the archive root.
    pub uri: Spanned<String>,
    /// Suites to use from it (default: the manifest's suite).
    #[serde(default)]
    pub suites: Vec<String>,
    /// Components (default `["main"]`).
    #[serde(default)]
    pub components: Vec<String>,
    /// OpenPGP keyring that signs it, relative to this file or absolute.
    pub keyring: Option<Spanned<String>>,
    /// Accept it unsigned (local repositories only).
    #[serde(default)]
    pub trusted: bool,
}

/// `[[files]]`: a file or directory copied into the tree, or a file written from `content`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFile {
    /// Source path, relative to this manifest.
    pub src: Option<Spanned<String>>,
    /// Inline content instead of `src`.
    pub content: Option<String>,
    /// Absolute destination in the tree.
    pub dest: Spanned<String>,
    /// Octal mode, e.g. `"0644"` (default: the source's, or 0644 for content).
    pub mode: Option<Spanned<String>>,
}

/// `[units]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawUnits {
    /// Units to enable.
    #[serde(default)]
    pub enable: Vec<Spanned<String>>,
    /// Units to disable.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Units to mask.
    #[serde(default)]
    pub mask: Vec<Spanned<String>>,
}

/// `[[groups]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawGroup {
    /// Group name.
    pub name: Spanned<String>,
    /// Fixed gid (default: allocated as a system group).
    pub gid: Option<u32>,
}

/// `[[users]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawUser {
    /// User name.
    pub name: Spanned<String>,
    /// Fixed uid (default: allocated).
    pub uid: Option<u32>,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Home directory (default `/var/home/NAME`, or none for system users).
    pub home: Option<String>,
    /// Login shell (default `/bin/bash` for people, `/usr/sbin/nologin` for system users).
    pub shell: Option<String>,
    /// A system account (uid below 1000, no home).
    #[serde(default)]
    pub system: bool,
}

/// `[[postprocess]]`: a script run inside the tree, without network.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScript {
    /// A name for messages.
    pub name: Spanned<String>,
    /// Inline shell script.
    pub run: Option<String>,
    /// Script file, relative to this manifest.
    pub file: Option<Spanned<String>>,
}
