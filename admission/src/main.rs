//! `sparkgang-admission --config PATH`: the webhook binary.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use sparkgang_admission::AdmissionConfig;

/// The sparkgang mutating admission webhook for Spark driver and executor pods.
#[derive(Debug, Parser)]
#[command(name = "sparkgang-admission", version, about)]
struct Args {
    /// YAML configuration file (see docs/admission.md).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = AdmissionConfig::from_file(&args.config)?;
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
