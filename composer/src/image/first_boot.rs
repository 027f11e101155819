//! First boot with Ignition: the flag GRUB reads and the config an image may carry.
//!
//! A tree with Ignition's dracut module provisions itself the first time a disk boots, the
//! Fedora CoreOS way: the image builder writes [`FIRSTBOOT_FLAG`] on `/boot`; while it is there,
//! GRUB's menu (`/usr/lib/cairn/grub-menu`) adds `ignition.firstboot` to the kernel arguments,
//! so Ignition's generator in the initramfs runs its stages; the first boot that reaches the
//! real root removes the flag (and the embedded config), so Ignition never runs again, whatever
//! is deployed later. Ignition reads the platform's config (`ignition.platform.id`, a recipe
//! kernel argument: qemu's `fw_cfg`, a cloud's metadata) unless the image embeds one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use cairn_release::tree::{relative, EMBEDDED_IGNITION, FIRSTBOOT_FLAG, IGNITION_DRACUT_MODULE};

use super::bootloader::commit_file;
use crate::command::CommandExt;

/// What the flag file says to whoever finds it on `/boot`. GRUB `source`s it after it found it,
/// so a line `set cairn_firstboot_kargs="…"` adds kernel arguments to the first boot only.
const FLAG_TEXT: &str =
    "# Written by cairn-compose image: this disk has not been provisioned yet.\n\
# While this file exists, GRUB boots with ignition.firstboot and Ignition runs in the initramfs;\n\
# cairn-firstboot-complete.service removes it after the first boot that reached the real root.\n";

/// Whether the commit's initramfs carries Ignition.
pub fn tree_has_ignition(repo: &Path, commit: &str) -> Result<bool> {
    Ok(commit_file(repo, commit, IGNITION_DRACUT_MODULE)?.is_some())
}

/// Reads an Ignition config and checks it with `ignition-validate` (package ignition, the same
/// version as the tree's); the error names the file and says what is wrong.
pub fn read_config(path: &Path) -> Result<Vec<u8>> {
    let config = fs::read(path).with_context(|| format!("Reading {}", path.display()))?;
    let out = Command::new("ignition-validate")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .context("Running ignition-validate (package ignition)")?;
    if !out.status.success() {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        bail!(
            "{} is not a valid Ignition config (ignition-validate says: {}); write Ignition spec 3.x JSON (Butane's output), e.g. {{\"ignition\": {{\"version\": \"3.3.0\"}}}}",
            path.display(),
            said.trim()
        );
    }
    Ok(config)
}

/// The network for the first boot of a platform whose config comes from a metadata service
/// (a cloud's: `aws`, `gcp`, `openstack`, …): DHCP in the initramfs, for that boot only.
/// Without it nothing brings an interface up there and Ignition's fetch stage retries
/// forever. `qemu` (fw_cfg) and `metal` (nothing, or a URL: [`url_kargs`]) need none.
pub const NETWORK_KARGS: &str = "ip=dhcp rd.neednet=1";

/// The first boot's extra kernel arguments for `platform` when no config URL is given.
pub fn platform_kargs(platform: &str) -> Option<&'static str> {
    (!matches!(platform, "qemu" | "metal")).then_some(NETWORK_KARGS)
}

/// The first boot's extra kernel arguments for a config Ignition fetches from `url`. Ignition
/// reads `ignition.config.url` on the metal platform only, so the recipe must say
/// `ignition-platform = "metal"`. The initramfs brings the network up by DHCP for that boot
/// (`ip=dhcp rd.neednet=1`, read by systemd-network-generator); later boots never wait for
/// a network in the initramfs. The URL ends up in a GRUB string and on the kernel's command
/// line, hence the characters refused.
pub fn url_kargs(url: &str, platform: &str, recipe: &Path) -> Result<String> {
    let rest = ["http://", "https://", "tftp://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme));
    let Some(rest) = rest else {
        bail!("--ignition-url {url:?}: Ignition fetches http://, https:// or tftp:// URLs here; give one of those");
    };
    if rest.is_empty() || rest.starts_with('/') {
        bail!("--ignition-url {url:?} names no host");
    }
    if let Some(c) = url
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\'' | '$' | '\\' | '`'))
    {
        bail!("--ignition-url {url:?}: {c:?} cannot go on a kernel command line through GRUB; percent-encode it");
    }
    if platform != "metal" {
        bail!(
            "--ignition-url: Ignition reads ignition.config.url only on the metal platform, and {} has ignition-platform = {platform:?}; set ignition-platform = \"metal\" in the recipe",
            recipe.display()
        );
    }
    Ok(format!("ignition.config.url={url} {NETWORK_KARGS}"))
}

/// Arms the first boot on the mounted `/boot` filesystem: the flag (with `kargs`, kernel
/// arguments for the first boot only), and with `config` the embedded config (readable by
/// root only: it may hold secrets). `work` is scratch space.
pub fn arm(boot_fs: &Path, config: Option<&[u8]>, kargs: Option<&str>, work: &Path) -> Result<()> {
    let flag = boot_fs.join(relative(FIRSTBOOT_FLAG));
    let mut text = FLAG_TEXT.to_string();
    if let Some(kargs) = kargs {
        text.push_str(&format!("set cairn_firstboot_kargs=\"{kargs}\"\n"));
    }
    fs::write(&flag, text).with_context(|| format!("Writing {}", flag.display()))?;
    let Some(config) = config else {
        return Ok(());
    };
    let stage = work.join("ignition-cpio");
    let user = stage.join("usr/lib/ignition");
    fs::create_dir_all(&user).with_context(|| format!("Creating {}", user.display()))?;
    fs::write(user.join("user.ign"), config)
        .with_context(|| format!("Writing {}", user.display()))?;
    let cpio = boot_fs.join(relative(EMBEDDED_IGNITION));
    if let Some(dir) = cpio.parent() {
        fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("Setting the mode of {}", dir.display()))?;
    }
    // newc is the format the kernel unpacks; the directories come first so that they exist
    // before the file, owned by root whoever builds the image.
    Command::new("sh")
        .arg("-c")
        .arg(
            "printf '%s\\n' usr usr/lib usr/lib/ignition usr/lib/ignition/user.ign \
             | cpio --quiet -o -H newc -R 0:0 --reproducible -O \"$1\"",
        )
        .arg("sh")
        .arg(&cpio)
        .current_dir(&stage)
        .run_checked()
        .context("Packing the Ignition config with cpio")?;
    fs::set_permissions(&cpio, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("Setting the mode of {}", cpio.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_boot_kargs_of_urls_and_platforms() {
        let recipe = Path::new("r.toml");
        assert_eq!(
            url_kargs("http://10.0.2.2:8080/a.ign?x=1&y=%20", "metal", recipe).unwrap(),
            "ignition.config.url=http://10.0.2.2:8080/a.ign?x=1&y=%20 ip=dhcp rd.neednet=1"
        );
        let e = url_kargs("http://h/a.ign", "qemu", recipe)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r.toml") && e.contains("ignition-platform = \"metal\""),
            "{e}"
        );
        assert_eq!(platform_kargs("openstack"), Some(NETWORK_KARGS));
        assert_eq!(platform_kargs("aws"), Some(NETWORK_KARGS));
        assert_eq!(platform_kargs("qemu"), None);
        assert_eq!(platform_kargs("metal"), None);
        for bad in [
            "ftp://h/a",
            "h/a.ign",
            "http://",
            "http:///a",
            "http://h/a b",
            "http://h/$x",
            "http://h/\"x",
        ] {
            assert!(url_kargs(bad, "metal", recipe).is_err(), "{bad}");
        }
    }
}
