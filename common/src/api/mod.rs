//! The API types sparkgang reads and writes: its CRDs and the kube-scheduler extender protocol.

pub mod crds;
pub mod demand;
pub mod explain;
pub mod extender;
pub mod queue;
pub mod reservation;

/// The API group of sparkgang's own resources.
pub const GROUP: &str = "sparkgang.io";
/// Prefix of sparkgang's own annotations and scheduling gate.
pub const ANNOTATION_PREFIX: &str = "sparkgang.io/";
/// Annotation on a driver: the computed gang demand as JSON (`GangDemand`).
pub const GANG_DEMAND_ANNOTATION: &str = "sparkgang.io/demand";
/// Annotation on a driver: the name of its `spark.properties` ConfigMap, recorded at admission.
pub const CONF_MAP_ANNOTATION: &str = "sparkgang.io/spark-conf-map";
/// On a preemptor's `ResourceReservation`: the pods evicted for it, as
/// `namespace/name/uid` joined by commas, so that a restarted leader finishes the evictions.
pub const PREEMPTING_ANNOTATION: &str = "sparkgang.io/preempting";
/// Scheduling gate the webhook adds to drivers whose demand must be read from their ConfigMap.
pub const SPARK_CONF_GATE: &str = "sparkgang.io/spark-conf";
/// Label on reservations and demands: the Spark application id.
pub const APP_ID_LABEL: &str = "sparkgang.io/app-id";

/// The longest note an `events.k8s.io/v1` Event may carry (the API server's limit is 1 KiB).
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;
