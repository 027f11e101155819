//! Host plumbing: the sysroot and everything that reads or writes the host's disks and
//! remotes on behalf of the operations. Nothing here decides *whether* to change the host;
//! that is [`crate::ops`] (by hand) and the automation ([`crate::agent`], [`crate::health`]).
//!
//! [`sysroot`] is the only module that holds libostree deployments and converts them into plain
//! [`sysroot::DeploymentInfo`] values; [`pull`] talks to remotes (with [`progress`]);
//! [`source`] says what a host follows; [`policy`] fetches and checks the remote's update policy over [`http`]; [`verify`] decides which commits are accepted
//! (signatures); [`space`] refuses a deployment `/boot` cannot hold and [`root_space`] one whose objects the repository's filesystem cannot; [`download_size`] says what a pull will fetch; [`grub`] chooses the GRUB menu generator and [`bootcount`] lets GRUB count boot
//! attempts; [`kargs`] edits kernel argument lists; [`import`] writes a checked bundle into the
//! repository; [`state`] keeps the small JSON files under
//! `/var/lib/cairn`; [`reboot`] restarts the machine and [`logind`] says who that would disturb.

pub mod bootcount;
pub mod download_size;
pub mod grub;
pub mod http;
pub mod import;
pub mod kargs;
pub mod logind;
pub mod policy;
pub mod progress;
pub mod pull;
pub mod reboot;
pub mod remote_delta;
pub mod root_space;
pub mod source;
pub mod space;
pub mod state;
pub mod sysroot;
pub mod verify;
