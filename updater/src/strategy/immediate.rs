//! `immediate`: reboot into a staged update as soon as it is staged.

use super::Decision;

/// Always reboot.
pub fn decide() -> Decision {
    Decision::Reboot("strategy immediate: reboot as soon as an update is staged".into())
}
