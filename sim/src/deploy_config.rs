//! The configurations the simulator takes from `deploy/`: the `KubeSchedulerConfiguration` of
//! the spark-scheduler, the extender's config, and the `MutatingWebhookConfiguration`. Typed
//! and strict (unknown fields are errors), so `deploy/` and the simulator cannot drift apart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use sparkgang_common::durations::parse_duration;

/// `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`): the fields `deploy/` uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeSchedulerConfiguration {
    pub api_version: String,
    pub kind: String,
    pub leader_election: LeaderElection,
    pub percentage_of_nodes_to_score: Option<u32>,
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub extenders: Vec<ExtenderEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    pub leader_elect: bool,
    pub resource_lock: String,
    pub resource_name: String,
    pub resource_namespace: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub scheduler_name: String,
}

/// One `extenders[]` entry (config/v1 `Extender`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtenderEntry {
    pub url_prefix: String,
    pub filter_verb: String,
    /// kube-scheduler asks the extender about its own preemption candidates on this verb.
    /// (The simulated kube-scheduler does not preempt: it reads the key and leaves it.)
    #[serde(default)]
    pub preempt_verb: Option<String>,
    pub node_cache_capable: bool,
    pub ignorable: bool,
    pub http_timeout: String,
    pub weight: i64,
    #[serde(rename = "enableHTTPS")]
    pub enable_https: bool,
}

/// An extender as the scheduler simulator calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerExtender {
    pub url_prefix: String,
    pub filter_verb: String,
    pub node_cache_capable: bool,
    pub ignorable: bool,
    pub http_timeout: Duration,
}

/// A `deploy/` file the simulator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum DeployConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn read(path: &Path) -> Result<String, DeployConfigError> {
    std::fs::read_to_string(path).map_err(|source| DeployConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> DeployConfigError {
    DeployConfigError::Invalid {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// The scheduler ConfigMap of `deploy/`: the KubeSchedulerConfiguration and the extender's
/// config text.
#[derive(Debug, Clone)]
pub struct SchedulerDeployment {
    pub scheduler: KubeSchedulerConfiguration,
    pub extender_config_yaml: String,
}

impl SchedulerDeployment {
    /// Reads `deploy/base/scheduler/config.yaml` under `deploy`.
    pub fn load(deploy: &Path) -> Result<Self, DeployConfigError> {
        let path = deploy.join("base/scheduler/config.yaml");
        let cm: ConfigMap = serde_yaml::from_str(&read(&path)?).map_err(|e| invalid(&path, e))?;
        let data = cm.data.unwrap_or_default();
        let scheduler_text = data
            .get("scheduler-config.yaml")
            .ok_or_else(|| invalid(&path, "no data key scheduler-config.yaml"))?;
        let scheduler: KubeSchedulerConfiguration =
            serde_yaml::from_str(scheduler_text).map_err(|e| invalid(&path, e))?;
        let extender_config_yaml = data
            .get("extender-config.yaml")
            .cloned()
            .ok_or_else(|| invalid(&path, "no data key extender-config.yaml"))?;
        Ok(SchedulerDeployment {
            scheduler,
            extender_config_yaml,
        })
    }

    /// The profile's scheduler name.
    pub fn scheduler_name(&self) -> &str {
        self.scheduler
            .profiles
            .first()
            .map_or("default-scheduler", |p| p.scheduler_name.as_str())
    }

    /// The extender entry, with its `urlPrefix` pointed at `address` (the simulator runs the
    /// extender on a free port instead of the sidecar's fixed one).
    pub fn extender_at(
        &self,
        address: std::net::SocketAddr,
    ) -> Result<Option<SchedulerExtender>, String> {
        let Some(e) = self.scheduler.extenders.first() else {
            return Ok(None);
        };
        let http_timeout = parse_duration(&e.http_timeout).map_err(|e| e.to_string())?;
        let scheme = if e.enable_https { "https" } else { "http" };
        Ok(Some(SchedulerExtender {
            url_prefix: format!("{scheme}://{address}"),
            filter_verb: e.filter_verb.clone(),
            node_cache_capable: e.node_cache_capable,
            ignorable: e.ignorable,
            http_timeout,
        }))
    }
}

/// Reads `deploy/base/webhook/mutatingwebhookconfiguration.yaml` under `deploy`.
pub fn load_webhook_configuration(
    deploy: &Path,
) -> Result<MutatingWebhookConfiguration, DeployConfigError> {
    let path = deploy.join("base/webhook/mutatingwebhookconfiguration.yaml");
    serde_yaml::from_str(&read(&path)?).map_err(|e| invalid(&path, e))
}

/// The repository's `deploy/` directory (next to this crate).
pub fn repository_deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}
