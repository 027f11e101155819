//! `cairn container`: the containers declared in `/etc/cairn/containers/NAME.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::containers::{generator, podman, spec, state};

/// Arguments of `cairn container`.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ContainerCommand,
    /// Where the declarations are.
    #[arg(long, global = true, value_name = "DIR", default_value = spec::DIR)]
    pub dir: PathBuf,
}

/// `cairn container` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List the declared containers: unit state, running or not, errors.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate declarations (files, or every one in --dir) without running anything.
    Check {
        /// Declaration files; default: all in --dir.
        files: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Start one declared container in place of this process (the `ExecStart` of
    /// cairn-container@NAME.service).
    Run {
        /// The declaration's name (`NAME` of `NAME.toml`).
        name: String,
    },
    /// The systemd generator: want every declared container's unit from multi-user.target.
    #[command(hide = true)]
    Generate {
        /// The generator's normal output directory (systemd passes three; the others are unused).
        out: PathBuf,
        /// Unused.
        rest: Vec<PathBuf>,
    },
}

/// Whether the command was asked for JSON.
pub(super) fn wants_json(args: &ContainerArgs) -> bool {
    matches!(
        args.command,
        ContainerCommand::List { json: true } | ContainerCommand::Check { json: true, .. }
    )
}

/// Runs `cairn container`; needs no sysroot.
pub(super) fn run(args: &ContainerArgs) -> Result<ExitCode> {
    match &args.command {
        ContainerCommand::List { json } => {
            let all = state::all(&args.dir);
            if *json {
                super::print_json(&all)?;
            } else if all.is_empty() {
                println!("No containers declared in {}.", args.dir.display());
            }
            if !*json {
                for c in &all {
                    println!(
                        "{:<20} {:<8} {:<10} {}{}{}",
                        c.name,
                        if c.running { "running" } else { "stopped" },
                        c.unit_state,
                        c.image.as_deref().unwrap_or("-"),
                        if c.required { "" } else { " (not required)" },
                        if c.restarts > 0 {
                            format!(" (restarted {} times)", c.restarts)
                        } else {
                            String::new()
                        }
                    );
                    if let Some(e) = &c.error {
                        println!("  error: {e}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Check { files, json } => {
            let results: Vec<(String, Result<spec::ContainerSpec>)> = if files.is_empty() {
                spec::load_all(&args.dir)
            } else {
                files
                    .iter()
                    .map(|f| (f.display().to_string(), spec::load(f)))
                    .collect()
            };
            let bad = results.iter().filter(|(_, r)| r.is_err()).count();
            if *json {
                let v: Vec<serde_json::Value> = results
                    .iter()
                    .map(|(n, r)| match r {
                        Ok(s) => serde_json::json!({"name": n, "ok": true, "spec": s}),
                        Err(e) => {
                            serde_json::json!({"name": n, "ok": false, "error": format!("{e:#}")})
                        }
                    })
                    .collect();
                super::print_json(&v)?;
            } else {
                for (n, r) in &results {
                    match r {
                        Ok(_) => println!("ok    {n}"),
                        Err(e) => println!("error {e:#}"),
                    }
                }
            }
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ContainerCommand::Run { name } => {
            if name.contains('/') {
                bail!("container name {name:?} must not contain '/'");
            }
            let s = spec::load(&args.dir.join(format!("{name}.toml")))?;
            match podman::exec(&s)? {}
        }
        ContainerCommand::Generate { out, .. } => {
            let units = generator::generate(&args.dir, out)?;
            log::debug!("wanted from multi-user.target: {}", units.join(" "));
            Ok(ExitCode::SUCCESS)
        }
    }
}
