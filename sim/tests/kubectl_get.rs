//! The real `kubectl get` against the simulated API server prints the columns kube-apiserver
//! would serve: a custom resource's `additionalPrinterColumns`, here a Queue's and a
//! ResourceReservation's (pods: tests/processes.rs). scripts/test.sh needs kubectl.

mod common;

use std::path::Path;

use serde_json::json;
use sparkgang_testing::kubectl::kubectl;

fn kubeconfig(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: spark\n\
             current-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .expect("the kubeconfig is written");
    path
}

fn rows(text: &str) -> Vec<Vec<String>> {
    // kubectl pads columns with at least two spaces; headers have single spaces inside.
    text.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn custom_resources_print_their_crd_columns() {
    let server = common::server().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = kubeconfig(dir.path(), &server.url());
    let queue = dir.path().join("queue.yaml");
    std::fs::write(
        &queue,
        serde_yaml::to_string(&json!({"apiVersion": "sparkgang.io/v1", "kind": "Queue",
            "metadata": {"name": "etl"},
            "spec": {"instanceGroup": "batch", "guaranteed": {"cpu": "32"}, "weight": 2,
                     "parent": "org"}}))
        .unwrap(),
    )
    .unwrap();
    kubectl(&config, &["apply", "-f", queue.to_str().unwrap()]).await;
    let text = kubectl(&config, &["get", "queues"]).await;
    let table = rows(&text);
    assert_eq!(
        table[0],
        [
            "NAME",
            "INSTANCE GROUP",
            "PARENT",
            "WEIGHT",
            "CPU",
            "MEMORY",
            "SHARE",
            "PENDING",
            "RUNNING",
            "AGE"
        ],
        "{text}"
    );
    assert_eq!(table[1][..4], ["etl", "batch", "org", "2"], "{text}");
    // Sorting by a field makes kubectl ask for whole objects in the rows.
    let sorted = kubectl(
        &config,
        &["get", "sq", "--sort-by=.spec.weight", "-o", "name"],
    )
    .await;
    assert_eq!(sorted.trim(), "queue.sparkgang.io/etl");
}
