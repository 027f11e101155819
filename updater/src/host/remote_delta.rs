//! Delta bundles beside the repository: for each static delta it writes, the composer also
//! writes the bundle `cairn-compose bundle --from` would (`cairn_release::bundle::remote_path`),
//! whose delta is compressed against the objects a host on the starting commit has — smaller
//! than libostree's delta of the same change (`BENCHMARKS.md`, case 5). A host that has the
//! starting commit fetches that file over HTTP instead of pulling, checks it like `upgrade
//! --bundle` does and imports it; libostree checks every object it writes against the commit,
//! whose signature was checked before. Any failure here (no such file, a server that does not
//! answer, a bundle that does not check out) falls back to libostree's pull, logged.
//!
//! Only plain `http://` and `https://` remotes without TLS client options are asked: the
//! updater's HTTP client does not read libostree's remote options.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_release::bundle;

use crate::host::http::Transport;
use crate::host::progress::human_bytes;
use crate::host::source::Source;
use crate::host::sysroot::Host;
use crate::host::verify::Policy;
use crate::host::{import, pull, root_space};

/// Connect and read timeout.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How many of the host's commits are asked about, newest deployment first.
const MAX_CANDIDATES: usize = 3;
/// The most a bundle may be when the server does not say its length.
const MAX_BYTES: u64 = 16 << 30;
/// libostree remote options this client does not honour; a remote with any is not asked.
const UNSUPPORTED_OPTIONS: [&str; 4] = [
    "tls-ca-path",
    "tls-client-cert-path",
    "tls-client-key-path",
    "proxy",
];

/// A delta bundle the remote has to the wanted commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its URL.
    pub url: String,
    /// The host's commit it starts from.
    pub from: String,
    /// Its length, when the server says.
    pub bytes: Option<u64>,
}

/// The delta bundle to `commit` from one of the host's deployed commits, if the remote has one
/// (a `HEAD` request per candidate, the merge deployment's commit first).
pub fn find(host: &Host, source: &Source, commit: &str) -> Option<Found> {
    let base = match base_url(host, source) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            log::debug!("not looking for a delta bundle: {e:#}");
            return None;
        }
    };
    let transport = match Transport::new(base.starts_with("https://"), None, TIMEOUT) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("not looking for a delta bundle: {e:#}");
            return None;
        }
    };
    let mut candidates: Vec<String> = host
        .merge_deployment()
        .map(|d| d.commit)
        .into_iter()
        .collect();
    for d in host.deployments() {
        if !candidates.contains(&d.commit) {
            candidates.push(d.commit);
        }
    }
    for from in candidates
        .into_iter()
        .filter(|c| c != commit)
        .take(MAX_CANDIDATES)
    {
        if !host.has_commit(&from).unwrap_or(false) {
            continue;
        }
        let url = format!("{base}{}", bundle::remote_path(&from, commit));
        match transport.head(&url) {
            Ok((200, bytes)) => return Some(Found { url, from, bytes }),
            Ok((status, _)) => log::debug!("{url}: {status}"),
            Err(e) => {
                log::debug!("{url}: {e:#}");
                return None;
            }
        }
    }
    None
}

/// The remote's URL with a trailing `/`, when this client can fetch from it.
fn base_url(host: &Host, source: &Source) -> Result<Option<String>> {
    let url = pull::url_of(host, source)?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Ok(None);
    }
    if source.url_override.is_none() {
        let repo = host.repo();
        for option in UNSUPPORTED_OPTIONS {
            if let Ok(Some(v)) = repo.remote_option(&source.remote, option, None) {
                log::debug!(
                    "remote {} sets {option}={v}: no delta bundle",
                    source.remote
                );
                return Ok(None);
            }
        }
    }
    Ok(Some(if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    }))
}

/// Fetches `found`, checks it and imports it into the host's repository. Returns the bytes
/// downloaded when the tree of `commit` is then in the repository; `None` (logged) when
/// libostree's pull must fetch it instead. The caller holds the sysroot lock, has checked
/// the commit object's signature and says what its new objects take (`objects`, when known):
/// the bundle's files must fit beside them.
pub fn fetch(
    host: &Host,
    source: &Source,
    require_signature: Option<bool>,
    found: &Found,
    (commit, objects): (&str, Option<u64>),
) -> Option<u64> {
    match try_fetch(host, source, require_signature, found, (commit, objects)) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            log::warn!(
                "not using the delta bundle {}: {e:#}; pulling instead",
                found.url
            );
            None
        }
    }
}

fn try_fetch(
    host: &Host,
    source: &Source,
    require_signature: Option<bool>,
    found: &Found,
    (commit, objects): (&str, Option<u64>),
) -> Result<u64> {
    let policy = Policy::for_host(host, require_signature)?;
    // The file and its members, extracted beside it, before the members replace the file.
    if let (Some(bytes), Some(objects)) = (found.bytes, objects) {
        root_space::ensure_bundle_room(host, None, 2 * bytes, Some(objects))?;
    }
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bundle-")
        .tempdir_in(host.path().join("ostree/repo/tmp"))
        .context("Creating a scratch directory in the repository's tmp")?;
    let file = scratch.path().join("delta.cairnbundle");
    let mut out =
        std::fs::File::create(&file).with_context(|| format!("Creating {}", file.display()))?;
    let transport = Transport::new(found.url.starts_with("https://"), None, TIMEOUT)?;
    log::info!("fetching {} ({source})", found.url);
    let started = Instant::now();
    let mut shown = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let (status, bytes) = transport.download(
        &found.url,
        &mut out,
        found.bytes.unwrap_or(MAX_BYTES),
        &mut |n| {
            if shown.elapsed() >= Duration::from_secs(if tty { 1 } else { 2 }) {
                shown = Instant::now();
                eprintln!("Fetching the delta bundle for {source}: {}", human_bytes(n));
            }
        },
    )?;
    if status != 200 {
        bail!("the server answered {status}");
    }
    eprintln!(
        "Fetched the delta bundle for {source} ({}) in {:.1}s",
        human_bytes(bytes),
        started.elapsed().as_secs_f64()
    );
    let dir = scratch.path().join("members");
    std::fs::create_dir(&dir).with_context(|| format!("Creating {}", dir.display()))?;
    let opened = bundle::open(&file, &dir, &policy.trusted, policy.require_signature)?;
    std::fs::remove_file(&file).with_context(|| format!("Removing {}", file.display()))?;
    root_space::ensure_bundle_room(host, Some(&opened), 0, objects)?;
    let m = &opened.manifest;
    if m.to != commit || m.from.as_deref() != Some(found.from.as_str()) || m.osref != source.ref_ {
        bail!(
            "it carries {} -> {} of {}, not {} -> {commit} of {}",
            m.from.as_deref().unwrap_or("(nothing)"),
            m.to,
            m.osref,
            found.from,
            source.ref_
        );
    }
    // The bundle's copy of the signatures replaces the repository's: checked before.
    policy.check_data(&m.to, &opened.commit_bytes()?, &opened.detached_bytes()?)?;
    import::import(host, &opened)?;
    policy.check(&host.repo(), commit)?;
    Ok(bytes)
}
