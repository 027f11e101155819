//! `cairn-compose image`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::image::{build, Format, ImageOptions};
use crate::interrupt;
use crate::progress::Progress;

/// Build a bootable disk image (GPT, GRUB for BIOS) of a commit, following a recipe.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image recipe (TOML), e.g. image-recipes/qemu-bios.toml.
    recipe: PathBuf,
    /// The OSTree archive repository holding the commit.
    #[arg(long)]
    repo: PathBuf,
    /// The ref to deploy; the host follows it (as REMOTE:REF).
    #[arg(long = "ref")]
    osref: String,
    /// A version on the ref's history [default: the ref's newest commit].
    #[arg(long)]
    version: Option<String>,
    /// The image file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// The URL hosts update from, instead of the recipe's.
    #[arg(long)]
    remote_url: Option<String>,
    /// Output format [default: qcow2 for a .qcow2 name, else raw].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// An Ignition config (spec 3.x JSON) to embed: the first boot applies it instead of the
    /// platform's (checked with ignition-validate; the tree must carry Ignition).
    #[arg(long, value_name = "FILE")]
    ignition: Option<PathBuf>,
    /// A URL (http, https, tftp) the first boot fetches its Ignition config from, with the
    /// network up by DHCP in the initramfs for that boot only; the recipe must say
    /// ignition-platform = "metal".
    #[arg(long, value_name = "URL", conflicts_with = "ignition")]
    ignition_url: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Builds the image and prints what was built.
pub fn run(a: ImageArgs) -> Result<()> {
    interrupt::install()?;
    let progress = Progress::new();
    let out = build(
        &ImageOptions {
            recipe: a.recipe,
            repo: a.repo,
            osref: a.osref,
            version: a.version,
            output: a.output,
            remote_url: a.remote_url,
            format: a.format,
            ignition: a.ignition,
            ignition_url: a.ignition_url,
        },
        &progress,
    )?;
    let elapsed = progress.elapsed();
    progress.finish();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("Wrote {} ({:?})", out.output.display(), out.format);
    println!(
        "  {} {} ({})",
        out.osref,
        out.version.as_deref().unwrap_or("unversioned"),
        out.commit
    );
    println!(
        "  disk:    {} MiB, {} MiB allocated",
        out.disk_size >> 20,
        out.allocated >> 20
    );
    println!(
        "  boot:    {}{}",
        out.bootloader.name(),
        if out.secure_boot {
            ", Secure Boot (signed shim and GRUB)"
        } else {
            ""
        }
    );
    if !out.esp_files.is_empty() {
        println!("  ESP:     /EFI/BOOT/ {}", out.esp_files.join(" "));
    }
    println!("  kargs:   {}", out.kernel_args.join(" "));
    if out.ignition_first_boot {
        println!(
            "  ignition: on first boot, config {}",
            match (&out.ignition_config, &out.ignition_url) {
                (Some(p), _) => format!("embedded from {}", p.display()),
                (None, Some(url)) => format!("fetched from {url} (DHCP in the initramfs)"),
                (None, None) => "from the platform (ignition.platform.id)".to_string(),
            }
        );
        if let Some(kargs) = &out.ignition_first_boot_kargs {
            println!("  first boot only: {kargs}");
        }
    }
    println!("  default: {}", out.default_entry);
    println!("  took:    {elapsed:.1}s");
    Ok(())
}
