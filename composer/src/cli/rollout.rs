//! `cairn-compose rollout`: edit and show the signed update policy.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::rollout::{self, Change, EditOptions, Edited, ReleaseView};
use cairn_release::rollout::policy::now;

/// Stage releases: edit the signed update policy (REPO/cairn-policy.json and its .sig) that
/// tells hosts which release they may take and when. Each edit bumps the serial, sets a new
/// expiry and re-signs the file.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Schedule a release's rollout: --percentage of hosts at --at, rising linearly to all of
    /// them over --duration.
    Start {
        #[command(flatten)]
        target: Target,
        /// Share of hosts offered the release at the start (0–100).
        #[arg(long, value_name = "P", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        percentage: u8,
        /// Time from the start until every host is offered it (e.g. 48h, 7days, 0s).
        #[arg(long, value_name = "D", default_value = "24h", value_parser = parse_duration)]
        duration: u64,
        /// When the rollout starts: `now` or an RFC 3339 UTC time (2026-12-02T06:00:00Z).
        #[arg(long, value_name = "TIME", default_value = "now")]
        at: String,
        #[command(flatten)]
        signing: Signing,
    },
    /// Halt a release: hosts not yet on it stop being offered it (hosts on it stay).
    Pause {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signing: Signing,
    },
    /// Un-halt a release.
    Resume {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signing: Signing,
    },
    /// Remove a release from the policy (no longer offered; hosts on it are not moved). To
    /// withdraw a bad release and move hosts off it, use `deadend`.
    Pull {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signing: Signing,
    },
    /// Make a release a barrier: hosts below it must update to it before anything newer.
    Barrier {
        #[command(flatten)]
        target: Target,
        /// Remove the flag instead.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        signing: Signing,
    },
    /// Make a release a dead end: never offered; hosts on it move off it.
    Deadend {
        #[command(flatten)]
        target: Target,
        /// Remove the flag instead.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        signing: Signing,
    },
    /// Re-sign the policy unchanged with a new expiry (run it before the policy expires).
    Refresh {
        /// The OSTree repository.
        #[arg(long)]
        repo: PathBuf,
        #[command(flatten)]
        signing: Signing,
    },
    /// Print the policy: serial, expiry, signatures, each release with its share now.
    Show {
        /// The OSTree repository.
        #[arg(long)]
        repo: PathBuf,
        /// Only this stream.
        #[arg(long, value_name = "REF")]
        stream: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which release of which stream.
#[derive(Debug, Args)]
struct Target {
    /// The OSTree repository; the policy sits at its top.
    #[arg(long)]
    repo: PathBuf,
    /// The stream, by its ref (e.g. cairn/bookworm/x86_64/stable).
    #[arg(long, value_name = "REF")]
    stream: String,
    /// The release version (on the ref's history).
    #[arg(long, value_name = "V")]
    version: String,
}

/// How to sign, and output.
#[derive(Debug, Args)]
struct Signing {
    /// The ed25519 secret key file (from `cairn-compose keygen`).
    #[arg(long, value_name = "KEYFILE")]
    sign_key: PathBuf,
    /// How long hosts accept the new policy (e.g. 7days, 36h).
    #[arg(long, value_name = "D", default_value = "7days", value_parser = parse_duration)]
    valid_for: u64,
    /// Re-sign even when the current policy is not signed by --sign-key (a key rotation).
    #[arg(long)]
    allow_other_signer: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<u64, String> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{e} (e.g. 24h, 7days, 90min)"))
}

/// Runs rollout.
pub fn run(a: RolloutArgs) -> Result<()> {
    let now = now();
    let (target, signing, change) = match a.command {
        RolloutCommand::Show { repo, stream, json } => {
            return show(&repo, stream.as_deref(), json, now)
        }
        RolloutCommand::Start {
            target,
            percentage,
            duration,
            at,
            signing,
        } => {
            let at = rollout::parse_at(&at, now).context("--at")?;
            let change = Change::Start {
                percentage,
                duration_secs: duration,
                at: Some(at),
            };
            (Some(target), signing, change)
        }
        RolloutCommand::Pause { target, signing } => (Some(target), signing, Change::Pause),
        RolloutCommand::Resume { target, signing } => (Some(target), signing, Change::Resume),
        RolloutCommand::Pull { target, signing } => (Some(target), signing, Change::Pull),
        RolloutCommand::Barrier {
            target,
            clear,
            signing,
        } => (Some(target), signing, Change::Barrier { clear }),
        RolloutCommand::Deadend {
            target,
            clear,
            signing,
        } => (Some(target), signing, Change::Deadend { clear }),
        RolloutCommand::Refresh { repo, signing } => {
            let opts = options(repo, None, signing_ref(&signing), now);
            return print_edit(&rollout::edit(&opts, &Change::Refresh)?, signing.json);
        }
    };
    let target = target.context("internal: no target")?;
    let opts = options(
        target.repo,
        Some((target.stream, target.version)),
        signing_ref(&signing),
        now,
    );
    print_edit(&rollout::edit(&opts, &change)?, signing.json)
}

fn signing_ref(s: &Signing) -> (PathBuf, u64, bool) {
    (s.sign_key.clone(), s.valid_for, s.allow_other_signer)
}

fn options(
    repo: PathBuf,
    target: Option<(String, String)>,
    (sign_key, valid_for_secs, allow_other_signer): (PathBuf, u64, bool),
    now: u64,
) -> EditOptions {
    let (stream, version) = target.map_or((None, None), |(s, v)| (Some(s), Some(v)));
    EditOptions {
        repo,
        stream,
        version,
        sign_key,
        valid_for_secs,
        allow_other_signer,
        now,
    }
}

fn print_edit(e: &Edited, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(e)?);
        return Ok(());
    }
    match (&e.stream, &e.release, &e.before) {
        (Some(s), Some(r), _) => println!("{s}: {}", describe(r)),
        (Some(s), None, Some(b)) => println!("{s}: removed {} from the policy", b.version),
        _ => {}
    }
    println!(
        "Wrote {} (serial {}, expires {}), signed by {}",
        e.policy.display(),
        e.serial,
        e.expires,
        e.signed_by
    );
    Ok(())
}

fn show(repo: &std::path::Path, stream: Option<&str>, json: bool, now: u64) -> Result<()> {
    let s = rollout::show(repo, stream, now)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "{}: serial {}, expires {}{}, {}",
        s.policy.display(),
        s.serial,
        s.expires,
        if s.expired {
            " (EXPIRED: hosts refuse it; run `rollout refresh`)"
        } else {
            ""
        },
        match s.signatures {
            0 => "UNSIGNED (hosts refuse it)".to_string(),
            n => format!("{n} signature(s)"),
        }
    );
    for (name, releases) in &s.streams {
        println!("{name}");
        for r in releases {
            println!("  {}", describe(r));
        }
    }
    Ok(())
}

fn describe(r: &ReleaseView) -> String {
    let mut out = format!("{} ({})", r.version, &r.commit[..r.commit.len().min(12)]);
    match &r.rollout {
        Some(ro) => out.push_str(&format!(
            ": from {} at {}% to 100% at {}, now {}%",
            ro.start, ro.start_percentage, ro.complete_at, ro.percentage_now
        )),
        None => out.push_str(": no rollout scheduled"),
    }
    for (flag, name) in [
        (r.barrier, "barrier"),
        (r.deadend, "DEAD END"),
        (r.halted, "HALTED"),
    ] {
        if flag {
            out.push_str(&format!(" [{name}]"));
        }
    }
    out
}
