//! Post-processing: from the tree mmdebstrap installed to the tree libostree can deploy.
//!
//! Order matters: the manifest's customizations run first, while the tree is still a normal
//! Debian root (scripts can use `/etc`, `/var` and `/dev`), and the initramfs is made again if
//! they shipped a dracut module or configuration; then the kernel moves under
//! `/usr/lib/modules`; then the layout of `ARCHITECTURE.md` is made (`/var` emptied into
//! tmpfiles.d, `/etc` moved to `/usr/etc`, the symlinks, no device nodes).

pub(crate) mod chroot;
pub mod customize;
pub mod kernel;
pub mod layout;
pub mod paths;

use std::path::Path;

use anyhow::Result;

use crate::interrupt;
use crate::manifest::Manifest;
use crate::progress::Progress;

/// What post-processing learned about the tree.
#[derive(Debug, Clone)]
pub struct TreeFacts {
    /// The kernel version, for bootable trees.
    pub kernel: Option<String>,
}

/// Runs every post-processing step on `tree`.
pub fn run(
    tree: &Path,
    manifest: &Manifest,
    source_date_epoch: u64,
    progress: &Progress,
) -> Result<TreeFacts> {
    progress.step("Applying the manifest's files, users, units and scripts");
    customize::apply(tree, manifest, progress)?;
    interrupt::check()?;
    if let Some(input) = crate::initramfs::remake_for_files(
        tree,
        manifest.files.iter().map(|f| f.dest.as_str()),
        source_date_epoch,
    )? {
        progress.detail(&format!(
            "made the initramfs again: the manifest ships the dracut input {input}"
        ));
    }
    interrupt::check()?;
    progress.step("Moving the kernel and initramfs under /usr/lib/modules");
    let kernel = kernel::relocate(tree, manifest.bootable)?;
    interrupt::check()?;
    progress.step("Making the OSTree layout (/usr/etc, empty /var, symlinks)");
    layout::apply(tree)?;
    Ok(TreeFacts { kernel })
}
