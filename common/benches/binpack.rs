//! Bin-packing benchmarks: a driver and 100 executors over 100, 1,000 and 5,000 nodes.
//!
//! Run: `cargo bench -p sparkgang-common --bench binpack -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sparkgang_common::Resources;
use sparkgang_common::binpack::{BinpackAlgorithm, CandidateNode, PackingRequest, order_nodes};

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;
const SIZES: [usize; 3] = [100, 1_000, 5_000];

/// A small deterministic generator (xorshift64*), so every run sees the same cluster.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// `n` nodes in 3 zones: a mix of 16-core/64 GiB and 32-core/128 GiB machines, each between
/// empty and full (in 1/8 steps of cpu and memory, independently), 2% cordoned or not ready.
fn cluster(n: usize) -> Vec<CandidateNode> {
    let mut rng = Rng(0x5EED_0000 + n as u64);
    (0..n)
        .map(|i| {
            let large = rng.below(4) == 0;
            let (cores, memory) = if large {
                (32, 128 * GIB)
            } else {
                (16, 64 * GIB)
            };
            let allocatable = Resources::new(cores * 1000 - 200, memory - 2 * GIB, 0);
            let used = Resources::new(
                allocatable.cpu_milli * rng.below(9) / 8,
                allocatable.memory_bytes * rng.below(9) / 8,
                0,
            );
            let zone = ["eu-west-1a", "eu-west-1b", "eu-west-1c"][rng.below(3) as usize];
            let mut node = CandidateNode::new(
                format!("ip-10-0-{i:05}.internal"),
                zone,
                allocatable - used,
                allocatable,
            );
            node.ready = rng.below(50) != 0;
            node.unschedulable = rng.below(50) == 0;
            node
        })
        .collect()
}

/// Spark defaults: driver 1 core, 1g + 384m overhead; executors 2 cores, 4g + 10% overhead.
const DRIVER: Resources = Resources::new(1000, 1408 * MIB, 0);
const EXECUTOR: Resources = Resources::new(2000, 4506 * MIB, 0);

fn packing(c: &mut Criterion) {
    for (group_name, executor_count) in [("pack", 100), ("pack_no_fit", 1_000_000)] {
        let mut group = c.benchmark_group(group_name);
        for &size in &SIZES {
            if group_name == "pack_no_fit" && size != 5_000 {
                continue;
            }
            let nodes = cluster(size);
            let ordering = order_nodes(&nodes, |n| n.ready, None, None);
            let request = PackingRequest {
                nodes: &nodes,
                driver_order: &ordering.driver,
                executor_order: &ordering.executor,
                driver: DRIVER,
                executor: EXECUTOR,
                executor_count,
            };
            for algorithm in BinpackAlgorithm::ALL {
                // Check the scenario is what its name says.
                assert_eq!(
                    algorithm.pack(&request).is_ok(),
                    group_name == "pack",
                    "{algorithm} {size}"
                );
                group.bench_with_input(
                    BenchmarkId::new(algorithm.name(), size),
                    &request,
                    |b, request| b.iter(|| algorithm.pack(black_box(request))),
                );
            }
        }
        group.finish();
    }
}

fn ordering(c: &mut Criterion) {
    let mut group = c.benchmark_group("order_nodes");
    for &size in &SIZES {
        let nodes = cluster(size);
        group.bench_with_input(BenchmarkId::from_parameter(size), &nodes, |b, nodes| {
            b.iter(|| order_nodes(black_box(nodes), |n| n.ready, None, None))
        });
    }
    group.finish();
}

criterion_group!(benches, packing, ordering);
criterion_main!(benches);
