//! TOML files that Cairn reads (manifests, image recipes, host configuration): parse one with
//! spans kept, and point errors at `file:line:col` of the value they are about.
//!
//! Not for validation rules: each format keeps its own; this only says *where*.

use std::fmt::Display;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;

/// The text of one TOML file and the path that names it in errors.
#[derive(Debug, Clone, Copy)]
pub struct TomlFile<'a> {
    /// The file, as the user named it.
    pub path: &'a Path,
    /// Its whole text.
    pub text: &'a str,
}

impl<'a> TomlFile<'a> {
    /// `text` read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        TomlFile { path, text }
    }

    /// `path:line:col` (1-based, columns in characters) of the start of `span`.
    pub fn at(&self, span: Range<usize>) -> String {
        let offset = span.start.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{col}", self.path.display())
    }

    /// An error about the value `s`, prefixed with where it stands.
    pub fn err<T>(&self, s: &Spanned<T>, msg: impl Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {msg}", self.at(s.span()))
    }

    /// Parses the text into `T`; a syntax error or an unknown key says `file:line:col`.
    pub fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        toml::from_str(self.text).map_err(|e| {
            let at = e
                .span()
                .map(|s| self.at(s))
                .unwrap_or_else(|| self.path.display().to_string());
            anyhow::anyhow!("{at}: {}", e.message().trim_end())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        let file = TomlFile::new(Path::new("m.toml"), text);
        assert_eq!(file.at(0..1), "m.toml:1:1");
        let quote = text.find('"').unwrap();
        assert_eq!(file.at(quote..quote + 1), "m.toml:2:6");
        assert_eq!(file.at(999..999), "m.toml:3:1");
    }

    #[test]
    fn parse_errors_name_the_position() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let text = "a = 1\nb = 2\n";
        let err = TomlFile::new(Path::new("c.toml"), text)
            .parse::<T>()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:1: unknown field `b`"), "{err}");
    }
}
