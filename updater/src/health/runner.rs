//! Runs one health check program with a timeout and captures the end of its output.
//!
//! The program runs in its own process group; on timeout the whole group is killed, so a
//! script's children do not outlive it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How much of a check's output is kept (its end).
pub const OUTPUT_TAIL: usize = 2000;

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Exit status 0.
    Passed,
    /// Another exit status (or a signal: `None`).
    Failed(Option<i32>),
    /// Killed after the timeout.
    TimedOut,
    /// It could not be started.
    NotRun(String),
}

/// A finished program.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub ending: Ending,
    /// The end of its stdout and stderr.
    pub output: String,
    /// How long it ran.
    pub duration: Duration,
}

/// Runs `program args…` with `timeout`.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Finished {
    let start = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Finished {
                ending: Ending::NotRun(format!("cannot run {}: {e}", program.display())),
                output: String::new(),
                duration: start.elapsed(),
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    drop(tx);
    let ending = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break if status.success() {
                    Ending::Passed
                } else {
                    Ending::Failed(status.code())
                }
            }
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break Ending::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                break Ending::NotRun(format!("waiting for {}: {e}", program.display()));
            }
        }
    };
    // Bounded: a pipe held open by a process outside the group must not hang us.
    let mut output = Vec::new();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        output.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&output);
    let tail_start = text
        .char_indices()
        .rev()
        .nth(OUTPUT_TAIL)
        .map_or(0, |(i, _)| i);
    Finished {
        ending,
        output: text[tail_start..].trim().to_string(),
        duration: start.elapsed(),
    }
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
