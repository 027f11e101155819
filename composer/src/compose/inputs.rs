//! The inputs hash: what decides whether a compose would build anything new
//! (`cairn.inputs-sha256` in the commit metadata; equal hashes mean "unchanged, write nothing").

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_release::metadata::Package;
use sha2::{Digest, Sha256};

use crate::manifest::{FileSource, Manifest};
use crate::resolve::sha256_file;

/// sha256 over what determines the tree: the composer's version, the merged manifest with every
/// file it names replaced by a hash of its content, and the resolved package set.
pub fn inputs_sha256(manifest: &Manifest, packages: &[Package]) -> Result<String> {
    let mut value = serde_json::to_value(manifest)?;
    if let Some(obj) = value.as_object_mut() {
        // Where the manifest was read from does not change what it builds.
        obj.remove("files_read");
        let debs: Result<Vec<String>> =
            manifest.local_debs.iter().map(|d| sha256_file(d)).collect();
        obj.insert("local_debs".into(), serde_json::to_value(debs?)?);
        let files: Result<Vec<serde_json::Value>> = manifest
            .files
            .iter()
            .map(|f| {
                let content = match &f.source {
                    FileSource::Path(p) => tree_sha256(p)?,
                    FileSource::Content(c) => hex::encode(Sha256::digest(c.as_bytes())),
                };
                Ok(serde_json::json!({ "dest": f.dest, "mode": f.mode, "sha256": content }))
            })
            .collect();
        obj.insert("files".into(), serde_json::Value::Array(files?));
    }
    let mut h = Sha256::new();
    h.update(concat!("cairn-compose ", env!("CARGO_PKG_VERSION"), "\n"));
    h.update(serde_json::to_vec(&value)?);
    for p in packages {
        h.update(format!("\n{} {} {}", p.name, p.version, p.architecture));
    }
    Ok(hex::encode(h.finalize()))
}

/// A hash of a file, or of a directory's names, modes, link targets and contents.
fn tree_sha256(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).with_context(|| format!("Reading {}", p.display()))?;
        let rel = p
            .strip_prefix(path)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        h.update(format!("{rel}\0{:o}\0", m.mode()));
        if m.file_type().is_symlink() {
            h.update(fs::read_link(&p)?.to_string_lossy().as_bytes());
        } else if m.is_dir() {
            let mut children: Vec<PathBuf> =
                fs::read_dir(&p)?.flatten().map(|e| e.path()).collect();
            children.sort();
            children.reverse();
            stack.extend(children);
        } else {
            h.update(sha256_file(&p)?.as_bytes());
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_in(dir: &Path, motd: &str) -> Manifest {
        fs::write(dir.join("motd"), motd).unwrap();
        fs::write(
            dir.join("m.toml"),
            "os = \"t\"\nversion-prefix = \"1\"\n[sources]\nsuite = \"bookworm\"\n[[files]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
        )
        .unwrap();
        Manifest::load(&dir.join("m.toml")).unwrap()
    }

    fn pkg(version: &str) -> Vec<Package> {
        vec![Package {
            name: "a".into(),
            version: version.into(),
            architecture: "all".into(),
        }]
    }

    #[test]
    fn inputs_hash_follows_content_not_location() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let a = inputs_sha256(&manifest_in(one.path(), "hi"), &pkg("1")).unwrap();
        let b = inputs_sha256(&manifest_in(two.path(), "hi"), &pkg("1")).unwrap();
        assert_eq!(a, b, "the same manifest elsewhere is the same input");
        let c = inputs_sha256(&manifest_in(two.path(), "changed"), &pkg("1")).unwrap();
        assert_ne!(a, c, "a changed file is a changed input");
        let d = inputs_sha256(&manifest_in(one.path(), "hi"), &pkg("2")).unwrap();
        assert_ne!(a, d, "a changed package version is a changed input");
    }
}
