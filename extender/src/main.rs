//! sparkgang-extender: the kube-scheduler extender that places Spark applications as gangs.

mod demand_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sparkgang-extender",
    version,
    about = "Gang scheduling for Spark on Kubernetes: the scheduler extender"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the gang demand of a Spark application (from its spark.properties) as JSON.
    Demand(demand_cmd::DemandArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Demand(args) => demand_cmd::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
