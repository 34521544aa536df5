//! The identities the state is keyed by: a pod (`PodKey`) and a Spark application (`AppKey`).

use k8s_openapi::api::core::v1::Pod;

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(pod: &Pod) -> Option<Self> {
        Some(PodKey::new(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref()?,
        ))
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An application: namespace and Spark application id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppKey {
    pub namespace: String,
    pub app_id: String,
}

impl AppKey {
    pub fn new(namespace: impl Into<String>, app_id: impl Into<String>) -> Self {
        AppKey {
            namespace: namespace.into(),
            app_id: app_id.into(),
        }
    }

    /// The name of this application's `ResourceReservation`: the app id when it is a valid
    /// object name (always for Spark's `spark-<hex>` ids), else a sanitised form with a hash.
    pub fn reservation_name(&self) -> String {
        let id = &self.app_id;
        let valid = crate::names::is_dns1123_subdomain(id);
        if valid {
            return id.clone();
        }
        let mut clean: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        clean.truncate(200);
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("app-{}-{hash:016x}", clean.trim_matches('-'))
    }
}

impl std::fmt::Display for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.app_id)
    }
}
