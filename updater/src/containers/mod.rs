//! Containers declared for the host: one `/etc/cairn/containers/NAME.toml` per container, run
//! by `cairn-container@NAME.service` (podman 4.3, no quadlet), started at boot, kept across OS
//! updates (the declaration is `/etc`, three-way merged; images and volumes are `/var`) and
//! covered by the health checks.
//!
//! - [`spec`]: the file, validated.
//! - [`podman`]: the `podman run` a declaration means; `cairn container run NAME` (the unit's
//!   `ExecStart`) replaces itself with it.
//! - [`generator`]: the systemd generator that wants each declared unit from
//!   `multi-user.target` and gives it the declared restart policy.
//! - [`state`]: what is running, for `cairn container list` and the health check.

pub mod generator;
pub mod podman;
pub mod spec;
pub mod state;
