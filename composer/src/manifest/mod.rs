//! Package manifests: what an OS release is made of.
//!
//! A manifest is read in three steps, as `ARCHITECTURE.md` ("Configuration and manifests") says: each TOML file is parsed into
//! [`schema::RawManifest`] (unknown keys and wrong types are errors at `file:line:col`), checked
//! on its own into a [`layer::Layer`] (paths resolved against that file, values validated with
//! their position), then the layers are merged in include order into one [`Manifest`].
//!
//! Merge rules (documented in `manifests/README.md`; tested below):
//! - `include = [...]` files are merged first, in the order listed, depth first; the including
//!   file comes last. A file included twice is merged once, at its first place.
//! - Scalars (`os`, `stream`, `ref`, `version-prefix`, `bootable`, `install-recommends`,
//!   `sources.suite`, `sources.architecture`): the last layer that sets one wins, so the
//!   including file overrides what it includes.
//! - Lists (`packages`, `local-debs`, `files`, `units.*`, `groups`, `users`, `kernel-args`,
//!   `remove-files`, `postprocess`, `sources.mirrors`): appended in layer order.

pub mod layer;
pub mod schema;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::osref::{ostree_arch, OsRef};
use serde::Serialize;

use layer::{Layer, Located};

/// How deep includes may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

/// A validated, merged manifest: the only form the rest of the composer sees.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The files this manifest was read from, in merge order.
    pub files_read: Vec<PathBuf>,
    /// OS name.
    pub os: String,
    /// The ref commits go to.
    pub osref: String,
    /// Version prefix.
    pub version_prefix: String,
    /// Whether the tree must be bootable.
    pub bootable: bool,
    /// Debian suite.
    pub suite: String,
    /// Debian architecture.
    pub architecture: String,
    /// Mirrors; empty means the build machine's apt sources.
    pub mirrors: Vec<Mirror>,
    /// Packages requested (sorted, unique).
    pub packages: Vec<String>,
    /// Whether Recommends are installed.
    pub install_recommends: bool,
    /// Local `.deb` files.
    pub local_debs: Vec<PathBuf>,
    /// Files to add.
    pub files: Vec<FileEntry>,
    /// Units to enable.
    pub enable_units: Vec<String>,
    /// Units to disable.
    pub disable_units: Vec<String>,
    /// Units to mask.
    pub mask_units: Vec<String>,
    /// Groups to create.
    pub groups: Vec<Group>,
    /// Users to create.
    pub users: Vec<User>,
    /// Default kernel arguments.
    pub kernel_args: Vec<String>,
    /// Globs of absolute paths to remove.
    pub remove_files: Vec<String>,
    /// Post-process scripts, in order.
    pub postprocess: Vec<Script>,
}

/// An apt source.
#[derive(Debug, Clone, Serialize)]
pub struct Mirror {
    /// Archive URI.
    pub uri: String,
    /// Suites.
    pub suites: Vec<String>,
    /// Components.
    pub components: Vec<String>,
    /// Absolute keyring path.
    pub keyring: Option<PathBuf>,
    /// Unsigned allowed.
    pub trusted: bool,
}

/// Where a file's content comes from.
#[derive(Debug, Clone, Serialize)]
pub enum FileSource {
    /// A file or directory on the build machine.
    Path(PathBuf),
    /// Literal content.
    Content(String),
}

/// A file or directory added to the tree.
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    /// Source.
    pub source: FileSource,
    /// Absolute destination in the tree.
    pub dest: String,
    /// Mode override.
    pub mode: Option<u32>,
}

/// A group.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Fixed gid.
    pub gid: Option<u32>,
}

/// A user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Name.
    pub name: String,
    /// Fixed uid.
    pub uid: Option<u32>,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// Home directory.
    pub home: Option<String>,
    /// Shell.
    pub shell: Option<String>,
    /// System account.
    pub system: bool,
}

/// A post-process script.
#[derive(Debug, Clone, Serialize)]
pub struct Script {
    /// Name for messages.
    pub name: String,
    /// The script text (files are read at load time, so the hash covers them).
    pub body: String,
    /// Where it was defined, `file:line:col`.
    pub origin: String,
}

impl Manifest {
    /// Reads `path` and everything it includes, and validates the result.
    pub fn load(path: &Path) -> Result<Manifest> {
        let mut layers = Vec::new();
        let mut seen = BTreeSet::new();
        collect_layers(path, &mut Vec::new(), &mut seen, &mut layers)?;
        merge(layers, path)
    }
}

