//! Package resolution and download with apt, in an apt root of our own inside the cache.
//!
//! apt resolves the manifest against its sources from an empty dpkg status (what a fresh tree
//! needs: Debian's essential and required packages plus the manifest's), without touching the
//! build machine's apt state. Downloads land in the cache's `archives/`, where apt finds them
//! again next time, so a second compose downloads only what changed.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_release::metadata::Package;
use sha2::{Digest, Sha256};

use crate::command::CommandExt;
use crate::lockfile::LockedPackage;
use crate::manifest::Manifest;

/// The build machine's apt sources, used when a manifest names no mirror.
const HOST_SOURCES: &str = "/etc/apt/sources.list";
const HOST_SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// An apt configuration rooted in the cache directory.
pub struct AptRoot {
    root: PathBuf,
    archives: PathBuf,
    architecture: String,
}

impl AptRoot {
    /// Sets up the apt root: its sources (`sources_override`, else manifest mirrors, else the build
    /// machine's), plus a local repository of the manifest's `.deb` files when there are any.
    pub fn prepare(
        cache: &Path,
        manifest: &Manifest,
        sources_override: &[PathBuf],
        local_repo: Option<&Path>,
    ) -> Result<AptRoot> {
        let root = cache.join("apt");
        let sources_dir = root.join("etc/apt/sources.list.d");
        // Sources are rewritten every time; the downloaded lists are kept.
        let _ = fs::remove_dir_all(root.join("etc"));
        for dir in [
            sources_dir.clone(),
            root.join("etc/apt/preferences.d"),
            root.join("etc/apt/apt.conf.d"),
            root.join("var/lib/apt/lists/partial"),
            root.join("var/lib/dpkg"),
            root.join("var/cache/apt"),
        ] {
            fs::create_dir_all(&dir).with_context(|| format!("Creating {}", dir.display()))?;
        }
        fs::write(root.join("var/lib/dpkg/status"), "").context("Writing the empty dpkg status")?;
        let archives = cache.join("archives");
        fs::create_dir_all(archives.join("partial"))
            .with_context(|| format!("Creating {}", archives.display()))?;

        if !sources_override.is_empty() {
            for file in sources_override {
                copy_sources_file(file, &sources_dir)?;
            }
        } else if !manifest.mirrors.is_empty() {
            fs::write(sources_dir.join("cairn.sources"), deb822(manifest))
                .context("Writing the manifest's apt sources")?;
        } else {
            let mut found = false;
            if Path::new(HOST_SOURCES).is_file() {
                copy_sources_file(Path::new(HOST_SOURCES), &sources_dir)?;
                found = true;
            }
            if let Ok(entries) = fs::read_dir(HOST_SOURCES_DIR) {
                for e in entries.flatten() {
                    let p = e.path();
                    if matches!(
                        p.extension().and_then(|x| x.to_str()),
                        Some("list" | "sources")
                    ) {
                        copy_sources_file(&p, &sources_dir)?;
                        found = true;
                    }
                }
            }
            if !found {
                bail!("the manifest names no [[sources.mirrors]] and this machine has no apt sources in {HOST_SOURCES} or {HOST_SOURCES_DIR}; add a mirror to the manifest or pass --sources FILE");
            }
        }
        if let Some(local) = local_repo {
            fs::write(
                sources_dir.join("cairn-local-debs.list"),
                format!("deb [trusted=yes] file:{} ./\n", local.display()),
            )
            .context("Writing the local .deb source")?;
        }
        Ok(AptRoot {
            root,
            archives,
            architecture: manifest.architecture.clone(),
        })
    }

    /// Where downloaded `.deb`s are kept.
    pub fn archives(&self) -> &Path {
        &self.archives
    }

    fn apt_get(&self) -> Command {
        self.apt("apt-get")
    }

