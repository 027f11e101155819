//! Staged rollouts: the signed update policy served beside an OSTree repository, and the
//! deterministic rules a host follows to decide which release it takes, and when.
//!
//! The format is described for operators in `release/POLICY.md`.
//!
//! - [`policy`]: the document (`cairn-policy.json`), parsed strictly and validated once into a
//!   [`Policy`] the rest of the code can trust; editing helpers for the composer.
//! - [`verify`]: what a host checks before it believes a policy (signature, serial, expiry).
//! - [`wave`]: a host's place in a rollout, from a stable hash of its machine-id and stream.
//! - [`offer`]: given a verified policy, a stream, the host's version, its wave and the time,
//!   which release is offered, or when one will be.
//!
//! Nothing here does I/O on a host or stores state: the last accepted serial is a value the
//! caller passes in and keeps. Fetching the policy, remembering what was accepted and acting on
//! the decision are the updater's work.

pub mod offer;
pub mod policy;
pub mod verify;
pub mod wave;

pub use offer::{offer, Decision};
pub use policy::{Policy, Release, Rollout};
pub use verify::{verify, Accepted, PolicyError};
pub use wave::Wave;
