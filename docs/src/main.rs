//! `cargo run -p cairn-docs [DIR]`: writes the man pages and completions (default: this
//! checkout's `docs/`), then commit them; `cargo test -p cairn-docs` fails until you do.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(cairn_docs::docs_dir);
    match cairn_docs::write(&dir) {
        Ok(files) => {
            println!("wrote {} files under {}", files.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
