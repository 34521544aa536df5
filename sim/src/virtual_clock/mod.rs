//! Virtual time: the simulated cluster run in one process on a discrete-event clock, by the
//! same decision code as the real-time cluster (docs/virtual-time.md). [`World`] is the cluster
//! and its components, [`Agenda`] the events waiting for their time.

mod agenda;
mod ledger;
mod simulation;
mod world;

pub use agenda::Agenda;
pub use ledger::{Ledger, RoomChange};
pub use simulation::{Happened, Simulation};
pub use world::World;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;
    use sparkgang_common::GpuResourceNames;
    use sparkgang_common::sparkconf::SparkConf;

    use super::World;
    use crate::deploy_config::repository_deploy_dir;
    use crate::scheduler::Attempt;
    use crate::spark::{Submission, executor_pod, identities};

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"instance-group": "batch",
                "topology.kubernetes.io/zone": "z1"}},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a node")
    }

    /// A plain submission goes through the webhook, the gate, the extender's gang decision,
    /// kube-scheduler and the kubelet in process; its executors take their reserved slots.
    #[test]
    fn a_submission_becomes_a_gang_in_one_process() {
        let mut world = World::new(&repository_deploy_dir(), None, true).expect("a world");
        world
            .create_namespace(
                "spark",
                &BTreeMap::from([("sparkgang.io/enabled".to_owned(), "true".to_owned())]),
            )
            .expect("namespace");
        for i in 0..3 {
            world.create_node(&node(&format!("n{i}"))).expect("node");
        }
        let conf = BTreeMap::from([
            ("spark.executor.instances".to_owned(), "2".to_owned()),
            ("spark.executor.cores".to_owned(), "2".to_owned()),
        ]);
        let submission = Submission {
            namespace: "spark".into(),
            name: "pi".into(),
            conf: conf.clone(),
            annotations: BTreeMap::new(),
        };
        world.submit(&submission, 1).expect("submitted");
        let (driver, app_id, _) = identities("pi", 1);
        // Gated until the gate controller has read its spark.properties.
        assert!(
            world.schedule_round().is_empty(),
            "the driver waits at the gate"
        );
        assert_eq!(world.gate("spark", &driver), None, "released at once");
        let attempts = world.schedule_round();
        assert!(
            matches!(attempts.as_slice(), [(_, Attempt::Bound(_))]),
            "{attempts:?}"
        );
        let reservation = world.reservation("spark", &app_id).expect("a reservation");
        assert_eq!(
            reservation.spec.reservations.len(),
            3,
            "driver and two executors"
        );

        // The driver creates its executors; they bind where the reservation says.
        let stored = world
            .store
            .get(
                &world.store.resource("", "v1", "pods").expect("pods"),
                "spark",
                &driver,
            )
            .expect("driver");
        let driver_pod: Pod = serde_json::from_value(stored.value.clone()).expect("pod");
        let mut full = conf;
        full.insert("spark.app.id".into(), app_id.clone());
        full.insert("spark.app.name".into(), "pi".into());
        let demand = SparkConf::from(full)
            .demand(&GpuResourceNames::default())
            .expect("demand");
        for id in 1..=2 {
            let pod = executor_pod(&driver_pod, &demand, id, "pi-exec");
            world
                .create_pod("spark", serde_json::to_value(&pod).expect("json"))
                .expect("executor created");
        }
        let attempts = world.schedule_round();
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        let reservation = world.reservation("spark", &app_id).expect("a reservation");
        let slots = &reservation.spec.reservations;
        for (pod, attempt) in attempts {
            let Attempt::Bound(node) = attempt else {
                panic!("{pod} not bound: {attempt:?}");
            };
            assert!(
                slots.values().any(|s| s.node == node),
                "{pod} on {node}, outside the reservation {slots:?}"
            );
        }
        let bound = reservation.status.map(|s| s.pods.len()).unwrap_or(0);
        assert_eq!(bound, 3, "every slot holds its pod");
    }
}
