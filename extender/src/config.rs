//! The extender's YAML configuration: every key, its default, and validation at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sparkgang_common::binpack::{BinpackAlgorithm, LabelPriority};
use sparkgang_common::cluster::{FifoPolicy, PreemptionPolicy, SchedulerConfig};
use sparkgang_common::durations::serde_duration;
use sparkgang_common::quantities::{parse_cpu_millis, parse_memory_bytes};
use sparkgang_common::{GangDemand, GpuResourceNames, Resources};
use sparkgang_serve::Limits;

/// `sparkgang-extender serve --config PATH`. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtenderConfig {
    /// Where kube-scheduler calls `POST /filter` (keep it on loopback: the extender is a
    /// sidecar of kube-scheduler). Also serves `/healthz` and `/readyz`.
    pub filter_listen_address: SocketAddr,
    /// `GET /metrics`, `/healthz`, `/readyz` for Prometheus and the kubelet.
    pub metrics_listen_address: SocketAddr,
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
    /// Node and pod label naming the instance group.
    pub instance_group_label: String,
    /// `tightly-pack`, `distribute-evenly`, `minimal-fragmentation`, `az-aware-tightly-pack`,
    /// `single-az-tightly-pack` or `single-az-minimal-fragmentation`.
    pub binpack: BinpackAlgorithm,
    pub fifo: FifoConfig,
    /// Preemption of lower-priority work for pending gangs (`docs/priorities.md`).
    pub preemption: PreemptionConfig,
    /// Queues: teams' shares of instance groups (`docs/queues.md`).
    pub queues: QueuesConfig,
    /// Prefer driver nodes by a label's value.
    pub driver_node_priority: Option<NodePriorityConfig>,
    /// Prefer executor nodes by a label's value.
    pub executor_node_priority: Option<NodePriorityConfig>,
    /// With a single-AZ algorithm, keep executors above the minimum in the app's zone.
    pub dynamic_executors_in_same_zone: bool,
    /// Extended resources counted as GPUs.
    pub gpu_resource_names: Vec<String>,
    /// Demand for drivers whose conf and annotations say nothing (absent: such drivers fail).
    pub default_demand: Option<DemandConfig>,
    /// How long a driver gated with `sparkgang.io/spark-conf` may wait for its ConfigMap
    /// before the gate is removed anyway (with annotations or the default demand).
    #[serde(with = "serde_duration")]
    pub gate_timeout: Duration,
    /// Publish `Demand` objects for pods that do not fit, for cluster autoscalers.
    pub demands: DemandsConfig,
    pub leader_election: LeaderElectionConfig,
    /// Quick retries of a failing reservation write (50 ms doubling) before the writer slows
    /// to one try every 5 s. It never gives up while this replica leads.
    pub write_attempts: u32,
    /// What the `/filter` listener allows each connection (`docs/extender.md`, "Connections").
    pub connections: Limits,
    /// Timeouts towards the Kubernetes API server.
    pub api_server: ApiServerConfig,
    /// The explain API's own listener, for people and `kubectl sparkgang` (`docs/explain.md`).
    pub explain: ExplainConfig,
}

/// The explain API and console on a listener of their own. (The filter listener serves them
/// too, unauthenticated: keep it on loopback.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExplainConfig {
    /// Where to listen, e.g. `0.0.0.0:8485`; absent: no such listener.
    pub listen_address: Option<SocketAddr>,
    /// `kubernetes`: a bearer token is required (checked with a TokenReview) and each
    /// application is shown only to callers that may `get pods` in its namespace, capacity only
    /// to those that may `list nodes` (SubjectAccessReviews). `none`: open, allowed only on a
    /// loopback address.
    pub authentication: ExplainAuthentication,
    /// How long a token's review and an access decision are reused.
    #[serde(with = "serde_duration")]
    pub cache_ttl: Duration,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            listen_address: None,
            authentication: ExplainAuthentication::Kubernetes,
            cache_ttl: Duration::from_secs(60),
        }
    }
}

/// How the explain listener authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExplainAuthentication {
    Kubernetes,
    None,
}

/// How long the extender waits on the API server, and when it stops trusting its caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApiServerConfig {
    /// Longest any API call (connect, send, answer; each list page; a watch's start) may
    /// take. A write that times out is read back before it is tried again.
    #[serde(with = "serde_duration")]
    pub request_timeout: Duration,
    /// The server ends each watch after this long and the extender watches again from where it
    /// was. A watch silent for `watchTimeout + requestTimeout` is dead: its cache is stale
    /// (`/readyz` fails, filter calls get 503) until it has been listed again.
    #[serde(with = "serde_duration")]
    pub watch_timeout: Duration,
    /// A leader whose caches stay stale this long steps down (releases its lease and
    /// campaigns again), so a replica with a working connection can lead.
    #[serde(with = "serde_duration")]
    pub stale_step_down_after: Duration,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            request_timeout: Duration::from_secs(10),
            watch_timeout: Duration::from_secs(60),
            stale_step_down_after: Duration::from_secs(30),
        }
    }
}

