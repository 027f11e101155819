//! A host's wave: its place in [0, 1) in every rollout of a stream. A release whose share has
//! reached the wave is offered to the host.
//!
//! The wave is sha256 over the machine-id (trimmed), a NUL byte and the stream's ref; the first
//! 8 bytes of the digest, big-endian, divided by 2^64. The same host and stream give the same
//! wave on every machine, build and Rust version (never `DefaultHasher`, whose output is not
//! stable), and one host lands in unrelated waves on different streams. An operator may set a
//! *wariness* instead (`0.0`: a canary, first in every rollout; `1.0`: only once complete).

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// A host's wave, in [0, 1] (1.0 only from a wariness).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Wave(f64);

impl Wave {
    /// The wave of the host with `machine_id` (as in `/etc/machine-id`) on `stream` (its ref).
    pub fn of_host(machine_id: &str, stream: &str) -> Self {
        let mut h = Sha256::new();
        h.update(machine_id.trim().as_bytes());
        h.update([0u8]);
        h.update(stream.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 2^64 as f64 is exact; the quotient is below 1 for every u64 but rounds to 1.0 for
        // the top 2^10 values: clamp to the largest f64 below 1.
        let w = u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0;
        Wave(w.min(1.0 - f64::EPSILON / 2.0))
    }

    /// An operator's wariness, in [0, 1].
    pub fn wariness(value: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&value) {
            bail!("wariness {value} is outside [0, 1] (0.0: a canary, 1.0: the most careful)");
        }
        Ok(Wave(value))
    }

    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_wave_is_stable_and_documented() {
        let w = Wave::of_host(
            "0123456789abcdef0123456789abcdef\n",
            "cairn/bookworm/x86_64/stable",
        );
        // Computed by hand: sha256(b"0123456789abcdef0123456789abcdef\0cairn/bookworm/x86_64/stable").
        let digest =
            Sha256::digest(b"0123456789abcdef0123456789abcdef\0cairn/bookworm/x86_64/stable");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) as f64 / 2f64.powi(64);
        assert_eq!(w.value(), expected);
        assert_eq!(
            w,
            Wave::of_host(
                "0123456789abcdef0123456789abcdef",
                "cairn/bookworm/x86_64/stable"
            )
        );
        assert_ne!(
            w,
            Wave::of_host(
                "0123456789abcdef0123456789abcdef",
                "cairn/bookworm/x86_64/testing"
            )
        );
        assert!((0.0..1.0).contains(&w.value()));
    }

    #[test]
    fn waves_spread_evenly() {
        let n = 10_000;
        let below_quarter = (0..n)
            .filter(|i| Wave::of_host(&format!("{i:032x}"), "s/s/s/s").value() < 0.25)
            .count();
        // Binomial(10000, 0.25): sd ≈ 43; 5 sd either way.
        assert!((2285..=2715).contains(&below_quarter), "{below_quarter}");
    }

    #[test]
    fn wariness_is_bounded() {
        assert_eq!(Wave::wariness(0.0).unwrap().value(), 0.0);
        assert!(Wave::wariness(1.0).is_ok());
        assert!(Wave::wariness(-0.1).is_err());
        assert!(Wave::wariness(f64::NAN).is_err());
    }
}
