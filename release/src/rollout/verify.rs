//! What a host checks before it believes an update policy: a valid signature by a trusted key,
//! a serial not lower than the last one it accepted (and, at the same serial, the same bytes),
//! and an expiry still in the future.
//!
//! An expired policy is an error, never "no update": a mirror that keeps serving an old,
//! validly signed policy (a freeze attack) must become visible in `cairn status`.
//!
//! The last accepted policy is a plain [`Accepted`] value the caller keeps and passes in;
//! storing it on the host is the updater's job.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::policy::{format_time, Policy};
use crate::signature::{PublicKey, SecretKey, TrustedKeys, SIGNATURE_LEN};

/// What a host remembers of the last policy it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Its serial.
    pub serial: u64,
    /// Its expiry, seconds since the epoch.
    pub expires: u64,
    /// sha256 of its bytes (hex): another document with the same serial is refused.
    pub sha256: String,
}

/// A policy that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The policy.
    pub policy: Policy,
    /// What to remember of it (pass it as `last` next time).
    pub accepted: Accepted,
    /// The key whose signature verified.
    pub signed_by: PublicKey,
}

/// Why a policy was refused. Each says what to do in its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// No signature file, or an empty one.
    Unsigned {
        /// Where the policy came from.
        origin: String,
    },
    /// The signature file is not a whole number of 64-byte signatures.
    MalformedSignature {
        /// Where the policy came from.
        origin: String,
        /// The signature file's length.
        len: usize,
    },
    /// Signatures, none valid for a trusted key over these bytes.
    NoTrustedSignature {
        /// Where the policy came from.
        origin: String,
        /// How many signatures the file holds.
        signatures: usize,
        /// The trusted keys tried.
        keys: String,
    },
    /// Signed, but not a valid policy document.
    Malformed {
        /// The parse error, naming the file and field.
        message: String,
    },
    /// Older than the last accepted policy (a rollback, or a stale mirror).
    Rollback {
        /// Where the policy came from.
        origin: String,
        /// Its serial.
        serial: u64,
        /// The last accepted serial.
        last: u64,
    },
    /// Same serial as the last accepted policy, other content.
    Equivocation {
        /// Where the policy came from.
        origin: String,
        /// The serial.
        serial: u64,
    },
    /// Its expiry has passed.
    Expired {
        /// Where the policy came from.
        origin: String,
        /// Its serial.
        serial: u64,
        /// Its expiry, seconds since the epoch.
        expires: u64,
        /// The time of the check.
        now: u64,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Unsigned { origin } => write!(
                f,
                "{origin} is not signed (no signature beside it): refusing it; the release \
                 side must sign it (`cairn-compose rollout ... --sign-key KEYFILE`)"
            ),
            PolicyError::MalformedSignature { origin, len } => write!(
                f,
                "{origin}: its signature file has {len} bytes, not a multiple of \
                 {SIGNATURE_LEN} (raw ed25519 signatures): refusing it"
            ),
            PolicyError::NoTrustedSignature {
                origin,
                signatures,
                keys,
            } => write!(
                f,
                "{origin} carries {signatures} signature(s), none valid for a trusted key \
                 ({keys}): it was signed by another key or altered after signing; refusing it"
            ),
            PolicyError::Malformed { message } => write!(f, "{message}"),
            PolicyError::Rollback {
                origin,
                serial,
                last,
            } => write!(
                f,
                "{origin} has serial {serial}, older than serial {last} accepted before: a \
                 rollback or a stale mirror; keeping the last accepted policy"
            ),
            PolicyError::Equivocation { origin, serial } => write!(
                f,
                "{origin} has serial {serial} like the policy accepted before, but other \
                 content: each edit must bump the serial; refusing it"
            ),
            PolicyError::Expired {
                origin,
                serial,
                expires,
                now,
            } => write!(
                f,
                "{origin} (serial {serial}) expired at {} (now {}): the server is serving a \
                 stale policy, or the release side stopped re-signing it; no release is taken \
                 until a fresh one is published",
                format_time(*expires),
                format_time(*now)
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The signature file's content for `policy_bytes`, signed with `key`.
pub fn sign(policy_bytes: &[u8], key: &SecretKey) -> Vec<u8> {
    key.sign(policy_bytes).to_vec()
}

/// Checks a fetched policy: `bytes` (the document), `signature` (the `.sig` file, `None` when
/// absent), against `trusted`, after `last` (the last accepted, if any), at `now` (seconds
/// since the epoch). Checks run in that order: signature, format, serial, expiry.
pub fn verify(
    origin: &str,
    bytes: &[u8],
    signature: Option<&[u8]>,
    trusted: &TrustedKeys,
    last: Option<&Accepted>,
    now: u64,
) -> Result<Verified, PolicyError> {
    let sig = signature.unwrap_or_default();
    if sig.is_empty() {
        return Err(PolicyError::Unsigned {
            origin: origin.into(),
        });
    }
    if !sig.len().is_multiple_of(SIGNATURE_LEN) {
        return Err(PolicyError::MalformedSignature {
            origin: origin.into(),
            len: sig.len(),
        });
    }
    let sigs: Vec<Vec<u8>> = sig.chunks(SIGNATURE_LEN).map(<[u8]>::to_vec).collect();
    let Some(signed_by) = trusted.find_signer(bytes, &sigs) else {
        return Err(PolicyError::NoTrustedSignature {
            origin: origin.into(),
            signatures: sigs.len(),
            keys: trusted.describe(),
        });
    };
    let policy = Policy::parse(bytes, origin).map_err(|e| PolicyError::Malformed {
        message: format!("{e:#}"),
    })?;
    let sha256 = hex::encode(Sha256::digest(bytes));
    if let Some(last) = last {
        if policy.serial < last.serial {
            return Err(PolicyError::Rollback {
                origin: origin.into(),
                serial: policy.serial,
                last: last.serial,
            });
        }
        if policy.serial == last.serial && sha256 != last.sha256 {
            return Err(PolicyError::Equivocation {
                origin: origin.into(),
                serial: policy.serial,
            });
        }
    }
    if now >= policy.expires {
        return Err(PolicyError::Expired {
            origin: origin.into(),
            serial: policy.serial,
            expires: policy.expires,
            now,
        });
    }
    Ok(Verified {
        accepted: Accepted {
            serial: policy.serial,
            expires: policy.expires,
            sha256,
        },
        policy,
        signed_by: signed_by.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key_and_trust() -> (SecretKey, TrustedKeys) {
        let k = SecretKey::generate().unwrap();
        let trusted = TrustedKeys {
            keys: vec![k.public()],
            searched: vec![],
        };
        (k, trusted)
    }

    fn policy_bytes(serial: u64, expires: u64) -> Vec<u8> {
        Policy::empty(serial, expires).to_bytes().unwrap()
    }

    #[test]
    fn a_signed_fresh_policy_is_accepted_and_remembered() {
        let (k, trusted) = key_and_trust();
        let bytes = policy_bytes(5, NOW + 10);
        let sig = sign(&bytes, &k);
        let v = verify("p", &bytes, Some(&sig), &trusted, None, NOW).unwrap();
        assert_eq!(v.policy.serial, 5);
        assert_eq!(v.accepted.serial, 5);
        assert_eq!(v.signed_by, k.public());
        // The same document again is fine (a host re-fetches it every check).
        let again = verify("p", &bytes, Some(&sig), &trusted, Some(&v.accepted), NOW).unwrap();
        assert_eq!(again.accepted, v.accepted);
    }

    #[test]
    fn unsigned_or_foreign_signed_or_altered_is_refused() {
        let (k, trusted) = key_and_trust();
        let (other, _) = key_and_trust();
        let bytes = policy_bytes(5, NOW + 10);
        assert!(matches!(
            verify("p", &bytes, None, &trusted, None, NOW),
            Err(PolicyError::Unsigned { .. })
        ));
        assert!(matches!(
            verify("p", &bytes, Some(&[]), &trusted, None, NOW),
            Err(PolicyError::Unsigned { .. })
        ));
        assert!(matches!(
            verify("p", &bytes, Some(&[0; 63]), &trusted, None, NOW),
            Err(PolicyError::MalformedSignature { len: 63, .. })
        ));
        let foreign = sign(&bytes, &other);
        assert!(matches!(
            verify("p", &bytes, Some(&foreign), &trusted, None, NOW),
            Err(PolicyError::NoTrustedSignature { signatures: 1, .. })
        ));
        let sig = sign(&bytes, &k);
        let altered = policy_bytes(6, NOW + 10);
        assert!(matches!(
            verify("p", &altered, Some(&sig), &trusted, None, NOW),
            Err(PolicyError::NoTrustedSignature { .. })
        ));
        // Several signatures (a key rotation): any trusted one is enough.
        let both = [foreign, sig].concat();
        assert!(verify("p", &bytes, Some(&both), &trusted, None, NOW).is_ok());
    }

    #[test]
    fn a_lower_serial_or_the_same_serial_with_other_content_is_refused() {
        let (k, trusted) = key_and_trust();
        let newer = policy_bytes(7, NOW + 10);
        let last = verify("p", &newer, Some(&sign(&newer, &k)), &trusted, None, NOW)
            .unwrap()
            .accepted;
        let older = policy_bytes(6, NOW + 100);
        let e = verify(
            "p",
            &older,
            Some(&sign(&older, &k)),
            &trusted,
            Some(&last),
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            e,
            PolicyError::Rollback {
                origin: "p".into(),
                serial: 6,
                last: 7
            }
        );
        assert!(e.to_string().contains("older than serial 7"), "{e}");
        let twin = policy_bytes(7, NOW + 100);
        assert!(matches!(
            verify(
                "p",
                &twin,
                Some(&sign(&twin, &k)),
                &trusted,
                Some(&last),
                NOW
            ),
            Err(PolicyError::Equivocation { serial: 7, .. })
        ));
        let next = policy_bytes(8, NOW + 100);
        assert!(verify(
            "p",
            &next,
            Some(&sign(&next, &k)),
            &trusted,
            Some(&last),
            NOW
        )
        .is_ok());
    }

    #[test]
    fn an_expired_policy_is_an_error_that_says_so() {
        let (k, trusted) = key_and_trust();
        let bytes = policy_bytes(5, NOW);
        let e = verify(
            "http://x/cairn-policy.json",
            &bytes,
            Some(&sign(&bytes, &k)),
            &trusted,
            None,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::Expired { serial: 5, .. }));
        let text = e.to_string();
        assert!(
            text.contains("http://x/cairn-policy.json") && text.contains("expired"),
            "{text}"
        );
        assert!(verify(
            "p",
            &bytes,
            Some(&sign(&bytes, &k)),
            &trusted,
            None,
            NOW - 1
        )
        .is_ok());
    }

    #[test]
    fn a_signed_but_malformed_policy_names_the_field() {
        let (k, trusted) = key_and_trust();
        let bytes = br#"{"serial": 1, "expires": "2030-01-01T00:00:00Z", "extra": 1}"#;
        let e = verify("p.json", bytes, Some(&sign(bytes, &k)), &trusted, None, NOW).unwrap_err();
        assert!(
            e.to_string().contains("p.json") && e.to_string().contains("extra"),
            "{e}"
        );
    }
}
