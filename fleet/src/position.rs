//! `FILE:LINE:COL` for a byte offset in a text file: how configuration errors point at the
//! value they are about.

use std::path::Path;

/// `path:line:col` (both counted from 1; columns in characters) of byte `offset` in `text`.
pub fn file_line_col(path: &Path, text: &str, offset: usize) -> String {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = 1 + before.bytes().filter(|b| *b == b'\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = 1 + before[line_start..].chars().count();
    format!("{}:{line}:{col}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "x = 1\nné = \"v\"\n";
        let p = Path::new("c.toml");
        assert_eq!(file_line_col(p, text, 0), "c.toml:1:1");
        assert_eq!(
            file_line_col(p, text, text.find('"').unwrap()),
            "c.toml:2:6"
        );
        assert_eq!(file_line_col(p, text, 10_000), "c.toml:3:1");
        // An offset inside a multi-byte character does not panic.
        assert_eq!(file_line_col(p, text, 8), "c.toml:2:2");
    }
}
