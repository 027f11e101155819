//! The command line: argument definitions and dispatch. Each subcommand's module parses its
//! arguments, calls one domain operation and prints the result; no work happens here.

mod agent;
mod check;
mod container;
mod health;
mod kargs;
mod manage;
mod status;
mod update;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Settings};
use crate::host::sysroot::Host;

/// Updates and rolls back this Cairn host (an OSTree-based Debian system).
#[derive(Debug, Parser)]
#[command(name = "cairn", version, after_help = crate::exit::HELP)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The OSTree sysroot to operate on. Not the booted one: deployments are written directly
    /// instead of staged.
    #[arg(long, global = true, value_name = "PATH", default_value = "/")]
    pub sysroot: PathBuf,
    /// The stateroot (OS name); default: the booted one, else the only one.
    #[arg(long = "os", global = true, value_name = "NAME")]
    pub os: Option<String>,
    /// Configuration file; default: /etc/cairn/config.toml of the host.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Fail (exit 75) instead of waiting when another process holds the sysroot lock.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Log debug messages.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the deployments: booted, pending, rollback, and whether an update is known.
    Status(status::StatusArgs),
    /// Ask the remote whether a newer release exists (exit 0: yes, 77: up to date) and what
    /// taking it costs: bytes to download, room in /boot and in the repository's filesystem.
    Check(check::CheckArgs),
    /// Fetch the newest release of the followed ref and make it the next boot (never older).
    Upgrade(update::UpgradeArgs),
    /// Deploy a given version or commit of the followed ref (older ones allowed).
    Deploy(update::DeployArgs),
    /// Make the previous deployment the next boot (again: swap back).
    Rollback(manage::RollbackArgs),
    /// Follow another ref or stream and deploy its newest release.
    Rebase(update::RebaseArgs),
    /// Keep a deployment: cleanup and upgrades never remove it.
    Pin(manage::PinArgs),
    /// Undo `pin`.
    Unpin(manage::PinArgs),
    /// Remove rollback and pending deployments (except pinned and booted) and prune the repo.
    Cleanup(manage::CleanupArgs),
    /// Show or change the kernel arguments of the next boot.
    Kargs(kargs::KargsArgs),
    /// The automatic update agent (`cairn agent run-once`, run by cairn-agent.service).
    Agent(agent::AgentArgs),
    /// Health checks after boot (`cairn health run`, run by cairn-health.service).
    Health(health::HealthArgs),
    /// The containers declared in /etc/cairn/containers (run by cairn-container@NAME.service).
    Container(container::ContainerArgs),
}

impl Cli {
    /// Whether the command was asked for JSON (`--json`); `main` then reports an error as a
    /// JSON object on stdout too.
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Command::Status(a) => a.json,
            Command::Check(a) => a.json,
            Command::Upgrade(a) => a.json,
            Command::Deploy(a) => a.json,
            Command::Rebase(a) => a.json,
            Command::Rollback(a) => a.json,
            Command::Pin(a) | Command::Unpin(a) => a.json,
            Command::Cleanup(a) => a.json,
            Command::Container(a) => container::wants_json(a),
            Command::Kargs(_) | Command::Agent(_) | Command::Health(_) => false,
        }
    }
}

/// What every command works with.
pub struct Context {
    /// The opened sysroot.
    pub host: Host,
    /// The configuration, validated once.
    pub settings: Settings,
    /// Whether to wait for the sysroot lock.
    pub wait: bool,
}

impl Context {
    fn new(global: &Global, writable: bool) -> Result<Self> {
        let host = Host::open(&global.sysroot, global.os.as_deref(), writable)?;
        let config_path = global.config.clone().or_else(|| default_config_path(&host));
        let settings = match config_path {
            Some(p) => config::load(&p)?,
            None => Settings::default(),
        };
        crate::host::grub::configure(&host, settings.grub_generator.as_deref());
        Ok(Context {
            host,
            settings,
            wait: !global.no_wait,
        })
    }
}

fn default_config_path(host: &Host) -> Option<PathBuf> {
    if host.path() == Path::new("/") {
        return Some(Path::new("/etc").join(config::RELATIVE_PATH));
    }
    host.etc_dir().map(|etc| etc.join(config::RELATIVE_PATH))
}

/// Runs a parsed command line; returns the exit code of a success.
pub fn run(cli: Cli) -> Result<ExitCode> {
    // Declared containers are /etc and podman's business: no sysroot (the generator runs
    // before anything but / is mounted).
    if let Command::Container(a) = &cli.command {
        return container::run(a);
    }
    // Everything but `status` may write (even `check` fetches into the repository).
    let writable = !matches!(cli.command, Command::Status(_));
    let ctx = Context::new(&cli.global, writable)?;
    match cli.command {
        Command::Status(a) => status::run(&ctx, &a),
        Command::Check(a) => check::run(&ctx, &a),
        Command::Upgrade(a) => update::upgrade(&ctx, &a),
        Command::Deploy(a) => update::deploy(&ctx, &a),
        Command::Rebase(a) => update::rebase(&ctx, &a),
        Command::Rollback(a) => manage::rollback(&ctx, &a),
        Command::Pin(a) => manage::pin(&ctx, &a, true),
        Command::Unpin(a) => manage::pin(&ctx, &a, false),
        Command::Cleanup(a) => manage::cleanup(&ctx, &a),
        Command::Kargs(a) => kargs::run(&ctx, &a),
        Command::Agent(a) => agent::run(&ctx, &a),
        Command::Health(a) => health::run(&ctx, &a),
        Command::Container(a) => container::run(&a),
    }
}

/// Prints the `--json` form of an error: `{"error": "...", "exit_code": N}` (the same code the
/// process exits with).
pub fn print_json_error(err: &anyhow::Error) -> Result<()> {
    print_json(&serde_json::json!({
        "error": format!("{err:#}"),
        "exit_code": crate::exit::code_for(err),
    }))
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    use std::io::Write;
    writeln!(out)?;
    Ok(())
}
