//! Cairn's composer: resolves a manifest's Debian packages, installs them with mmdebstrap,
//! turns the tree into the OSTree layout and commits it as a new version of a ref.

pub mod bundle;
pub mod cli;
pub mod command;
pub mod commit;
pub mod compose;
pub mod delta;
pub mod exit;
pub mod history;
pub mod image;
pub mod initramfs;
pub mod install;
pub mod install_base;
pub mod interrupt;
pub mod lockfile;
pub mod logging;
pub mod manifest;
pub mod postprocess;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod resolve;
pub mod rollout;
pub mod sign;
pub mod tree_writer;
pub mod workdir;
