//! `sparkgang-sim up`: the playground, with Spark run for real when a local Spark is found.

use std::path::PathBuf;

use anyhow::{Context, bail};
use sparkgang_sim::harness::SparkProcesses;
use sparkgang_sim::playground::{self, Playground};
use sparkgang_sim::spark::launch::{HeapPolicy, Installation};

/// The arguments of `sparkgang-sim up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many nodes of 8 cores and 32Gi (instance group batch), e.g. --nodes 4.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: u16,
    /// Where to write the playground's kubeconfig (replaced if it exists; your own
    /// ~/.kube/config is never touched unless named here).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "sparkgang-playground.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// The local Spark that runs every Spark image's driver and executors: the `pyspark`
    /// package directory of `pip install pyspark` (default: $SPARK_HOME, else the pyspark of
    /// the `spark-submit` on PATH, else the one scripts/test.sh installs in .cache/venv),
    /// e.g. --spark-home .cache/venv/lib/python3.11/site-packages/pyspark.
    #[arg(long, value_name = "DIR")]
    pub spark_home: Option<PathBuf>,
    /// Do not run Spark: drivers "run" for a second once their executors are placed (the
    /// scheduling alone, no JVMs).
    #[arg(long, conflicts_with = "spark_home")]
    pub simulated_spark: bool,
    /// At most this many JVMs at once on each node; more wait in `Pending` and say why.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub jvms_per_node: u16,
    /// Each JVM's heap is this share of the memory Spark asked for (spark.executor.memory,
    /// spark.driver.memory), at least 512 MiB, so that a few applications fit a laptop.
    #[arg(long, value_name = "FACTOR", default_value_t = 0.25)]
    pub heap_factor: f64,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    if !(args.heap_factor > 0.0 && args.heap_factor <= 1.0) {
        bail!(
            "--heap-factor {}: a share of the asked memory greater than 0 and at most 1 is accepted",
            args.heap_factor
        );
    }
    let spark = if args.simulated_spark {
        None
    } else {
        let checkout_venv =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/venv/bin/spark-submit");
        let found = Installation::discover(args.spark_home.as_deref()).or_else(|e| {
            if args.spark_home.is_none() && checkout_venv.is_file() {
                Installation::from_spark_submit(&checkout_venv)
            } else {
                Err(e)
            }
        });
        match found {
            Ok(install) => Some(SparkProcesses {
                install,
                heap: HeapPolicy {
                    factor: args.heap_factor,
                    ..HeapPolicy::default()
                },
                jvms_per_node: usize::from(args.jvms_per_node),
            }),
            Err(e) if args.spark_home.is_some() => return Err(e.into()),
            Err(e) => {
                eprintln!("note: {e}; Spark is simulated (--simulated-spark)\n");
                None
            }
        }
    };
    let real = spark.clone();
    let nodes = usize::from(args.nodes);
    let p = Playground::start_with(nodes, spark).await?;
    let kubeconfig = &args.kubeconfig;
    std::fs::write(kubeconfig, p.kubeconfig())
        .with_context(|| format!("cannot write the kubeconfig {}", kubeconfig.display()))?;
    let kubeconfig = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.to_owned());
    let (spark_line, example) = match &real {
        Some(s) => (
            format!(
                "Spark:       real: driver and executor pods run as JVMs of {} (Java {}), at most \
                 {} per node, heaps {} of what Spark asks",
                s.install.spark_home.display(),
                s.install.java.display(),
                s.jvms_per_node,
                args.heap_factor
            ),
            format!(
                "local://{}/examples/src/main/python/pi.py 100",
                s.install.spark_home.display()
            ),
        ),
        None => (
            "Spark:       simulated: drivers run for 1 s once their executors are placed".to_owned(),
            "--class org.apache.spark.examples.SparkPi local:///opt/spark/examples/jars/spark-examples.jar 1000"
                .to_owned(),
        ),
    };
    println!(
        "sparkgang playground: {nodes} nodes of {} cores and {} (instance group batch), namespace \
         spark opted in, the real webhook and extender.\n\
         API server:  {}\n\
         Console:     {}   (explain API: {3}api/v1/apps)\n\
         Kubeconfig:  {}\n\
         {spark_line}\n\n\
         export KUBECONFIG={4}\n\
         kubectl get nodes\n\
         kubectl sparkgang apps -A        # the kubectl plugin (target/*/kubectl-sparkgang on your PATH)\n\n\
         Submit (tested with PyPI pyspark 4.3.0 and Java 17):\n  spark-submit --master {} --deploy-mode cluster --name pi \\\n      \
         --conf spark.kubernetes.namespace=spark \\\n      \
         --conf spark.kubernetes.container.image=apache/spark:4.0.0 \\\n      \
         --conf spark.executor.instances=2 --conf spark.executor.cores=2 --conf spark.executor.memory=2g \\\n      \
         {example}\n\
         kubectl logs -f <the driver pod>\n\n\
         Ctrl-C stops it.",
        playground::NODE_CPU,
        playground::NODE_MEMORY,
        p.cluster.api.url(),
        p.console_url().unwrap_or_default(),
        kubeconfig.display(),
        p.spark_master(),
    );
    // Ctrl-C or SIGTERM: the JVMs of the playground's pods go with it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot wait for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    p.cluster.stop().await;
    Ok(true)
}
