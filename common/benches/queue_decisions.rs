//! Driver decisions with queues (issue 18): 1,000 nodes, 100 queues under one parent, 10,000
//! applications — 9,000 running (placed by the real decisions, spread unevenly so that the
//! queues' shares differ) and 1,000 pending, 10 per queue — and the decision for one more
//! driver, timed call by call (p50 / p99 / max). Two shapes: the pending gangs all fit (the
//! decided driver's queue has the highest share: every other queue's lane is walked first),
//! and they do not (the lowest-share lane holds it back at once).
//! `cargo bench -p sparkgang-common --bench queue_decisions`; a tenth of the size as a test.

#[path = "support/snapshot.rs"]
mod snapshot;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use sparkgang_common::api::queue::{QUEUE_LABEL, Queue, QueueSpec};
use sparkgang_common::cluster::{ClusterState, FifoPolicy, PodKey, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};

use snapshot::{driver_sized, executor_sized, names_of, node, now, running};

fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

const QUEUES: usize = 100;

fn gang() -> GangDemand {
    GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(1000, 2 << 30, 0),
        min_executors: 4,
        max_executors: 4,
    }
}

fn queued(mut p: Pod, q: usize) -> Pod {
    p.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(QUEUE_LABEL.to_owned(), format!("q{q:03}"));
    p
}

/// The cluster; `room`: the pending gangs fit (else a few nodes are left, too few for them).
fn build(room: bool) -> (ClusterState, Vec<String>) {
    let scale = if full() { 10 } else { 1 };
    let (nodes, running_apps, pending) = (100 * scale, 900 * scale, 100 * scale);
    let mut state = ClusterState::new(SchedulerConfig {
        fifo: FifoPolicy {
            enabled: true,
            ..FifoPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    let names = names_of(nodes);
    for i in 0..nodes {
        state.apply_node(&node(i));
    }
    let guaranteed = (64 * nodes / QUEUES).to_string();
    for q in 0..QUEUES {
        state.apply_queue(&Queue::new(
            &format!("q{q:03}"),
            QueueSpec {
                instance_group: "batch".to_owned(),
                guaranteed: [("cpu".to_owned(), guaranteed.clone())].into(),
                max: BTreeMap::new(),
                weight: 1,
                parent: Some("org".to_owned()),
                namespaces: Vec::new(),
            },
        ));
    }
    // Fill to leave room for the pending gangs (5 cpu each) or not: a filler app per node
    // takes what the pending gangs would need.
    let filler = if room { 0 } else { 58 };
    let g = gang();
    for a in 0..running_apps {
        // Queue q gets a share of the running apps growing with q.
        let q = ((a * a) / (running_apps * running_apps / QUEUES).max(1)).min(QUEUES - 1);
        let app = format!("running-{a:05}");
        let mut d = queued(driver_sized(&app, a as i64, &g, "1Gi"), q);
        let decision = state.filter(&d, &names, now());
        let Some(n) = decision.node else {
            panic!("setup: {app}: {}", decision.message)
        };
        d = running(d, &n);
        state.apply_pod(&d);
        for e in 0..4 {
            let ex = executor_sized(&app, e, ("1", "2Gi"));
            let n = state
                .filter(&ex, &names, now())
                .node
                .expect("setup: executor");
            state.apply_pod(&running(ex, &n));
        }
    }
    if filler > 0 {
        for (i, n) in names.iter().enumerate() {
            let free = state
                .node(n)
                .map(|e| e.available().cpu_milli / 1000)
                .unwrap_or(0);
            let take = free.saturating_sub(3).min(filler);
            if take > 0 {
                let mut p =
                    snapshot::executor_sized(&format!("other-{i}"), 0, (&take.to_string(), "1Gi"));
                p.metadata.labels = None;
                p.metadata.owner_references = None;
                if let Some(s) = p.spec.as_mut() {
                    s.scheduler_name = Some("default-scheduler".to_owned());
                }
                state.apply_pod(&running(p, n));
            }
        }
    }
    for p in 0..pending {
        let q = p % QUEUES;
        state.apply_pod(&queued(
            driver_sized(&format!("pending-{p:04}"), 50_000 + p as i64, &g, "1Gi"),
            q,
        ));
    }
    state.prepare(now());
    (state, names)
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label:<62} n={:<4} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    for room in [true, false] {
        let started = Instant::now();
        let (mut state, names) = build(room);
        println!(
            "snapshot: {} nodes, {QUEUES} queues, {} pods; built in {:.1?}",
            names.len(),
            state.pod_count(),
            started.elapsed()
        );
        let usage = state.queue_usage();
        let busiest = usage
            .iter()
            .max_by_key(|(_, u)| u.allocated.cpu_milli)
            .map(|(q, _)| q.trim_start_matches('q').parse::<usize>().unwrap_or(0))
            .unwrap_or(0);
        let young = queued(driver_sized("young", 90_000, &gang(), "1Gi"), busiest);
        let key = PodKey::new("spark", "young-driver");
        state.apply_pod(&young);
        let first = Instant::now();
        let d = state.filter(&young, &names, now());
        println!(
            "first decision ({:.1?}): {}",
            first.elapsed(),
            d.message.chars().take(150).collect::<String>()
        );
        state.delete_pod(&key);
        state.apply_pod(&young);
        let mut samples = Vec::new();
        for _ in 0..300 {
            let start = Instant::now();
            let d = state.filter(&young, &names, now());
            samples.push(start.elapsed());
            assert_eq!(d.node.is_some(), room, "{}", d.message);
            state.delete_pod(&key);
            state.apply_pod(&young);
        }
        report(
            if room {
                "driver of the busiest queue placed, every other lane walked"
            } else {
                "driver of the busiest queue held back by a lower-share queue"
            },
            samples,
        );
    }
}
