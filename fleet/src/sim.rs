//! A rollout simulation on a virtual clock: N hosts with deterministic machine-ids (from the
//! seed), one release rolled out by a policy, each host asking the real
//! [`cairn_release::rollout::offer`] at every tick and updating when offered. At every tick the
//! number of updated hosts must match the rollout curve within binomial bounds: hosts' waves are
//! sha256 outputs, so the count below a share `s` is Binomial(N, s).
//!
//! A `--halt-at` time shows that a halted release stops spreading. A bad release
//! (`--failure-rate`: that share of the hosts fail their health checks on it, chosen by hash)
//! is halted by the fleet's real rule ([`crate::halt::Rule`], `--halt-after` failures): hosts
//! report one tick after they update (the reboot and the health checks take that long), and
//! once the reported failures reach the threshold the release is halted, so at most the
//! threshold plus the failures of the hosts still in flight ever get it.
//!
//! What it does not simulate: reboot slots (the FleetLock coordinator).

use anyhow::{bail, Result};
use cairn_release::rollout::policy::{Policy, Release, Rollout};
use cairn_release::rollout::{offer, Decision, Wave};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::halt::Rule;

/// The stream the simulation rolls out on.
pub const STREAM: &str = "cairn/bookworm/x86_64/stable";
/// How many standard deviations (plus one host) the updated count may stray from N·share.
pub const BOUND_SD: f64 = 5.0;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of hosts.
    pub hosts: usize,
    /// Seeds the machine-ids.
    pub seed: u64,
    /// The rollout's `start_percentage`.
    pub start_percentage: u8,
    /// The rollout's duration, seconds.
    pub duration_secs: u64,
    /// Seconds between ticks.
    pub tick_secs: u64,
    /// Halt the release this many seconds after its start (checks that it stops spreading).
    pub halt_at: Option<u64>,
    /// The share of hosts (0–1) whose update fails its health checks.
    pub failure_rate: f64,
    /// The fleet halts the release after this many reported failures.
    pub halt_after: Option<u32>,
}

/// How the automatic halt went.
#[derive(Debug, Clone, Serialize)]
pub struct AutoHalt {
    /// Seconds since the rollout's start when the release was halted.
    pub t: i64,
    /// Failures reported when it was halted.
    pub failures_reported: u32,
    /// Reports in when it was halted.
    pub reports: u32,
    /// Failures among the hosts whose reports came in at the halt (updated one tick before).
    pub failures_in_flight: u32,
    /// Hosts that ever failed on the release.
    pub failed_hosts: u32,
}

/// One tick of the simulation.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// Seconds since the rollout's start.
    pub t: i64,
    /// The rollout curve's share at that time (0–1), whether halted or not.
    pub share: f64,
    /// Hosts on the new release.
    pub updated: usize,
    /// N·share, or the count at the halt after it.
    pub expected: f64,
    /// The allowed distance from `expected`.
    pub bound: f64,
}

/// The simulation's result.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Hosts simulated.
    pub hosts: usize,
    /// The seed.
    pub seed: u64,
    /// Every tick.
    pub ticks: Vec<Tick>,
    /// The largest |updated − expected| in standard deviations.
    pub max_sd: f64,
    /// Whether every tick stayed within its bound.
    pub within_bounds: bool,
    /// Total `offer()` calls.
    pub decisions: u64,
    /// The automatic halt, when `--halt-after` stopped the release.
    pub auto_halt: Option<AutoHalt>,
}

/// A host's machine-id: 32 hex digits from the seed and its index.
fn machine_id(seed: u64, i: usize) -> String {
    let d = Sha256::digest(format!("cairn-sim {seed} {i}"));
    hex::encode(&d[..16])
}

