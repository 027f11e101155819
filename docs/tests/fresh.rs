//! The committed man pages and completions are exactly what the clap definitions render: a
//! changed option, help text or subcommand fails here until `cargo run -p cairn-docs` has
//! written them again and they are committed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn committed_pages_and_completions_match_the_clap_definitions() {
    let dir = cairn_docs::docs_dir();
    let rendered = cairn_docs::render().unwrap();
    let mut problems = Vec::new();
    for r in &rendered {
        match std::fs::read(dir.join(&r.path)) {
            Ok(bytes) if bytes == r.bytes => {}
            Ok(_) => problems.push(format!("{} differs", r.path.display())),
            Err(_) => problems.push(format!("{} is missing", r.path.display())),
        }
    }
    let wanted: BTreeSet<PathBuf> = rendered.iter().map(|r| r.path.clone()).collect();
    for d in cairn_docs::GENERATED_DIRS {
        for entry in std::fs::read_dir(dir.join(d))
            .into_iter()
            .flatten()
            .flatten()
        {
            let rel = PathBuf::from(d).join(entry.file_name());
            if !wanted.contains(&rel) {
                problems.push(format!("{} is no longer generated", rel.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/ is stale ({}); run `cargo run -p cairn-docs` and commit docs/",
        problems.join("; ")
    );
}

#[test]
fn every_command_has_a_page_and_the_units_point_at_one() {
    let rendered = cairn_docs::render().unwrap();
    let paths: BTreeSet<String> = rendered
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    for page in [
        "man/man8/cairn.8",
        "man/man8/cairn-upgrade.8",
        "man/man1/cairn-compose.1",
        "man/man1/cairn-compose-tree.1",
        "completions/bash/cairn",
        "completions/zsh/_cairn",
    ] {
        assert!(paths.contains(page), "{page} is not rendered: {paths:?}");
    }
    let unit =
        std::fs::read_to_string(cairn_docs::docs_dir().join("../updater/data/cairn-agent.service"))
            .unwrap();
    assert!(unit.contains("Documentation=man:cairn(8)"), "{unit}");
    for page in cairn_docs::HAND_WRITTEN {
        let text = std::fs::read_to_string(cairn_docs::docs_dir().join(page)).unwrap();
        assert!(text.starts_with(".TH "), "{page} is not a man page");
    }
}
