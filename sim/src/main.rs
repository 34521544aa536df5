//! `sparkgang-sim`: run the demo, or a scenario file, through the simulated cluster with the
//! real webhook and extender.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sparkgang_sim::history::History;
use sparkgang_sim::scenario::summary::{Outcome, side_by_side};
use sparkgang_sim::scenario::{self, Mode, Report, Scenario, tables};

#[derive(Debug, Parser)]
#[command(
    name = "sparkgang-sim",
    version,
    about = "An in-memory Kubernetes cluster running the real sparkgang servers",
    after_help = "Examples:\n  sparkgang-sim demo\n  \
                  sparkgang-sim run sim/scenarios/fifo-blocks-younger.yaml --report report.json\n  \
                  sparkgang-sim run sim/scenarios/scale-1000-apps.yaml --clock virtual\n  \
                  sparkgang-sim judge history.json\n  sparkgang-sim up --nodes 4\n  \
                  sparkgang-sim replay --eventlogs fixtures/spark-eventlogs/history \
                  --nodes fixtures/spark-eventlogs/replay-nodes.json --compare \
                  binpack=tightly-pack,distribute-evenly --report replay.json --html replay.html\n\n\
                  Scenarios: sim/scenarios/ (format: docs/scenarios.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A mixed Spark workload with sparkgang, then with the default scheduler alone, and the
    /// two side by side (about a minute).
    Demo,
    /// Run a scenario file (a cluster, a workload, expectations) and print one row an
    /// application; exits non-zero when an expectation or invariant fails.
    Run {
        /// The scenario, e.g. sim/scenarios/fifo-blocks-younger.yaml (every file in
        /// sim/scenarios/ is one; the format is docs/scenarios.md).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write the JSON report (applications, nodes, violations) here, e.g. --report report.json.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Write the recorded history (every pod and reservation over time) here, for
        /// `judge`, e.g. --history history.json.
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
        /// Run without the webhook and extender (kube-scheduler alone), to compare.
        #[arg(long)]
        default_scheduler: bool,
        /// `real`: the servers over HTTPS in wall-clock time. `virtual`: the same decision
        /// code in one process on a discrete-event clock, in a fraction of the time
        /// (docs/virtual-time.md).
        #[arg(long, value_name = "CLOCK", default_value = "real", value_parser = ["real", "virtual"])]
        clock: String,
    },
    /// What-if replay: the applications of a Spark History Server directory submitted again to
    /// the nodes of a real cluster, with sparkgang (each compared configuration) and with
    /// kube-scheduler alone, on the virtual clock (docs/replay.md).
    Replay(replay_cli::Args),
    /// Print and judge a recorded run again (a --history file of `run`), without running it.
    Judge {
        /// The history, e.g. history.json from `run FILE --history history.json`.
        #[arg(value_name = "FILE")]
        history: PathBuf,
    },
    /// The playground: a simulated cluster that stays up until Ctrl-C and prints its API
    /// server's address, to spark-submit against (namespace `spark` is opted in). Spark's
    /// driver and executor pods run as local JVMs when a local Spark is found.
    Up(up_cli::Args),
}

#[path = "main/replay.rs"]
mod replay_cli;
#[path = "main/up.rs"]
mod up_cli;

const DEMO: &str = include_str!("../scenarios/demo.yaml");

/// mimalloc rather than glibc's allocator: a long replay frees millions of small JSON values
/// between the large per-pod vectors of a 5,000-node filter, and glibc then spends much of its
/// time consolidating free lists (docs/benchmarks.md, "What-if replay").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // kube's client logs every refused connection of watches still retrying
                // while a simulated cluster shuts down; RUST_LOG shows everything.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,kube_client=off")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match Cli::parse().command {
            Command::Demo => demo().await,
            Command::Run {
                file,
                report,
                history,
                default_scheduler,
                clock,
            } => {
                run_file(
                    &file,
                    report,
                    history,
                    default_scheduler,
                    clock == "virtual",
                )
                .await
            }
            Command::Judge { history } => judge(&history),
            Command::Replay(args) => replay_cli::run(args),
            Command::Up(args) => up_cli::run(args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_file(
    file: &PathBuf,
    report: Option<PathBuf>,
    history: Option<PathBuf>,
    default_scheduler: bool,
    virtual_clock: bool,
) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let s = Scenario::from_yaml(&text).with_context(|| file.display().to_string())?;
    let mode = if default_scheduler {
        Mode::DefaultScheduler
    } else {
        Mode::Sparkgang
    };
    let r = if virtual_clock {
        if !s.faults.is_empty() {
            eprintln!(
                "note: API faults are not simulated in virtual time (no API calls are made); \
                 the scenario runs without them"
            );
        }
        let wall = std::time::Instant::now();
        let r = scenario::run_virtual(&s, mode)?;
        println!(
            "virtual clock: {:.1} s of cluster time in {:.2} s",
            r.duration_seconds,
            wall.elapsed().as_secs_f64()
        );
        r
    } else {
        scenario::run(&s, mode).await?
    };
    print_summary(&r);
    if let Some(path) = report {
        std::fs::write(&path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report: {}", path.display());
    }
    if let Some(path) = history {
        std::fs::write(&path, serde_json::to_string(&r.history)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("history: {} (sparkgang-sim judge {0})", path.display());
    }
    Ok(r.passed())
}

fn judge(path: &PathBuf) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let history: History = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a history written by `sparkgang-sim run FILE --history {0}`",
            path.display()
        )
    })?;
    let r = Report::from_history(path.display().to_string(), history);
    println!("== {} ({})", r.scenario, r.mode);
    print_summary(&r);
    println!("{}", tables::LEGEND);
    let o = Outcome::of(&r.history);
    println!(
        "\n{} of {} applications completed; {} drivers starved of executors at the end",
        o.completed, o.applications, o.starved_drivers
    );
    Ok(r.passed())
}

async fn demo() -> anyhow::Result<bool> {
    let s = Scenario::from_yaml(DEMO)?;
    println!(
        "sparkgang demo: {} applications on {} node groups (real webhook and extender, in-memory cluster)\n",
        s.apps
            .iter()
            .map(|a| a.count.unwrap_or(1) as usize)
            .sum::<usize>(),
        s.nodes.len()
    );
    println!("== with sparkgang (gang scheduling, FIFO)");
    let with = scenario::run(&s, Mode::Sparkgang).await?;
    print_summary(&with);
    println!("\n{}", tables::LEGEND);
    println!("\n== with the default scheduler alone");
    let mut baseline = s.clone();
    baseline.timeout = Some("30s".to_owned());
    let without = scenario::run(&baseline, Mode::DefaultScheduler).await?;
    print_summary(&without);
    println!("\n{}", tables::LEGEND);
    let o_with = Outcome::of(&with.history);
    let o_without = Outcome::of(&without.history);
    println!("\n== side by side: the same workload, the same cluster\n");
    print!(
        "{}",
        side_by_side(("sparkgang", &o_with), ("default scheduler", &o_without))
    );
    println!(
        "\nWith the default scheduler every driver is placed as soon as it alone fits: the drivers \
         fill the nodes\nand wait for executors that no longer fit. sparkgang places a driver only \
         when its executors fit too.\n\n{}",
        tables::WHERE_NEXT
    );
    Ok(with.passed())
}

fn print_summary(r: &Report) {
    print!("{}", tables::run_table(r));
}
