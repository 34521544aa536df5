//! Bin-packing parity with palantir's `k8s-spark-scheduler-lib` v0.15.0 (`pkg/binpack`).
//!
//! `fixtures/palantir-binpack/vectors.jsonl` holds inputs and palantir's own answers, produced
//! by running the lib's six `SparkBinPackFunction`s (see that directory's README). Each vector
//! is packed here with the same node set and the same explicit driver and executor orders, and
//! the driver node and the executor nodes (in order) must be the ones palantir chose, or both
//! must find no fit.
//!
//! Known, deliberate divergences are listed in [`KNOWN_DIVERGENCES`] with the reason (see
//! `docs/palantir-quirks.md`, "Bin-packing parity"); the test fails on any other disagreement
//! and on a listed divergence that agrees again.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;
use sparkgang_common::Resources;
use sparkgang_common::binpack::{BinpackAlgorithm, CandidateNode, PackingRequest};
use sparkgang_testing::fixtures;

/// Why sparkgang deliberately answers a vector differently from palantir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Divergence {
    /// Palantir's packing efficiency rounds cpu up to whole cores (`Quantity.Value()`) on both
    /// sides of the division, so a node with 3.4 of 31.5 cores used counts as 4 of 32; sparkgang
    /// divides millicores exactly. A single-zone algorithm can then pick another zone. Both
    /// answers place the whole gang.
    CpuRoundedUpToWholeCores,
}

use Divergence::CpuRoundedUpToWholeCores as CpuRounding;

/// Vectors where sparkgang deliberately answers differently from palantir.
const KNOWN_DIVERGENCES: &[(&str, Divergence)] =
    &[("single-az-minimal-fragmentation-0139", CpuRounding)];

/// How many disagreements are printed in full.
const SHOWN: usize = 3;

