//! Fetching from the remote into the sysroot's repository.
//!
//! Two kinds of pull: *commit metadata only* (`OSTREE_REPO_PULL_FLAGS_COMMIT_ONLY`: the commit
//! objects, no tree; used by `check` and to look up versions in a ref's history) and the
//! *full tree* of one commit (with a progress display). A full pull names the commit checksum
//! that a metadata pull resolved, so what is deployed is what was checked, even if the remote
//! ref moves in between.
//!
//! libostree writes objects through a transaction in the repository's staging directory; a
//! pull killed at any point leaves no ref pointing at an incomplete commit and no corrupt
//! object (`ostree fsck` stays clean), and the next pull resumes from what arrived.

use anyhow::{bail, Context, Result};
use cairn_release::glib::{self, prelude::*};
use cairn_release::metadata::CommitInfo;
use cairn_release::{gio, history, ostree};
use fn_error_context::context;

use crate::host::progress::PullProgress;
use crate::host::source::Source;
use crate::host::sysroot::Host;

/// The URL a source is fetched from, for messages.
pub fn url_of(host: &Host, source: &Source) -> Result<String> {
    if let Some(url) = &source.url_override {
        return Ok(url.clone());
    }
    host.repo()
        .remote_get_url(&source.remote)
        .map(|u| u.to_string())
        .with_context(|| {
            format!(
                "remote {:?} is not configured in {}/ostree/repo (see `ostree remote list`)",
                source.remote,
                host.path().display()
            )
        })
}

fn options(
    source: &Source,
    refs: &[&str],
    flags: ostree::RepoPullFlags,
    depth: i32,
) -> glib::Variant {
    options_dict(source, refs, flags, depth).end()
}

fn options_dict(
    source: &Source,
    refs: &[&str],
    flags: ostree::RepoPullFlags,
    depth: i32,
) -> glib::VariantDict {
    let dict = glib::VariantDict::new(None);
    dict.insert_value("refs", &refs.to_variant());
    dict.insert_value("flags", &(flags.bits() as i32).to_variant());
    dict.insert_value("depth", &depth.to_variant());
    if let Some(url) = &source.url_override {
        dict.insert_value("override-url", &url.to_variant());
    }
    dict
}

/// Fetches the commit object at the tip of `source`'s ref (and, with `depth` -1, every
/// ancestor; with `depth` N, N ancestors), without trees. Returns the tip.
#[context("Fetching commit metadata of {source}")]
pub fn fetch_commit_metadata(host: &Host, source: &Source, depth: i32) -> Result<CommitInfo> {
    let url = url_of(host, source)?;
    let repo = host.repo();
    repo.pull_with_options(
        &source.remote,
        &options(
            source,
            &[&source.ref_],
            ostree::RepoPullFlags::COMMIT_ONLY,
            depth,
        ),
        None,
        gio::Cancellable::NONE,
    )
    .map_err(|e| explain(e, source, &url))?;
    let commit = history::resolve(&repo, &source.refspec())?
        .with_context(|| format!("the remote sent no commit for {}", source.ref_))?;
    CommitInfo::load(&repo, &commit)
}

/// Fetches the commit object `commit` (a checksum) from `source`'s remote, without its tree:
/// a release an update policy names, which need not be the ref's tip.
#[context("Fetching commit metadata of {commit} from {source}")]
pub fn fetch_commit_object(host: &Host, source: &Source, commit: &str) -> Result<CommitInfo> {
    let url = url_of(host, source)?;
    let repo = host.repo();
    repo.pull_with_options(
        &source.remote,
        &options(source, &[commit], ostree::RepoPullFlags::COMMIT_ONLY, 0),
        None,
        gio::Cancellable::NONE,
    )
    .map_err(|e| explain(e, source, &url))?;
    CommitInfo::load(&repo, commit)
}

/// Fetches the full tree of `commit` from `source`'s remote, showing progress. Returns the
/// bytes transferred (0 when the host had every object).
#[context("Fetching commit {commit} of {source}")]
pub fn fetch_tree(host: &Host, source: &Source, commit: &str) -> Result<u64> {
    let url = url_of(host, source)?;
    let repo = host.repo();
    log::info!("fetching {commit} ({source}) from {url}");
    let progress = PullProgress::new(&source.refspec());
    let result = repo.pull_with_options(
        &source.remote,
        &options(source, &[commit], ostree::RepoPullFlags::NONE, 0),
        Some(progress.ostree()),
        gio::Cancellable::NONE,
    );
    let counters = progress.finish();
    result.map_err(|e| explain(e, source, &url))?;
    log::info!(
        "fetched {commit}: {} objects, {} bytes",
        counters.fetched,
        counters.bytes
    );
    Ok(counters.bytes)
}

/// A path component no tree has: pulling `DIR/NO_SUCH_ENTRY` as a subpath fetches the
/// directory metadata (dirtree and dirmeta objects) down to `DIR`, and no content.
const NO_SUCH_ENTRY: &str = ".cairn-metadata-only";

