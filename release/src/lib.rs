//! The contract between Cairn's composer and updater (see `ARCHITECTURE.md`, "Contracts").
//!
//! What lives here is what both sides must agree on: how refs are spelled, how versions are
//! numbered and ordered, which commit metadata keys carry what, and how commits are signed. It also re-exports the
//! `ostree`, `gio` and `glib` crates so that every Cairn crate links one version of them.
//! It holds no composing or deploying logic.

pub mod bundle;
pub mod history;
pub mod metadata;
pub mod osref;
pub mod signature;
pub mod toml_file;
pub mod version;

pub use gio;
pub use glib;
pub use ostree;