    /// `program` (apt-get or apt-cache) on this apt root.
    fn apt(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let root = self.root.display();
        for opt in [
            format!("Dir={root}"),
            format!("Dir::State::status={root}/var/lib/dpkg/status"),
            format!("Dir::Cache::archives={}", self.archives.display()),
            // Host sources rely on the host's trusted keys; manifest mirrors name their keyring.
            "Dir::Etc::trusted=/etc/apt/trusted.gpg".into(),
            "Dir::Etc::trustedparts=/etc/apt/trusted.gpg.d".into(),
            format!("APT::Architecture={}", self.architecture),
            format!("APT::Architectures={}", self.architecture),
            "Debug::NoLocking=1".into(),
            // Keep apt's binary cache of the indices in the apt root (Debian's container
            // images turn it off in /etc/apt/apt.conf.d, which apt reads first): without it
            // every apt call parses all indices again (~0.5 s each here).
            "Dir::Cache::pkgcache=pkgcache.bin".into(),
            "Dir::Cache::srcpkgcache=srcpkgcache.bin".into(),
            "APT::Get::List-Cleanup=1".into(),
            "Acquire::Languages=none".into(),
        ] {
            cmd.arg("-o").arg(opt);
        }
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// Fetches the package indices (only what changed since the last time).
    pub fn update(&self) -> Result<()> {
        // Without --error-on=any apt-get exits 0 when a source failed, and the compose would go
        // on with stale or missing indices.
        self.apt_get()
            .args(["update", "-q", "--error-on=any"])
            .run_checked()
            .context("Updating package indices (check the manifest's mirrors or the machine's apt sources)")
    }

    /// Resolves the manifest's packages (plus Debian's essential and required set) into the
    /// exact set apt would install into an empty tree.
    pub fn resolve(&self, manifest: &Manifest) -> Result<Vec<Package>> {
        let mut cmd = self.apt_get();
        cmd.args(["install", "--simulate", "-q", "-y"])
            .arg(format!(
                "-oAPT::Install-Recommends={}",
                manifest.install_recommends
            ))
            .args(["?essential", "?priority(required)"])
            .args(&manifest.packages);
        if manifest.bootable {
            // The initramfs is compressed with zstd (see install.rs).
            cmd.arg("zstd");
        }
        for deb in &manifest.local_debs {
            cmd.arg(deb_name(deb)?);
        }
        let out = cmd.output_checked().context(
            "Resolving packages (a package that does not exist, or conflicting requirements)",
        )?;
        let mut packages: Vec<Package> = out.lines().filter_map(parse_inst_line).collect();
        packages.sort();
        if packages.is_empty() {
            bail!("apt resolved no packages; are the sources empty?");
        }
        Ok(packages)
    }

    /// Downloads exactly `packages` into the cache (skipping what is there), and returns each
    /// with its `.deb`'s sha256 and path.
    ///
    /// A cached `.deb` whose sha256 matches the index is used as it is, without asking apt
    /// anything more (listing locations and the download pass each cost a dependency solve,
    /// seconds, for nothing when the cache is warm); apt fetches whatever is missing or differs,
    /// and what it fetched is checked too. Each file is hashed once.
    pub fn download(&self, packages: &[Package]) -> Result<Vec<(LockedPackage, PathBuf)>> {
        let wanted: Vec<String> = packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        let index = self.index_sha256(&wanted)?;
        // sha256 of the cached .debs that match the index, by archive file name.
        let mut verified: HashMap<String, String> = HashMap::new();
        for p in packages {
            let file = archive_file_name(p);
            let cached = self.archives.join(&file);
            if let Some(want) = index.get(&file) {
                if cached.exists() && &sha256_file(&cached)? == want {
                    verified.insert(file, want.clone());
                }
            }
        }
        if verified.len() < packages.len() {
            for f in self.uris(&wanted)? {
                if verified.contains_key(&f.file) {
                    continue;
                }
                if let Some(path) = f.uri.strip_prefix("file:") {
                    // apt uses packages from file: sources in place instead of copying them
                    // into its cache; copy them, over a cached file of the same name that
                    // another source had.
                    fs::copy(path, self.archives.join(&f.file))
                        .with_context(|| format!("Copying {path} into the cache"))?;
                }
            }
            self.apt_get()
                .args([
                    "install",
                    "--download-only",
                    "-q",
                    "-y",
                    "--no-install-recommends",
                ])
                .args(&wanted)
                .run_checked()
                .context("Downloading packages")?;
        }
        packages
            .iter()
            .map(|p| {
                let file = archive_file_name(p);
                let path = self.archives.join(&file);
                let sha256 = match verified.remove(&file) {
                    Some(known) => known,
                    None => sha256_file(&path).with_context(|| {
                        format!("apt did not leave {} {} in the cache", p.name, p.version)
                    })?,
                };
                if let Some(want) = index.get(&file) {
                    if want != &sha256 {
                        bail!(
                            "{} {}: {} has sha256 {sha256}, the package index says {want}; \
                             delete it from the cache and compose again",
                            p.name,
                            p.version,
                            path.display()
                        );
                    }
                }
                Ok((
                    LockedPackage {
                        name: p.name.clone(),
                        version: p.version.clone(),
                        architecture: p.architecture.clone(),
                        sha256,
                    },
                    path,
                ))
            })
            .collect()
    }

    /// The sha256 the package indices give for each package of `wanted` (`name=version`), by
    /// archive file name. (`--print-uris` shows an MD5 sum, or no hash, not this.)
    fn index_sha256(&self, wanted: &[String]) -> Result<HashMap<String, String>> {
        let out = self
            .apt("apt-cache")
            .arg("show")
            .args(wanted)
            .output_checked()
            .context("Reading the packages' hashes from the indices")?;
        Ok(parse_index_records(&out))
    }

    /// Where apt would fetch every package of `wanted` from into an empty cache.
    fn uris(&self, wanted: &[String]) -> Result<Vec<Fetch>> {
        let empty = tempfile::tempdir().context("Creating a scratch directory")?;
        fs::create_dir_all(empty.path().join("partial"))?;
        let out = self
            .apt_get()
            .arg("-o")
            .arg(format!("Dir::Cache::archives={}", empty.path().display()))
            .args([
                "install",
                "--print-uris",
                "-qq",
                "-y",
                "--no-install-recommends",
            ])
            .args(wanted)
            .output_checked()
            .context("Listing package locations")?;
        Ok(out.lines().filter_map(parse_uri_line).collect())
    }
}

/// One package as `apt-get --print-uris` lists it.
#[derive(Debug, PartialEq, Eq)]
struct Fetch {
    uri: String,
    /// The archive file name in apt's cache.
    file: String,
}

/// Parses `'URI' FILE SIZE [HASHTYPE:HASH]`.
fn parse_uri_line(line: &str) -> Option<Fetch> {
    let mut f = line.split_whitespace();
    let uri = f.next()?.trim_matches('\'');
    let file = f.next()?;
    Some(Fetch {
        uri: percent_decode(uri),
        file: file.to_string(),
    })
}

/// The SHA256 field of each `apt-cache show` record, by archive file name.
fn parse_index_records(text: &str) -> HashMap<String, String> {
    let mut found = HashMap::new();
    for record in text.split("\n\n") {
        let field = |name: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        if let (Some(name), Some(version), Some(architecture), Some(sha256)) = (
            field("Package:"),
            field("Version:"),
            field("Architecture:"),
            field("SHA256:"),
        ) {
            let file = archive_file_name(&Package {
                name,
                version,
                architecture,
            });
            found.entry(file).or_insert(sha256);
        }
    }
    found
}

/// Decodes `%xx` escapes in a URI path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file name apt gives a downloaded package (`:` of an epoch is escaped as `%3a`).
pub fn archive_file_name(p: &Package) -> String {
    format!(
        "{}_{}_{}.deb",
        p.name,
        p.version.replace(':', "%3a"),
        p.architecture
    )
}

/// Parses `Inst NAME (VERSION RELEASE [ARCH])` from `apt-get --simulate`.
fn parse_inst_line(line: &str) -> Option<Package> {
    let rest = line.strip_prefix("Inst ")?;
    let (name, rest) = rest.split_once(' ')?;
    let inner = rest.strip_prefix('(')?;
    let inner = &inner[..inner.find(')')?];
    let version = inner.split(' ').next()?;
    let arch_start = inner.rfind('[')?;
    let arch_end = inner[arch_start..].find(']')? + arch_start;
    Some(Package {
        name: name.to_string(),
        version: version.to_string(),
        architecture: inner[arch_start + 1..arch_end].to_string(),
    })
}

/// The package name inside a local `.deb`.
fn deb_name(deb: &Path) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .args(["--field"])
        .arg(deb)
        .arg("Package")
        .output_checked()
        .with_context(|| format!("Reading the package name of {}", deb.display()))?;
    Ok(out.trim().to_string())
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("Opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("Reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn copy_sources_file(file: &Path, dir: &Path) -> Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sources.list".into());
    let name = if name.ends_with(".list") || name.ends_with(".sources") {
        name
    } else {
        format!("{name}.list")
    };
    let n = fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    fs::copy(file, dir.join(format!("{n:02}-{name}")))
        .with_context(|| format!("Copying apt sources {}", file.display()))?;
    Ok(())
}

/// The manifest's mirrors as a deb822 sources file.
fn deb822(manifest: &Manifest) -> String {
    let mut out = String::new();
    for m in &manifest.mirrors {
        let suites = if m.suites.is_empty() {
            manifest.suite.clone()
        } else {
            m.suites.join(" ")
        };
        out.push_str(&format!(
            "Types: deb\nURIs: {}\nSuites: {suites}\nComponents: {}\n",
            m.uri,
            m.components.join(" ")
        ));
        if let Some(k) = &m.keyring {
            out.push_str(&format!("Signed-By: {}\n", k.display()));
        }
        if m.trusted {
            out.push_str("Trusted: yes\n");
        }
        out.push('\n');
    }
    out
}

/// Builds a flat apt repository (hardlinks + `Packages`) from `debs` in `dir`.
pub fn make_flat_repo(dir: &Path, debs: &[PathBuf]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    for deb in debs {
        let name = deb.file_name().context("a .deb path without a file name")?;
        let target = dir.join(name);
        if fs::hard_link(deb, &target).is_err() {
            fs::copy(deb, &target)
                .with_context(|| format!("Copying {} into {}", deb.display(), dir.display()))?;
        }
    }
    // SHA256 is all apt needs here; the other three hashes cost most of the indexing time.
    let packages = Command::new("apt-ftparchive")
        .args([
            "-o",
            "APT::FTPArchive::MD5=false",
            "-o",
            "APT::FTPArchive::SHA1=false",
        ])
        .args(["-o", "APT::FTPArchive::SHA512=false"])
        .arg("packages")
        .arg(".")
        .current_dir(dir)
        .output_checked()
        .context("Indexing local packages")?;
    fs::write(dir.join("Packages"), packages).context("Writing Packages")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simulated_installs() {
        let p = parse_inst_line("Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []")
            .unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.architecture.as_str()),
            ("libc6", "2.36-9+deb12u14", "amd64")
        );
        let p =
            parse_inst_line("Inst tzdata (2025b-0+deb12u1 Debian:12.15/oldstable [all])").unwrap();
        assert_eq!(p.architecture, "all");
        assert!(parse_inst_line("Conf libc6 (2.36 Debian [amd64])").is_none());
    }

    #[test]
    fn parses_print_uris_lines() {
        // apt 2.6 prints an MD5 sum, or nothing, as the fourth field.
        let f = parse_uri_line(
            "'http://mirror.example/debian/pool/main/u/util-linux/bsdutils_2.38.1-5_amd64.deb' \
             bsdutils_1%3a2.38.1-5_amd64.deb 93160 MD5Sum:4f0a",
        )
        .unwrap();
        assert_eq!(f.file, "bsdutils_1%3a2.38.1-5_amd64.deb");
        let f = parse_uri_line("'file:/srv/my%20debs/a_1_all.deb' a_1_all.deb 10").unwrap();
        assert_eq!(f.uri, "file:/srv/my debs/a_1_all.deb");
    }

    #[test]
    fn reads_sha256_from_index_records() {
        let text = "Package: bsdutils\nVersion: 1:2.38.1-5\nArchitecture: amd64\n\
                    MD5sum: 00\nSHA256: 4f0a\nDescription: x\n continued\n\n\
                    Package: tzdata\nVersion: 2025b-0\nArchitecture: all\nSHA256: 77aa\n\n\
                    Package: nohash\nVersion: 1\nArchitecture: all\n";
        let found = parse_index_records(text);
        assert_eq!(found["bsdutils_1%3a2.38.1-5_amd64.deb"], "4f0a");
        assert_eq!(found["tzdata_2025b-0_all.deb"], "77aa");
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn archive_names_escape_epochs() {
        let p = Package {
            name: "x".into(),
            version: "1:2.0-1".into(),
            architecture: "amd64".into(),
        };
        assert_eq!(archive_file_name(&p), "x_1%3a2.0-1_amd64.deb");
    }
}
