//! One manifest file, parsed and checked on its own.
//!
//! Paths are resolved against the file that names them and every value is validated here,
//! while its `file:line:col` is still known.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::osref::OsRef;
use cairn_release::toml_file::TomlFile;
use cairn_release::version::validate_prefix;
use toml::Spanned;

use super::schema::RawManifest;
use super::{FileEntry, FileSource, Group, Mirror, Script, User};

/// A value and where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// `file:line:col`.
    pub at: String,
}

/// A validated manifest file, before merging.
#[derive(Debug, Default)]
pub struct Layer {
    /// The file.
    pub path: PathBuf,
    /// Included files, resolved.
    pub includes: Vec<Located<PathBuf>>,
    /// Scalars.
    pub os: Option<Located<String>>,
    /// Stream.
    pub stream: Option<Located<String>>,
    /// Full ref.
    pub osref: Option<Located<String>>,
    /// Version prefix.
    pub version_prefix: Option<Located<String>>,
    /// Suite.
    pub suite: Option<Located<String>>,
    /// Architecture.
    pub architecture: Option<Located<String>>,
    /// Bootable.
    pub bootable: Option<bool>,
    /// Install Recommends.
    pub install_recommends: Option<bool>,
    /// Lists.
    pub mirrors: Vec<Mirror>,
    /// Packages.
    pub packages: Vec<String>,
    /// Local debs.
    pub local_debs: Vec<PathBuf>,
    /// Files.
    pub files: Vec<FileEntry>,
    /// Units to enable.
    pub enable_units: Vec<String>,
    /// Units to disable.
    pub disable_units: Vec<String>,
    /// Units to mask.
    pub mask_units: Vec<String>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Users.
    pub users: Vec<Located<User>>,
    /// Kernel arguments.
    pub kernel_args: Vec<String>,
    /// Removal globs.
    pub remove_files: Vec<String>,
    /// Scripts.
    pub postprocess: Vec<Script>,
}

/// One manifest file: its text (for `file:line:col`) and its folder (for relative paths).
struct Source<'a> {
    file: TomlFile<'a>,
    dir: PathBuf,
}

impl Source<'_> {
    fn at(&self, span: Range<usize>) -> String {
        self.file.at(span)
    }

    fn locate<T: Clone>(&self, s: &Spanned<T>) -> Located<T> {
        Located {
            value: s.get_ref().clone(),
            at: self.at(s.span()),
        }
    }

    /// A path relative to this manifest's folder, which must exist.
    fn existing_path(&self, s: &Spanned<String>, what: &str) -> Result<PathBuf> {
        let path = self.dir.join(s.get_ref());
        if !path.exists() {
            bail!(
                "{}: {what} {:?} does not exist (looked for {}; paths are relative to the manifest)",
                self.at(s.span()),
                s.get_ref(),
                path.display()
            );
        }
        Ok(path)
    }

    fn err(&self, s: &Spanned<String>, msg: impl std::fmt::Display) -> anyhow::Error {
        self.file.err(s, msg)
    }
}

