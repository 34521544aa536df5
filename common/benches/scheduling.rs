//! Criterion benchmarks of the extender's decisions on a large snapshot (5,000 nodes,
//! 100,000 running pods, 500 pending older drivers with FIFO on): see `support/snapshot.rs`.
//! Each measurement times only the decision; state changes it made are undone untimed.

#[path = "support/snapshot.rs"]
mod snapshot;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sparkgang_common::GangDemand;
use sparkgang_common::cluster::{ClusterState, PodKey};

use snapshot::*;

/// Times `decide` only; `undo` restores the state between iterations.
fn timed(
    state: &mut ClusterState,
    iters: u64,
    mut decide: impl FnMut(&mut ClusterState),
    mut undo: impl FnMut(&mut ClusterState),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        decide(state);
        total += start.elapsed();
        undo(state);
    }
    total
}

fn young_driver(demand: &GangDemand) -> k8s_openapi::api::core::v1::Pod {
    driver("young", 50_000, demand)
}

fn benches(c: &mut Criterion) {
    let names = node_names();
    let mut group = c.benchmark_group("decision");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));

    for (label, fifo) in [("fifo-500-pending", true), ("no-fifo", false)] {
        let mut state = build(fifo, false);
        let young = young_driver(&demand(8));
        let key = PodKey::new("spark", "young-driver");
        state.apply_pod(&young);
        group.bench_function(format!("driver-success/{label}"), |b| {
            b.iter_custom(|iters| {
                timed(
                    &mut state,
                    iters,
                    |s| {
                        let d = s.filter(&young, &names, now());
                        assert!(d.node.is_some(), "{}", d.message);
                    },
                    |s| {
                        s.delete_pod(&key);
                        s.apply_pod(&young);
                    },
                )
            })
        });
        if fifo {
            // Fails after the simulation of the 500 older drivers; nothing changes, so the
            // FIFO plan stays cached between calls.
            let huge = driver(
                "huge",
                50_000,
                &GangDemand {
                    min_executors: 6 * nodes() as u32,
                    max_executors: 6 * nodes() as u32,
                    ..demand(0)
                },
            );
            state.apply_pod(&huge);
            group.bench_function("driver-failure/fifo-500-pending/plan-cached", |b| {
                b.iter(|| {
                    let d = state.filter(&huge, &names, now());
                    assert!(d.node.is_none());
                })
            });
            state.delete_pod(&PodKey::new("spark", "huge-driver"));
        }
        // An executor of a freshly placed app takes a free reserved slot.
        let app = young_driver(&demand(8));
        state.delete_pod(&key);
        state.apply_pod(&app);
        let placed = state.filter(&app, &names, now());
        let node = placed.node.expect("young driver placed");
        state.apply_pod(&running(app.clone(), &node));
        let exec = executor("young", 0);
        let exec_key = PodKey::new("spark", "young-exec-0");
        group.bench_function(format!("executor-reserved-slot/{label}"), |b| {
            b.iter_custom(|iters| {
                timed(
                    &mut state,
                    iters,
                    |s| {
                        let d = s.filter(&exec, &names, now());
                        assert!(d.node.is_some(), "{}", d.message);
                    },
                    |s| {
                        s.delete_pod(&exec_key);
                    },
                )
            })
        });
    }

    let mut blocked = build(true, true);
    let young = young_driver(&demand(8));
    blocked.apply_pod(&young);
    let touch = node(0);
    group.bench_function("driver-blocked/fifo-head-does-not-fit", |b| {
        b.iter_custom(|iters| {
            timed(
                &mut blocked,
                iters,
                |s| {
                    let d = s.filter(&young, &names, now());
                    assert!(d.node.is_none());
                },
                // Any change invalidates the FIFO plan: the next call simulates again.
                |s| s.apply_node(&touch),
            )
        })
    });
    group.finish();
}

criterion_group!(scheduling, benches);
criterion_main!(scheduling);
