//! The CRDs checked in under `deploy/crds/` are the ones the types generate.

use std::path::PathBuf;

use sparkgang_common::api::crds::crd_manifests;

#[test]
fn checked_in_crds_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    for manifest in crd_manifests().unwrap() {
        let path = dir.join(&manifest.file_name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == manifest.yaml,
            "{} is stale or missing: run `cargo run -p sparkgang-extender -- crds --out-dir deploy/crds`",
            path.display()
        );
    }
}

#[test]
fn reservation_crd_has_no_status_subresource_and_shows_columns() {
    let crd = sparkgang_common::api::crds::resource_reservation_crd();
    assert_eq!(crd.spec.group, "sparkgang.io");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["rr".to_owned()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1");
    assert!(v.subresources.is_none());
    let columns: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Driver", "Node", "Executors", "Nodes", "State", "Age"]
    );
    let dem = sparkgang_common::api::crds::demand_crd();
    assert_eq!(
        dem.spec.names.short_names.as_deref(),
        Some(&["dem".to_owned()][..])
    );
    assert_eq!(dem.spec.scope, "Namespaced");
}

#[test]
fn queue_crd_is_cluster_scoped_with_a_status_and_kubectl_columns() {
    let q = sparkgang_common::api::crds::queue_crd();
    assert_eq!(q.spec.scope, "Cluster");
    assert_eq!(q.spec.names.plural, "queues");
    let v = &q.spec.versions[0];
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Instance Group",
            "Parent",
            "Weight",
            "CPU",
            "Memory",
            "Share",
            "Pending",
            "Running",
            "Age"
        ]
    );
}
