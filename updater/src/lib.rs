//! `cairn`, the on-host agent and admin CLI of Cairn: it follows an OS ref on an OSTree remote,
//! stages new deployments, rolls back, pins and cleans up, and keeps the GRUB menu in step.
//! The design and the contracts with the composer: `ARCHITECTURE.md` at the repository root.
//!
//! Layers, each using only those below it:
//! - [`cli`] parses arguments, calls one operation and prints; `main` maps errors to exit codes
//!   ([`exit`]).
//! - [`ops`]: the operations behind the commands. Those that change the booted commit only
//!   resolve a target; [`ops::apply`] verifies, fetches, deploys and arms boot counting for all.
//! - Automation: [`agent`] (the state machine of one run) asks a [`strategy`] (periodic windows
//!   in [`weekly`], FleetLock through [`fleet_lock`]) when to reboot; [`health`] checks a boot
//!   (checks → verdict → action); [`failed`] remembers versions never to apply again.
//! - [`config`]: the configuration file parsed, merged with defaults and validated once into
//!   [`config::Settings`].
//! - [`release`]: a release (commit, version, time), its ordering and name.
//! - [`host`]: plumbing — the sysroot (the only module holding libostree deployments), pulls,
//!   signature checks, the GRUB generator, boot counting, state files, reboot.

pub mod agent;
pub mod cli;
pub mod config;
pub mod containers;
pub mod exit;
pub mod failed;
pub mod fleet_lock;
pub mod health;
pub mod host;
pub mod logging;
pub mod ops;
pub mod release;
pub mod strategy;
pub mod weekly;
