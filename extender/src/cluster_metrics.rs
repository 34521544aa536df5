//! The metrics the console shows as figures: each instance group's capacity and packing,
//! pending applications by reason, how long drivers wait, and gangs that span zones. The
//! gauges are set from the state at each scrape.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sparkgang_common::Resources;
use sparkgang_common::cluster::ClusterState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapacityLabels {
    pub instance_group: String,
    /// `cpu` (cores), `memory` (bytes) or `gpus`.
    pub resource: String,
    /// `allocatable`, `allocated`, `reserved` or `free`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EfficiencyLabels {
    pub instance_group: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PendingLabels {
    pub instance_group: String,
    /// `gated`, `not-asked-yet`, or the outcome of the driver's last filter call.
    pub reason: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Gauges over the whole state, and the driver wait histogram.
#[derive(Debug)]
pub struct ClusterGauges {
    pub capacity: Family<CapacityLabels, FloatGauge>,
    pub packing_efficiency: Family<EfficiencyLabels, FloatGauge>,
    pub pending_apps: Family<PendingLabels, Gauge>,
    pub cross_zone_gangs: Gauge,
    /// From a driver's creation to its gang's placement.
    pub driver_wait_seconds: Histogram,
}

impl ClusterGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = ClusterGauges {
            capacity: Family::default(),
            packing_efficiency: Family::default(),
            pending_apps: Family::default(),
            cross_zone_gangs: Gauge::default(),
            // 1 s to about 9 h.
            driver_wait_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
        };
        registry.register(
            "group_capacity",
            "Per instance group and resource (cpu in cores, memory in bytes, gpus): allocatable, \
             allocated (pods without a reservation), reserved (slots and soft reservations) and \
             free (on nodes that take pods)",
            g.capacity.clone(),
        );
        registry.register(
            "packing_efficiency",
            "Per instance group and resource: (allocated + reserved) / allocatable",
            g.packing_efficiency.clone(),
        );
        registry.register(
            "pending_apps",
            "Pending Spark applications per instance group, by reason (gated, not-asked-yet, or \
             the outcome of the driver's last filter call)",
            g.pending_apps.clone(),
        );
        registry.register(
            "cross_zone_gangs",
            "Reservations whose slots span more than one zone",
            g.cross_zone_gangs.clone(),
        );
        registry.register(
            "driver_wait_seconds",
            "From a driver's creation to its gang's placement",
            g.driver_wait_seconds.clone(),
        );
        g
    }

    /// Sets the gauges from `state`.
    pub fn observe(&self, state: &ClusterState) {
        self.capacity.clear();
        self.packing_efficiency.clear();
        for g in state.group_totals() {
            let kinds = [
                ("allocatable", g.allocatable),
                ("allocated", g.allocated),
                ("reserved", g.reserved),
                ("free", g.free),
            ];
            for (kind, r) in kinds {
                for (resource, value) in dimensions(&r) {
                    self.capacity
                        .get_or_create(&CapacityLabels {
                            instance_group: g.name.clone(),
                            resource: resource.to_owned(),
                            kind: kind.to_owned(),
                        })
                        .set(value);
                }
            }
            let used = dimensions(&(g.allocated + g.reserved));
            for ((resource, used), (_, of)) in used.into_iter().zip(dimensions(&g.allocatable)) {
                if of > 0.0 {
                    self.packing_efficiency
                        .get_or_create(&EfficiencyLabels {
                            instance_group: g.name.clone(),
                            resource: resource.to_owned(),
                        })
                        .set(used / of);
                }
            }
        }
        self.pending_apps.clear();
        for ((instance_group, reason), n) in state.pending_by_reason() {
            self.pending_apps
                .get_or_create(&PendingLabels {
                    instance_group,
                    reason,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.cross_zone_gangs
            .set(i64::try_from(state.cross_zone_gangs()).unwrap_or(i64::MAX));
    }
}

/// `(resource, value)`: cpu in cores, memory in bytes, GPUs.
fn dimensions(r: &Resources) -> [(&'static str, f64); 3] {
    [
        ("cpu", r.cpu_milli as f64 / 1000.0),
        ("memory", r.memory_bytes as f64),
        ("gpus", r.gpus as f64),
    ]
}
