//! Host ids and group names: the FleetLock protocol's alphabet, `^[a-zA-Z0-9.-]+$`.
//!
//! The same check guards configuration (group names) and requests (ids and groups), so a name
//! that could not be requested can not be configured either. `_` is outside the alphabet.

/// The longest id or group accepted. The protocol sets no bound; this one keeps etcd keys and
/// log lines small.
pub const MAX_LEN: usize = 253;

/// Whether `s` matches `^[a-zA-Z0-9.-]+$` and is at most [`MAX_LEN`] bytes long.
pub fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_alphabet() {
        for ok in [
            "a",
            "Z9",
            "node-1.example",
            "default",
            "..",
            "-",
            "0123456789abcdef",
        ] {
            assert!(valid(ok), "{ok:?}");
        }
        for bad in [
            "",
            "a_b",
            "a b",
            "a/b",
            "é",
            "a\n",
            "a:b",
            "a\0",
            "*",
            "a%2F",
            "groupe\u{301}",
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
        assert!(valid(&"a".repeat(MAX_LEN)));
        assert!(!valid(&"a".repeat(MAX_LEN + 1)));
    }
}
