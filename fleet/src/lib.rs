//! cairn-fleet: a FleetLock reboot coordinator for fleets of Cairn (and Zincati) hosts, with
//! all of its state in etcd v3, so that several copies can serve behind one address.
//!
//! - [`protocol`]: the FleetLock messages and their checks; [`token`]: the id alphabet.
//! - [`coordinator`]: the decisions and the etcd key layout; [`etcd`]: the v3 JSON gateway.
//! - [`halt`]: outcome reports and the automatic halt of a bad release.
//! - [`server`]: the HTTP server; [`cli`]: the commands; [`config`]: the configuration.
//! - [`sim`]: a rollout simulation over the real policy code (`cairn_release::rollout`).

pub mod cli;
pub mod config;
pub mod coordinator;
pub mod etcd;
pub mod halt;
pub mod logging;
pub mod position;
pub mod protocol;
pub mod server;
pub mod sim;
pub mod token;