impl Default for ExtenderConfig {
    fn default() -> Self {
        ExtenderConfig {
            filter_listen_address: ([127, 0, 0, 1], 8484).into(),
            metrics_listen_address: ([0, 0, 0, 0], 9091).into(),
            scheduler_name: "spark-scheduler".to_owned(),
            instance_group_label: "instance-group".to_owned(),
            binpack: BinpackAlgorithm::TightlyPack,
            fifo: FifoConfig::default(),
            preemption: PreemptionConfig::default(),
            queues: QueuesConfig::default(),
            driver_node_priority: None,
            executor_node_priority: None,
            dynamic_executors_in_same_zone: false,
            gpu_resource_names: vec!["nvidia.com/gpu".to_owned()],
            default_demand: None,
            gate_timeout: Duration::from_secs(60),
            demands: DemandsConfig::default(),
            leader_election: LeaderElectionConfig::default(),
            write_attempts: 5,
            connections: Limits::default(),
            api_server: ApiServerConfig::default(),
            explain: ExplainConfig::default(),
        }
    }
}

/// FIFO per instance group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FifoConfig {
    pub enabled: bool,
    /// An older driver that does not fit blocks younger ones once it is this old.
    #[serde(with = "serde_duration")]
    pub enforce_after: Duration,
    /// Per instance group override of `enforceAfter`.
    #[serde(with = "duration_map")]
    pub enforce_after_by_instance_group: BTreeMap<String, Duration>,
}

/// Queues (`docs/queues.md`). Without Queue objects they change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct QueuesConfig {
    /// The queue of applications whose driver names none (label `sparkgang.io/queue`) and
    /// whose namespace no queue lists. Absent: such applications are outside queues.
    pub default_queue: Option<String>,
    /// How often the leader writes each Queue's status. Default `5s`.
    #[serde(with = "serde_duration")]
    pub status_interval: Duration,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig {
            default_queue: None,
            status_interval: Duration::from_secs(5),
        }
    }
}

/// When a pending gang that does not fit may evict lower-priority work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PreemptionConfig {
    /// Default false.
    pub enabled: bool,
    /// A gang that has run for less than this is never a victim. Default `0s`.
    #[serde(with = "serde_duration")]
    pub min_runtime: Duration,
    /// At most this many whole gangs are preempted in any minute. Default 10.
    pub max_victims_per_minute: usize,
    /// Decide and report (log, Event on the preemptor, metric), evict nothing. Default false.
    pub dry_run: bool,
}

impl Default for PreemptionConfig {
    fn default() -> Self {
        let p = sparkgang_common::cluster::PreemptionPolicy::default();
        PreemptionConfig {
            enabled: p.enabled,
            min_runtime: p.min_runtime,
            max_victims_per_minute: p.max_victims_per_minute,
            dry_run: p.dry_run,
        }
    }
}

/// Node preference by label value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePriorityConfig {
    pub label: String,
    /// Values from most to least preferred.
    pub values_descending: Vec<String>,
}

/// A demand in quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DemandConfig {
    pub driver: PodSizeConfig,
    pub executor: PodSizeConfig,
    pub min_executors: u32,
    pub max_executors: u32,
}

/// One pod's size in Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSizeConfig {
    pub cpu: String,
    pub memory: String,
    #[serde(default)]
    pub gpus: u32,
}

/// `Demand` objects for autoscalers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DemandsConfig {
    pub enabled: bool,
}

/// One writer at a time, chosen by a `coordination.k8s.io/v1` Lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LeaderElectionConfig {
    /// Off only for a single replica (tests, the simulator).
    pub enabled: bool,
    pub lease_name: String,
    /// Defaults to the namespace the pod runs in (`POD_NAMESPACE`), else `default`.
    pub lease_namespace: Option<String>,
    #[serde(with = "serde_duration")]
    pub lease_duration: Duration,
    /// How often the leader renews (and a follower tries to take) the lease.
    #[serde(with = "serde_duration")]
    pub renew_interval: Duration,
    /// A leader that could not renew for this long stops deciding at once, before the lease
    /// (`leaseDuration`) expires and another replica may take it.
    #[serde(with = "serde_duration")]
    pub renew_deadline: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: true,
            lease_name: "sparkgang-extender".to_owned(),
            lease_namespace: None,
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        key: &'static str,
        message: String,
    },
}

