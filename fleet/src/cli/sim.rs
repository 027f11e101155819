//! `cairn-fleet sim`: the rollout simulation ([`crate::sim`]).

use anyhow::{bail, Result};

use super::Global;
use crate::sim::{self, SimOptions};

/// Runs the simulation and prints its report; fails when the curve left its bounds.
pub fn run(global: &Global, o: &SimOptions) -> Result<()> {
    let r = sim::run(o)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} hosts, seed {}: {} decisions, largest deviation {:.2} sd (bound {} sd + 1 host)",
            r.hosts,
            r.seed,
            r.decisions,
            r.max_sd,
            sim::BOUND_SD
        );
        for t in &r.ticks {
            println!(
                "  t={:>+8}s share {:>6.2}% updated {:>6} expected {:>9.1} ± {:.1}",
                t.t,
                t.share * 100.0,
                t.updated,
                t.expected,
                t.bound
            );
        }
    }
    if let (Some(h), false) = (&r.auto_halt, global.json) {
        println!(
            "halted at t={}s: {} of {} reports were failures ({} from the hosts in flight); {} \
             host(s) failed on the release in all",
            h.t, h.failures_reported, h.reports, h.failures_in_flight, h.failed_hosts
        );
    }
    if !r.within_bounds {
        bail!(
            "the share of updated hosts left the binomial bounds (largest deviation {:.2} sd)",
            r.max_sd
        );
    }
    Ok(())
}
