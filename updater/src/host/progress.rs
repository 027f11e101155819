//! Pull progress: an indicatif bar when stderr is a terminal, plain lines otherwise (journal,
//! pipes, tests), fed by libostree's `AsyncProgress`.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cairn_release::glib;
use cairn_release::ostree;
use indicatif::{ProgressBar, ProgressStyle};

/// Counters libostree reports during a pull.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Objects fetched so far.
    pub fetched: u32,
    /// Objects requested so far (grows while metadata is scanned).
    pub requested: u32,
    /// Metadata objects scanned.
    pub scanned_metadata: u32,
    /// Bytes transferred.
    pub bytes: u64,
}

impl Counters {
    fn read(p: &ostree::AsyncProgress) -> Self {
        let u = |k: &str| {
            p.variant(k)
                .and_then(|v: glib::Variant| v.get::<u32>())
                .unwrap_or(0)
        };
        Counters {
            fetched: u("fetched"),
            requested: u("requested"),
            scanned_metadata: u("scanned-metadata"),
            bytes: p
                .variant("bytes-transferred")
                .and_then(|v| v.get::<u64>())
                .unwrap_or(0),
        }
    }
}

struct Display {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    last: Counters,
    label: String,
}

/// A progress display bound to one pull.
pub struct PullProgress {
    progress: ostree::AsyncProgress,
    display: Rc<RefCell<Display>>,
    started: Instant,
}

impl PullProgress {
    /// A display for a pull described by `label` (e.g. `origin:cairn/…/stable`).
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} objects, {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("Fetching {label}"));
            bar
        });
        let display = Rc::new(RefCell::new(Display {
            bar,
            last_line: None,
            last: Counters::default(),
            label: label.to_string(),
        }));
        let progress = ostree::AsyncProgress::new();
        let d = Rc::clone(&display);
        progress.connect_changed(move |p| {
            let c = Counters::read(p);
            if let Ok(mut d) = d.try_borrow_mut() {
                d.update(c);
            }
        });
        PullProgress {
            progress,
            display,
            started: Instant::now(),
        }
    }

    /// The libostree object to pass to the pull.
    pub(crate) fn ostree(&self) -> &ostree::AsyncProgress {
        &self.progress
    }

    /// Ends the display and returns the final counters.
    pub fn finish(self) -> Counters {
        self.progress.finish();
        let c = Counters::read(&self.progress);
        let d = self.display.borrow();
        if let Some(bar) = &d.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "Fetched {} objects ({}) for {} in {:.1}s",
            c.fetched,
            human_bytes(c.bytes),
            d.label,
            self.started.elapsed().as_secs_f64()
        );
        c
    }
}

impl Display {
    fn update(&mut self, c: Counters) {
        if c == self.last {
            return;
        }
        self.last = c;
        if let Some(bar) = &self.bar {
            bar.set_length(u64::from(c.requested));
            bar.set_position(u64::from(c.fetched));
            bar.set_message(human_bytes(c.bytes));
            return;
        }
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if due {
            self.last_line = Some(Instant::now());
            eprintln!(
                "Fetching {}: {}/{} objects, {} metadata scanned, {}",
                self.label,
                c.fetched,
                c.requested,
                c.scanned_metadata,
                human_bytes(c.bytes)
            );
        }
    }
}

/// `1234567` → `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
