//! Which release a host is offered, from a verified policy, its stream, its current version,
//! its wave and the time. Pure and deterministic: the same inputs give the same [`Decision`]
//! on the host, in `cairn status` and in the fleet simulation.
//!
//! Rules, in order:
//! 1. Only releases the policy lists for the stream are ever offered, and only once their
//!    rollout has started and its share has reached the host's wave.
//! 2. A release marked `deadend` is never offered. A host *on* one moves off: to the newest
//!    newer release offered to it, else to the newest older release whose rollout has started
//!    (whatever the wave: it is the known-good way back).
//! 3. A `halted` release is not offered to hosts not yet on it; a host on it stays.
//! 4. The lowest `barrier` above the host's version caps what it is offered: it must reach the
//!    barrier before anything newer.
//! 5. Of what is left, the newest offered release wins. When none is offered yet, the decision
//!    says which will be first and when.

use serde::{Deserialize, Serialize};

use super::policy::{Policy, Release};
use super::wave::Wave;
use crate::version;

/// What a host should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Update to this release now.
    Offer {
        /// Its version.
        version: String,
        /// Its commit.
        commit: String,
        /// Why this one.
        reason: Reason,
    },
    /// Nothing now; `version` will be offered to this host at `at`.
    Wait {
        /// The release.
        version: String,
        /// Its commit.
        commit: String,
        /// Seconds since the epoch.
        at: u64,
    },
    /// Nothing to take and nothing scheduled.
    Stay {
        /// Why.
        why: Stay,
    },
}

/// Why a release is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Its rollout reached this host's wave.
    Rollout,
    /// A barrier: newer releases exist; this one must be passed through first.
    Barrier,
    /// The host is on a dead end and this is the way off.
    LeaveDeadend,
}

/// Why nothing is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Stay {
    /// The policy does not list the stream.
    UnknownStream,
    /// No release newer than the host's.
    UpToDate,
    /// Newer releases exist, all halted (the newest named).
    Halted {
        /// The newest halted release.
        version: String,
    },
    /// Newer releases are listed but no rollout is scheduled for them.
    NotScheduled {
        /// The lowest such release.
        version: String,
    },
    /// The host is on a dead end and the policy offers no way off.
    DeadendNoWayOff,
}

/// The decision for a host on `stream` at `current` (its version; `None` when unversioned,
/// i.e. below every release) with `wave`, at `now` (seconds since the epoch).
pub fn offer(
    policy: &Policy,
    stream: &str,
    current: Option<&str>,
    wave: Wave,
    now: u64,
) -> Decision {
    let Some(releases) = policy.streams.get(stream) else {
        return Decision::Stay {
            why: Stay::UnknownStream,
        };
    };
    let wave = wave.value();
    let newer_than = |r: &Release| current.is_none_or(|c| version::compare(&r.version, c).is_gt());
    let on_deadend = current
        .and_then(|c| releases.iter().find(|r| r.version == c))
        .is_some_and(|r| r.deadend);

    // Releases are sorted by version; the candidates are those above the host, up to and
    // including the first barrier above it.
    let mut candidates: Vec<&Release> = Vec::new();
    let mut barrier = None;
    for r in releases.iter().filter(|r| newer_than(r)) {
        if r.deadend {
            continue;
        }
        candidates.push(r);
        if r.barrier {
            barrier = Some(r);
            break;
        }
    }
    let more_beyond_barrier = barrier.is_some_and(|b| {
        releases
            .iter()
            .any(|r| !r.deadend && version::compare(&r.version, &b.version).is_gt())
    });
    let live = |r: &Release| !r.halted && r.rollout.is_some();

    if let Some(r) = candidates
        .iter()
        .rev()
        .filter(|r| live(r))
        .find(|r| r.rollout.is_some_and(|ro| ro.offered_to(wave, now)))
    {
        let reason = if on_deadend {
            Reason::LeaveDeadend
        } else if r.barrier && more_beyond_barrier {
            Reason::Barrier
        } else {
            Reason::Rollout
        };
        return offered(r, reason);
    }
    if on_deadend {
        let way_back = releases.iter().rev().find(|r| {
            !newer_than(r)
                && current != Some(r.version.as_str())
                && !r.deadend
                && live(r)
                && r.rollout.is_some_and(|ro| now >= ro.start)
        });
        if let Some(r) = way_back {
            return offered(r, Reason::LeaveDeadend);
        }
    }
    // Nothing now: the first to come, the newer on a tie.
    let next = candidates
        .iter()
        .filter(|r| live(r))
        .filter_map(|r| r.rollout.map(|ro| (ro.offered_from(wave), *r)))
        .min_by(|(ta, a), (tb, b)| {
            ta.cmp(tb)
                .then_with(|| version::compare(&b.version, &a.version))
        });
    if let Some((at, r)) = next {
        return Decision::Wait {
            version: r.version.clone(),
            commit: r.commit.clone(),
            at,
        };
    }
    let why = if on_deadend {
        Stay::DeadendNoWayOff
    } else if let Some(r) = candidates.iter().find(|r| !r.halted && r.rollout.is_none()) {
        Stay::NotScheduled {
            version: r.version.clone(),
        }
    } else if let Some(r) = candidates.iter().rev().find(|r| r.halted) {
        Stay::Halted {
            version: r.version.clone(),
        }
    } else {
        Stay::UpToDate
    };
    Decision::Stay { why }
}

