//! The commit metadata of a composed version (the keys are `cairn_release::metadata`'s; what
//! each means: `ARCHITECTURE.md`, "Contracts").

use cairn_release::glib::{self, prelude::*};
use cairn_release::metadata::{self as meta, Package};

use crate::manifest::Manifest;

/// What the new commit says about itself.
pub struct CommitFacts<'a> {
    /// The new version.
    pub version: &'a str,
    /// The resolved package set.
    pub packages: &'a [Package],
    /// [`super::inputs_sha256`] of the compose.
    pub inputs: &'a str,
    /// The kernel version, if the tree is bootable.
    pub kernel: Option<&'a str>,
    /// `SOURCE_DATE_EPOCH` of the compose.
    pub epoch: u64,
    /// sha256 of the kept install's package set, on an incremental install.
    pub install_base: Option<&'a str>,
}

/// The `a{sv}` commit metadata of `facts` on the manifest's ref.
pub fn commit_metadata(manifest: &Manifest, facts: &CommitFacts) -> glib::Variant {
    let CommitFacts {
        version,
        packages,
        inputs,
        kernel,
        epoch,
        install_base,
    } = *facts;
    let dict = glib::VariantDict::new(None);
    dict.insert_value(meta::VERSION, &version.to_variant());
    dict.insert_value(meta::BOOTABLE, &kernel.is_some().to_variant());
    if let Some(k) = kernel {
        dict.insert_value(meta::LINUX, &k.to_variant());
    }
    dict.insert_value(
        meta::REF_BINDING,
        &vec![manifest.osref.clone()].to_variant(),
    );
    dict.insert_value(meta::PACKAGES, &meta::packages_variant(packages));
    dict.insert_value(meta::INPUTS_SHA256, &inputs.to_variant());
    dict.insert_value(meta::SOURCE_DATE_EPOCH, &epoch.to_variant());
    if let Some(base) = install_base {
        dict.insert_value(meta::INSTALL_BASE, &base.to_variant());
    }
    dict.end()
}
