//! Leader election on a `coordination.k8s.io/v1` Lease: one replica writes, the others wait.
//!
//! A small acquire-and-renew loop with optimistic concurrency. A leader that cannot renew
//! within the lease duration stops (the process exits and restarts as a follower), so two
//! replicas never write at once for longer than clock skew allows.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

/// Who competes for which lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_interval: Duration,
}

/// The lease was lost.
#[derive(Debug, thiserror::Error)]
#[error("lost the lease {namespace}/{name}: {reason}")]
pub struct LeaseLost {
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// One attempt: `Ok(true)` when we hold the lease afterwards.
async fn try_acquire(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let seconds = i32::try_from(s.duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    match api.get_opt(&s.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    namespace: Some(s.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(s.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if code(&e) == Some(409) => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let ours = holder == s.identity;
            let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(seconds));
            let expired = spec
                .renew_time
                .as_ref()
                .is_none_or(|r| now.duration_since(r.0).as_secs() > held_for);
            if !(ours || holder.is_empty() || expired) {
                return Ok(false);
            }
            if !ours {
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.holder_identity = Some(s.identity.clone());
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = Some(MicroTime(now));
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if code(&e) == Some(409) => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    loop {
        match try_acquire(&api, s).await {
            Ok(true) => {
                info!(
                    lease = s.name.as_str(),
                    identity = s.identity.as_str(),
                    "became the leader"
                );
                return;
            }
            Ok(false) => {}
            Err(e) => warn!(lease = s.name.as_str(), error = %e, "lease check failed"),
        }
        tokio::time::sleep(s.renew_interval).await;
    }
}

/// Renews the lease until it is lost; returns why.
pub async fn hold(client: Client, s: &LeaseSettings) -> LeaseLost {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(s.renew_interval).await;
        let reason = match try_acquire(&api, s).await {
            Ok(true) => {
                last_renewal = tokio::time::Instant::now();
                continue;
            }
            Ok(false) => "another replica holds it".to_owned(),
            Err(e) if last_renewal.elapsed() < s.duration => {
                warn!(lease = s.name.as_str(), error = %e, "lease renewal failed; retrying");
                continue;
            }
            Err(e) => format!("could not renew within {:?}: {e}", s.duration),
        };
        return LeaseLost {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            reason,
        };
    }
}
