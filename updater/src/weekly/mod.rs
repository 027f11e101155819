//! Weekly maintenance windows (UTC), as the `periodic` strategy uses them.
//!
//! A window is a start (day of week and time of day) and a length in minutes; a calendar is a
//! set of windows. Times are reduced to *minutes of the week* (Monday 00:00 UTC is 0), so a
//! window that crosses midnight or the end of the week (Sunday 23:00 for 2 hours) is plain
//! modular arithmetic. This module knows nothing about configuration files or reboots.

use std::fmt;

use anyhow::{bail, Result};

/// Minutes in a week.
pub const WEEK_MINUTES: u32 = 7 * 24 * 60;
const DAY_MINUTES: u32 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// One recurring weekly window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, in minutes since Monday 00:00 UTC (0..[`WEEK_MINUTES`]).
    pub start: u32,
    /// Length in minutes (1..=[`WEEK_MINUTES`]).
    pub length: u32,
}

impl Window {
    /// Whether `minute_of_week` falls inside the window.
    pub fn contains(&self, minute_of_week: u32) -> bool {
        (minute_of_week + WEEK_MINUTES - self.start) % WEEK_MINUTES < self.length
    }

    /// Minutes from `minute_of_week` until the window next opens (0 if it opens now).
    pub fn minutes_until_start(&self, minute_of_week: u32) -> u32 {
        (self.start + WEEK_MINUTES - minute_of_week) % WEEK_MINUTES
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = DAY_NAMES[(self.start / DAY_MINUTES) as usize % 7];
        let m = self.start % DAY_MINUTES;
        write!(
            f,
            "{day} {:02}:{:02} UTC for {} min",
            m / 60,
            m % 60,
            self.length
        )
    }
}

/// A set of weekly windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// The windows, in configuration order.
    pub windows: Vec<Window>,
}

impl Calendar {
    /// Adds one window per day in `days`, each starting at `start_time` (`HH:MM`, UTC) and
    /// lasting `length_minutes`.
    pub fn add(&mut self, days: &[u32], start_minute_of_day: u32, length_minutes: u32) {
        for &d in days {
            self.windows.push(Window {
                start: d * DAY_MINUTES + start_minute_of_day,
                length: length_minutes,
            });
        }
    }

    /// Whether the Unix time `now` (seconds) is inside some window.
    pub fn contains(&self, now: u64) -> bool {
        let m = minute_of_week(now);
        self.windows.iter().any(|w| w.contains(m))
    }

    /// Seconds from `now` until the next window opens; `None` without windows. 0 if `now` is
    /// inside a window.
    pub fn seconds_until_open(&self, now: u64) -> Option<u64> {
        if self.contains(now) {
            return Some(0);
        }
        let m = minute_of_week(now);
        let into_minute = now % 60;
        self.windows
            .iter()
            .map(|w| u64::from(w.minutes_until_start(m)) * 60 - into_minute)
            .min()
    }
}

/// Minutes since Monday 00:00 UTC of the week containing the Unix time `t` (seconds).
pub fn minute_of_week(t: u64) -> u32 {
    let days = t / 86_400;
    // 1970-01-01 was a Thursday: day 3 when Monday is 0.
    let weekday = ((days + 3) % 7) as u32;
    let minute_of_day = ((t % 86_400) / 60) as u32;
    weekday * DAY_MINUTES + minute_of_day
}

/// Parses a day name (`Mon`, `monday`, …; case-insensitive) into 0 (Monday) … 6 (Sunday).
pub fn parse_day(s: &str) -> Result<u32> {
    let lower = s.to_ascii_lowercase();
    for (i, name) in DAY_NAMES.iter().enumerate() {
        let short = name.to_ascii_lowercase();
        if lower == short || (lower.len() > 3 && lower.starts_with(&short) && full_day(i) == lower)
        {
            return Ok(i as u32);
        }
    }
    bail!("{s:?} is not a day of the week (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
}

fn full_day(i: usize) -> &'static str {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][i]
}

/// Parses `HH:MM` (24-hour, UTC) into minutes since midnight.
pub fn parse_time_of_day(s: &str) -> Result<u32> {
    let parsed = s.split_once(':').and_then(|(h, m)| {
        let ok = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        if !ok(h) || !ok(m) {
            return None;
        }
        Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?))
    });
    match parsed {
        Some((h, m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => bail!("{s:?} is not a time of day as HH:MM (00:00 to 23:59, UTC)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Monday 2026-11-02 00:00:00 UTC.
    const MONDAY: u64 = 1_793_577_600;

    #[test]
    fn minute_of_week_starts_on_monday() {
        assert_eq!(minute_of_week(MONDAY), 0);
        assert_eq!(
            minute_of_week(MONDAY + 86_400 * 6 + 23 * 3600 + 59 * 60),
            WEEK_MINUTES - 1
        );
        assert_eq!(minute_of_week(MONDAY + 86_400 * 7), 0);
        assert_eq!(
            minute_of_week(0),
            3 * DAY_MINUTES,
            "the epoch was a Thursday"
        );
    }

    #[test]
    fn days_and_times_parse() {
        assert_eq!(parse_day("Mon").unwrap(), 0);
        assert_eq!(parse_day("sunday").unwrap(), 6);
        assert!(parse_day("Sunnday").is_err());
        assert_eq!(parse_time_of_day("23:30").unwrap(), 23 * 60 + 30);
        assert!(parse_time_of_day("24:00").is_err());
        assert!(parse_time_of_day("7:00").is_err());
    }
}
