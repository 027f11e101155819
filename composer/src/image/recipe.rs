//! Disk image recipes: the TOML format (`image-recipes/README.md`), parsed and validated once
//! into a [`Recipe`] the image builder can trust.
//!
//! Errors name `file:line:col`, like manifest errors. This module does no I/O beyond reading
//! the recipe and the files it names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_release::toml_file::TomlFile;
use serde::Deserialize;
use toml::Spanned;

/// One MiB; partitions start and end on MiB boundaries.
pub const MIB: u64 = 1024 * 1024;

/// Space GPT needs: 1 MiB before the first partition, 1 MiB for the backup table at the end.
pub const GPT_OVERHEAD: u64 = 2 * MIB;

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The BIOS boot partition GRUB's core image is embedded in (no filesystem).
    BiosBoot,
    /// `/boot`, ext4: kernels, initramfs, the GRUB menus.
    Boot,
    /// The root filesystem (the sysroot: `ostree/repo`, deployments, `/var`), ext4.
    Root,
    /// The EFI System Partition, FAT32: the UEFI bootloader (GRUB, or shim and signed GRUB).
    Esp,
}

impl Role {
    /// The recipe spelling.
    pub fn name(self) -> &'static str {
        match self {
            Role::BiosBoot => "bios-boot",
            Role::Boot => "boot",
            Role::Root => "root",
            Role::Esp => "esp",
        }
    }

    /// The GPT partition type GUID.
    pub fn type_guid(self) -> &'static str {
        match self {
            Role::BiosBoot => "21686148-6449-6E6F-744E-656564454649",
            // Linux filesystem data.
            Role::Boot => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            // The Discoverable Partitions Specification's x86-64 root.
            Role::Root => "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            // EFI System Partition (gdisk's EF00).
            Role::Esp => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        }
    }
}

/// Smallest ESP: FAT32 needs 65525 clusters (512-byte clusters: 32 MiB) plus its tables.
pub const ESP_MIN: u64 = 33 * MIB;

/// The longest FAT volume label.
pub const FAT_LABEL_MAX: usize = 11;

/// How the disk boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bootloader {
    /// GRUB for BIOS (`i386-pc`), core image in the bios-boot partition.
    #[default]
    GrubI386Pc,
    /// GRUB for x86-64 UEFI on the ESP.
    GrubEfi,
    /// Both on one disk: BIOS GRUB in bios-boot and UEFI GRUB on the ESP, one `/boot`.
    Hybrid,
}

impl Bootloader {
    /// The recipe spelling.
    pub fn name(self) -> &'static str {
        match self {
            Bootloader::GrubI386Pc => "grub-i386-pc",
            Bootloader::GrubEfi => "grub-efi",
            Bootloader::Hybrid => "hybrid",
        }
    }

    /// Boots through BIOS GRUB (needs a bios-boot partition).
    pub fn bios(self) -> bool {
        matches!(self, Bootloader::GrubI386Pc | Bootloader::Hybrid)
    }

    /// Boots through UEFI (needs an ESP).
    pub fn efi(self) -> bool {
        matches!(self, Bootloader::GrubEfi | Bootloader::Hybrid)
    }

    /// The partition roles it needs, in the usual disk order.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Bootloader::GrubI386Pc => &[Role::BiosBoot, Role::Boot, Role::Root],
            Bootloader::GrubEfi => &[Role::Esp, Role::Boot, Role::Root],
            Bootloader::Hybrid => &[Role::BiosBoot, Role::Esp, Role::Boot, Role::Root],
        }
    }
}

/// A validated partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// What it is for.
    pub role: Role,
    /// GPT name and filesystem label.
    pub label: String,
    /// Size in bytes (a multiple of 1 MiB); `None`: the rest of the disk (last partition only).
    pub size: Option<u64>,
}

/// A file written into the deployment's `/etc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFile {
    /// Absolute path under `/etc`.
    pub dest: String,
    /// Content.
    pub content: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
}

/// The OSTree remote the image's repository is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Remote name (the `REMOTE` of the deployment's `refspec=REMOTE:REF`).
    pub name: String,
    /// URL of the archive repository hosts pull from.
    pub url: String,
}

