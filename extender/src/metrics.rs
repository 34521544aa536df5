//! Prometheus metrics of the extender.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sparkgang_common::cluster::{ClusterState, FilterOutcome};
use sparkgang_serve::{ConnectionMetrics, ServeStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub role: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub instance_group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PreemptionLabels {
    /// `would-preempt` (dry run), `preempted`, or `no-room`.
    pub result: String,
    /// The preemptor's priority.
    pub priority: String,
    pub dry_run: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VictimLabels {
    /// `gang` or `executor` (a soft reservation).
    pub kind: String,
    pub dry_run: String,
}

/// Every metric the extender exports.
pub struct Metrics {
    pub registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub filter_seconds: Histogram,
    pub reservations: Gauge,
    pub soft_reservations: Gauge,
    pub pending_drivers: Family<GroupLabels, Gauge>,
    pub api_writes: Family<WriteLabels, Counter>,
    pub api_write_retries: Family<ReasonLabels, Counter>,
    pub gate_removals: Family<ReasonLabels, Counter>,
    pub leader: Gauge,
    /// 1 while a watched resource's cache is stale.
    pub cache_stale: Family<ResourceLabels, Gauge>,
    /// Stale-cache episodes (a list or watch failed or fell silent), per resource.
    pub watch_failures: Family<ResourceLabels, Counter>,
    /// Preemption decisions for pending drivers, reported once per change of decision.
    pub preemptions: Family<PreemptionLabels, Counter>,
    /// Victims chosen by those decisions.
    pub preemption_victims: Family<VictimLabels, Counter>,
    /// The `/filter` listener's connections (exported as `connections_*`).
    pub connections: Arc<ServeStats>,
    /// Capacity, packing, pending reasons, wait times and zone spread (the console's figures).
    pub cluster: crate::cluster_metrics::ClusterGauges,
    /// Per-queue resources, shares, applications and waits.
    pub queues: crate::queue_metrics::QueueGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Records that `w`'s cache turned stale (`true`) or fresh.
    pub fn cache_stale(&self, w: crate::freshness::Watched, stale: bool) {
        let labels = ResourceLabels {
            resource: w.as_str().to_owned(),
        };
        let gauge = self.cache_stale.get_or_create(&labels);
        if stale && gauge.get() == 0 {
            self.watch_failures.get_or_create(&labels).inc();
        }
        gauge.set(i64::from(stale));
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sparkgang_extender");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Filter decisions by pod role and outcome",
            decisions.clone(),
        );
        let filter_seconds = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        registry.register(
            "filter_duration_seconds",
            "Time to answer one filter call, from request body to response",
            filter_seconds.clone(),
        );
        let reservations = Gauge::default();
        registry.register(
            "reservations",
            "Applications holding a ResourceReservation",
            reservations.clone(),
        );
        let soft_reservations = Gauge::default();
        registry.register(
            "soft_reservations",
            "Executors above the minimum holding a soft reservation",
            soft_reservations.clone(),
        );
        let pending_drivers = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "pending_drivers",
            "Drivers waiting for a node, per instance group",
            pending_drivers.clone(),
        );
        let api_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API by object kind and result",
            api_writes.clone(),
        );
        let api_write_retries = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "api_write_retries",
            "Reservation writes retried, by reason",
            api_write_retries.clone(),
        );
        let gate_removals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "gate_removals",
            "Scheduling gates removed from drivers, by reason (conf-read, timeout)",
            gate_removals.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica is the leader and serves filter calls",
            leader.clone(),
        );
        let cache_stale = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "cache_stale",
            "1 while the watch cache of a resource is stale (filter calls then get 503)",
            cache_stale.clone(),
        );
        let watch_failures = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "watch_failures",
            "Lists and watches that failed or fell silent, per resource",
            watch_failures.clone(),
        );
        let preemptions = Family::<PreemptionLabels, Counter>::default();
        registry.register(
            "preemptions",
            "Preemption decisions for pending drivers by result (would-preempt, preempted, no-room), preemptor priority and dry run",
            preemptions.clone(),
        );
        let preemption_victims = Family::<VictimLabels, Counter>::default();
        registry.register(
            "preemption_victims",
            "Victims of preemption decisions, by kind (gang, executor) and dry run",
            preemption_victims.clone(),
        );
        for w in crate::freshness::Watched::ALL {
            let labels = ResourceLabels {
                resource: w.as_str().to_owned(),
            };
            cache_stale.get_or_create(&labels).set(0);
            let _ = watch_failures.get_or_create(&labels);
        }
        for outcome in FilterOutcome::ALL {
            for role in ["driver", "executor"] {
                decisions
                    .get_or_create(&DecisionLabels {
                        role: role.to_owned(),
                        outcome: outcome.as_str().to_owned(),
                    })
                    .get();
            }
        }
        let cluster = crate::cluster_metrics::ClusterGauges::register(&mut registry);
        let queues = crate::queue_metrics::QueueGauges::register(&mut registry);
        let connections = Arc::new(ServeStats::default());
        registry.register_collector(Box::new(ConnectionMetrics(connections.clone())));
        Metrics {
            connections,
            cluster,
            queues,
            registry,
            decisions,
            filter_seconds,
            reservations,
            soft_reservations,
            pending_drivers,
            api_writes,
            api_write_retries,
            gate_removals,
            leader,
            cache_stale,
            watch_failures,
            preemptions,
            preemption_victims,
        }
    }

    /// Refreshes the gauges that describe the state.
    pub fn observe_state(&self, state: &mut ClusterState) {
        self.cluster.observe(state);
        self.queues.observe(state);
        self.reservations
            .set(i64::try_from(state.reservations().count()).unwrap_or(i64::MAX));
        self.soft_reservations
            .set(i64::try_from(state.soft_reservation_count()).unwrap_or(i64::MAX));
        self.pending_drivers.clear();
        for (group, n) in state.pending_driver_counts() {
            self.pending_drivers
                .get_or_create(&GroupLabels {
                    instance_group: group,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one reported preemption decision.
    pub fn count_preemption(&self, priority: i32, dry_run: bool, gangs: usize, soft: usize) {
        let dry_run = dry_run.to_string();
        let result = match (gangs + soft, dry_run.as_str()) {
            (0, _) => "no-room",
            (_, "true") => "would-preempt",
            _ => "preempted",
        };
        self.preemptions
            .get_or_create(&PreemptionLabels {
                result: result.to_owned(),
                priority: priority.to_string(),
                dry_run: dry_run.clone(),
            })
            .inc();
        for (kind, n) in [("gang", gangs), ("executor", soft)] {
            self.preemption_victims
                .get_or_create(&VictimLabels {
                    kind: kind.to_owned(),
                    dry_run: dry_run.clone(),
                })
                .inc_by(n as u64);
        }
    }

    pub fn count_write(&self, kind: &str, result: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }
}
