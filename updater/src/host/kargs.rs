//! Kernel argument lists: editing them (`--append`, `--delete`) and hiding the `ostree=`
//! argument libostree manages itself. Changing a deployment's arguments is
//! [`crate::ops::kargs`].

use anyhow::{bail, Result};

/// Requested changes.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    /// Arguments to add (`KEY` or `KEY=VALUE`); already present ones are left alone.
    pub append: Vec<String>,
    /// Arguments to remove: `KEY` removes every `KEY`/`KEY=…`; `KEY=VALUE` that one.
    pub delete: Vec<String>,
}

impl Edit {
    /// Whether no change was requested.
    pub fn is_empty(&self) -> bool {
        self.append.is_empty() && self.delete.is_empty()
    }

    /// Applies the edit to `args` (deletions first).
    pub fn apply(&self, args: &[String]) -> Result<Vec<String>> {
        let mut out: Vec<String> = args.to_vec();
        for d in &self.delete {
            check_arg(d)?;
            let before = out.len();
            if d.contains('=') {
                out.retain(|a| a != d);
            } else {
                out.retain(|a| key(a) != d);
            }
            if out.len() == before {
                bail!("kernel argument {d:?} is not set");
            }
        }
        for a in &self.append {
            check_arg(a)?;
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        Ok(out)
    }
}

fn key(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

fn check_arg(arg: &str) -> Result<()> {
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        bail!("kernel argument {arg:?} is empty or contains whitespace");
    }
    if key(arg) == "ostree" {
        bail!("the ostree= kernel argument is managed by libostree");
    }
    Ok(())
}

/// Kernel arguments without libostree's `ostree=`.
pub fn user_kargs(all: &[String]) -> Vec<String> {
    all.iter().filter(|a| key(a) != "ostree").cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn edits_delete_then_append() {
        let e = Edit {
            append: v("console=ttyS0 quiet"),
            delete: v("splash"),
        };
        assert_eq!(
            e.apply(&v("root=x quiet splash")).unwrap(),
            v("root=x quiet console=ttyS0")
        );
    }

    #[test]
    fn delete_by_key_or_exact() {
        let e = Edit {
            append: vec![],
            delete: v("console"),
        };
        assert_eq!(e.apply(&v("console=tty0 a console=ttyS0")).unwrap(), v("a"));
        let e = Edit {
            append: vec![],
            delete: v("console=tty0"),
        };
        assert_eq!(
            e.apply(&v("console=tty0 console=ttyS0")).unwrap(),
            v("console=ttyS0")
        );
    }

    #[test]
    fn bad_edits_fail() {
        let missing = Edit {
            append: vec![],
            delete: v("nope"),
        };
        assert!(missing.apply(&v("a")).is_err());
        let ostree = Edit {
            append: v("ostree=/x"),
            delete: vec![],
        };
        assert!(ostree.apply(&v("a")).is_err());
    }

    #[test]
    fn ostree_karg_is_hidden() {
        assert_eq!(
            user_kargs(&v("root=x ostree=/ostree/boot.1/a/b/0 quiet")),
            v("root=x quiet")
        );
    }
}
