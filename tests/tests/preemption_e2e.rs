//! Gang-safe preemption through the real extender, killed at each step of a preemption: after
//! choosing (nothing written), after holding the room (reservation written, no eviction),
//! after some evictions, and before the preemptor is placed. Each time the restarted extender
//! finishes the job: the preemptor keeps its claim (the same held node), the victim gang goes
//! whole, no other application is touched, and nothing is double-booked.
//!
//! The crash points are made with admission hooks on the simulated API server: the steps
//! after the chosen one are refused while the first extender runs, then allowed again once
//! it has been killed and a new one started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{ListParams, PostParams};
use sparkgang_common::api::PREEMPTING_ANNOTATION;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_sim::apiserver::{AdmissionVerdict, admission_fn};
use sparkgang_sim::harness::{SimCluster, SimOptions};
use sparkgang_sim::spark::{self, DriverScript, Submission};
use sparkgang_tests::testbed::{self, bound_slots, conf};
use sparkgang_tests::wait::eventually;

/// Which writes the API server refuses for now (the crash point), and how many evictions it
/// let through / refused.
#[derive(Default)]
struct Gate {
    evictions_allowed: AtomicUsize,
    evictions_refused: AtomicUsize,
    refuse_evictions: AtomicBool,
    refuse_preemptor_reservation: AtomicBool,
    refuse_preemptor_binding: AtomicBool,
}

impl Gate {
    fn open(&self) {
        self.refuse_evictions.store(false, Ordering::SeqCst);
        self.refuse_preemptor_reservation
            .store(false, Ordering::SeqCst);
        self.refuse_preemptor_binding.store(false, Ordering::SeqCst);
    }
}

struct Bed {
    cluster: SimCluster,
    pods: Api<Pod>,
    reservations: Api<ResourceReservation>,
    gate: Arc<Gate>,
    /// Driver names and app ids of low-a (older) and low-b (the victim), and of urgent.
    low_a: (String, String),
    low_b: (String, String),
    /// low-b's pods before the preemption, as `namespace/name/uid`.
    low_b_pods: Vec<String>,
    urgent: (String, String),
}

fn submission(name: &str, class: &str) -> Submission {
    Submission {
        namespace: "spark".into(),
        name: name.into(),
        conf: conf(&[
            ("spark.executor.instances", "2"),
            ("spark.executor.cores", "3"),
            (
                "spark.kubernetes.driver.label.sparkgang.io/priority-class",
                class,
            ),
        ]),
        annotations: BTreeMap::new(),
    }
}

/// Two 8-cpu nodes, each full with one low-priority gang (1 + 2 × 3 cpu); `allow_evictions`
/// evictions pass before the gate refuses the rest.
async fn bed(gate: Gate) -> Bed {
    let options = SimOptions {
        extender_overrides: Some(
            serde_yaml::from_str("{preemption: {enabled: true}, fifo: {enabled: true}}").unwrap(),
        ),
        ..SimOptions::default()
    };
    let (cluster, scripts) = testbed::start(options, 2).await;
    let client = cluster.client.clone();
    let classes: Api<PriorityClass> = Api::all(client.clone());
    for (name, value) in [("high", 1000), ("low", 10)] {
        let class: PriorityClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "value": value}))
        .unwrap();
        classes
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
    }
    let gate = Arc::new(gate);
    let (urgent_driver, urgent_id, _) = spark::identities("urgent", 3);
    {
        let gate = gate.clone();
        let urgent_id = urgent_id.clone();
        let urgent_driver = urgent_driver.clone();
        cluster.api.hooks().add_admission(admission_fn(move |req| {
            let gate = gate.clone();
            let refused = match (req.resource.as_str(), req.subresource.as_deref()) {
                ("pods", Some("eviction")) => {
                    if gate.refuse_evictions.load(Ordering::SeqCst)
                        && gate.evictions_allowed.load(Ordering::SeqCst) == 0
                    {
                        gate.evictions_refused.fetch_add(1, Ordering::SeqCst);
                        true
                    } else {
                        let _ = gate.evictions_allowed.fetch_update(
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        );
                        false
                    }
                }
                ("resourcereservations", None) => {
                    gate.refuse_preemptor_reservation.load(Ordering::SeqCst)
                        && req.object.pointer("/spec/appId").and_then(|v| v.as_str())
                            == Some(urgent_id.as_str())
                }
                ("pods", Some("binding")) => {
                    gate.refuse_preemptor_binding.load(Ordering::SeqCst)
                        && req.name == urgent_driver
                }
                _ => false,
            };
            async move {
                if refused {
                    AdmissionVerdict::deny(503, "refused by the test: the extender crashes here")
                } else {
                    AdmissionVerdict::Allow
                }
            }
        }));
    }
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let mut running = Vec::new();
    for (name, seed) in [("low-a", 1), ("low-b", 2)] {
        let (driver, app_id, _) = spark::identities(name, seed);
        scripts.lock().unwrap().insert(
            format!("spark/{driver}"),
            DriverScript {
                runtime: Duration::from_secs(600),
                ..DriverScript::default()
            },
        );
        spark::submit(&client, &submission(name, "low"), seed)
            .await
            .unwrap();
        bound_slots(&reservations, &app_id, 3).await;
        running.push((driver, app_id));
    }
    scripts.lock().unwrap().insert(
        format!("spark/{urgent_driver}"),
        DriverScript {
            runtime: Duration::from_secs(600),
            ..DriverScript::default()
        },
    );
    let low_b = running.pop().unwrap();
    let low_a = running.pop().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let low_b_pods = pods
        .list(&ListParams::default().labels(&format!("spark-app-selector={}", low_b.1)))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| {
            format!(
                "spark/{}/{}",
                p.metadata.name.as_deref().unwrap_or(""),
                p.metadata.uid.as_deref().unwrap_or("")
            )
        })
        .collect();
    Bed {
        low_b_pods,
        pods: Api::namespaced(client.clone(), "spark"),
        reservations,
        cluster,
        gate,
        low_a,
        low_b,
        urgent: (urgent_driver, urgent_id),
    }
}