impl ExtenderConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<ExtenderConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_yaml(&text, &shown)
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<ExtenderConfig, ConfigError> {
        let config: ExtenderConfig = if text.trim().is_empty() {
            ExtenderConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
                path: origin.to_owned(),
                source,
            })?
        };
        config
            .scheduler_config()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: origin.to_owned(),
                key,
                message,
            })?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            message,
        };
        let le = &config.leader_election;
        if !(le.renew_interval < le.renew_deadline && le.renew_deadline < le.lease_duration) {
            return Err(invalid(
                "leaderElection",
                format!(
                    "need renewInterval < renewDeadline < leaseDuration, got {:?} / {:?} / {:?}",
                    le.renew_interval, le.renew_deadline, le.lease_duration
                ),
            ));
        }
        let api = &config.api_server;
        for (key, d) in [
            ("apiServer.requestTimeout", api.request_timeout),
            ("apiServer.watchTimeout", api.watch_timeout),
            ("apiServer.staleStepDownAfter", api.stale_step_down_after),
        ] {
            if d < Duration::from_secs(1) {
                return Err(invalid(key, format!("{d:?} is too short; use at least 1s")));
            }
        }
        if config.write_attempts == 0 {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                key: "writeAttempts",
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(config)
    }

    /// Who competes for which lease; `None` without leader election. The namespace defaults
    /// to the pod's own (`POD_NAMESPACE`), else `default`.
    pub fn lease_settings(&self, identity: String) -> Option<crate::leader::LeaseSettings> {
        let le = &self.leader_election;
        le.enabled.then(|| crate::leader::LeaseSettings {
            name: le.lease_name.clone(),
            namespace: le
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_owned()),
            identity,
            duration: le.lease_duration,
            renew_interval: le.renew_interval,
            renew_deadline: le.renew_deadline,
        })
    }

    /// The scheduling core's configuration; `Err((key, why))` when a value is unusable.
    pub fn scheduler_config(&self) -> Result<SchedulerConfig, (&'static str, String)> {
        if let Some(address) = self.explain.listen_address
            && self.explain.authentication == ExplainAuthentication::None
            && !address.ip().is_loopback()
        {
            return Err((
                "explain",
                format!(
                    "authentication none on {address} would show every application to anyone \
                     who can reach it: use authentication kubernetes, or a loopback address"
                ),
            ));
        }
        if self.scheduler_name.is_empty() {
            return Err(("schedulerName", "must not be empty".to_owned()));
        }
        if let Err(e) = self.connections.validate() {
            return Err(("connections", e.to_string()));
        }
        if self.instance_group_label.is_empty() {
            return Err(("instanceGroupLabel", "must not be empty".to_owned()));
        }
        if self.gpu_resource_names.is_empty() {
            return Err((
                "gpuResourceNames",
                "list at least one resource name, e.g. nvidia.com/gpu".to_owned(),
            ));
        }
        let default_demand = self
            .default_demand
            .as_ref()
            .map(|d| d.to_demand())
            .transpose()
            .map_err(|m| ("defaultDemand", m))?;
        let priority = |p: &Option<NodePriorityConfig>| {
            p.as_ref().map(|p| LabelPriority {
                label_name: p.label.clone(),
                label_values_descending_priority: p.values_descending.clone(),
            })
        };
        Ok(SchedulerConfig {
            scheduler_name: self.scheduler_name.clone(),
            instance_group_label: self.instance_group_label.clone(),
            binpack: self.binpack,
            fifo: FifoPolicy {
                enabled: self.fifo.enabled,
                enforce_after: self.fifo.enforce_after,
                enforce_after_by_group: self.fifo.enforce_after_by_instance_group.clone(),
            },
            preemption: PreemptionPolicy {
                enabled: self.preemption.enabled,
                min_runtime: self.preemption.min_runtime,
                max_victims_per_minute: self.preemption.max_victims_per_minute,
                dry_run: self.preemption.dry_run,
            },
            gpus: GpuResourceNames::new(self.gpu_resource_names.clone()),
            default_demand,
            driver_node_priority: priority(&self.driver_node_priority),
            executor_node_priority: priority(&self.executor_node_priority),
            dynamic_executors_in_same_zone: self.dynamic_executors_in_same_zone,
            default_queue: self.queues.default_queue.clone(),
        })
    }
}

impl DemandConfig {
    fn to_demand(&self) -> Result<GangDemand, String> {
        if self.min_executors > self.max_executors {
            return Err(format!(
                "minExecutors ({}) is greater than maxExecutors ({})",
                self.min_executors, self.max_executors
            ));
        }
        Ok(GangDemand {
            driver: self.driver.to_resources("driver")?,
            executor: self.executor.to_resources("executor")?,
            min_executors: self.min_executors,
            max_executors: self.max_executors,
        })
    }
}

