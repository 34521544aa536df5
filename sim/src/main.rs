//! `sparkgang-sim`: run the demo, or a scenario file, through the simulated cluster with the
//! real webhook and extender.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sparkgang_sim::scenario::{self, Mode, Report, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "sparkgang-sim",
    version,
    about = "An in-memory Kubernetes cluster running the real sparkgang servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A mixed Spark workload with sparkgang, then with the default scheduler alone.
    Demo,
    /// Run a scenario file; exits non-zero when an expectation or invariant fails.
    Run {
        file: PathBuf,
        /// Write the JSON report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Run without the webhook and extender (kube-scheduler alone).
        #[arg(long)]
        default_scheduler: bool,
    },
}

const DEMO: &str = include_str!("../scenarios/demo.yaml");

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
                default_scheduler,
            } => run_file(&file, report, default_scheduler).await,
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
    default_scheduler: bool,
) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let s = Scenario::from_yaml(&text).with_context(|| file.display().to_string())?;
    let mode = if default_scheduler {
        Mode::DefaultScheduler
    } else {
        Mode::Sparkgang
    };
    let r = scenario::run(&s, mode).await?;
    print_summary(&r);
    if let Some(path) = report {
        std::fs::write(&path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report: {}", path.display());
    }
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
    println!("\n== with the default scheduler alone");
    let mut baseline = s.clone();
    baseline.timeout = Some("30s".to_owned());
    let without = scenario::run(&baseline, Mode::DefaultScheduler).await?;
    print_summary(&without);
    let done = |r: &Report| {
        r.apps
            .iter()
            .filter(|a| a.final_state == "completed")
            .count()
    };
    let starved = |r: &Report| {
        r.apps
            .iter()
            .filter(|a| {
                a.final_state == "running" && a.peak_running_executors < a.min_executors as usize
            })
            .count()
    };
    println!(
        "\nsparkgang: {}/{} applications completed in {:.0}s, {} running drivers starved of executors. Default scheduler: {}/{} completed in {:.0}s, {} running drivers starved of executors.",
        done(&with),
        with.apps.len(),
        with.duration_seconds,
        starved(&with),
        done(&without),
        without.apps.len(),
        without.duration_seconds,
        starved(&without),
    );
    Ok(with.passed())
}

fn print_summary(r: &Report) {
    println!(
        "{:<12} {:<10} {:>8} {:>10} {:>10} {:<12}",
        "app", "state", "wait", "executors", "completed", "driver node"
    );
    for a in &r.apps {
        let wait = a
            .driver_scheduled_at
            .map_or("-".to_owned(), |t| format!("{:.1}s", t - a.submitted_at));
        let placed = a.executors.iter().filter(|e| e.node.is_some()).count();
        let done = a
            .completed_at
            .map_or("-".to_owned(), |t| format!("{t:.1}s"));
        println!(
            "{:<12} {:<10} {:>8} {:>10} {:>10} {:<12}",
            a.name,
            a.final_state,
            wait,
            format!("{placed}/{}", a.min_executors.max(placed as u32)),
            done,
            a.driver_node.as_deref().unwrap_or("-")
        );
    }
    let (cpu, alloc): (i64, i64) = r.nodes.iter().fold((0, 0), |(c, a), n| {
        (c + n.peak_cpu_milli, a + n.allocatable_cpu_milli)
    });
    if alloc > 0 {
        println!(
            "peak cpu held (pods + reservations): {:.0}% of the cluster",
            100.0 * cpu as f64 / alloc as f64
        );
    }
    if let Some(f) = &r.filter {
        println!(
            "extender: {} filter calls ({:.1}/s over the run), mean {:.2} ms, p50 <= {} ms, p99 <= {} ms",
            f.calls, f.calls_per_second, f.mean_ms, f.p50_at_most_ms, f.p99_at_most_ms
        );
    }
    for v in &r.violations {
        println!("VIOLATION: {v}");
    }
    for f in &r.expectation_failures {
        println!("EXPECTATION FAILED: {f}");
    }
}