/// Fetches the directory metadata of `commit` (already in the repository from a commit-only
/// pull) along each of `dirs` (absolute paths in the tree) and no file content: a pull with
/// libostree's `subdirs` option naming an entry inside each directory that does not exist.
/// The commit stays partial (`state/*.commitpartial`) and a later full pull fetches the rest.
#[context("Fetching directory metadata of {commit} ({})", dirs.join(", "))]
pub fn fetch_dir_metadata(
    host: &Host,
    source: &Source,
    commit: &str,
    dirs: &[String],
) -> Result<()> {
    let url = url_of(host, source)?;
    let subdirs: Vec<String> = dirs
        .iter()
        .map(|d| format!("{}/{NO_SUCH_ENTRY}", d.trim_end_matches('/')))
        .collect();
    let dict = options_dict(source, &[commit], ostree::RepoPullFlags::NONE, 0);
    dict.insert_value("subdirs", &subdirs.to_variant());
    // Else libostree takes a static delta when one exists, and that carries the whole tree.
    dict.insert_value("disable-static-deltas", &true.to_variant());
    host.repo()
        .pull_with_options(&source.remote, &dict.end(), None, gio::Cancellable::NONE)
        .map_err(|e| explain(e, source, &url))
}

/// What a static delta to a commit would download, as the remote's delta superblock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaSize {
    /// Delta parts the host lacks.
    pub parts: u32,
    /// Their compressed size: the bytes the pull would download (plus the superblock).
    pub bytes: u64,
    /// Their uncompressed size.
    pub unpacked: u64,
}

/// Asks libostree what pulling `commit` through a static delta would download: a dry-run
/// pull (`dry-run` with `require-static-deltas`) fetches only the delta superblock — from the
/// best commit the host has, as the real pull would choose — and writes no object. `None`
/// when libostree finds no delta to `commit` from a commit the host has (it refuses the dry
/// run then) or the dry run fails for another reason (logged: the caller measures otherwise).
#[context("Asking {source} for a static delta to {commit}")]
pub fn delta_size(host: &Host, source: &Source, commit: &str) -> Result<Option<DeltaSize>> {
    let repo = host.repo();
    let dict = options_dict(source, &[commit], ostree::RepoPullFlags::NONE, 0);
    dict.insert_value("dry-run", &true.to_variant());
    dict.insert_value("require-static-deltas", &true.to_variant());
    let progress = ostree::AsyncProgress::new();
    let result = repo.pull_with_options(
        &source.remote,
        &dict.end(),
        Some(&progress),
        gio::Cancellable::NONE,
    );
    progress.finish();
    if let Err(e) = result {
        log::debug!("no static delta to {commit} on {source}: {}", e.message());
        return Ok(None);
    }
    let u32_of = |k: &str| progress.variant(k).and_then(|v| v.get::<u32>());
    let u64_of = |k: &str| progress.variant(k).and_then(|v| v.get::<u64>());
    if u32_of("total-delta-superblocks").unwrap_or(0) == 0 {
        log::debug!("the dry-run pull of {commit} fetched no delta superblock");
        return Ok(None);
    }
    Ok(Some(DeltaSize {
        parts: u32_of("total-delta-parts").unwrap_or(0),
        bytes: u64_of("total-delta-part-size").unwrap_or(0),
        unpacked: u64_of("total-delta-part-usize").unwrap_or(0),
    }))
}

/// Finds `rev` — a version, a commit checksum (or unique prefix), on `source`'s ref history —
/// fetching the whole history's commit metadata first.
#[context("Looking up {rev:?} on {source}")]
pub fn find_on_history(host: &Host, source: &Source, rev: &str) -> Result<CommitInfo> {
    fetch_commit_metadata(host, source, -1)?;
    let repo = host.repo();
    let hist = history::ref_history(&repo, &source.refspec())?;
    if let Some(found) = hist
        .iter()
        .find(|c| c.version.as_deref() == Some(rev) || c.commit == rev)
    {
        return Ok(found.clone());
    }
    if rev.len() >= 8 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let matches: Vec<_> = hist.iter().filter(|c| c.commit.starts_with(rev)).collect();
        match matches.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            _ => bail!("commit prefix {rev} is ambiguous on {source}"),
        }
    }
    let known: Vec<&str> = hist.iter().filter_map(|c| c.version.as_deref()).collect();
    bail!(
        "{rev:?} is neither a version nor a commit on {source} (versions there, newest first: {})",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// Turns a libostree pull error into one that names what was fetched and from where.
fn explain(e: glib::Error, source: &Source, url: &str) -> anyhow::Error {
    let msg = e.message().to_string();
    let missing = ["404", "No such branch", "not found"];
    let unreachable = [
        "Couldn't connect",
        "Connection refused",
        "resolve host",
        "Timeout",
    ];
    let garbage = [
        "GVariant",
        "Corrupted",
        "checksum",
        "Invalid",
        "Bad",
        "parse",
        "normal form",
    ];
    if missing.iter().any(|m| msg.contains(m)) {
        anyhow::anyhow!(
            "ref {} does not exist on remote {} ({url}): {msg}",
            source.ref_,
            source.remote
        )
    } else if unreachable.iter().any(|m| msg.contains(m)) {
        anyhow::anyhow!("pull from {url} failed: {msg}; is the server reachable?")
    } else if garbage.iter().any(|m| msg.contains(m)) {
        anyhow::anyhow!(
            "pull from {url} failed: {msg}; the server does not look like a valid OSTree repository"
        )
    } else {
        anyhow::anyhow!("pull from {url} failed: {msg}")
    }
}
