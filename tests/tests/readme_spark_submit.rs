//! Step 7 of the README's install section, the `spark-submit` a user runs, as written, against
//! `sparkgang-sim up`'s cluster (its address in place of `https://<api-server>`): the
//! driver is admitted, gated, and placed as a gang of the executors the command asks for.
//!
//! Needs `spark-submit` (PyPI pyspark and Java 17, installed by `scripts/test.sh`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use sparkgang_common::GangDemand;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_sim::playground::Playground;
use sparkgang_tests::readme::{readme, sh_blocks};
use sparkgang_tests::spark_submit::spark_submit;
use sparkgang_tests::wait::eventually;

/// The value of `--conf KEY=VALUE` in `command`.
fn conf(command: &str, key: &str) -> Option<String> {
    command
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_spark_submit_becomes_a_gang_on_the_playground() {
    let Some(submit) = spark_submit() else {
        return;
    };
    let blocks: Vec<_> = sh_blocks(&readme())
        .into_iter()
        .filter(|b| b.kind.as_deref() == Some("simulator"))
        .collect();
    assert_eq!(blocks.len(), 1, "one spark-submit block marked simulator");
    let command = blocks[0].text.clone();
    assert!(
        command.trim_start().starts_with("spark-submit "),
        "{command}"
    );
    let placeholder = "k8s://https://<api-server>";
    assert!(command.contains(placeholder), "{command}");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let playground = Playground::start(4).await.expect("playground starts");
    let client = playground.cluster.client.clone();
    let command = command.replace(placeholder, &playground.spark_master());
    // spark-submit finds SPARK_HOME through the `python` of its environment: the venv's.
    let bin = submit.parent().map(PathBuf::from).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &command])
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("bash runs");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command}\nfailed:\n{log}");

    let namespace = conf(&command, "spark.kubernetes.namespace").expect("a namespace");
    let executors: u32 = conf(&command, "spark.executor.instances")
        .and_then(|n| n.parse().ok())
        .expect("spark.executor.instances");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let driver = eventually("the driver to be placed", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&kube::api::ListParams::default().labels("spark-role=driver"))
                .await
                .ok()?;
            let d = list.items.into_iter().next()?;
            d.spec.as_ref()?.node_name.as_ref()?;
            Some(d)
        }
    })
    .await;
    let annotations = driver.metadata.annotations.clone().unwrap_or_default();
    let demand: GangDemand =
        serde_json::from_str(annotations.get("sparkgang.io/demand").expect("a demand")).unwrap();
    assert_eq!(demand.min_executors, executors);
    assert_eq!(
        driver
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone()),
        conf(
            &command,
            "spark.kubernetes.authenticate.driver.serviceAccountName"
        )
    );
    let app = driver.metadata.labels.clone().unwrap_or_default()["spark-app-selector"].clone();
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), &namespace);
    let rr = eventually("the reservation", Duration::from_secs(10), || {
        let reservations = reservations.clone();
        let app = app.clone();
        async move { reservations.get(&app).await.ok() }
    })
    .await;
    assert_eq!(rr.spec.reservations.len(), executors as usize + 1);
    playground.cluster.stop().await;
}
