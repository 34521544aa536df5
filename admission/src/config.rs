//! The webhook's YAML configuration (`--config PATH`): keys, defaults and start-up validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sparkgang_common::durations::serde_duration;
use sparkgang_common::names;
use sparkgang_serve::Limits;

/// Why a configuration could not be used. Every message names the file (when read from one)
/// and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: key {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The configuration of `sparkgang-admission`. YAML keys are camelCase; unknown keys are
/// rejected at start-up. See `docs/admission.md` for the table of keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Address of the HTTPS server (`POST /mutate`, `GET /healthz`, `GET /readyz`).
    /// Default `0.0.0.0:8443`. Port 0 picks a free port (tests, the simulator).
    #[serde(default = "default_tls_listen_address")]
    pub tls_listen_address: SocketAddr,
    /// Address of the plain-HTTP Prometheus server (`GET /metrics`). Default `0.0.0.0:9090`.
    #[serde(default = "default_metrics_listen_address")]
    pub metrics_listen_address: SocketAddr,
    /// PEM file with the serving certificate (leaf first, then intermediates), e.g. the
    /// `tls.crt` of a mounted `kubernetes.io/tls` Secret. Required.
    pub tls_cert_file: PathBuf,
    /// PEM file with the serving private key (PKCS#8, SEC1 or PKCS#1), e.g. `tls.key`. Required.
    pub tls_key_file: PathBuf,
    /// How often both files are re-read; a changed, valid pair replaces the served certificate
    /// for new connections. A duration with a unit: `500ms`, `10s`, `5m`, `1h`. Default `10s`.
    #[serde(
        default = "default_cert_reload_interval",
        deserialize_with = "serde_duration::deserialize"
    )]
    pub cert_reload_interval: Duration,
    /// After SIGTERM, how long the server keeps answering (with `/readyz` failing) before it
    /// stops, so that endpoints stop routing to it first: with `failurePolicy: Fail`, a request
    /// sent to a replica that already closed its port rejects a Spark pod. Same units as
    /// `certReloadInterval`; `0s` stops at once. Default `5s`.
    #[serde(
        default = "default_shutdown_delay",
        deserialize_with = "serde_duration::deserialize"
    )]
    pub shutdown_delay: Duration,
    /// What the HTTPS listener allows each connection: cap, TLS handshake, header read, idle and
    /// body timeouts, header and HTTP/2 limits (`docs/admission.md`, "Connections").
    #[serde(default)]
    pub connections: Limits,
    /// The scheduler name set on Spark pods. Default `spark-scheduler`.
    #[serde(default = "default_scheduler_name")]
    pub scheduler_name: String,
    /// The label key whose value names a pod's instance group (node pool), read from required
    /// node affinity or `nodeSelector`, and written to `nodeSelector`. Default `instance-group`.
    #[serde(default = "default_instance_group_label")]
    pub instance_group_label: String,
    /// Instance group given to Spark pods that have none, when their namespace has no entry in
    /// `defaultInstanceGroupByNamespace`. Default: none (no node selector is added).
    #[serde(default)]
    pub default_instance_group: Option<String>,
    /// Per-namespace default instance group; wins over `defaultInstanceGroup`. Default empty.
    #[serde(default)]
    pub default_instance_group_by_namespace: BTreeMap<String, String>,
    /// When true, pods that name another scheduler get `schedulerName` overwritten too.
    /// Default false: such pods are left untouched (with a warning).
    #[serde(default)]
    pub overwrite_scheduler_name: bool,
    /// When true, drivers whose demand is not complete from annotations get the scheduling gate
    /// `sparkgang.io/spark-conf` and the annotation `sparkgang.io/spark-conf-map`. Default true.
    #[serde(default = "default_true")]
    pub spark_conf_gate: bool,
    /// Extended resource names counted as GPUs (`spark-driver-<name>`, `spark-executor-<name>`
    /// annotations). Default `[nvidia.com/gpu]`.
    #[serde(default = "default_gpu_resource_names")]
    pub gpu_resource_names: Vec<String>,
    /// `PriorityClass` given to Spark pods that name none (no `priorityClassName`, no
    /// `sparkgang.io/priority-class` label), when their namespace has no entry in
    /// `defaultPriorityClassByNamespace`. Default: none (the cluster's global default applies).
    #[serde(default)]
    pub default_priority_class: Option<String>,
    /// Per-namespace default `PriorityClass`; wins over `defaultPriorityClass`. Default empty.
    #[serde(default)]
    pub default_priority_class_by_namespace: BTreeMap<String, String>,
    /// Executors that name no priority class inherit their driver's: the webhook reads the
    /// driver (`GET pods`, with the pod's service account) when it admits such an executor.
    /// Default `true`; `false` runs without API access (executors then get the class of
    /// their own label or their namespace's default).
    #[serde(default = "yes")]
    pub executor_priority_from_driver: bool,
    /// Drivers naming a queue (label `sparkgang.io/queue`) that does not exist are refused,
    /// with the queues there are: the webhook reads the queue (`GET`/`LIST queues`). Default
    /// `true`; `false` leaves the check to the extender (such drivers then wait, saying why).
    #[serde(default = "yes")]
    pub check_queues: bool,
}

