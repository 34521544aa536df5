//! `SimCluster`: the in-memory API server with the real webhook and the real extender, the
//! scheduler and kubelet simulators, all wired as `deploy/` wires them on a real cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use serde_yaml::Value as Yaml;
use sparkgang_admission::{AdmissionConfig, RunningServer};
use sparkgang_certs::TestPki;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::config::ExtenderConfig;
use tokio::task::JoinHandle;

use crate::admission::{WebhookDispatcher, WebhookEndpoint};
use crate::apiserver::{self, ApiServer, ServerConfig};
use crate::deploy_config::{self, SchedulerDeployment};
use crate::scheduler::{AttemptObserver, SchedulerSettings};

/// What to start.
#[derive(Clone)]
pub struct SimOptions {
    /// The `deploy/` directory whose configs are used.
    pub deploy_dir: PathBuf,
    /// Run the real webhook (and send pod creations to it per the webhook configuration).
    pub webhook: bool,
    /// Run the real extender (else kube-scheduler schedules alone: the default behaviour).
    pub extender: bool,
    /// Overrides merged into the extender config of `deploy/` (YAML mapping).
    pub extender_overrides: Option<Yaml>,
    /// Sees every scheduling attempt.
    pub observer: Option<AttemptObserver>,
    /// Schedule pods of this scheduler name instead of deploy/'s profile (the baseline:
    /// `default-scheduler`, without webhook and extender).
    pub scheduler_name: Option<String>,
    /// How long a deleted running pod takes to stop (at most its grace period): the API server
    /// marks it and the kubelet removes it then. `None`: deleted pods go at once.
    pub pod_termination: Option<Duration>,
    /// Run Spark's driver and executor pods as local JVMs (issue 17); `None`: their status
    /// alone changes, as for every other pod.
    pub spark_processes: Option<SparkProcesses>,
}

/// How the kubelet runs Spark pods as local processes.
#[derive(Debug, Clone)]
pub struct SparkProcesses {
    pub install: crate::spark::launch::Installation,
    pub heap: crate::spark::launch::HeapPolicy,
    /// At most this many JVMs at once on each node.
    pub jvms_per_node: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            deploy_dir: deploy_config::repository_deploy_dir(),
            webhook: true,
            extender: true,
            extender_overrides: None,
            observer: None,
            scheduler_name: None,
            pod_termination: None,
            spark_processes: None,
        }
    }
}

/// Why the simulated cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Deploy(#[from] deploy_config::DeployConfigError),
    #[error("api server: {0}")]
    ApiServer(std::io::Error),
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("extender: {0}")]
    Extender(String),
    #[error("kubernetes client: {0}")]
    Client(String),
    #[error("replay: {0}")]
    Replay(String),
}

