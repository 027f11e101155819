//! Progress for long work: a spinner with the current step on a terminal, plain lines otherwise.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports the steps of one operation.
pub struct Progress {
    start: Instant,
    bar: Option<ProgressBar>,
    steps: RefCell<Vec<(String, Instant)>>,
}

impl Progress {
    /// A reporter for stderr.
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix}: {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            start: Instant::now(),
            bar,
            steps: RefCell::new(Vec::new()),
        }
    }

    /// Starts a step: a line that stays.
    pub fn step(&self, what: &str) {
        self.steps
            .borrow_mut()
            .push((what.to_string(), Instant::now()));
        if crate::logging::to_journal() {
            // The journal stamps each record; a spinner has no terminal to draw on.
            crate::logging::message(what);
            return;
        }
        let line = format!("[{:>5.1}s] {what}", self.start.elapsed().as_secs_f64());
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.set_prefix(what.to_string());
                bar.set_message("");
            }
            None => eprintln!("{line}"),
        }
    }

    /// Detail within a step (a subprocess's latest line): spinner text on a terminal; on a
    /// plain stream only lines that mark progress (`I:` lines of mmdebstrap) are printed.
    pub fn detail(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(line.to_string()),
            None if line.starts_with("I: ") => eprintln!("    {line}"),
            None => {}
        }
    }

    /// Each step and the seconds it took (until the next step, or now for the last).
    pub fn timings(&self) -> Vec<(String, f64)> {
        let steps = self.steps.borrow();
        let now = Instant::now();
        steps
            .iter()
            .enumerate()
            .map(|(i, (name, at))| {
                let end = steps.get(i + 1).map_or(now, |(_, next)| *next);
                (name.clone(), end.duration_since(*at).as_secs_f64())
            })
            .collect()
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
