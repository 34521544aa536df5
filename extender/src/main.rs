//! sparkgang-extender: the kube-scheduler extender that places Spark applications as gangs.

mod demand_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::config::ExtenderConfig;

#[derive(Debug, Parser)]
#[command(
    name = "sparkgang-extender",
    version,
    about = "Gang scheduling for Spark on Kubernetes: the scheduler extender",
    after_help = "Examples:\n  sparkgang-extender serve --config extender-config.yaml\n  \
                  sparkgang-extender --config extender-config.yaml   (the same)\n  \
                  sparkgang-extender demand --spark-properties spark.properties\n  \
                  sparkgang-extender crds --out-dir deploy/crds\n\n\
                  A complete config: key extender-config.yaml of deploy/base/scheduler/config.yaml; \
                  every key: docs/extender.md.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// YAML config of the extender, e.g. --config extender-config.yaml: the same as `serve
    /// --config PATH`.
    #[arg(long, value_name = "PATH", required = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the extender: kube-scheduler calls POST /filter (and /preempt when its extender
    /// entry sets preemptVerb); the same shape as `sparkgang-admission serve`.
    Serve {
        /// YAML config, e.g. the extender-config.yaml key of deploy/base/scheduler/config.yaml
        /// (keys: docs/extender.md; unknown keys are errors).
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Print the gang demand of a Spark application (from its spark.properties) as JSON.
    Demand(demand_cmd::DemandArgs),
    /// Write the CRD manifests (ResourceReservation, Demand) as YAML files into a directory.
    Crds {
        /// Directory to write the manifests into (created if missing), e.g. `--out-dir deploy/crds`.
        #[arg(long, value_name = "DIR", default_value = "deploy/crds")]
        out_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match (cli.command, cli.config) {
        (Some(Command::Serve { config }), _) | (None, Some(config)) => serve(&config),
        (Some(Command::Demand(args)), _) => demand_cmd::run(&args),
        (Some(Command::Crds { out_dir }), _) => write_crds(&out_dir),
        (None, None) => Err(anyhow::anyhow!(
            "no command: pass serve --config PATH, --config PATH, demand or crds (see --help)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out a cause whose text the message before already holds
/// (config errors name their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn write_crds(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for manifest in sparkgang_common::api::crds::crd_manifests()? {
        let path = dir.join(&manifest.file_name);
        std::fs::write(&path, &manifest.yaml)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn serve(config_path: &Path) -> anyhow::Result<()> {
    // kube's rustls client needs a process-wide crypto provider: ring, the one in the tree.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = ExtenderConfig::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let kube = kube::Config::infer()
            .await
            .context("cannot configure a Kubernetes client (in-cluster config or KUBECONFIG)")?;
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("sparkgang-extender-{}", std::process::id()));
        let running =
            sparkgang_extender::start(config, kube, Arc::new(SystemClock), identity).await?;
        shutdown_signal().await?;
        tracing::info!("shutting down: finishing requests in flight, releasing the lease");
        running.shutdown().await.context("shutting down")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
