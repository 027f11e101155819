//! Release versions: `PREFIX.N`, numbered per ref and never reused.
//!
//! A manifest names a prefix such as `2026.11`; the composer appends a counter (`2026.11.0`,
//! `2026.11.1`, …). Versions order by their dot-separated numeric components, so `2026.11.10`
//! is newer than `2026.11.9`; a non-numeric component compares as text after numbers.

use std::cmp::Ordering;

use anyhow::{bail, Result};

/// Checks that a version prefix is usable: dot-separated, non-empty parts of ASCII letters,
/// digits, `-` or `_`.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        bail!("version prefix is empty");
    }
    for part in prefix.split('.') {
        if part.is_empty()
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "version prefix {prefix:?} must be dot-separated parts of letters, digits, '-' or '_' (e.g. \"2026.11\")"
            );
        }
    }
    Ok(())
}

/// The counter of `version` if it is `prefix.N`, else `None`.
pub fn counter_of(prefix: &str, version: &str) -> Option<u64> {
    let rest = version.strip_prefix(prefix)?.strip_prefix('.')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The next version for `prefix`, given every version the ref has ever carried.
pub fn next_version<'a>(prefix: &str, existing: impl IntoIterator<Item = &'a str>) -> String {
    let next = existing
        .into_iter()
        .filter_map(|v| counter_of(prefix, v))
        .max()
        .map_or(0, |n| n + 1);
    format!("{prefix}.{next}")
}

/// Orders two versions by their dot-separated components, numerically where both are numbers.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_version_starts_at_zero() {
        assert_eq!(next_version("2026.11", []), "2026.11.0");
    }

    #[test]
    fn next_version_follows_the_highest_counter_not_the_last() {
        let seen = [
            "2026.11.0",
            "2026.11.10",
            "2026.11.9",
            "2026.10.44",
            "2026.11.x",
        ];
        assert_eq!(next_version("2026.11", seen), "2026.11.11");
    }

    #[test]
    fn other_prefixes_do_not_count() {
        assert_eq!(next_version("2026.12", ["2026.11.3"]), "2026.12.0");
        assert_eq!(counter_of("2026.1", "2026.11.3"), None);
    }

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare("2026.11.10", "2026.11.9"), Ordering::Greater);
        assert_eq!(compare("2026.11.1", "2026.11.1"), Ordering::Equal);
        assert_eq!(compare("2026.11", "2026.11.0"), Ordering::Less);
        assert_eq!(compare("2026.12.0", "2026.11.99"), Ordering::Greater);
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(validate_prefix("2026.11").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("2026..11").is_err());
        assert!(validate_prefix("2026 11").is_err());
    }
}
