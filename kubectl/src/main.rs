//! `kubectl sparkgang`: which Spark applications sparkgang knows, why one is pending, and each
//! instance group's capacity, from the extender's explain API.

mod render;
mod transport;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sparkgang_common::api::explain::{AppExplanation, AppList, CapacityList};

use transport::{CallError, Explain, KubeOptions};

/// kubectl passes no flag placed before the plugin's name, so every flag is accepted after it
/// (and after the command).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sparkgang",
    bin_name = "kubectl sparkgang",
    version,
    about = "Why is my Spark application pending? Applications, reasons and capacity from sparkgang.",
    after_help = "Examples:\n  kubectl sparkgang apps -A\n  kubectl sparkgang why spark-pi-driver -n spark\n  \
                  kubectl sparkgang capacity batch\n  kubectl sparkgang why my-app -o json\n\n\
                  The explain API is reached through the API server's service proxy \
                  (sparkgang-system/sparkgang-extender), or at --url."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Every namespace (apps).
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    /// The explain API's address instead of the service proxy, e.g. http://127.0.0.1:8485 after
    /// `kubectl -n sparkgang-system port-forward svc/sparkgang-extender 8485`.
    #[arg(long, global = true, env = "SPARKGANG_URL", value_name = "URL")]
    url: Option<String>,
    /// The bearer token for the explain API (default: the kubeconfig's token, if it has one).
    #[arg(
        long,
        global = true,
        env = "SPARKGANG_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Tables and plain words.
    Text,
    /// The explain API's JSON, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The Spark applications sparkgang knows: state, queue position, gang, executors.
    Apps,
    /// Why an application is where it is: its driver pod, any of its pods, or its app id.
    Why {
        /// A pod name (driver or executor) or a Spark application id.
        #[arg(value_name = "POD-OR-APP")]
        target: String,
    },
    /// Each instance group's allocatable, allocated, reserved and free resources, and queue;
    /// with GROUP, per node too.
    Capacity {
        #[arg(value_name = "GROUP")]
        group: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<String, CallError> {
    let options = KubeOptions {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        token: cli.token.clone(),
    };
    let explain = Explain::connect(&options, cli.url.clone()).await?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| explain.default_namespace());
    let json = cli.output == Output::Json;
    match &cli.command {
        Command::Apps => {
            let path = if cli.all_namespaces {
                "/api/v1/apps".to_owned()
            } else {
                format!("/api/v1/apps?namespace={}", encode(&namespace))
            };
            let list: AppList = explain.get(&path).await?;
            Ok(if json {
                pretty(&list)
            } else {
                render::apps(&list.items, cli.all_namespaces)
            })
        }
        Command::Why { target } => {
            let e = why(&explain, &namespace, target).await?;
            Ok(if json { pretty(&e) } else { render::why(&e) })
        }
        Command::Capacity { group } => {
            let path = match group {
                Some(g) => format!("/api/v1/capacity/{}", encode(g)),
                None => "/api/v1/capacity".to_owned(),
            };
            let list: CapacityList = explain.get(&path).await?;
            Ok(if json {
                pretty(&list)
            } else {
                render::capacity(&list.groups)
            })
        }
    }
}

/// Finds the application `target` names in `namespace`: an app id, its driver's name, or
/// any pod of it (by its labels).
async fn why(
    explain: &Explain,
    namespace: &str,
    target: &str,
) -> Result<AppExplanation, CallError> {
    let list: AppList = explain
        .get(&format!("/api/v1/apps?namespace={}", encode(namespace)))
        .await?;
    let app_id = match list
        .items
        .iter()
        .find(|a| a.app_id == target || a.driver.as_deref() == Some(target))
    {
        Some(a) => a.app_id.clone(),
        None => explain.app_of_pod(namespace, target).await.ok_or_else(|| {
            let known: Vec<&str> = list.items.iter().map(|a| a.app_id.as_str()).collect();
            CallError::NotFound(format!(
                "no Spark application or pod {target} in namespace {namespace} is known to \
                 sparkgang (applications there: {}); pass -n for another namespace",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?,
    };
    explain
        .get(&format!(
            "/api/v1/apps/{}/{}",
            encode(namespace),
            encode(&app_id)
        ))
        .await
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).map_or_else(|e| format!("{e}\n"), |s| s + "\n")
}