fn yes() -> bool {
    true
}

fn default_tls_listen_address() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_metrics_listen_address() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}
fn default_cert_reload_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_shutdown_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_scheduler_name() -> String {
    "spark-scheduler".to_owned()
}
fn default_instance_group_label() -> String {
    "instance-group".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_gpu_resource_names() -> Vec<String> {
    vec![sparkgang_common::resources::DEFAULT_GPU_RESOURCE.to_owned()]
}

impl AdmissionConfig {
    /// A configuration with every default and the given certificate files (what the simulator
    /// and tests start from; set the listen addresses to port 0 to let the OS pick).
    pub fn with_tls_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        AdmissionConfig {
            tls_listen_address: default_tls_listen_address(),
            metrics_listen_address: default_metrics_listen_address(),
            tls_cert_file: cert.into(),
            tls_key_file: key.into(),
            cert_reload_interval: default_cert_reload_interval(),
            shutdown_delay: default_shutdown_delay(),
            connections: Limits::default(),
            scheduler_name: default_scheduler_name(),
            instance_group_label: default_instance_group_label(),
            default_instance_group: None,
            default_instance_group_by_namespace: BTreeMap::new(),
            overwrite_scheduler_name: false,
            spark_conf_gate: true,
            gpu_resource_names: default_gpu_resource_names(),
            default_priority_class: None,
            default_priority_class_by_namespace: BTreeMap::new(),
            executor_priority_from_driver: true,
            check_queues: true,
        }
    }

    /// Reads, parses and validates a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::from_yaml(path, &text)
    }

    /// Parses and validates YAML text; `path` names the source in errors.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: AdmissionConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Checks every value; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_owned(), message));
        if let Err(e) = self.connections.validate() {
            return bad(&format!("connections.{}", e.key), e.message);
        }
        if self.tls_cert_file.as_os_str().is_empty() {
            return bad("tlsCertFile", "must name a PEM file".into());
        }
        if self.tls_key_file.as_os_str().is_empty() {
            return bad("tlsKeyFile", "must name a PEM file".into());
        }
        if self.tls_listen_address.port() != 0
            && self.tls_listen_address == self.metrics_listen_address
        {
            return bad(
                "metricsListenAddress",
                format!(
                    "{} is also tlsListenAddress; use another port",
                    self.metrics_listen_address
                ),
            );
        }
        if self.cert_reload_interval < Duration::from_millis(10)
            || self.cert_reload_interval > Duration::from_secs(24 * 3600)
        {
            return bad(
                "certReloadInterval",
                format!(
                    "{:?} is out of range; use between 10ms and 24h",
                    self.cert_reload_interval
                ),
            );
        }
        if self.shutdown_delay > Duration::from_secs(300) {
            return bad(
                "shutdownDelay",
                format!("{:?} is too long; use at most 5m", self.shutdown_delay),
            );
        }
        if let Err(e) = check_dns1123_subdomain(&self.scheduler_name) {
            return bad(
                "schedulerName",
                format!(
                    "{:?} is not a valid scheduler name: {e}",
                    self.scheduler_name
                ),
            );
        }
        if let Err(e) = check_qualified_name(&self.instance_group_label) {
            return bad(
                "instanceGroupLabel",
                format!(
                    "{:?} is not a valid label key: {e}",
                    self.instance_group_label
                ),
            );
        }
        if let Some(group) = &self.default_instance_group
            && let Err(e) = check_label_value(group)
        {
            return bad(
                "defaultInstanceGroup",
                format!("{group:?} is not a valid label value: {e}"),
            );
        }
        for (namespace, group) in &self.default_instance_group_by_namespace {
            let key = format!("defaultInstanceGroupByNamespace.{namespace}");
            if let Err(e) = check_dns1123_label(namespace) {
                return bad(&key, format!("{namespace:?} is not a valid namespace: {e}"));
            }
            if let Err(e) = check_label_value(group) {
                return bad(&key, format!("{group:?} is not a valid label value: {e}"));
            }
        }
        if let Some(class) = &self.default_priority_class
            && let Err(e) = check_dns1123_subdomain(class)
        {
            return bad(
                "defaultPriorityClass",
                format!("{class:?} is not a valid PriorityClass name: {e}"),
            );
        }
        for (namespace, class) in &self.default_priority_class_by_namespace {
            let key = format!("defaultPriorityClassByNamespace.{namespace}");
            if let Err(e) = check_dns1123_label(namespace) {
                return bad(&key, format!("{namespace:?} is not a valid namespace: {e}"));
            }
            if let Err(e) = check_dns1123_subdomain(class) {
                return bad(
                    &key,
                    format!("{class:?} is not a valid PriorityClass name: {e}"),
                );
            }
        }
        if self.gpu_resource_names.is_empty() {
            return bad(
                "gpuResourceNames",
                "must list at least one resource name (the default is [nvidia.com/gpu])".into(),
            );
        }
        for name in &self.gpu_resource_names {
            if let Err(e) = check_qualified_name(name) {
                return bad(
                    "gpuResourceNames",
                    format!("{name:?} is not a valid resource name: {e}"),
                );
            }
            if !name.contains('/') {
                return bad(
                    "gpuResourceNames",
                    format!(
                        "{name:?} is not an extended resource name (need a domain prefix, as in nvidia.com/gpu)"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The instance group a Spark pod without one gets in `namespace`, if any.
    pub fn default_instance_group_for(&self, namespace: &str) -> Option<&str> {
        self.default_instance_group_by_namespace
            .get(namespace)
            .or(self.default_instance_group.as_ref())
            .map(String::as_str)
    }
}

fn check_dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > names::MAX_LABEL_LEN {
        return Err("must be 1 to 63 characters".into());
    }
    if !names::is_dns1123_label(s) {
        return Err(
            "use lower-case letters, digits and '-', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > names::MAX_SUBDOMAIN_LEN {
        return Err("must be 1 to 253 characters".into());
    }
    if !names::is_dns1123_subdomain(s) {
        return Err("use dot-separated parts of lower-case letters, digits and '-'".to_owned());
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
/// alphanumeric. An empty instance group is useless, so it is rejected here too.
fn check_label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    check_name_part(s)
}

fn check_name_part(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let b = s.as_bytes();
    let inner = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    if b.is_empty()
        || !b.iter().all(|&c| inner(c))
        || !b[0].is_ascii_alphanumeric()
        || !b[b.len() - 1].is_ascii_alphanumeric()
    {
        return Err(
            "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

/// A label key or resource name: an optional DNS-subdomain prefix and `/`, then a name part.
fn check_qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        check_dns1123_subdomain(p).map_err(|e| format!("prefix {p:?}: {e}"))?;
    }
    check_name_part(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AdmissionConfig, ConfigError> {
        AdmissionConfig::from_yaml(Path::new("/etc/sparkgang/admission.yaml"), text)
    }

    #[test]
    fn defaults_fill_everything_but_the_files() {
        let c = parse("tlsCertFile: /tls/tls.crt\ntlsKeyFile: /tls/tls.key\n").unwrap();
        assert_eq!(
            c,
            AdmissionConfig::with_tls_files("/tls/tls.crt", "/tls/tls.key")
        );
        assert_eq!(c.tls_listen_address.to_string(), "0.0.0.0:8443");
        assert_eq!(c.metrics_listen_address.to_string(), "0.0.0.0:9090");
        assert_eq!(c.cert_reload_interval, Duration::from_secs(10));
        assert!(c.spark_conf_gate && !c.overwrite_scheduler_name);
    }

    #[test]
    fn the_example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
        let c = AdmissionConfig::from_file(&path).unwrap();
        assert_eq!(c.default_instance_group_for("spark"), Some("batch"));
        assert_eq!(c.default_instance_group_for("ml"), Some("gpu"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_key_and_file() {
        let e = parse("tlsCertFile: a\ntlsKeyFile: b\nschedulerNmae: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/sparkgang/admission.yaml"), "{e}");
        assert!(e.contains("schedulerNmae"), "{e}");
    }

    #[test]
    fn missing_files_are_rejected() {
        let e = parse("schedulerName: x\n").unwrap_err().to_string();
        assert!(e.contains("tlsCertFile"), "{e}");
    }

    #[test]
    fn values_are_validated() {
        for (yaml, key) in [
            ("instanceGroupLabel: 'bad label'", "instanceGroupLabel"),
            ("schedulerName: Spark_Scheduler", "schedulerName"),
            ("defaultInstanceGroup: ''", "defaultInstanceGroup"),
            (
                "defaultInstanceGroupByNamespace: {Spark: batch}",
                "defaultInstanceGroupByNamespace.Spark",
            ),
            (
                "defaultInstanceGroupByNamespace: {spark: 'a b'}",
                "defaultInstanceGroupByNamespace.spark",
            ),
            ("gpuResourceNames: [gpu]", "gpuResourceNames"),
            ("gpuResourceNames: []", "gpuResourceNames"),
            ("certReloadInterval: 0s", "certReloadInterval"),
            ("shutdownDelay: 1h", "shutdownDelay"),
            ("tlsListenAddress: 0.0.0.0:9090", "metricsListenAddress"),
        ] {
            let e = parse(&format!("tlsCertFile: a\ntlsKeyFile: b\n{yaml}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("key {key}:")), "{yaml}: {e}");
        }
        let e = parse("tlsCertFile: a\ntlsKeyFile: b\ncertReloadInterval: 10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"10\" is not a duration such as"), "{e}");
    }

    #[test]
    fn durations() {
        use sparkgang_common::durations::parse_duration;
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10d").is_err());
    }

    #[test]
    fn label_rules() {
        assert!(check_qualified_name("instance-group").is_ok());
        assert!(check_qualified_name("node.kubernetes.io/instance-type").is_ok());
        assert!(check_qualified_name("a/b/c").is_err());
        assert!(check_qualified_name("-x").is_err());
        assert!(check_label_value("batch.2_x").is_ok());
        assert!(check_label_value(&"x".repeat(64)).is_err());
    }
}
