//! `sparkgang-extender demand`: the gang demand of one Spark application, printed as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use sparkgang_common::annotations::normalise;
use sparkgang_common::demand_decision::{
    DecidedDemand, DemandInputs, DemandRules, decide_gang_demand,
};
use sparkgang_common::resources::{GpuResourceNames, Resources, pod_requests};
use sparkgang_common::sparkconf::{ConfDemand, SparkConf};

/// Arguments of `demand`.
#[derive(Debug, Args)]
pub struct DemandArgs {
    /// The application's spark.properties (the `spark.properties` key of its
    /// `spark-drv-…-conf-map` ConfigMap), e.g. `--spark-properties spark.properties`.
    #[arg(long, value_name = "FILE")]
    pub spark_properties: PathBuf,
    /// The driver pod (JSON or YAML): its requests are a floor for the driver and its palantir
    /// annotations override the conf, e.g. `--driver-pod driver.yaml` (from
    /// `kubectl get pod NAME -o yaml`).
    #[arg(long, value_name = "FILE")]
    pub driver_pod: Option<PathBuf>,
    /// An extended resource counted as GPUs; repeat for several (default: nvidia.com/gpu),
    /// e.g. `--gpu-resource amd.com/gpu`.
    #[arg(long = "gpu-resource", value_name = "NAME")]
    pub gpu_resources: Vec<String>,
}

/// Computes the demand and prints it as pretty JSON on stdout.
pub fn run(args: &DemandArgs) -> Result<()> {
    let report = compute(args)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The JSON report for `args`.
pub fn compute(args: &DemandArgs) -> Result<Value> {
    let gpus = if args.gpu_resources.is_empty() {
        GpuResourceNames::default()
    } else {
        GpuResourceNames::new(args.gpu_resources.iter().cloned())
    };
    let conf = read_conf(&args.spark_properties, &gpus)?;

    let mut warnings = Vec::new();
    let (driver_requests, annotations) = match &args.driver_pod {
        None => (None, BTreeMap::new()),
        Some(path) => {
            let pod = read_pod(path)?;
            let spec = pod
                .spec
                .as_ref()
                .with_context(|| format!("driver pod {} has no spec", path.display()))?;
            let requests = pod_requests(spec, &gpus).with_context(|| {
                format!(
                    "reading the resource requests of driver pod {}",
                    path.display()
                )
            })?;
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            let normalised = normalise(&annotations, &gpus)
                .with_context(|| format!("invalid annotations on driver pod {}", path.display()))?;
            warnings.extend(normalised.warnings);
            (Some(requests), annotations)
        }
    };
    let inputs = DemandInputs {
        annotations: &annotations,
        driver_requests,
        spark_conf: Some(&conf),
    };
    let rules = DemandRules {
        gpus: &gpus,
        default: None,
    };
    let merged = decide_gang_demand(&inputs, &rules)
        .with_context(|| format!("merging the demand of {}", args.spark_properties.display()))?;
    Ok(report(&merged, &conf, warnings, gpus.primary()))
}

fn read_conf(path: &Path, gpus: &GpuResourceNames) -> Result<ConfDemand> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading spark properties file {}", path.display()))?;
    let conf = SparkConf::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    conf.demand(gpus)
        .with_context(|| format!("computing the demand from {}", path.display()))
}

/// Reads a pod from JSON (text starting with `{`) or YAML.
fn read_pod(path: &Path) -> Result<Pod> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading driver pod file {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)
            .with_context(|| format!("parsing driver pod JSON {}", path.display()))
    } else {
        serde_yaml::from_str(&text)
            .with_context(|| format!("parsing driver pod YAML {}", path.display()))
    }
}

fn resources_json(r: &Resources, gpu_name: &str) -> Value {
    json!({
        "cpuMilli": r.cpu_milli,
        "memoryBytes": r.memory_bytes,
        "gpus": r.gpus,
        "quantities": r.to_quantities(gpu_name),
    })
}

fn report(
    merged: &DecidedDemand,
    conf: &ConfDemand,
    mut warnings: Vec<String>,
    gpu_name: &str,
) -> Value {
    warnings.extend(merged.warnings.iter().cloned());
    let d = &merged.demand;
    json!({
        "source": merged.source,
        "appId": conf.app_id,
        "appName": conf.app_name,
        "namespace": conf.namespace,
        "driver": resources_json(&d.driver, gpu_name),
        "executor": resources_json(&d.executor, gpu_name),
        "minExecutors": d.min_executors,
        "maxExecutors": d.max_executors,
        "dynamicAllocation": merged.dynamic_allocation,
        "gangTotal": resources_json(&d.gang_total(), gpu_name),
        "warnings": warnings,
    })
}
