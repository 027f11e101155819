//! `cairn`, the on-host agent and admin CLI of Cairn: it follows an OS ref on an OSTree remote,
//! stages new deployments, rolls back, pins and cleans up, and keeps the GRUB menu in step.
//!
//! Layout: [`cli`] parses arguments and prints; the domain modules do the work.
//! [`sysroot`] is the only module that holds libostree deployments and converts them into plain
//! [`sysroot::DeploymentInfo`] values; [`pull`] talks to remotes; [`deploy`], [`check`],
//! [`rollback`], [`cleanup`] and [`kargs`] are the operations; [`verify`] decides which
//! commits are accepted (signatures); [`status`] assembles what
//! `cairn status` shows.
//!
//! Automatic updates: [`agent`] (the state machine of one run) asks a [`strategy`] (periodic
//! windows in [`weekly`], FleetLock through [`fleet_lock`]) when to reboot; [`health`] checks a
//! boot, [`bootcount`] lets GRUB count boot attempts, [`failed`] remembers versions never to
//! apply again.

pub mod agent;
pub mod cli;
pub mod config;
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
