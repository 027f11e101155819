//! Paths inside the build tree that never lead out of it.
//!
//! A package may ship a symlink such as `/etc/x -> /home/builder/...`; following it from the
//! build machine would write outside the tree. These helpers resolve paths the way a chroot
//! would, with absolute link targets taken relative to the tree.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// Resolves `path` (absolute, as seen inside the tree) to a host path under `root`, following
/// symlinks in the parent components as the tree would see them. The last component is not
/// followed.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = components(path);
    pending.reverse();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let is_last = pending.is_empty();
        let candidate = root.join(parts.join("/")).join(&part);
        if !is_last {
            if let Ok(target) = std::fs::read_link(&candidate) {
                hops += 1;
                if hops > 40 {
                    bail!("too many symlinks resolving {path} in the tree");
                }
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    parts.clear();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
                continue;
            }
        }
        parts.push(part);
    }
    Ok(root.join(parts.join("/")))
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("/usr/lib", root.join("lib")).unwrap();
        symlink("/tmp/evil", root.join("escape")).unwrap();
        symlink("../../../../..", root.join("up")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/lib/x").unwrap(),
            root.join("usr/lib/x")
        );
        assert_eq!(
            resolve_in_root(root, "/escape/x").unwrap(),
            root.join("tmp/evil/x")
        );
        assert_eq!(
            resolve_in_root(root, "/up/etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "/lib").unwrap(),
            root.join("lib"),
            "last part not followed"
        );
    }
}
