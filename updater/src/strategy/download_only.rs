//! `download-only`: stage updates, never reboot into them; an administrator reboots (the
//! staged deployment is then used, with boot counting and health checks as usual).

use super::Decision;

/// Never reboot.
pub fn decide() -> Decision {
    Decision::Postpone(
        "strategy download-only: the update is staged; it is used at the next reboot".into(),
    )
}