impl PodSizeConfig {
    fn to_resources(&self, role: &str) -> Result<Resources, String> {
        Ok(Resources::new(
            parse_cpu_millis(&self.cpu).map_err(|e| format!("{role}.cpu: {e}"))?,
            parse_memory_bytes(&self.memory).map_err(|e| format!("{role}.memory: {e}"))?,
            i64::from(self.gpus),
        ))
    }
}

/// `BTreeMap<String, Duration>` as a map of Go duration strings.
mod duration_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use sparkgang_common::durations::{format_duration, parse_duration};

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        m.iter()
            .map(|(k, v)| (k.clone(), format_duration(*v)))
            .collect::<BTreeMap<_, _>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                parse_duration(&v)
                    .map(|d| (k.clone(), d))
                    .map_err(|e| serde::de::Error::custom(format!("{k}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_config() {
        let c = ExtenderConfig::from_yaml("", "empty").unwrap();
        assert_eq!(c, ExtenderConfig::default());
        let c = ExtenderConfig::from_yaml(
            r#"
binpack: single-az-minimal-fragmentation
fifo: {enabled: true, enforceAfter: 2m, enforceAfterByInstanceGroup: {batch: 30s}}
driverNodePriority: {label: tier, valuesDescending: [gold, silver]}
defaultDemand:
  driver: {cpu: "1", memory: 1408Mi}
  executor: {cpu: 500m, memory: 2Gi, gpus: 1}
  minExecutors: 2
  maxExecutors: 4
gateTimeout: 90s
leaderElection: {enabled: false}
preemption: {enabled: true, dryRun: true, minRuntime: 5m, maxVictimsPerMinute: 3}
"#,
            "test",
        )
        .unwrap();
        let s = c.scheduler_config().unwrap();
        assert_eq!(s.binpack, BinpackAlgorithm::SingleAzMinimalFragmentation);
        assert_eq!(s.fifo.enforce_after(""), Duration::from_secs(120));
        assert_eq!(s.fifo.enforce_after("batch"), Duration::from_secs(30));
        let d = s.default_demand.unwrap();
        assert_eq!(d.executor, Resources::new(500, 2 << 30, 1));
        assert_eq!(c.gate_timeout, Duration::from_secs(90));
        assert!(s.preemption.enabled && s.preemption.dry_run);
        assert_eq!(s.preemption.min_runtime, Duration::from_secs(300));
        assert_eq!(s.preemption.max_victims_per_minute, 3);
    }

    #[test]
    fn an_open_explain_listener_is_allowed_on_loopback_only() {
        let c = ExtenderConfig::from_yaml(
            "explain: {listenAddress: '127.0.0.1:8485', authentication: none}",
            "cfg.yaml",
        )
        .unwrap();
        assert_eq!(c.explain.authentication, ExplainAuthentication::None);
        assert_eq!(
            ExtenderConfig::default().explain.authentication,
            ExplainAuthentication::Kubernetes
        );
    }

    #[test]
    fn rejects_unknown_keys_algorithms_and_bad_values() {
        for (yaml, expect) in [
            ("binpak: tightly-pack", "unknown field `binpak`"),
            ("binpack: best-fit", "best-fit"),
            (
                "fifo: {enabled: true, enforceAfter: soon}",
                "duration such as",
            ),
            ("fifo: {enabld: true}", "unknown field `enabld`"),
            ("preemption: {minRuntime: 5}", "minRuntime"),
            (
                "defaultDemand: {driver: {cpu: 1g, memory: 1Gi}, executor: {cpu: 1, memory: 1Gi}, minExecutors: 1, maxExecutors: 1}",
                "defaultDemand",
            ),
            (
                "defaultDemand: {driver: {cpu: 1, memory: 1Gi}, executor: {cpu: 1, memory: 1Gi}, minExecutors: 3, maxExecutors: 1}",
                "minExecutors (3) is greater than maxExecutors (1)",
            ),
            ("writeAttempts: 0", "writeAttempts"),
            ("gpuResourceNames: []", "gpuResourceNames"),
            (
                "explain: {listenAddress: '0.0.0.0:8485', authentication: none}",
                "authentication none on 0.0.0.0:8485",
            ),
            (
                "explain: {listenAddress: '0.0.0.0:8485', authentication: basic}",
                "unknown variant `basic`",
            ),
        ] {
            let err = ExtenderConfig::from_yaml(yaml, "cfg.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{yaml}: {err}");
            assert!(err.contains("cfg.yaml"), "{err}");
        }
    }
}