fn collect_layers(
    path: &Path,
    stack: &mut Vec<PathBuf>,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Vec<Layer>,
) -> Result<()> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("Reading manifest {}", path.display()))?;
    if stack.contains(&canonical) {
        let chain: Vec<String> = stack
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| p.display().to_string())
            .collect();
        bail!("include loop: {}", chain.join(" -> "));
    }
    if stack.len() >= MAX_INCLUDE_DEPTH {
        bail!(
            "{}: includes nest deeper than {MAX_INCLUDE_DEPTH} levels",
            path.display()
        );
    }
    if !seen.insert(canonical.clone()) {
        return Ok(());
    }
    let layer = Layer::read(path)?;
    stack.push(canonical);
    for include in &layer.includes {
        collect_layers(&include.value, stack, seen, out)
            .with_context(|| format!("{}: in this include", include.at))?;
    }
    stack.pop();
    out.push(layer);
    Ok(())
}

/// Merges layers (in include order) and checks what only the whole can tell.
fn merge(layers: Vec<Layer>, top: &Path) -> Result<Manifest> {
    fn last<T: Clone>(
        layers: &[Layer],
        get: impl Fn(&Layer) -> Option<&Located<T>>,
    ) -> Option<Located<T>> {
        layers.iter().rev().find_map(|l| get(l).cloned())
    }
    fn all<T: Clone>(layers: &[Layer], get: impl Fn(&Layer) -> &Vec<T>) -> Vec<T> {
        layers.iter().flat_map(|l| get(l).iter().cloned()).collect()
    }
    let missing = |key: &str, example: &str| {
        anyhow::anyhow!(
            "{}: required key `{key}` is not set here nor in any included manifest (e.g. {key} = {example})",
            top.display()
        )
    };
    let os = last(&layers, |l| l.os.as_ref()).ok_or_else(|| missing("os", "\"cairn\""))?;
    let version_prefix = last(&layers, |l| l.version_prefix.as_ref())
        .ok_or_else(|| missing("version-prefix", "\"2026.11\""))?;
    let suite = last(&layers, |l| l.suite.as_ref())
        .ok_or_else(|| missing("sources.suite", "\"bookworm\""))?;
    let architecture = last(&layers, |l| l.architecture.as_ref())
        .map(|a| a.value)
        .unwrap_or_else(|| "amd64".to_string());
    let stream = last(&layers, |l| l.stream.as_ref())
        .map(|s| s.value)
        .unwrap_or_else(|| "stable".to_string());
    let osref = match last(&layers, |l| l.osref.as_ref()) {
        Some(r) => r.value,
        None => OsRef {
            os: os.value.clone(),
            suite: suite.value.clone(),
            arch: ostree_arch(&architecture).to_string(),
            stream,
        }
        .to_string()
        .parse::<OsRef>()
        .with_context(|| {
            format!(
                "{}: the ref derived from os, sources.suite and stream",
                top.display()
            )
        })?
        .to_string(),
    };
    let bootable = layers.iter().rev().find_map(|l| l.bootable).unwrap_or(true);
    let install_recommends = layers
        .iter()
        .rev()
        .find_map(|l| l.install_recommends)
        .unwrap_or(false);

    let packages: BTreeSet<String> = all(&layers, |l| &l.packages).into_iter().collect();
    let mut seen_users = BTreeSet::new();
    for user in all(&layers, |l| &l.users) {
        if !seen_users.insert(user.value.name.clone()) {
            bail!("{}: user {:?} is defined twice", user.at, user.value.name);
        }
    }
    Ok(Manifest {
        files_read: layers.iter().map(|l| l.path.clone()).collect(),
        os: os.value,
        osref,
        version_prefix: version_prefix.value,
        bootable,
        suite: suite.value,
        architecture,
        mirrors: all(&layers, |l| &l.mirrors),
        packages: packages.into_iter().collect(),
        install_recommends,
        local_debs: all(&layers, |l| &l.local_debs),
        files: all(&layers, |l| &l.files),
        enable_units: all(&layers, |l| &l.enable_units),
        disable_units: all(&layers, |l| &l.disable_units),
        mask_units: all(&layers, |l| &l.mask_units),
        groups: all(&layers, |l| &l.groups),
        users: all(&layers, |l| &l.users)
            .into_iter()
            .map(|u| u.value)
            .collect(),
        kernel_args: all(&layers, |l| &l.kernel_args),
        remove_files: all(&layers, |l| &l.remove_files),
        postprocess: all(&layers, |l| &l.postprocess),
    })
}

#[cfg(test)]
mod tests;
