//! Benchmark case 3: the composer's commit step against `ostree commit` on the same trees.
//!
//!     cargo bench -p cairn-composer --bench commit -- MODE TREE1 TREE2 WORKDIR
//!
//! MODE is a repository mode (`archive`, `bare-user`). In fresh repositories of that mode, the
//! composer's commit code (`cairn_composer::commit`) and the `ostree commit` CLI each write
//! TREE1 as a ref's first commit, then TREE2 as its second (a near-identical tree, as a
//! one-package recompose makes). Prints one JSON object of wall seconds. Run by `bench/run.py`,
//! which repeats it and alternates which side goes first (both read the trees through the same
//! page cache).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cairn_composer::commit::{commit, CommitRequest};
use cairn_release::{gio, glib, ostree};

const REF: &str = "bench";

fn main() -> Result<()> {
    // `cargo bench` passes `--bench` to every target; it is not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [mode, tree1, tree2, work, ..] = args.as_slice() else {
        bail!("usage: commit MODE TREE1 TREE2 WORKDIR [--cli-first]");
    };
    let cli_first = args.iter().any(|a| a == "--cli-first");
    let (tree1, tree2, work) = (Path::new(tree1), Path::new(tree2), PathBuf::from(work));
    let ours_repo = fresh_repo(&work.join(format!("ours-{mode}")), mode)?;
    let cli_repo = fresh_repo(&work.join(format!("cli-{mode}")), mode)?;

    let mut times = serde_json::Map::new();
    for (step, tree) in [("first", tree1), ("second", tree2)] {
        let ours = || commit_ours(&ours_repo, tree);
        let cli = || commit_cli(&cli_repo, tree);
        let (o, c) = if cli_first {
            let c = cli()?;
            (ours()?, c)
        } else {
            let o = ours()?;
            (o, cli()?)
        };
        times.insert(format!("ours_{step}"), o.into());
        times.insert(format!("cli_{step}"), c.into());
    }
    println!("{}", serde_json::Value::Object(times));
    Ok(())
}

fn fresh_repo(path: &Path, mode: &str) -> Result<PathBuf> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("Removing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("Creating {}", path.display()))?;
    run(Command::new("ostree")
        .arg("init")
        .arg(format!("--repo={}", path.display()))
        .arg(format!("--mode={mode}")))?;
    Ok(path.to_path_buf())
}

fn commit_ours(repo_path: &Path, tree: &Path) -> Result<f64> {
    let t = Instant::now();
    let repo = ostree::Repo::new(&gio::File::for_path(repo_path));
    repo.open(gio::Cancellable::NONE)?;
    let parent = repo.resolve_rev(REF, true)?.map(|s| s.to_string());
    let metadata = glib::VariantDict::new(None).end();
    commit(
        &repo,
        &CommitRequest {
            tree,
            osref: REF,
            parent: parent.as_deref(),
            subject: "bench",
            metadata,
            timestamp: 0,
            sign_key: None,
        },
        &gio::Cancellable::new(),
    )?;
    Ok(t.elapsed().as_secs_f64())
}

fn commit_cli(repo: &Path, tree: &Path) -> Result<f64> {
    let t = Instant::now();
    run(Command::new("ostree")
        .arg("commit")
        .arg(format!("--repo={}", repo.display()))
        .arg(format!("--branch={REF}"))
        .arg(format!("--tree=dir={}", tree.display()))
        .args(["--no-xattrs", "--subject=bench"]))?;
    Ok(t.elapsed().as_secs_f64())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("Running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
