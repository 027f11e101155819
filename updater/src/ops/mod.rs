//! The operations behind the `cairn` commands, one file each: [`status`], [`check`], [`update`]
//! (`upgrade`, `deploy`, `rebase`), [`bundle`] (`upgrade --bundle`), [`rollback`], [`pin`],
//! [`cleanup`] and [`kargs`]; [`etc`] lists the `/etc` files an update kept over a new default; [`report`] is what they print with `--json`. The commands that change the booted commit only resolve a
//! target; [`apply`] is the one path that verifies, fetches, deploys and arms boot counting. The command line ([`crate::cli`]) parses, calls one of these and
//! prints; the automatic update agent calls the same ones.

pub mod apply;
pub mod bundle;
pub mod check;
pub mod cleanup;
pub mod etc;
pub mod kargs;
pub mod pin;
pub mod report;
pub mod rollback;
pub mod rollout;
pub mod status;
pub mod update;