/// A running simulated cluster.
pub struct SimCluster {
    pub api: ApiServer,
    pub client: Client,
    pub webhook: Option<RunningServer>,
    pub extender: Option<sparkgang_extender::Running>,
    pub options: SimOptions,
    pub deployment: SchedulerDeployment,
    scheduler: Option<JoinHandle<()>>,
    kubelet: JoinHandle<()>,
    processes: Option<crate::kubelet::ProcessRuntime>,
    pki: Option<TestPki>,
    pki_dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn merge(base: &mut Yaml, over: &Yaml) {
    match (base, over) {
        (Yaml::Mapping(b), Yaml::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The extender config of `deploy/` with `overrides`, listening on free loopback ports and
/// without leader election (one replica).
pub fn extender_config(
    deployment: &SchedulerDeployment,
    overrides: Option<&Yaml>,
) -> Result<ExtenderConfig, String> {
    let mut yaml: Yaml =
        serde_yaml::from_str(&deployment.extender_config_yaml).map_err(|e| e.to_string())?;
    let local: Yaml = serde_yaml::from_str(
        "{filterListenAddress: '127.0.0.1:0', metricsListenAddress: '127.0.0.1:0', explain: {listenAddress: '127.0.0.1:0'}, leaderElection: {enabled: false}}",
    )
    .map_err(|e| e.to_string())?;
    merge(&mut yaml, &local);
    if let Some(o) = overrides {
        merge(&mut yaml, o);
    }
    let text = serde_yaml::to_string(&yaml).map_err(|e| e.to_string())?;
    ExtenderConfig::from_yaml(
        &text,
        "deploy extender-config.yaml with simulator overrides",
    )
    .map_err(|e| e.to_string())
}

impl SimCluster {
    /// Starts everything and waits until the extender is ready.
    pub async fn start(options: SimOptions) -> Result<SimCluster, SimError> {
        let deployment = SchedulerDeployment::load(&options.deploy_dir)?;
        let pki_dir = TempDir(std::env::temp_dir().join(format!(
            "sparkgang-sim-{}-{}",
            std::process::id(),
            rand_suffix()
        )));
        let mut server_config = ServerConfig::default()
            .with_crd_dir(options.deploy_dir.join("crds"))
            .map_err(SimError::ApiServer)?;
        server_config.clock = Arc::new(apiserver::SystemClock);
        let api = apiserver::start(server_config)
            .await
            .map_err(SimError::ApiServer)?;
        // Processes stop as containers do: the pod is marked, the kubelet stops it, then
        // removes it.
        api.store().set_graceful_pod_deletion(
            options.pod_termination.is_some() || options.spark_processes.is_some(),
        );
        let client = client_for(&api)?;
        // Then the webhook (it reads executors' drivers through the API server), registered
        // with the API server once it listens.
        let mut webhook = None;
        let mut kept_pki = None;
        if options.webhook {
            let pki = TestPki::for_service("sparkgang-webhook", "sparkgang-system")
                .map_err(|e| SimError::Webhook(e.to_string()))?;
            pki.write_to_dir(&pki_dir.0)
                .map_err(|e| SimError::Webhook(e.to_string()))?;
            let mut config = load_admission_config(&options.deploy_dir)?;
            config.tls_cert_file = pki_dir.0.join("tls.crt");
            config.tls_key_file = pki_dir.0.join("tls.key");
            config.tls_listen_address = "127.0.0.1:0"
                .parse()
                .map_err(|_| SimError::Webhook("address".into()))?;
            config.metrics_listen_address = "127.0.0.1:0"
                .parse()
                .map_err(|_| SimError::Webhook("address".into()))?;
            // Rotations in tests should show within a fraction of a second.
            config.cert_reload_interval = Duration::from_millis(200);
            let running = sparkgang_admission::start_with_api(config, Some(client.clone()))
                .await
                .map_err(|e| SimError::Webhook(e.to_string()))?;
            let endpoint = WebhookEndpoint {
                address: running.tls_addr(),
                ca_pem: pki.ca_cert_pem().to_owned(),
            };
            let hook_config = deploy_config::load_webhook_configuration(&options.deploy_dir)?;
            let dispatcher = WebhookDispatcher::new(hook_config, endpoint, api.store().clone())
                .map_err(SimError::Webhook)?;
            api.hooks().add_admission(Arc::new(dispatcher));
            webhook = Some(running);
            kept_pki = Some(pki);
        }
        let processes = options.spark_processes.as_ref().map(|s| {
            crate::kubelet::ProcessRuntime::start(
                client.clone(),
                crate::kubelet::ProcessOptions {
                    install: s.install.clone(),
                    heap: s.heap,
                    jvms_per_node: s.jvms_per_node,
                    dir: pki_dir.0.join("pods"),
                    api_server: api.url(),
                    logs: api.container_logs().clone(),
                },
            )
        });
        let mut cluster = SimCluster {
            api,
            client: client.clone(),
            webhook,
            extender: None,
            options: options.clone(),
            deployment,
            scheduler: None,
            kubelet: tokio::spawn(crate::kubelet::run(
                client,
                options.pod_termination.unwrap_or_default(),
                processes.clone(),
            )),
            processes,
            pki: kept_pki,
            pki_dir,
        };
        cluster.start_extender_and_scheduler().await?;
        Ok(cluster)
    }

    async fn start_extender_and_scheduler(&mut self) -> Result<(), SimError> {
        let mut extender = None;
        if self.options.extender {
            let config =
                extender_config(&self.deployment, self.options.extender_overrides.as_ref())
                    .map_err(SimError::Extender)?;
            let running = sparkgang_extender::start(
                config,
                config_with_agent(&self.api, EXTENDER_USER_AGENT)?,
                Arc::new(SystemClock),
                "sparkgang-sim".to_owned(),
            )
            .await
            .map_err(|e| SimError::Extender(e.to_string()))?;
            wait_ready(&running).await?;
            extender = Some(running.filter_address);
            self.extender = Some(running);
        }
        if self.scheduler.is_none() {
            let settings = SchedulerSettings {
                scheduler_name: self
                    .options
                    .scheduler_name
                    .clone()
                    .unwrap_or_else(|| self.deployment.scheduler_name().to_owned()),
                extender: match extender {
                    Some(address) => self
                        .deployment
                        .extender_at(address)
                        .map_err(SimError::Extender)?,
                    None => None,
                },
                gpus: sparkgang_common::GpuResourceNames::default(),
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(10),
            };
            self.scheduler = Some(tokio::spawn(crate::scheduler::run(
                self.client.clone(),
                settings,
                self.options.observer.clone(),
            )));
        }
        Ok(())
    }

    /// Replaces the webhook's serving certificate and key on disk (same CA), as cert-manager
    /// renewing it does; the webhook picks them up without a restart.
    pub fn rotate_webhook_certificate(&self) -> Result<(), SimError> {
        let Some(pki) = &self.pki else {
            return Ok(());
        };
        let renewed = pki
            .reissue()
            .map_err(|e| SimError::Webhook(e.to_string()))?;
        sparkgang_certs::write_serving(&self.pki_dir.0, &renewed, pki.ca_cert_pem())
            .map_err(|e| SimError::Webhook(e.to_string()))?;
        Ok(())
    }

    /// Kills the extender like a crash (in-flight writes lost) and starts a new one on the same
    /// address, which rebuilds its state from the API.
    pub async fn restart_extender(&mut self) -> Result<(), SimError> {
        let Some(old) = self.extender.take() else {
            return Ok(());
        };
        let address = old.filter_address;
        old.kill();
        let mut config =
            extender_config(&self.deployment, self.options.extender_overrides.as_ref())
                .map_err(SimError::Extender)?;
        config.filter_listen_address = address;
        // The old listener may take a moment to close.
        let mut attempts = 0;
        let running = loop {
            match sparkgang_extender::start(
                config.clone(),
                config_with_agent(&self.api, EXTENDER_USER_AGENT)?,
                Arc::new(SystemClock),
                "sparkgang-sim-restarted".to_owned(),
            )
            .await
            {
                Ok(r) => break r,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(error = %e, "extender port not free yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(SimError::Extender(e.to_string())),
            }
        };
        wait_ready(&running).await?;
        self.extender = Some(running);
        Ok(())
    }

    /// Stops every task.
    pub async fn stop(self) {
        if let Some(s) = self.scheduler {
            s.abort();
        }
        self.kubelet.abort();
        if let Some(p) = &self.processes {
            p.shutdown().await;
        }
        if let Some(e) = self.extender {
            e.kill();
        }
        if let Some(w) = self.webhook {
            let _ = w.shutdown().await;
        }
        self.api.shutdown().await;
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The admission config of `deploy/` (ConfigMap `sparkgang-admission-config`).
pub(crate) fn load_admission_config(deploy: &std::path::Path) -> Result<AdmissionConfig, SimError> {
    let path = deploy.join("base/webhook/config.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SimError::Webhook(format!("{}: {e}", path.display())))?;
    let cm: ConfigMap = serde_yaml::from_str(&text)
        .map_err(|e| SimError::Webhook(format!("{}: {e}", path.display())))?;
    let data = cm.data.unwrap_or_default();
    let config = data
        .get("config.yaml")
        .ok_or_else(|| SimError::Webhook(format!("{}: no config.yaml", path.display())))?;
    AdmissionConfig::from_yaml(&path, config).map_err(|e| SimError::Webhook(e.to_string()))
}

/// A kube-rs client for the API server (no authentication, as the simulator has none).
pub fn client_for(api: &ApiServer) -> Result<Client, SimError> {
    client_with_agent(api, "sparkgang-sim")
}

/// The User-Agent of the extender's client, so its requests can be told apart.
pub const EXTENDER_USER_AGENT: &str = "sparkgang-extender";

/// A client that sends `agent` as its User-Agent (kube-rs sends none by default).
pub fn client_with_agent(api: &ApiServer, agent: &str) -> Result<Client, SimError> {
    Client::try_from(config_with_agent(api, agent)?).map_err(|e| SimError::Client(e.to_string()))
}

/// The client configuration for the API server, sending `agent` as its User-Agent.
pub fn config_with_agent(api: &ApiServer, agent: &str) -> Result<kube::Config, SimError> {
    let url = api
        .url()
        .parse()
        .map_err(|e: http::uri::InvalidUri| SimError::Client(e.to_string()))?;
    let mut config = kube::Config::new(url);
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(agent).map_err(|e| SimError::Client(e.to_string()))?,
    ));
    Ok(config)
}

async fn wait_ready(running: &sparkgang_extender::Running) -> Result<(), SimError> {
    for _ in 0..600 {
        if running.extender.not_ready_reason().is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(SimError::Extender(format!(
        "not ready after 30s: {}",
        running.extender.not_ready_reason().unwrap_or_default()
    )))
}
