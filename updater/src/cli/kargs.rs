//! `cairn kargs`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::host::kargs::Edit;
use crate::ops::kargs;

/// Arguments of `cairn kargs`.
#[derive(Debug, Args)]
pub struct KargsArgs {
    /// Add a kernel argument (`KEY` or `KEY=VALUE`); repeatable.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub append: Vec<String>,
    /// Remove a kernel argument: `KEY` (every value) or `KEY=VALUE`; repeatable.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub delete: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(ctx: &Context, args: &KargsArgs) -> Result<ExitCode> {
    let edit = Edit {
        append: args.append.clone(),
        delete: args.delete.clone(),
    };
    if edit.is_empty() {
        let current = kargs::current(&ctx.host)?;
        if args.json {
            super::print_json(&current)?;
        } else {
            println!("{}", current.join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let o = kargs::change(&ctx.host, &edit, ctx.wait)?;
    if args.json {
        super::print_json(&o)?;
    } else if o.mode.is_none() {
        println!("Kernel arguments unchanged: {}", o.after.join(" "));
    } else {
        println!("Kernel arguments for the next boot: {}", o.after.join(" "));
        if let Some(mode) = o.mode {
            println!("{}", mode.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}
