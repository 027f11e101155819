//! `cairn kargs`: kernel arguments of the deployment that boots next.
//!
//! Like `rpm-ostree kargs`, a change never edits a running deployment: if the default
//! deployment is booted (or the sysroot is not booted at all), a new deployment of the same
//! commit is written with the new arguments, so the change can be rolled back. A pending
//! deployment that has not booted yet is changed in place (a staged one is staged again).
//! libostree manages the `ostree=` argument itself; it is neither shown nor editable.

use anyhow::{bail, Context, Result};
use fn_error_context::context;
use serde::Serialize;

use crate::sysroot::{DeployMode, Host, Kargs};

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

/// The kernel arguments the next boot uses.
pub fn current(host: &Host) -> Result<Vec<String>> {
    let d = host
        .own_deployments()
        .into_iter()
        .next()
        .context("the stateroot has no deployment")?;
    Ok(user_kargs(&d.kargs))
}

/// What a kargs change did.
#[derive(Debug, Clone, Serialize)]
pub struct KargsOutcome {
    /// Arguments before.
    pub before: Vec<String>,
    /// Arguments now (for the next boot).
    pub after: Vec<String>,
    /// `None` if nothing changed; else whether a deployment was staged or written.
    pub mode: Option<DeployMode>,
    /// Whether the pending deployment was changed in place rather than a new one written.
    pub in_place: bool,
}

/// Applies `edit` to the next boot's kernel arguments.
#[context("Changing kernel arguments of stateroot {}", host.osname())]
pub fn change(host: &Host, edit: &Edit, wait: bool) -> Result<KargsOutcome> {
    let lock = host.lock(wait)?;
    let d = host
        .own_deployments()
        .into_iter()
        .next()
        .context("the stateroot has no deployment")?;
    let before = user_kargs(&d.kargs);
    let after = edit.apply(&before)?;
    if after == before {
        return Ok(KargsOutcome {
            before,
            after,
            mode: None,
            in_place: false,
        });
    }
    let (mode, in_place) = if d.pending && !d.staged {
        host.set_kargs_in_place(&lock, d.index, &after)?;
        (DeployMode::Written, true)
    } else {
        let refspec = d
            .refspec
            .clone()
            .with_context(|| format!("deployment {} has no origin refspec", d.index))?;
        let mode = host.deploy(&lock, &d.commit, &refspec, &Kargs::Replace(after.clone()))?;
        (mode, d.pending)
    };
    log::info!(
        "kernel arguments for the next boot of {}: {:?} -> {:?}",
        host.osname(),
        before.join(" "),
        after.join(" ")
    );
    Ok(KargsOutcome {
        before,
        after,
        mode: Some(mode),
        in_place,
    })
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
