//! Per-queue metrics (`docs/queues.md`): each queue's guaranteed, max, allocated and pending
//! resources, its weighted dominant share, its applications, and how long its drivers waited.
//! The gauges are set from the state at each scrape; the wait histogram when a gang is placed.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sparkgang_common::Resources;
use sparkgang_common::cluster::ClusterState;
use sparkgang_common::queues::UNLIMITED;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueResourceLabels {
    pub queue: String,
    /// `cpu` (cores), `memory` (bytes) or `gpus`.
    pub resource: String,
    /// `guaranteed`, `max`, `allocated` or `pending`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueAppLabels {
    pub queue: String,
    /// `pending` or `running`.
    pub state: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The queue gauges and the wait histogram per queue.
#[derive(Debug)]
pub struct QueueGauges {
    pub resources: Family<QueueResourceLabels, FloatGauge>,
    pub dominant_share: Family<QueueLabels, FloatGauge>,
    pub applications: Family<QueueAppLabels, Gauge>,
    /// From a driver's creation to its gang's placement, per queue.
    pub wait_seconds: Family<QueueLabels, Histogram>,
}

impl QueueGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = QueueGauges {
            resources: Family::default(),
            dominant_share: Family::default(),
            applications: Family::default(),
            // 1 s to about 9 h, as driver_wait_seconds.
            wait_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 16))
            }),
        };
        registry.register(
            "queue_resources",
            "Per queue and resource (cpu in cores, memory in bytes, gpus): guaranteed, max (absent \
             when unlimited), allocated (reservations and executors above the minimum) and pending \
             (what its waiting gangs ask)",
            g.resources.clone(),
        );
        registry.register(
            "queue_dominant_share",
            "Per queue: the largest of allocated / guaranteed over the resources its guarantee \
             names, divided by its weight (+Inf when it holds what it has no guarantee for)",
            g.dominant_share.clone(),
        );
        registry.register(
            "queue_applications",
            "Per queue: applications pending (waiting drivers) and running (holding a reservation)",
            g.applications.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Per queue: from a driver's creation to its gang's placement",
            g.wait_seconds.clone(),
        );
        g
    }

    /// Sets the gauges from `state`.
    pub fn observe(&self, state: &mut ClusterState) {
        self.resources.clear();
        self.dominant_share.clear();
        self.applications.clear();
        for (name, status) in state.queue_statuses() {
            let queue = || QueueLabels {
                queue: name.clone(),
            };
            let usage = state.queue_usage().get(&name).copied().unwrap_or_default();
            let pending = Resources::from_quantities(&status.pending, &state.config().gpus)
                .unwrap_or_default();
            let mut kinds = vec![("allocated", usage.allocated), ("pending", pending)];
            if let Some(limits) = state.queue_limits(&name) {
                kinds.push(("guaranteed", limits.guaranteed));
                kinds.push(("max", limits.max));
                let share = status
                    .dominant_share
                    .as_deref()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(f64::INFINITY);
                self.dominant_share.get_or_create(&queue()).set(share);
            }
            for (kind, r) in kinds {
                for (resource, value) in dimensions(&r) {
                    if value == UNLIMITED {
                        continue;
                    }
                    let value = if resource == "cpu" {
                        value as f64 / 1000.0
                    } else {
                        value as f64
                    };
                    self.resources
                        .get_or_create(&QueueResourceLabels {
                            queue: name.clone(),
                            resource: resource.to_owned(),
                            kind: kind.to_owned(),
                        })
                        .set(value);
                }
            }
            for (s, n) in [
                ("pending", status.pending_applications),
                ("running", status.running_applications),
            ] {
                self.applications
                    .get_or_create(&QueueAppLabels {
                        queue: name.clone(),
                        state: s.to_owned(),
                    })
                    .set(i64::from(n));
            }
        }
    }
}

/// `(resource, value)` in the state's units (cpu in millicores).
fn dimensions(r: &Resources) -> [(&'static str, i64); 3] {
    [
        ("cpu", r.cpu_milli),
        ("memory", r.memory_bytes),
        ("gpus", r.gpus),
    ]
}