/// Whether host `i` fails on the new release, at `rate`.
fn fails(seed: u64, i: usize, rate: f64) -> bool {
    let d = Sha256::digest(format!("cairn-sim failure {seed} {i}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0) < rate
}

/// Runs the simulation.
pub fn run(o: &SimOptions) -> Result<SimReport> {
    if o.hosts == 0 || o.tick_secs == 0 || o.start_percentage > 100 {
        bail!("--hosts and --tick must be positive and --start-percentage at most 100");
    }
    if !(0.0..=1.0).contains(&o.failure_rate) || o.halt_after == Some(0) {
        bail!("--failure-rate must be from 0 to 1 and --halt-after at least 1");
    }
    let rule = o.halt_after.map(Rule::Failures);
    let (mut failures, mut reports) = (0u32, 0u32);
    // Reports of the hosts that updated in the previous tick: (failures, reports).
    let mut in_flight = (0u32, 0u32);
    let mut auto_halt: Option<AutoHalt> = None;
    let start: u64 = 1_800_000_000;
    let old = release("1", None);
    let new = release(
        "2",
        Some(Rollout {
            start,
            start_percentage: o.start_percentage,
            duration_secs: o.duration_secs,
        }),
    );
    let mut policy = Policy::empty(1, start + 10 * o.duration_secs.max(86_400));
    policy.streams.insert(STREAM.into(), vec![old, new]);
    let waves: Vec<Wave> = (0..o.hosts)
        .map(|i| Wave::of_host(&machine_id(o.seed, i), STREAM))
        .collect();
    let mut on_new = vec![false; o.hosts];
    let mut ticks = Vec::new();
    let mut decisions = 0u64;
    let mut max_sd: f64 = 0.0;
    let mut within = true;
    let mut frozen: Option<usize> = None;
    let n = o.hosts as f64;
    let first = start.saturating_sub(o.tick_secs);
    let last = start + o.duration_secs + o.tick_secs;
    let mut now = first;
    while now <= last {
        if let Some(h) = o.halt_at {
            if now >= start + h && frozen.is_none() {
                if let Some(r) = policy.streams.get_mut(STREAM).and_then(|rs| rs.get_mut(1)) {
                    r.halted = true;
                }
                frozen = Some(on_new.iter().filter(|u| **u).count());
            }
        }
        // The reports of last tick's updates arrive; the fleet applies its rule.
        let arrived = std::mem::take(&mut in_flight);
        failures += arrived.0;
        reports += arrived.1;
        if let Some(rule) = rule {
            if frozen.is_none() && rule.halts(failures, reports) {
                if let Some(r) = policy.streams.get_mut(STREAM).and_then(|rs| rs.get_mut(1)) {
                    r.halted = true;
                }
                frozen = Some(on_new.iter().filter(|u| **u).count());
                auto_halt = Some(AutoHalt {
                    t: now as i64 - start as i64,
                    failures_reported: failures,
                    reports,
                    failures_in_flight: arrived.0,
                    failed_hosts: 0,
                });
            }
        }
        for (i, wave) in waves.iter().enumerate() {
            let current = if on_new[i] { "2" } else { "1" };
            decisions += 1;
            if let Decision::Offer { version, .. } =
                offer(&policy, STREAM, Some(current), *wave, now)
            {
                if version == "2" && !on_new[i] {
                    on_new[i] = true;
                    in_flight.1 += 1;
                    if fails(o.seed, i, o.failure_rate) {
                        in_flight.0 += 1;
                    }
                }
            }
        }
        let updated = on_new.iter().filter(|u| **u).count();
        let share = new_share(&policy, now);
        let (expected, bound, sd) = match frozen {
            // Halted: not one host more.
            Some(f) => (
                f as f64,
                0.0,
                if updated == f { 0.0 } else { f64::INFINITY },
            ),
            None => {
                let sd = (n * share * (1.0 - share)).sqrt();
                let dev = (updated as f64 - n * share).abs();
                let bound = BOUND_SD * sd + 1.0;
                (
                    n * share,
                    bound,
                    if sd > 0.0 {
                        dev / sd
                    } else if dev <= 1.0 {
                        0.0
                    } else {
                        f64::INFINITY
                    },
                )
            }
        };
        if (updated as f64 - expected).abs() > bound {
            within = false;
        }
        max_sd = max_sd.max(sd);
        ticks.push(Tick {
            t: now as i64 - start as i64,
            share,
            updated,
            expected,
            bound,
        });
        now += o.tick_secs;
    }
    if let Some(h) = &mut auto_halt {
        h.failed_hosts = (0..o.hosts)
            .filter(|&i| on_new[i] && fails(o.seed, i, o.failure_rate))
            .count() as u32;
    }
    Ok(SimReport {
        hosts: o.hosts,
        seed: o.seed,
        ticks,
        max_sd,
        within_bounds: within,
        decisions,
        auto_halt,
    })
}

fn new_share(p: &Policy, now: u64) -> f64 {
    p.releases(STREAM)
        .get(1)
        .and_then(|r| r.rollout)
        .map_or(0.0, |ro| {
            if ro.offered_to(1.0, now) {
                1.0
            } else {
                ro.share_at(now)
            }
        })
}

fn release(version: &str, rollout: Option<Rollout>) -> Release {
    Release {
        version: version.into(),
        commit: format!("{:0>64}", version),
        rollout,
        barrier: false,
        deadend: false,
        halted: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts(seed: u64) -> SimOptions {
        SimOptions {
            hosts: 10_000,
            seed,
            start_percentage: 5,
            duration_secs: 48 * 3600,
            tick_secs: 1800,
            halt_at: None,
            failure_rate: 0.0,
            halt_after: None,
        }
    }

    #[test]
    fn a_bad_release_is_halted_after_the_threshold_and_the_hosts_in_flight() {
        for seed in [5, 6, 7] {
            let mut o = opts(seed);
            o.start_percentage = 0;
            o.failure_rate = 0.3;
            o.halt_after = Some(10);
            let r = run(&o).unwrap();
            let h = r.auto_halt.clone().expect("the release was halted");
            assert!(h.failures_reported >= 10, "{h:?}");
            assert!(
                h.failed_hosts <= 10 - 1 + h.failures_in_flight,
                "more failed than the threshold and the hosts in flight: {h:?}"
            );
            assert_eq!(
                h.failed_hosts, h.failures_reported,
                "nobody took it after: {h:?}"
            );
            assert!(
                r.within_bounds,
                "seed {seed}: the count moved after the halt"
            );
            let updated = r.ticks.last().unwrap().updated;
            assert!(
                updated < 400,
                "seed {seed}: {updated} hosts took the bad release"
            );
            // Without failures the same rule never halts.
            o.failure_rate = 0.0;
            let r = run(&o).unwrap();
            assert!(r.auto_halt.is_none());
            assert_eq!(r.ticks.last().unwrap().updated, 10_000);
        }
    }

    #[test]
    fn ten_thousand_hosts_follow_the_curve_within_binomial_bounds() {
        for seed in [1, 2, 3] {
            let r = run(&opts(seed)).unwrap();
            assert!(r.within_bounds, "seed {seed}: max {} sd", r.max_sd);
            let first = &r.ticks[0];
            assert_eq!(
                (first.t, first.updated),
                (-1800, 0),
                "nobody before the start"
            );
            let at_start = &r.ticks[1];
            assert_eq!(at_start.t, 0);
            assert!(
                (400..=600).contains(&at_start.updated),
                "{}",
                at_start.updated
            );
            assert_eq!(
                r.ticks.last().unwrap().updated,
                10_000,
                "everyone at the end"
            );
            let counts: Vec<usize> = r.ticks.iter().map(|t| t.updated).collect();
            assert!(
                counts.windows(2).all(|w| w[0] <= w[1]),
                "never fewer hosts updated"
            );
        }
    }

    #[test]
    fn a_halt_stops_the_spread() {
        let mut o = opts(4);
        o.halt_at = Some(12 * 3600);
        let r = run(&o).unwrap();
        assert!(r.within_bounds);
        let last = r.ticks.last().unwrap().updated;
        assert!(
            (2500..=3400).contains(&last),
            "about 5% + 95%/4 then frozen: {last}"
        );
    }

    #[test]
    fn seeds_give_other_fleets_and_the_same_seed_the_same() {
        let small = |seed| SimOptions {
            hosts: 2_000,
            ..opts(seed)
        };
        let a = run(&small(9)).unwrap();
        let b = run(&small(9)).unwrap();
        let c = run(&small(10)).unwrap();
        let counts = |r: &SimReport| r.ticks.iter().map(|t| t.updated).collect::<Vec<_>>();
        assert_eq!(counts(&a), counts(&b));
        assert_ne!(counts(&a), counts(&c));
    }
}