/// A validated recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The recipe file.
    pub path: PathBuf,
    /// Disk size in bytes (a multiple of 1 MiB).
    pub size: u64,
    /// Partitions in disk order.
    pub partitions: Vec<Partition>,
    /// Kernel arguments added after the tree's own.
    pub kernel_args: Vec<String>,
    /// The remote.
    pub remote: Remote,
    /// Per-host files for `/etc`.
    pub files: Vec<EtcFile>,
    /// How the disk boots.
    pub bootloader: Bootloader,
    /// UEFI Secure Boot: the ESP carries Debian's signed shim and GRUB.
    pub secure_boot: bool,
    /// Where Ignition looks for the host's config on first boot (`ignition.platform.id`):
    /// "qemu" (fw_cfg), a cloud's name, or "metal" (an `ignition.config.url` kernel argument).
    pub ignition_platform: String,
}

impl Recipe {
    /// The partition with `role` (validation guarantees there is exactly one).
    pub fn partition(&self, role: Role) -> Option<(usize, &Partition)> {
        self.partitions
            .iter()
            .enumerate()
            .find(|(_, p)| p.role == role)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRecipe {
    #[allow(dead_code)]
    description: Option<String>,
    size: Spanned<String>,
    bootloader: Option<Spanned<String>>,
    secure_boot: Option<Spanned<bool>>,
    ignition_platform: Option<Spanned<String>>,
    #[serde(default)]
    kernel_args: Vec<Spanned<String>>,
    remote: RawRemote,
    partitions: Spanned<Vec<RawPartition>>,
    #[serde(default)]
    files: Vec<RawFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRemote {
    name: Option<Spanned<String>>,
    url: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPartition {
    role: Spanned<String>,
    label: Option<Spanned<String>>,
    size: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    dest: Spanned<String>,
    src: Option<Spanned<String>>,
    content: Option<String>,
    mode: Option<Spanned<String>>,
}

/// Parses a size such as `"512MiB"`, `"4GiB"`, `"1M"`, `"2G"` (binary units; a whole number of
/// MiB).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} does not start with a number"))?;
    let mult = match unit.trim() {
        "M" | "MiB" => MIB,
        "G" | "GiB" => 1024 * MIB,
        "T" | "TiB" => 1024 * 1024 * MIB,
        other => {
            bail!("unknown size unit {other:?} in {s:?} (use MiB, GiB or TiB, e.g. \"512MiB\")")
        }
    };
    let bytes = n
        .checked_mul(mult)
        .with_context(|| format!("{s:?} is too large"))?;
    if bytes == 0 {
        bail!("size {s:?} is zero");
    }
    Ok(bytes)
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

impl Recipe {
    /// Reads and validates a recipe file.
    pub fn read(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Reading image recipe {}", path.display()))?;
        Self::parse(path, &text)
    }

    /// Validates recipe text; `path` names it in errors and anchors relative `src` paths.
    pub fn parse(path: &Path, text: &str) -> Result<Recipe> {
        let src = TomlFile::new(path, text);
        let raw: RawRecipe = src.parse()?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();

        let size = parse_size(raw.size.get_ref()).map_err(|e| src.err(&raw.size, e))?;
        let bootloader = match &raw.bootloader {
            None => Bootloader::default(),
            Some(b) => match b.get_ref().as_str() {
                "grub-i386-pc" => Bootloader::GrubI386Pc,
                "grub-efi" => Bootloader::GrubEfi,
                "hybrid" => Bootloader::Hybrid,
                _ => return Err(src.err(
                    b,
                    "`bootloader` is one of \"grub-i386-pc\" (BIOS), \"grub-efi\" (UEFI), \"hybrid\" (both)",
                )),
            },
        };
        let secure_boot = match &raw.secure_boot {
            Some(s) if *s.get_ref() && !bootloader.efi() => {
                return Err(src.err(
                    s,
                    format!(
                    "`secure-boot` needs a UEFI bootloader (\"grub-efi\" or \"hybrid\"), not {:?}",
                    bootloader.name()
                ),
                ))
            }
            Some(s) => *s.get_ref(),
            None => false,
        };

        let mut partitions = Vec::new();
        let count = raw.partitions.get_ref().len();
        for (i, p) in raw.partitions.get_ref().iter().enumerate() {
            let role = match p.role.get_ref().as_str() {
                "bios-boot" => Role::BiosBoot,
                "boot" => Role::Boot,
                "root" => Role::Root,
                "esp" => Role::Esp,
                _ => {
                    return Err(src.err(
                        &p.role,
                        "`role` is one of \"bios-boot\", \"esp\", \"boot\", \"root\"",
                    ))
                }
            };
            if !bootloader.roles().contains(&role) {
                return Err(src.err(
                    &p.role,
                    match role {
                        Role::Esp => format!("an \"esp\" partition is for UEFI: set bootloader = \"grub-efi\" or \"hybrid\" (this recipe's is {:?})", bootloader.name()),
                        _ => format!("a {:?} partition is for BIOS boot: bootloader {:?} does not use it (\"hybrid\" boots both)", role.name(), bootloader.name()),
                    },
                ));
            }
            if partitions.iter().any(|q: &Partition| q.role == role) {
                return Err(src.err(
                    &p.role,
                    format!(
                        "a second {:?} partition; each role appears once",
                        role.name()
                    ),
                ));
            }
            let label = match &p.label {
                Some(l) if !valid_label(l.get_ref()) => {
                    return Err(src.err(l, "`label` is 1-16 letters, digits, '-' or '_'"))
                }
                Some(l) if role == Role::Esp && l.get_ref().len() > FAT_LABEL_MAX => {
                    return Err(src.err(
                        l,
                        format!("the ESP's `label` is its FAT volume label: at most {FAT_LABEL_MAX} characters"),
                    ))
                }
                Some(l) => l.get_ref().clone(),
                None => role.name().to_string(),
            };
            let size =
                match &p.size {
                    Some(s) => Some(parse_size(s.get_ref()).map_err(|e| src.err(s, e))?),
                    None if i + 1 == count => None,
                    None => return Err(src.err(
                        &p.role,
                        "only the last partition may omit `size` (it takes the rest of the disk)",
                    )),
                };
            if role == Role::Esp {
                match (size, &p.size) {
                    (Some(b), Some(s)) if b < ESP_MIN => {
                        return Err(src.err(
                            s,
                            format!("the ESP is FAT32: at least {} MiB", ESP_MIN / MIB),
                        ))
                    }
                    (None, _) => {
                        return Err(src.err(
                            &p.role,
                            "the ESP needs a `size` (e.g. \"127MiB\"); let root take the rest",
                        ))
                    }
                    _ => {}
                }
            }
            partitions.push(Partition { role, label, size });
        }
        for &role in bootloader.roles() {
            if !partitions.iter().any(|p| p.role == role) {
                let names: Vec<&str> = bootloader.roles().iter().map(|r| r.name()).collect();
                return Err(src.err(
                    &raw.partitions,
                    format!(
                        "a {:?} partition is required ({} needs {})",
                        role.name(),
                        bootloader.name(),
                        names.join(", ")
                    ),
                ));
            }
        }
        let fixed: u64 = partitions.iter().filter_map(|p| p.size).sum();
        let needed = fixed
            + GPT_OVERHEAD
            + if partitions.iter().any(|p| p.size.is_none()) {
                64 * MIB
            } else {
                0
            };
        if needed > size {
            return Err(src.err(
                &raw.size,
                format!(
                    "the partitions need {} MiB (with GPT tables) but the disk is {} MiB",
                    needed / MIB,
                    size / MIB
                ),
            ));
        }

        let mut kernel_args = Vec::new();
        for k in &raw.kernel_args {
            let v = k.get_ref();
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(src.err(k, "a kernel argument is one word without spaces (e.g. \"console=ttyS0,115200n8\")"));
            }
            if v.starts_with("root=") || v.starts_with("ostree=") {
                return Err(src.err(k, "`root=` and `ostree=` are set by the image builder"));
            }
            if v.starts_with("ignition.platform.id=") {
                return Err(src.err(k, "set the platform with `ignition-platform = \"…\"`"));
            }
            kernel_args.push(v.clone());
        }

        let ignition_platform = match &raw.ignition_platform {
            Some(p) if !valid_platform(p.get_ref()) => {
                return Err(src.err(p, "`ignition-platform` is an Ignition platform id such as \"qemu\", \"metal\", \"aws\" or \"openstack\" (lowercase letters and digits)"))
            }
            Some(p) => p.get_ref().clone(),
            None => "metal".to_string(),
        };

        let remote_name = match &raw.remote.name {
            Some(n) if !valid_label(n.get_ref()) => {
                return Err(src.err(n, "remote `name` is letters, digits, '-' or '_'"))
            }
            Some(n) => n.get_ref().clone(),
            None => "cairn".to_string(),
        };
        let url = raw.remote.url.get_ref();
        validate_url(url).map_err(|e| src.err(&raw.remote.url, e))?;

        let mut files = Vec::new();
        for f in &raw.files {
            let dest = f.dest.get_ref();
            if !dest.starts_with("/etc/")
                || dest.split('/').any(|c| c == ".." || c == ".")
                || dest.ends_with('/')
            {
                return Err(src.err(&f.dest, "`dest` is a file path under /etc/, without '..'"));
            }
            let content = match (&f.src, &f.content) {
                (Some(s), None) => {
                    let p = dir.join(s.get_ref());
                    std::fs::read(&p)
                        .map_err(|e| src.err(s, format!("reading {}: {e}", p.display())))?
                }
                (None, Some(c)) => c.clone().into_bytes(),
                _ => {
                    return Err(src.err(
                        &f.dest,
                        "a [[files]] entry needs exactly one of `src` or `content`",
                    ))
                }
            };
            let mode = match &f.mode {
                Some(m) => u32::from_str_radix(m.get_ref(), 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| src.err(m, "`mode` is an octal string such as \"0644\""))?,
                None => 0o644,
            };
            if files.iter().any(|g: &EtcFile| &g.dest == dest) {
                return Err(src.err(&f.dest, "this file is already written by an earlier entry"));
            }
            files.push(EtcFile {
                dest: dest.clone(),
                content,
                mode,
            });
        }

        Ok(Recipe {
            path: path.to_path_buf(),
            size,
            partitions,
            kernel_args,
            remote: Remote {
                name: remote_name,
                url: url.clone(),
            },
            files,
            bootloader,
            secure_boot,
            ignition_platform,
        })
    }
}

/// Ignition's platform ids are short lowercase words (`qemu`, `metal`, `aws`, `azurestack`…);
/// Ignition itself refuses one it does not know, at boot.
fn valid_platform(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// An OSTree remote URL: `http://`, `https://` or `file:///`, without spaces.
pub fn validate_url(url: &str) -> Result<()> {
    let ok =
        (url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file:///"))
            && !url.contains(char::is_whitespace);
    if !ok {
        bail!(
            "remote url {url:?} must start with http://, https:// or file:/// and have no spaces"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
size = "4GiB"
kernel-args = ["console=ttyS0,115200n8"]

[remote]
url = "http://10.0.2.2:8000/"

[[partitions]]
role = "bios-boot"
size = "1MiB"

[[partitions]]
role = "boot"
size = "512MiB"

[[partitions]]
role = "root"

[[files]]
dest = "/etc/hostname"
content = "vm\n"
"#;

    fn parse(text: &str) -> Result<Recipe> {
        Recipe::parse(Path::new("r.toml"), text)
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(r) => panic!("accepted: {r:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn good_recipe() {
        let r = parse(GOOD).unwrap();
        assert_eq!(r.size, 4096 * MIB);
        assert_eq!(r.partitions.len(), 3);
        assert_eq!(r.partitions[1].label, "boot");
        assert_eq!(r.partitions[2].size, None);
        assert_eq!(r.remote.name, "cairn");
        assert_eq!(r.files[0].mode, 0o644);
        assert_eq!(r.files[0].content, b"vm\n");
        assert_eq!(r.partition(Role::Root).map(|(i, _)| i), Some(2));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB").unwrap(), MIB);
        assert_eq!(parse_size("2G").unwrap(), 2048 * MIB);
        assert!(parse_size("10KiB").is_err());
        assert!(parse_size("0MiB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn unknown_key_has_position() {
        let e = err(&GOOD.replace("size = \"4GiB\"", "size = \"4GiB\"\ncolour = 1"));
        assert!(e.starts_with("r.toml:3:1:"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn unknown_partition_key() {
        let e = err(&GOOD.replace("role = \"boot\"", "role = \"boot\"\nfs = \"xfs\""));
        assert!(e.contains("r.toml:14:1") && e.contains("fs"), "{e}");
    }

    #[test]
    fn bad_role_points_at_value() {
        let e = err(&GOOD.replace("role = \"boot\"", "role = \"efi\""));
        assert!(e.starts_with("r.toml:13:8:"), "{e}");
    }

    #[test]
    fn missing_role() {
        let e = err(&GOOD.replace(
            "role = \"bios-boot\"\nsize = \"1MiB\"",
            "role = \"boot\"\nsize = \"1MiB\"",
        ));
        assert!(e.contains("second \"boot\""), "{e}");
    }

    #[test]
    fn only_last_may_omit_size() {
        let e = err(&GOOD.replace("size = \"512MiB\"\n", ""));
        assert!(e.contains("only the last partition"), "{e}");
    }

    #[test]
    fn too_small_disk() {
        let e = err(&GOOD.replace("4GiB", "500MiB"));
        assert!(e.starts_with("r.toml:2:8:") && e.contains("need"), "{e}");
    }

    #[test]
    fn files_only_under_etc() {
        let e = err(&GOOD.replace("/etc/hostname", "/usr/bin/x"));
        assert!(e.contains("under /etc/"), "{e}");
        let e = err(&GOOD.replace("/etc/hostname", "/etc/../usr/x"));
        assert!(e.contains("under /etc/"), "{e}");
    }

    #[test]
    fn root_karg_rejected() {
        let e = err(&GOOD.replace("console=ttyS0,115200n8", "root=/dev/sda3"));
        assert!(e.contains("set by the image builder"), "{e}");
    }

    #[test]
    fn bad_url() {
        let e = err(&GOOD.replace("http://10.0.2.2:8000/", "ftp://x"));
        assert!(e.contains("remote url"), "{e}");
    }

    #[test]
    fn file_from_src_relative_to_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), "hello\n").unwrap();
        let text = GOOD.replace("content = \"vm\\n\"", "src = \"motd\"\nmode = \"0600\"");
        let r = Recipe::parse(&dir.path().join("r.toml"), &text).unwrap();
        assert_eq!(r.files[0].content, b"hello\n");
        assert_eq!(r.files[0].mode, 0o600);
        let e = Recipe::parse(
            &dir.path().join("r.toml"),
            &text.replace("\"motd\"", "\"nope\""),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("nope"), "{e:#}");
    }

    #[test]
    fn shipped_recipe_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image-recipes/qemu-bios.toml");
        let r = Recipe::read(&path).unwrap();
        assert!(r.kernel_args.iter().any(|k| k == "console=ttyS0,115200n8"));
        assert_eq!(r.bootloader, Bootloader::GrubI386Pc);
        assert!(!r.secure_boot);
    }

    #[test]
    fn shipped_uefi_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let r = Recipe::read(&dir.join("image-recipes/qemu-uefi.toml")).unwrap();
        assert_eq!(r.bootloader, Bootloader::GrubEfi);
        assert!(r.secure_boot);
        let roles: Vec<Role> = r.partitions.iter().map(|p| p.role).collect();
        assert_eq!(roles, [Role::Esp, Role::Boot, Role::Root]);
        for path in ["image-recipes/cloud-raw.toml", "tests/vm/auto-recipe.toml"] {
            let r = Recipe::read(&dir.join(path)).unwrap();
            assert_eq!(r.bootloader, Bootloader::Hybrid, "{path}");
            assert!(r.secure_boot, "{path}");
            let roles: Vec<Role> = r.partitions.iter().map(|p| p.role).collect();
            assert_eq!(
                roles,
                [Role::BiosBoot, Role::Esp, Role::Boot, Role::Root],
                "{path}"
            );
        }
    }

    /// GOOD as a UEFI recipe: the bios-boot partition replaced by a 127 MiB ESP.
    fn efi(bootloader: &str, extra: &str) -> String {
        GOOD.replace(
            "size = \"4GiB\"\n",
            &format!("size = \"4GiB\"\nbootloader = \"{bootloader}\"\n{extra}"),
        )
        .replace(
            "role = \"bios-boot\"\nsize = \"1MiB\"",
            "role = \"esp\"\nsize = \"127MiB\"",
        )
    }

    #[test]
    fn grub_efi_recipe() {
        let r = parse(&efi("grub-efi", "secure-boot = true\n")).unwrap();
        assert_eq!(r.bootloader, Bootloader::GrubEfi);
        assert!(r.secure_boot);
        assert_eq!(r.partitions[0].role, Role::Esp);
        assert_eq!(r.partitions[0].label, "esp");
        assert_eq!(r.partitions[0].size, Some(127 * MIB));
        let r = parse(&efi("grub-efi", "")).unwrap();
        assert!(!r.secure_boot);
    }

    #[test]
    fn hybrid_recipe() {
        let text = GOOD
            .replace("size = \"4GiB\"\n", "size = \"4GiB\"\nbootloader = \"hybrid\"\n")
            .replace(
                "[[partitions]]\nrole = \"boot\"",
                "[[partitions]]\nrole = \"esp\"\nsize = \"64MiB\"\n\n[[partitions]]\nrole = \"boot\"",
            );
        let r = parse(&text).unwrap();
        assert_eq!(r.bootloader, Bootloader::Hybrid);
        let roles: Vec<Role> = r.partitions.iter().map(|p| p.role).collect();
        assert_eq!(roles, [Role::BiosBoot, Role::Esp, Role::Boot, Role::Root]);
        // hybrid without the ESP, and without bios-boot.
        let e = err(&GOOD.replace(
            "size = \"4GiB\"\n",
            "size = \"4GiB\"\nbootloader = \"hybrid\"\n",
        ));
        assert!(
            e.starts_with("r.toml:")
                && e.contains(
                    "\"esp\" partition is required (hybrid needs bios-boot, esp, boot, root)"
                ),
            "{e}"
        );
        let e = err(&efi("hybrid", ""));
        assert!(e.contains("\"bios-boot\" partition is required"), "{e}");
    }

    #[test]
    fn grub_efi_needs_an_esp() {
        // The first partition starts at line 9 (after the added bootloader line).
        let text = GOOD.replace(
            "size = \"4GiB\"\n",
            "size = \"4GiB\"\nbootloader = \"grub-efi\"\n",
        );
        let e = err(&text);
        // GOOD's bios-boot partition is refused first, at its role.
        assert!(
            e.starts_with("r.toml:10:8:") && e.contains("for BIOS boot"),
            "{e}"
        );
        let text = text.replace(
            "[[partitions]]\nrole = \"bios-boot\"\nsize = \"1MiB\"\n\n",
            "",
        );
        let e = err(&text);
        assert!(
            e.contains("an \"esp\" partition is required")
                || e.contains("a \"esp\" partition is required"),
            "{e}"
        );
        assert!(e.starts_with("r.toml:"), "{e}");
    }

    #[test]
    fn esp_with_bios_bootloader() {
        let e = err(&efi("grub-i386-pc", ""));
        assert!(
            e.starts_with("r.toml:10:8:") && e.contains("is for UEFI"),
            "{e}"
        );
    }

    #[test]
    fn ignition_platform() {
        assert_eq!(parse(GOOD).unwrap().ignition_platform, "metal");
        let r = parse(&GOOD.replace(
            "size = \"4GiB\"\n",
            "size = \"4GiB\"\nignition-platform = \"qemu\"\n",
        ));
        assert_eq!(r.unwrap().ignition_platform, "qemu");
        let e = err(&GOOD.replace(
            "size = \"4GiB\"\n",
            "size = \"4GiB\"\nignition-platform = \"QEMU\"\n",
        ));
        assert!(e.contains("ignition-platform") && e.contains(":3:"), "{e}");
    }

    #[test]
    fn secure_boot_needs_uefi() {
        let e = err(&GOOD.replace("size = \"4GiB\"\n", "size = \"4GiB\"\nsecure-boot = true\n"));
        assert!(
            e.starts_with("r.toml:3:15:") && e.contains("needs a UEFI bootloader"),
            "{e}"
        );
        // false is fine anywhere.
        parse(&GOOD.replace(
            "size = \"4GiB\"\n",
            "size = \"4GiB\"\nsecure-boot = false\n",
        ))
        .unwrap();
        let e = err(&efi("grub-efi", "secure-boot = \"yes\"\n"));
        assert!(e.starts_with("r.toml:4:15:"), "{e}");
    }

    #[test]
    fn unknown_bootloader() {
        let e = err(&GOOD.replace(
            "size = \"4GiB\"\n",
            "size = \"4GiB\"\nbootloader = \"systemd-boot\"\n",
        ));
        assert!(
            e.starts_with("r.toml:3:14:") && e.contains("\"grub-efi\""),
            "{e}"
        );
    }

    #[test]
    fn esp_size_and_label() {
        let e = err(&efi("grub-efi", "").replace("127MiB", "16MiB"));
        assert!(
            e.starts_with("r.toml:11:8:") && e.contains("at least 33 MiB"),
            "{e}"
        );
        let e = err(&efi("grub-efi", "").replace(
            "role = \"esp\"\n",
            "role = \"esp\"\nlabel = \"EFI-SYSTEM-1\"\n",
        ));
        assert!(
            e.starts_with("r.toml:11:9:") && e.contains("at most 11"),
            "{e}"
        );
        let e = err(&GOOD
            .replace(
                "size = \"4GiB\"\n",
                "size = \"4GiB\"\nbootloader = \"grub-efi\"\n",
            )
            .replace(
                "role = \"bios-boot\"\nsize = \"1MiB\"\n\n[[partitions]]\n",
                "",
            )
            .replace(
                "role = \"root\"",
                "role = \"root\"\nsize = \"1GiB\"\n\n[[partitions]]\nrole = \"esp\"",
            ));
        assert!(e.contains("the ESP needs a `size`"), "{e}");
    }
}