fn valid_name(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

impl Layer {
    /// Parses and validates one manifest file.
    pub fn read(path: &Path) -> Result<Layer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Reading manifest {}", path.display()))?;
        let src = Source {
            file: TomlFile::new(path, &text),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let raw: RawManifest = src.file.parse()?;
        Self::validate(raw, &src)
    }

    fn validate(raw: RawManifest, src: &Source) -> Result<Layer> {
        let mut layer = Layer {
            path: src.file.path.to_path_buf(),
            ..Default::default()
        };
        for inc in &raw.include {
            layer.includes.push(Located {
                value: src.existing_path(inc, "included manifest")?,
                at: src.at(inc.span()),
            });
        }
        if let Some(os) = &raw.os {
            if !valid_name(os.get_ref(), "-_") {
                return Err(src.err(
                    os,
                    "`os` must be letters, digits, '-' or '_' (e.g. \"cairn\")",
                ));
            }
            layer.os = Some(src.locate(os));
        }
        if let Some(stream) = &raw.stream {
            if !valid_name(stream.get_ref(), "-_.") {
                return Err(src.err(
                    stream,
                    "`stream` must be letters, digits, '-', '_' or '.' (e.g. \"stable\")",
                ));
            }
            layer.stream = Some(src.locate(stream));
        }
        if let Some(r) = &raw.ref_ {
            r.get_ref().parse::<OsRef>().map_err(|e| src.err(r, e))?;
            layer.osref = Some(src.locate(r));
        }
        if let Some(p) = &raw.version_prefix {
            validate_prefix(p.get_ref()).map_err(|e| src.err(p, e))?;
            layer.version_prefix = Some(src.locate(p));
        }
        if let Some(s) = &raw.sources.suite {
            if !valid_name(s.get_ref(), "-_.") {
                return Err(src.err(s, "`suite` must be a Debian codename such as \"bookworm\""));
            }
            layer.suite = Some(src.locate(s));
        }
        if let Some(a) = &raw.sources.architecture {
            if !valid_name(a.get_ref(), "-") {
                return Err(src.err(
                    a,
                    "`architecture` must be a Debian architecture such as \"amd64\"",
                ));
            }
            layer.architecture = Some(src.locate(a));
        }
        layer.bootable = raw.bootable;
        layer.install_recommends = raw.install_recommends;
        for m in &raw.sources.mirrors {
            layer.mirrors.push(mirror(m, src)?);
        }
        for p in &raw.packages {
            if !valid_name(p.get_ref(), "+-.:=~") {
                return Err(src.err(p, "not a Debian package name (optionally NAME=VERSION)"));
            }
            layer.packages.push(p.get_ref().clone());
        }
        for d in &raw.local_debs {
            if !d.get_ref().ends_with(".deb") {
                return Err(src.err(d, "local-debs entries must be .deb files"));
            }
            layer.local_debs.push(src.existing_path(d, "local .deb")?);
        }
        for f in &raw.files {
            layer.files.push(file_entry(f, src)?);
        }
        for (list, out) in [
            (&raw.units.enable, &mut layer.enable_units),
            (&raw.units.disable, &mut layer.disable_units),
            (&raw.units.mask, &mut layer.mask_units),
        ] {
            for u in list {
                let name = u.get_ref();
                let known = [
                    ".service",
                    ".socket",
                    ".timer",
                    ".target",
                    ".path",
                    ".mount",
                    ".automount",
                    ".slice",
                    ".swap",
                ];
                if !valid_name(name, "-_.@:\\") || !known.iter().any(|s| name.ends_with(s)) {
                    return Err(src.err(u, "not a systemd unit name (e.g. \"podman.socket\")"));
                }
                out.push(name.clone());
            }
        }
        for g in &raw.groups {
            if !valid_name(g.name.get_ref(), "-_") {
                return Err(src.err(&g.name, "group names are letters, digits, '-' or '_'"));
            }
            layer.groups.push(Group {
                name: g.name.get_ref().clone(),
                gid: g.gid,
            });
        }
        for u in &raw.users {
            if !valid_name(u.name.get_ref(), "-_") {
                return Err(src.err(&u.name, "user names are letters, digits, '-' or '_'"));
            }
            layer.users.push(Located {
                value: User {
                    name: u.name.get_ref().clone(),
                    uid: u.uid,
                    groups: u.groups.clone(),
                    home: u.home.clone(),
                    shell: u.shell.clone(),
                    system: u.system,
                },
                at: src.at(u.name.span()),
            });
        }
        for k in &raw.kernel_args {
            if k.get_ref().is_empty() || k.get_ref().contains(char::is_whitespace) {
                return Err(src.err(
                    k,
                    "a kernel argument is one word without spaces (e.g. \"console=ttyS0\")",
                ));
            }
            layer.kernel_args.push(k.get_ref().clone());
        }
        for r in &raw.remove_files {
            let g = r.get_ref();
            if !g.starts_with('/') || g.split('/').any(|c| c == "..") {
                return Err(src.err(
                    r,
                    "remove-files entries are absolute paths in the tree, without '..'",
                ));
            }
            glob::Pattern::new(g).map_err(|e| src.err(r, format!("bad glob: {e}")))?;
            layer.remove_files.push(g.clone());
        }
        for s in &raw.postprocess {
            let body = match (&s.run, &s.file) {
                (Some(run), None) => run.clone(),
                (None, Some(file)) => {
                    let path = src.existing_path(file, "script")?;
                    std::fs::read_to_string(&path).with_context(|| {
                        format!("{}: reading script {}", src.at(file.span()), path.display())
                    })?
                }
                _ => {
                    return Err(src.err(
                        &s.name,
                        "a [[postprocess]] entry needs exactly one of `run` or `file`",
                    ))
                }
            };
            layer.postprocess.push(Script {
                name: s.name.get_ref().clone(),
                body,
                origin: src.at(s.name.span()),
            });
        }
        Ok(layer)
    }
}

fn mirror(m: &super::schema::RawMirror, src: &Source) -> Result<Mirror> {
    let uri = m.uri.get_ref();
    if !(uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:")) {
        return Err(src.err(
            &m.uri,
            "mirror uri must start with http://, https:// or file:",
        ));
    }
    // A file: mirror may be relative to the manifest; apt needs it absolute.
    let uri = match uri.strip_prefix("file:") {
        Some(p) if !p.starts_with('/') => format!("file:{}", src.dir.join(p).display()),
        _ => uri.clone(),
    };
    let keyring = match &m.keyring {
        Some(k) => Some(src.existing_path(k, "keyring")?),
        None => None,
    };
    Ok(Mirror {
        uri,
        suites: m.suites.clone(),
        components: if m.components.is_empty() {
            vec!["main".into()]
        } else {
            m.components.clone()
        },
        keyring,
        trusted: m.trusted,
    })
}

fn file_entry(f: &super::schema::RawFile, src: &Source) -> Result<FileEntry> {
    let dest = f.dest.get_ref();
    if !dest.starts_with('/') || dest.split('/').any(|c| c == "..") || dest == "/" {
        return Err(src.err(
            &f.dest,
            "`dest` must be an absolute path in the tree, without '..'",
        ));
    }
    let source = match (&f.src, &f.content) {
        (Some(s), None) => FileSource::Path(src.existing_path(s, "file")?),
        (None, Some(c)) => FileSource::Content(c.clone()),
        _ => {
            return Err(src.err(
                &f.dest,
                "a [[files]] entry needs exactly one of `src` or `content`",
            ))
        }
    };
    let mode = match &f.mode {
        Some(m) => Some(
            u32::from_str_radix(m.get_ref(), 8)
                .ok()
                .filter(|v| *v <= 0o7777)
                .ok_or_else(|| src.err(m, "`mode` is an octal string such as \"0644\""))?,
        ),
        None => None,
    };
    Ok(FileEntry {
        source,
        dest: dest.clone(),
        mode,
    })
}
