//! Static deltas: after a compose, one delta from each of the previous K versions of the ref to
//! the new commit, so a host a few versions behind fetches one compact file instead of many
//! objects (libostree's pull picks a delta by itself when the summary lists one from a commit
//! the host has). Also the single-file deltas that bundles carry.
//!
//! Deltas are derived data: a failure here is reported but leaves the commit and ref in place.

use std::path::Path;

use anyhow::{Context, Result};
use cairn_release::glib::{self, prelude::*};
use cairn_release::metadata::CommitInfo;
use cairn_release::{gio, history, ostree};
use fn_error_context::context;
use serde::Serialize;

/// One delta written.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    /// The commit it starts from (`None`: from nothing, a full delta).
    pub from: Option<String>,
    /// Its version.
    pub from_version: Option<String>,
    /// The commit it reaches.
    pub to: String,
}

/// Writes deltas to `to` from each of its `count` nearest ancestors (those still in the
/// repository). Returns what was written.
#[context("Generating static deltas to {to}")]
pub fn generate_from_ancestors(repo: &ostree::Repo, to: &str, count: usize) -> Result<Vec<Delta>> {
    let ancestors: Vec<CommitInfo> = history::ref_history(repo, to)?
        .into_iter()
        .skip(1)
        .take(count)
        .collect();
    let mut out = Vec::new();
    for a in ancestors {
        generate(repo, Some(&a.commit), to, None)?;
        out.push(Delta {
            from: Some(a.commit),
            from_version: a.version,
            to: to.to_string(),
        });
    }
    Ok(out)
}

/// Writes one delta from `from` (or from nothing) to `to`: into the repository's `deltas/`,
/// or, with `file`, as one self-contained file (parts inline) for offline use.
#[context("Generating the static delta {} -> {to}", from.unwrap_or("(nothing)"))]
pub fn generate(
    repo: &ostree::Repo,
    from: Option<&str>,
    to: &str,
    file: Option<&Path>,
) -> Result<()> {
    let params = glib::VariantDict::new(None);
    if let Some(f) = file {
        // libostree reads it as a NUL-terminated bytestring (`^&ay`).
        let mut path = f.as_os_str().as_encoded_bytes().to_vec();
        path.push(0);
        params.insert_value("filename", &path.to_variant());
        params.insert_value("inline-parts", &true.to_variant());
    }
    repo.static_delta_generate(
        ostree::StaticDeltaGenerateOpt::Major,
        from,
        to,
        None,
        Some(&params.end()),
        gio::Cancellable::NONE,
    )
    .context("libostree static delta generation")
}

/// The deltas in the repository, as `(from, to)` commit checksums.
pub fn list(repo: &ostree::Repo) -> Result<Vec<(Option<String>, String)>> {
    let names = repo
        .list_static_delta_names(gio::Cancellable::NONE)
        .context("Listing static deltas")?;
    Ok(names
        .iter()
        .map(|n| match n.split_once('-') {
            Some((f, t)) => (Some(f.to_string()), t.to_string()),
            None => (None, n.to_string()),
        })
        .collect())
}

/// libostree's modified base64 of a hex checksum (`/` as `_`, no padding), used in delta paths.
fn mbase64(checksum: &str) -> Result<String> {
    use base64::Engine;
    let bytes = hex::decode(checksum).with_context(|| format!("{checksum:?} is not hex"))?;
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(bytes)
        .replace('/', "_"))
}

/// The directory of the delta `from` → `to` in the repository at `repo_path`.
pub fn path(repo_path: &Path, from: Option<&str>, to: &str) -> Result<std::path::PathBuf> {
    let name = match from {
        Some(f) => format!("{}-{}", mbase64(f)?, mbase64(to)?),
        None => mbase64(to)?,
    };
    let (head, rest) = name.split_at(2);
    Ok(repo_path.join("deltas").join(head).join(rest))
}

/// Removes every delta whose start or end commit is no longer in the repository; returns them.
#[context("Removing static deltas of removed commits")]
pub fn remove_dangling(
    repo: &ostree::Repo,
    repo_path: &Path,
) -> Result<Vec<(Option<String>, String)>> {
    let has = |c: &str| {
        repo.has_object(ostree::ObjectType::Commit, c, gio::Cancellable::NONE)
            .with_context(|| format!("Looking up commit {c}"))
    };
    let mut removed = Vec::new();
    for (from, to) in list(repo)? {
        let from_gone = match &from {
            Some(f) => !has(f)?,
            None => false,
        };
        if from_gone || !has(&to)? {
            let dir = path(repo_path, from.as_deref(), &to)?;
            std::fs::remove_dir_all(&dir).with_context(|| format!("Removing {}", dir.display()))?;
            removed.push((from, to));
        }
    }
    Ok(removed)
}