#[derive(Debug, Deserialize)]
struct Header {
    kind: String,
    tag: String,
    commit: String,
    counts: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Res {
    cpu_milli: i64,
    memory_bytes: i64,
    #[serde(default)]
    gpus: i64,
}

impl From<Res> for Resources {
    fn from(r: Res) -> Self {
        Resources::new(r.cpu_milli, r.memory_bytes, r.gpus)
    }
}

#[derive(Debug, Deserialize)]
struct Node {
    name: String,
    zone: String,
    available: Res,
    schedulable: Res,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Outcome {
    has_capacity: bool,
    driver_node: Option<String>,
    executor_nodes: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Vector {
    id: String,
    policy: String,
    family: String,
    nodes: Vec<Node>,
    driver_order: Vec<String>,
    executor_order: Vec<String>,
    driver: Res,
    executor: Res,
    executor_count: usize,
    expected: Outcome,
    /// The vector as written in the file, for the failure message.
    #[serde(skip)]
    line: String,
}

impl Vector {
    fn zone_of(&self, node: Option<&String>) -> Option<&str> {
        let node = node?;
        self.nodes
            .iter()
            .find(|n| &n.name == node)
            .map(|n| n.zone.as_str())
    }

    /// Whether `ours` differs from palantir's answer in the way `divergence` explains.
    fn diverges_as(&self, divergence: Divergence, ours: &Outcome) -> bool {
        match divergence {
            Divergence::CpuRoundedUpToWholeCores => {
                let fractional_cpu = self
                    .nodes
                    .iter()
                    .flat_map(|n| [n.available.cpu_milli, n.schedulable.cpu_milli])
                    .chain([self.driver.cpu_milli, self.executor.cpu_milli])
                    .any(|cpu| cpu % 1000 != 0);
                self.policy.starts_with("single-az-")
                    && fractional_cpu
                    && ours.has_capacity
                    && self.expected.has_capacity
                    && self.zone_of(ours.driver_node.as_ref())
                        != self.zone_of(self.expected.driver_node.as_ref())
            }
        }
    }
}

fn vectors_path() -> PathBuf {
    fixtures::path(fixtures::PALANTIR_BINPACK, "vectors.jsonl")
}

/// The header and every vector.
fn load() -> (Header, Vec<Vector>) {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Header = serde_json::from_str(lines.next().expect("empty vector file")).unwrap();
    assert_eq!(header.kind, "header");
    let vectors = lines
        .map(|l| {
            let mut v: Vector =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad vector: {e}: {l}"));
            v.line = l.to_owned();
            v
        })
        .collect();
    (header, vectors)
}

/// Sparkgang's answer to one vector, in the vector's terms.
fn sparkgang(v: &Vector) -> Outcome {
    let algorithm: BinpackAlgorithm = v.policy.parse().unwrap();
    let nodes: Vec<CandidateNode> = v
        .nodes
        .iter()
        .map(|n| CandidateNode::new(&n.name, &n.zone, n.available.into(), n.schedulable.into()))
        .collect();
    let index: HashMap<&str, usize> = v
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let order =
        |names: &[String]| -> Vec<usize> { names.iter().map(|n| index[n.as_str()]).collect() };
    let driver_order = order(&v.driver_order);
    let executor_order = order(&v.executor_order);
    let result = algorithm.pack(&PackingRequest {
        nodes: &nodes,
        driver_order: &driver_order,
        executor_order: &executor_order,
        driver: v.driver.into(),
        executor: v.executor.into(),
        executor_count: v.executor_count,
    });
    match result {
        Ok(p) => Outcome {
            has_capacity: true,
            driver_node: p.driver_node_name(&nodes).map(str::to_owned),
            executor_nodes: p
                .executor_node_names(&nodes)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        },
        Err(_) => Outcome {
            has_capacity: false,
            driver_node: None,
            executor_nodes: Vec::new(),
        },
    }
}

#[test]
fn binpacking_agrees_with_palantir_lib_v0_15_0() {
    let (header, vectors) = load();
    assert_eq!(header.tag, "v0.15.0");
    assert!(header.commit.starts_with("a823627"));
    assert_eq!(
        header.counts.values().sum::<usize>(),
        vectors.len(),
        "the header's counts do not match the vectors"
    );
    assert!(vectors.len() >= 1000, "only {} vectors", vectors.len());

    let known: HashMap<&str, Divergence> = KNOWN_DIVERGENCES.iter().copied().collect();
    // policy -> (vectors, unexpected disagreements, known divergences)
    let mut per_policy: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut agreeing_known = Vec::new();
    for v in &vectors {
        let ours = sparkgang(v);
        let entry = per_policy.entry(v.policy.as_str()).or_default();
        entry.0 += 1;
        match known.get(v.id.as_str()) {
            None if ours == v.expected => {}
            Some(&divergence) if v.diverges_as(divergence, &ours) => entry.2 += 1,
            Some(_) if ours == v.expected => agreeing_known.push(v.id.as_str()),
            _ => {
                entry.1 += 1;
                disagreements.push((v, ours));
            }
        }
    }
    let ids: Vec<&str> = vectors.iter().map(|v| v.id.as_str()).collect();
    let missing: Vec<&str> = KNOWN_DIVERGENCES
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !ids.contains(id))
        .collect();

    let mut report = String::new();
    for (policy, (total, bad, divergent)) in &per_policy {
        report.push_str(&format!(
            "  {policy}: {} of {total} agree, {divergent} known divergence(s), {bad} unexpected\n",
            total - bad - divergent
        ));
    }
    if !disagreements.is_empty() {
        let ids: Vec<String> = disagreements
            .iter()
            .take(60)
            .map(|(v, _)| format!("{}/{}", v.id, v.family))
            .collect();
        report.push_str(&format!("  disagreeing (id/family): {}\n", ids.join(" ")));
    }
    for (v, ours) in disagreements.iter().take(SHOWN) {
        report.push_str(&format!("\nvector: {}\nsparkgang: {ours:?}\n", v.line));
    }
    assert!(
        disagreements.is_empty() && agreeing_known.is_empty() && missing.is_empty(),
        "{} unexpected disagreement(s) with palantir (a listed divergence counts when it \
         differs only as its reason says); listed divergences that now agree: \
         {agreeing_known:?}; listed divergences not in the file: {missing:?}\n{report}",
        disagreements.len()
    );
    println!("{report}");
}
