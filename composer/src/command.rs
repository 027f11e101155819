//! The one way Cairn runs a subprocess: the command line and the end of its output go into
//! the error, so a failing mmdebstrap, apt or dracut says what it was doing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// How many trailing lines of output an error carries.
const TAIL_LINES: usize = 25;

/// Runs commands and reports their failures.
pub trait CommandExt {
    /// Runs to completion; on failure the error names the command and shows its output's end.
    fn run_checked(&mut self) -> Result<()>;
    /// Like `run_checked`, returning stdout.
    fn output_checked(&mut self) -> Result<String>;
    /// Runs with stderr and stdout merged and each line passed to `on_line` as it comes.
    fn run_streaming(&mut self, on_line: &mut dyn FnMut(&str)) -> Result<()>;
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let a = arg.to_string_lossy();
        if a.len() > 120 {
            s.push_str(&format!(
                " {}…",
                &a[..a.char_indices().nth(117).map_or(a.len(), |(i, _)| i)]
            ));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

impl CommandExt for Command {
    fn run_checked(&mut self) -> Result<()> {
        self.output_checked().map(|_| ())
    }

    fn output_checked(&mut self) -> Result<String> {
        let desc = describe(self);
        let out = self
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("Starting {desc}"))?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            bail!("{desc} failed ({}):\n{}", out.status, tail(&text));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run_streaming(&mut self, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let desc = describe(self);
        // stdout and stderr go to one pipe so lines keep their order.
        let (reader, writer) = std::io::pipe().context("Creating a pipe")?;
        let writer2 = writer.try_clone().context("Cloning a pipe")?;
        let mut child = self
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .spawn()
            .with_context(|| format!("Starting {desc}"))?;
        crate::interrupt::set_child(Some(child.id()));
        // Drop our copies of the write end so the read ends at the child's exit.
        self.stdout(Stdio::null()).stderr(Stdio::null());
        let mut kept = Vec::new();
        for line in BufReader::new(reader).lines() {
            let line = line.unwrap_or_default();
            on_line(&line);
            kept.push(line);
            if kept.len() > 4 * TAIL_LINES {
                kept.drain(..kept.len() - TAIL_LINES);
            }
        }
        let status = child
            .wait()
            .with_context(|| format!("Waiting for {desc}"))?;
        crate::interrupt::set_child(None);
        // A subprocess stopped by our own interrupt is not its failure.
        crate::interrupt::check()?;
        if !status.success() {
            bail!("{desc} failed ({status}):\n{}", tail(&kept.join("\n")));
        }
        Ok(())
    }
}
