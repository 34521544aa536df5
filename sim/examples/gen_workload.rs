//! Writes a generated workload to replay: `<out>/history/` (one Spark event log per
//! application) and `<out>/nodes.json` (`kubectl get nodes -o json` of one instance group).
//! The shape is `sparkgang_sim::replay::synthetic::Workload`; docs/replay.md has the command
//! behind the benchmark's figures.
//!
//! ```sh
//! cargo run --release -p sparkgang-sim --example gen_workload -- --apps 100000 --nodes 5000 \
//!     --window 4h --out /tmp/workload
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sparkgang_common::durations::parse_duration;
use sparkgang_sim::replay::synthetic::{Workload, nodes_json, write_eventlogs};

#[derive(Parser)]
#[command(about = "Writes Spark event logs and nodes to replay")]
struct Args {
    /// Applications, e.g. --apps 100000.
    #[arg(long, default_value_t = 1000)]
    apps: usize,
    /// Nodes of 16 cores and 64Gi in instance group `batch`, e.g. --nodes 5000.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Submissions spread over this window, e.g. --window 4h.
    #[arg(long, default_value = "1h")]
    window: String,
    /// Seed of the random sizes, counts and times, e.g. --seed 7.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory to write `history/` and `nodes.json` into, e.g. --out /tmp/workload.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let window = parse_duration(&args.window).map_err(|e| anyhow::anyhow!("--window: {e}"))?;
    let workload = Workload {
        apps: args.apps,
        window,
        seed: args.seed,
        ..Workload::default()
    };
    let history = args.out.join("history");
    write_eventlogs(&history, &workload)
        .with_context(|| format!("cannot write {}", history.display()))?;
    let nodes = args.out.join("nodes.json");
    std::fs::write(
        &nodes,
        serde_json::to_vec(&nodes_json(args.nodes, 16, 64, "batch"))?,
    )
    .with_context(|| format!("cannot write {}", nodes.display()))?;
    println!(
        "{} event logs in {}, {} nodes in {}",
        args.apps,
        history.display(),
        args.nodes,
        nodes.display()
    );
    Ok(())
}
