//! The contract between Cairn's composer and updater (see `ARCHITECTURE.md` at the repository
//! root, "Contracts").
//!
//! What lives here is what both sides must agree on: how refs are spelled, how versions are
//! numbered and ordered, which commit metadata keys carry what, how commits are signed, where
//! shared files sit in the tree ([`tree`]), and the signed update policy that decides which
//! host is offered which release, and when ([`rollout`]). It also re-exports the `ostree`,
//! `gio` and `glib` crates so that every Cairn crate links one version of them.
//! It holds no composing or deploying logic.

pub mod bundle;
pub mod delta_reference;
pub mod history;
pub mod metadata;
pub mod object_sizes;
pub mod osref;
pub mod rollout;
pub mod signature;
pub mod toml_file;
pub mod tree;
pub mod version;

pub use gio;
pub use glib;
pub use ostree;
