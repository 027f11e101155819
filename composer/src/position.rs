//! `file:line:col` for a byte offset in a TOML file: how manifests and image recipes point at
//! the value an error is about.

use std::path::Path;

/// `path:line:col` (1-based) of byte `offset` in `text`.
pub fn file_line_col(path: &Path, text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{}:{line}:{col}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(file_line_col(Path::new("m.toml"), text, 0), "m.toml:1:1");
        assert_eq!(
            file_line_col(Path::new("m.toml"), text, text.find('"').unwrap()),
            "m.toml:2:6"
        );
        assert_eq!(file_line_col(Path::new("m.toml"), text, 999), "m.toml:3:1");
    }
}
