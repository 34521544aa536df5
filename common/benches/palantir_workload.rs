//! The workload of the palantir comparison, at 500, 1,000 and 5,000 nodes: 64-cpu/256Gi nodes
//! in 4 zones with running pods, 500 older pending drivers each 1 cpu/1Gi + 4 × 2 cpu/4Gi
//! executors, FIFO on, tightly-pack. Reports the median (and p99) of a young driver's filter
//! decision, and the first decision after the state was built (as after a start).
//!
//! `cargo bench -p sparkgang-common --bench palantir_workload`

#[path = "support/snapshot.rs"]
mod snapshot;

use std::time::{Duration, Instant};

use sparkgang_common::cluster::{ClusterState, PodKey};

use snapshot::*;

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label:<52} n={:<5} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    // Under `cargo test` (no `--bench`) only the smallest size runs, briefly.
    let full = std::env::args().any(|a| a == "--bench");
    // `SIZES=500,1000` and `CALLS=20000` narrow or lengthen a run (for profiling).
    let sizes: Vec<usize> = match std::env::var("SIZES") {
        Ok(s) => s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if full => vec![500, 1_000, 5_000],
        Err(_) => vec![500],
    };
    let calls = std::env::var("CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(if full { 2_000 } else { 20 });
    for n in sizes {
        let scenario = palantir_workload(n);
        let names = names_of(n);
        let young = driver_sized("young", 50_000, &small_demand(4), "1Gi");
        let key = PodKey::new("spark", "young-driver");

        // First decision after a start: the state was just fed by the watches, then prepared
        // (as the extender does before turning ready). Several starts; the median is shown.
        let starts = if !full {
            1
        } else if n >= 5_000 {
            3
        } else {
            7
        };
        let mut built = Vec::new();
        let mut warmed = Vec::new();
        let mut first = Vec::new();
        let mut second = Vec::new();
        let mut state: Option<ClusterState> = None;
        for _ in 0..starts {
            drop(state.take());
            let started = Instant::now();
            let mut s: ClusterState = build_scenario(&scenario);
            built.push(started.elapsed());
            s.apply_pod(&young);
            let warm = Instant::now();
            s.prepare(now());
            warmed.push(warm.elapsed());
            let simulations = s.fifo_simulations();
            let t = Instant::now();
            let d = s.filter(&young, &names, now());
            first.push(t.elapsed());
            assert!(d.node.is_some(), "{}", d.message);
            assert_eq!(
                s.fifo_simulations(),
                simulations,
                "the first decision rebuilt the plan"
            );
            s.delete_pod(&key);
            s.apply_pod(&young);
            let t = Instant::now();
            s.filter(&young, &names, now());
            second.push(t.elapsed());
            state = Some(s);
        }
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        println!(
            "{n} nodes ({starts} starts, medians): built in {:.1?}; prepare (before ready) {:.1?}; \
             first decision after ready {:.1?}; second {:.1?}",
            median(built),
            median(warmed),
            median(first),
            median(second)
        );
        let Some(mut state) = state else { return };

        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            state.delete_pod(&key);
            state.apply_pod(&young);
            let start = Instant::now();
            let d = state.filter(&young, &names, now());
            samples.push(start.elapsed());
            assert!(d.node.is_some(), "{}", d.message);
        }
        report(&format!("driver filter decision, {n} nodes"), samples);
    }
}
