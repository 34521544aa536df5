//! Reading an executor's driver for its priority class, and every API call the webhook makes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use crate::metrics::Metrics;
use crate::mutation::DriverClass;

/// Every API call the webhook makes, as (group, resource, verbs): the source of truth for its
/// RBAC in `deploy/` (a test checks the ClusterRole grants exactly these).
pub const API_CALLS: &[(&str, &str, &[&str])] = &[
    ("", "pods", &["get"]),
    ("sparkgang.io", "queues", &["get", "list"]),
];

/// How long one read may take: well inside the webhook's `timeoutSeconds` (5 s in deploy/), so
/// a slow API server delays the executor but never fails its admission.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads drivers through the API server.
#[derive(Clone)]
pub struct DriverReader {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for DriverReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverReader")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DriverReader {
    pub fn new(client: Client) -> Self {
        DriverReader {
            client,
            timeout: READ_TIMEOUT,
        }
    }

    /// The priority class of driver `name` in `namespace`, counted in `metrics`. A driver that
    /// is gone, or a read that fails or times out, is reported as such: the executor then gets
    /// its namespace's default, with a warning.
    pub async fn priority_class(
        &self,
        namespace: &str,
        name: &str,
        metrics: &Metrics,
    ) -> DriverClass {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let (result, class) = match tokio::time::timeout(self.timeout, api.get_opt(name)).await {
            Ok(Ok(Some(driver))) => {
                let class = driver
                    .spec
                    .and_then(|s| s.priority_class_name)
                    .filter(|c| !c.is_empty());
                let result = if class.is_some() { "found" } else { "no-class" };
                (result, DriverClass::Known(class))
            }
            Ok(Ok(None)) => (
                "not-found",
                DriverClass::Failed(format!("driver {namespace}/{name} not found")),
            ),
            Ok(Err(e)) => ("failed", DriverClass::Failed(short_error(&e))),
            Err(_) => (
                "failed",
                DriverClass::Failed(format!("no answer within {}s", self.timeout.as_secs())),
            ),
        };
        metrics.driver_read(result);
        if let DriverClass::Failed(why) = &class {
            tracing::warn!(
                namespace,
                driver = name,
                why,
                "cannot read an executor's driver"
            );
        }
        class
    }
}

/// A kube error in few words (warnings are short).
fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => other.to_string().chars().take(60).collect(),
    }
}
