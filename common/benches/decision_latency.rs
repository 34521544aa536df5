//! Latency distribution (p50 / p99 / max) of single decisions on the large snapshot, and the
//! memory the state takes. `cargo bench -p sparkgang-common --bench decision_latency`.
//! Criterion reports means; the targets are stated as p99, so this measures each call.

#[path = "support/snapshot.rs"]
mod snapshot;

use std::time::{Duration, Instant};

use sparkgang_common::cluster::{ClusterState, PodKey};

use snapshot::*;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label:<58} n={:<5} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

fn measure(
    state: &mut ClusterState,
    n: usize,
    mut decide: impl FnMut(&mut ClusterState),
    mut undo: impl FnMut(&mut ClusterState),
) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            decide(state);
            let t = start.elapsed();
            undo(state);
            t
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let names = node_names();
    let before = rss_kib("VmRSS:");
    let started = Instant::now();
    let mut state = build(true, false);
    println!(
        "snapshot: {} nodes, {} running pods, {} pending drivers; built in {:.1?}",
        nodes(),
        state.pod_count() - pending_drivers(),
        pending_drivers(),
        started.elapsed()
    );
    println!(
        "memory: VmRSS {} MiB (state {} MiB over the empty process), peak VmHWM {} MiB",
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmRSS:").saturating_sub(before) / 1024,
        rss_kib("VmHWM:") / 1024
    );
    let young = driver("young", 50_000, &demand(8));
    let key = PodKey::new("spark", "young-driver");
    state.apply_pod(&young);
    let cold = Instant::now();
    state.filter(&young, &names, now());
    println!(
        "first decision behind {} pending drivers (FIFO plan built from scratch): {:.1?}",
        pending_drivers(),
        cold.elapsed()
    );
    state.delete_pod(&key);
    state.apply_pod(&young);
    report(
        "driver success, FIFO, 500 older pending (plan revalidated)",
        measure(
            &mut state,
            300,
            |s| assert!(s.filter(&young, &names, now()).node.is_some()),
            |s| {
                s.delete_pod(&key);
                s.apply_pod(&young);
            },
        ),
    );
    let exec = executor("young", 0);
    let exec_key = PodKey::new("spark", "young-exec-0");
    let placed = state.filter(&young, &names, now()).node.expect("placed");
    state.apply_pod(&running(young.clone(), &placed));
    report(
        "executor into a free reserved slot",
        measure(
            &mut state,
            2000,
            |s| assert!(s.filter(&exec, &names, now()).node.is_some()),
            |s| {
                s.delete_pod(&exec_key);
            },
        ),
    );
    drop(state);
    let mut blocked = build(true, true);
    let young2 = driver("young", 50_000, &demand(8));
    blocked.apply_pod(&young2);
    let touch = node(0);
    report(
        "driver blocked by an older driver that does not fit",
        measure(
            &mut blocked,
            300,
            |s| assert!(s.filter(&young2, &names, now()).node.is_none()),
            |s| s.apply_node(&touch),
        ),
    );
}