impl Bed {
    async fn submit_urgent(&self) {
        spark::submit(&self.cluster.client, &submission("urgent", "high"), 3)
            .await
            .unwrap();
    }

    async fn pods_of(&self, app_id: &str) -> Vec<Pod> {
        self.pods
            .list(&ListParams::default().labels(&format!("spark-app-selector={app_id}")))
            .await
            .unwrap()
            .items
    }

    /// The node the urgent gang's driver slot holds, once its reservation exists.
    async fn held_node(&self) -> String {
        eventually(
            "the urgent gang's held room",
            Duration::from_secs(20),
            || async {
                let rr = self.reservations.get_opt(&self.urgent.1).await.ok()??;
                Some(rr.spec.reservations.get("driver")?.node.clone())
            },
        )
        .await
    }

    async fn refused_evictions(&self, at_least: usize) {
        eventually("an eviction refused", Duration::from_secs(20), || async {
            (self.gate.evictions_refused.load(Ordering::SeqCst) >= at_least).then_some(())
        })
        .await
    }

    /// After the restart: the urgent driver runs on `held` (when known), low-b is gone whole,
    /// low-a runs untouched, the preempting record names low-b's pods only, and no node runs
    /// more than it has.
    async fn finishes(mut self, held: Option<String>) {
        self.cluster.restart_extender().await.unwrap();
        self.gate.open();
        let node = eventually(
            "the urgent driver bound",
            Duration::from_secs(40),
            || async {
                let p = self.pods.get(&self.urgent.0).await.ok()?;
                p.spec?.node_name
            },
        )
        .await;
        if let Some(held) = held {
            assert_eq!(node, held, "the preemptor kept its claim");
        }
        eventually("low-b gone whole", Duration::from_secs(20), || async {
            self.pods_of(&self.low_b.1).await.is_empty().then_some(())
        })
        .await;
        let low_a = self.pods_of(&self.low_a.1).await;
        assert_eq!(low_a.len(), 3, "low-a keeps its driver and two executors");
        assert!(
            low_a
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_none()),
            "no extra victim"
        );
        let rr = self.reservations.get(&self.urgent.1).await.unwrap();
        let record = rr
            .metadata
            .annotations
            .unwrap_or_default()
            .remove(PREEMPTING_ANNOTATION)
            .unwrap_or_default();
        assert!(!record.is_empty(), "the victims are recorded");
        for victim in record.split(',') {
            assert!(
                self.low_b_pods.iter().any(|p| p == victim),
                "{victim} is not a pod of low-b {:?}",
                self.low_b_pods
            );
        }
        let mut used: BTreeMap<String, i64> = BTreeMap::new();
        for p in self.pods.list(&ListParams::default()).await.unwrap().items {
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if let (true, Some(n)) = (running, p.spec.as_ref().and_then(|s| s.node_name.clone())) {
                let cpu = sparkgang_common::resources::pod_requests(
                    p.spec.as_ref().unwrap(),
                    &Default::default(),
                )
                .unwrap()
                .cpu_milli;
                *used.entry(n).or_default() += cpu;
            }
        }
        for (n, cpu) in used {
            assert!(cpu <= 8000, "node {n} runs {cpu}m cpu of 8000m");
        }
        self.cluster.stop().await;
    }
}

/// Killed after choosing its victims: nothing reached the API (the reservation and every
/// eviction were refused). The new leader chooses the same victim again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_choosing() {
    let bed = bed(Gate {
        refuse_evictions: AtomicBool::new(true),
        refuse_preemptor_reservation: AtomicBool::new(true),
        ..Gate::default()
    })
    .await;
    bed.submit_urgent().await;
    bed.refused_evictions(1).await;
    assert!(
        bed.reservations
            .get_opt(&bed.urgent.1)
            .await
            .unwrap()
            .is_none(),
        "nothing was written"
    );
    bed.finishes(None).await;
}

/// Killed after holding the room: the reservation is written, no eviction went through. The
/// new leader reads the victims from the reservation and evicts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_holding_the_room() {
    let bed = bed(Gate {
        refuse_evictions: AtomicBool::new(true),
        ..Gate::default()
    })
    .await;
    bed.submit_urgent().await;
    let held = bed.held_node().await;
    bed.refused_evictions(1).await;
    bed.finishes(Some(held)).await;
}

/// Killed after one of the victim's three evictions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_some_evictions() {
    let bed = bed(Gate {
        refuse_evictions: AtomicBool::new(true),
        evictions_allowed: AtomicUsize::new(1),
        ..Gate::default()
    })
    .await;
    bed.submit_urgent().await;
    let held = bed.held_node().await;
    bed.refused_evictions(1).await;
    bed.finishes(Some(held)).await;
}

/// Killed before the preemptor is placed: every victim is gone, the binding was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_placing_the_preemptor() {
    let bed = bed(Gate {
        refuse_preemptor_binding: AtomicBool::new(true),
        ..Gate::default()
    })
    .await;
    bed.submit_urgent().await;
    let held = bed.held_node().await;
    eventually("low-b evicted", Duration::from_secs(20), || async {
        bed.pods_of(&bed.low_b.1).await.is_empty().then_some(())
    })
    .await;
    bed.finishes(Some(held)).await;
}