fn offered(r: &Release, reason: Reason) -> Decision {
    Decision::Offer {
        version: r.version.clone(),
        commit: r.commit.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::policy::Rollout;
    use super::*;

    const S: &str = "cairn/bookworm/x86_64/stable";
    const T0: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn commit_of(version: &str) -> String {
        format!("{:0>64}", version.replace('.', ""))
    }

    /// A release rolled out from T0 over a day, from 0%.
    fn rel(version: &str) -> Release {
        Release {
            version: version.into(),
            commit: commit_of(version),
            rollout: Some(Rollout {
                start: T0,
                start_percentage: 0,
                duration_secs: DAY,
            }),
            barrier: false,
            deadend: false,
            halted: false,
        }
    }

    fn policy(releases: Vec<Release>) -> Policy {
        let mut p = Policy::empty(1, T0 + 100 * DAY);
        let mut releases = releases;
        releases.sort_by(|a, b| version::compare(&a.version, &b.version));
        p.streams.insert(S.into(), releases);
        p
    }

    fn w(v: f64) -> Wave {
        Wave::wariness(v).unwrap()
    }

    fn offered_version(d: &Decision) -> Option<&str> {
        match d {
            Decision::Offer { version, .. } => Some(version),
            _ => None,
        }
    }

    #[test]
    fn the_newest_release_reached_is_offered() {
        let p = policy(vec![rel("1.1"), rel("1.2"), rel("1.10")]);
        let d = offer(&p, S, Some("1.1"), w(0.2), T0 + DAY);
        assert_eq!(
            d,
            Decision::Offer {
                version: "1.10".into(),
                commit: commit_of("1.10"),
                reason: Reason::Rollout
            }
        );
        assert_eq!(
            offer(&p, S, Some("1.10"), w(0.2), T0 + DAY),
            Decision::Stay {
                why: Stay::UpToDate
            }
        );
        assert_eq!(
            offer(&p, "cairn/bookworm/x86_64/testing", Some("1.1"), w(0.2), T0),
            Decision::Stay {
                why: Stay::UnknownStream
            }
        );
        // An unversioned host is below every release.
        assert_eq!(
            offered_version(&offer(&p, S, None, w(0.2), T0 + DAY)),
            Some("1.10")
        );
    }

    #[test]
    fn before_start_nobody_is_offered_and_the_host_learns_when() {
        let mut r = rel("2");
        r.rollout = Some(Rollout {
            start: T0,
            start_percentage: 20,
            duration_secs: DAY,
        });
        let p = policy(vec![rel("1"), r]);
        // A canary waits for the start, even with 20% at start.
        assert_eq!(
            offer(&p, S, Some("1"), w(0.0), T0 - 1),
            Decision::Wait {
                version: "2".into(),
                commit: commit_of("2"),
                at: T0
            }
        );
        assert_eq!(
            offered_version(&offer(&p, S, Some("1"), w(0.0), T0)),
            Some("2")
        );
        // Wave 0.6: share 20% + 80% * t/DAY reaches 0.6 at half a day; offered after it.
        assert_eq!(
            offer(&p, S, Some("1"), w(0.6), T0),
            Decision::Wait {
                version: "2".into(),
                commit: commit_of("2"),
                at: T0 + DAY / 2 + 1
            }
        );
    }

    #[test]
    fn a_host_exactly_at_the_share_edge_waits_one_second() {
        let p = policy(vec![rel("1"), rel("2")]);
        // At T0 + DAY/4 the share is exactly 0.25: the host of wave 0.25 is not inside yet.
        let edge = T0 + DAY / 4;
        assert!(offered_version(&offer(&p, S, Some("1"), w(0.25), edge)).is_none());
        assert_eq!(
            offer(&p, S, Some("1"), w(0.25), edge),
            Decision::Wait {
                version: "2".into(),
                commit: commit_of("2"),
                at: edge + 1
            }
        );
        assert_eq!(
            offered_version(&offer(&p, S, Some("1"), w(0.25), edge + 1)),
            Some("2")
        );
        assert_eq!(
            offered_version(&offer(&p, S, Some("1"), w(0.2499), edge)),
            Some("2")
        );
        // The most wary host is offered once the rollout is complete, not before.
        assert!(offered_version(&offer(&p, S, Some("1"), w(1.0), T0 + DAY - 1)).is_none());
        assert_eq!(
            offered_version(&offer(&p, S, Some("1"), w(1.0), T0 + DAY)),
            Some("2")
        );
    }

    #[test]
    fn an_older_release_is_offered_while_the_newest_has_not_reached_the_host() {
        let mut newest = rel("3");
        newest.rollout = Some(Rollout {
            start: T0 + DAY,
            start_percentage: 0,
            duration_secs: DAY,
        });
        let p = policy(vec![rel("1"), rel("2"), newest]);
        assert_eq!(
            offered_version(&offer(&p, S, Some("1"), w(0.5), T0 + DAY)),
            Some("2")
        );
        assert_eq!(
            offer(&p, S, Some("2"), w(0.5), T0 + DAY),
            Decision::Wait {
                version: "3".into(),
                commit: commit_of("3"),
                at: T0 + DAY + DAY / 2 + 1
            }
        );
    }

    #[test]
    fn a_barrier_between_current_and_newest_is_offered_first() {
        let mut b = rel("2");
        b.barrier = true;
        let p = policy(vec![rel("1"), b, rel("3")]);
        let late = T0 + 2 * DAY;
        assert_eq!(
            offer(&p, S, Some("1"), w(0.5), late),
            Decision::Offer {
                version: "2".into(),
                commit: commit_of("2"),
                reason: Reason::Barrier
            }
        );
        // Once on the barrier, the host goes on.
        assert_eq!(
            offered_version(&offer(&p, S, Some("2"), w(0.5), late)),
            Some("3")
        );
        // A barrier not yet reached by the host's wave holds it back; the host waits for it.
        assert_eq!(
            offer(&p, S, Some("1"), w(0.5), T0),
            Decision::Wait {
                version: "2".into(),
                commit: commit_of("2"),
                at: T0 + DAY / 2 + 1
            }
        );
        // A barrier that is the newest release is offered as a plain rollout.
        let mut last = rel("4");
        last.barrier = true;
        let p = policy(vec![rel("3"), last]);
        assert_eq!(
            offer(&p, S, Some("3"), w(0.5), late),
            Decision::Offer {
                version: "4".into(),
                commit: commit_of("4"),
                reason: Reason::Rollout
            }
        );
    }

    #[test]
    fn a_halted_or_unscheduled_barrier_holds_hosts_below_it() {
        let mut b = rel("2");
        b.barrier = true;
        b.halted = true;
        let p = policy(vec![b.clone(), rel("3")]);
        assert_eq!(
            offer(&p, S, Some("1"), w(0.1), T0 + 2 * DAY),
            Decision::Stay {
                why: Stay::Halted {
                    version: "2".into()
                }
            }
        );
        b.halted = false;
        b.rollout = None;
        let p = policy(vec![b, rel("3")]);
        assert_eq!(
            offer(&p, S, Some("1"), w(0.1), T0 + 2 * DAY),
            Decision::Stay {
                why: Stay::NotScheduled {
                    version: "2".into()
                }
            }
        );
    }

    #[test]
    fn a_deadend_is_never_offered() {
        let mut d = rel("3");
        d.deadend = true;
        let p = policy(vec![rel("2"), d]);
        for wave in [0.0, 0.5, 1.0] {
            assert_eq!(
                offer(&p, S, Some("2"), w(wave), T0 + 10 * DAY),
                Decision::Stay {
                    why: Stay::UpToDate
                }
            );
        }
        // Skipped over on the way to a newer release.
        let mut d = rel("3");
        d.deadend = true;
        let p = policy(vec![rel("2"), d, rel("4")]);
        assert_eq!(
            offered_version(&offer(&p, S, Some("2"), w(0.5), T0 + DAY)),
            Some("4")
        );
    }

    #[test]
    fn hosts_on_a_deadend_move_off() {
        let mut d = rel("3");
        d.deadend = true;
        let mut fix = rel("4");
        fix.rollout = Some(Rollout {
            start: T0 + 5 * DAY,
            start_percentage: 0,
            duration_secs: DAY,
        });
        let p = policy(vec![rel("2"), d, fix]);
        // Before the fix reaches the host: back to the newest older release.
        let d = offer(&p, S, Some("3"), w(0.9), T0 + 5 * DAY);
        assert_eq!(
            d,
            Decision::Offer {
                version: "2".into(),
                commit: commit_of("2"),
                reason: Reason::LeaveDeadend
            }
        );
        // Once the fix reaches it: forward.
        let d = offer(&p, S, Some("3"), w(0.1), T0 + 6 * DAY);
        assert_eq!(
            d,
            Decision::Offer {
                version: "4".into(),
                commit: commit_of("4"),
                reason: Reason::LeaveDeadend
            }
        );
        // No way off at all.
        let mut only = rel("3");
        only.deadend = true;
        let p = policy(vec![only]);
        assert_eq!(
            offer(&p, S, Some("3"), w(0.1), T0 + 6 * DAY),
            Decision::Stay {
                why: Stay::DeadendNoWayOff
            }
        );
    }

    #[test]
    fn halted_stops_offering_to_hosts_not_yet_on_it() {
        let mut h = rel("3");
        h.halted = true;
        let p = policy(vec![rel("2"), h]);
        assert_eq!(
            offer(&p, S, Some("2"), w(0.0), T0 + 2 * DAY),
            Decision::Stay {
                why: Stay::Halted {
                    version: "3".into()
                }
            }
        );
        // A host already on it stays (it is not a dead end).
        assert_eq!(
            offer(&p, S, Some("3"), w(0.0), T0 + 2 * DAY),
            Decision::Stay {
                why: Stay::UpToDate
            }
        );
        // An older, live release is still offered to hosts below it.
        assert_eq!(
            offered_version(&offer(&p, S, Some("1"), w(0.0), T0 + 2 * DAY)),
            Some("2")
        );
    }

    #[test]
    fn the_decision_serializes_for_status_json() {
        let d = Decision::Wait {
            version: "2".into(),
            commit: commit_of("2"),
            at: 5,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["decision"], "wait");
        assert_eq!(v["at"], 5);
        let s = serde_json::to_value(Decision::Stay {
            why: Stay::Halted {
                version: "3".into(),
            },
        })
        .unwrap();
        assert_eq!(s["why"]["kind"], "halted");
    }
}
