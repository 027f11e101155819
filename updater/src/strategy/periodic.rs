//! `periodic`: stage at once, reboot only inside weekly maintenance windows (UTC).
//!
//! A clock that reads earlier than the running release's commit time is wrong (an unset RTC,
//! no time sync yet); the strategy then postpones instead of trusting it.

use super::{Decision, Moment};
use crate::weekly::Calendar;

/// Tolerance for a clock slightly behind the build machine's.
pub const CLOCK_SLACK_SECONDS: u64 = 3600;

/// The periodic strategy's windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periodic {
    /// When reboots are allowed.
    pub calendar: Calendar,
}

impl Periodic {
    /// Reboot inside a window; otherwise say when the next one opens.
    pub fn decide(&self, m: &Moment) -> Decision {
        if let Some(built) = m.booted_timestamp {
            if m.now + CLOCK_SLACK_SECONDS < built {
                return Decision::Postpone(format!(
                    "the clock ({}) is earlier than the running release's build time ({}): \
                     not trusting it for maintenance windows",
                    crate::host::state::format_time(m.now),
                    crate::host::state::format_time(built)
                ));
            }
        }
        match self.calendar.seconds_until_open(m.now) {
            Some(0) => Decision::Reboot(format!(
                "strategy periodic: inside a maintenance window ({})",
                self.describe()
            )),
            Some(wait) => Decision::Postpone(format!(
                "strategy periodic: outside the maintenance windows; the next opens at {} (in {} min)",
                crate::host::state::format_time(m.now + wait),
                wait.div_ceil(60)
            )),
            None => Decision::Postpone("strategy periodic: no maintenance windows".into()),
        }
    }

    /// The windows, for messages.
    pub fn describe(&self) -> String {
        self.calendar
            .windows
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
