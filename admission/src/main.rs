//! `sparkgang-admission serve --config PATH` (or `--config PATH`): the webhook binary.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sparkgang_admission::AdmissionConfig;

/// The sparkgang mutating admission webhook for Spark driver and executor pods.
#[derive(Debug, Parser)]
#[command(
    name = "sparkgang-admission",
    version,
    about,
    after_help = "Examples:\n  sparkgang-admission serve --config admission/config.example.yaml\n  \
                  sparkgang-admission --config /etc/sparkgang/config/config.yaml   (the same)\n\n\
                  Every configuration key: docs/admission.md.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    /// YAML configuration file, e.g. admission/config.example.yaml (keys: docs/admission.md;
    /// unknown keys are errors). The same as `serve --config PATH`.
    #[arg(long, value_name = "PATH", required = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook: POST /mutate over HTTPS, GET /metrics over plain HTTP (the same shape
    /// as `sparkgang-extender serve`).
    Serve {
        /// YAML configuration file, e.g. admission/config.example.yaml (keys:
        /// docs/admission.md; unknown keys are errors).
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
}

impl Args {
    /// The config path of either form (clap requires one of them).
    fn config_path(self) -> Option<PathBuf> {
        match self.command {
            Some(Command::Serve { config }) => Some(config),
            None => self.config,
        }
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let Some(config_path) = Args::parse().config_path() else {
        anyhow::bail!("no configuration: pass --config PATH or serve --config PATH");
    };
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = AdmissionConfig::from_file(&config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        sparkgang_admission::run(config, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
