//! Leader election on a `coordination.k8s.io/v1` Lease: one replica writes, the others wait.
//!
//! A small acquire-and-renew loop with optimistic concurrency, as client-go's: the leader
//! renews every `renewInterval`; one that could not renew for `renewDeadline` stops deciding
//! (the readiness check counts from the last renewal, so a hanging call cannot delay that) and
//! its term ends, well before `leaseDuration` lets another replica take the lease. Every call
//! has the client's request timeout. A leader that shuts down releases the lease, so a
//! follower takes over at its next try instead of after `leaseDuration`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Extender;

/// Who competes for which lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_interval: Duration,
    pub renew_deadline: Duration,
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

/// One attempt: `Ok(true)` when we hold the lease afterwards, `Ok(false)` when another
/// replica holds it; a write conflict is an error (try again: it may still be ours).
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
            api.replace(&s.name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
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

/// Renews the lease until it is lost; returns why. Each renewal is reported to `ext`, whose
/// readiness fails once the last one is older than `renewDeadline`.
pub async fn hold(client: Client, s: &LeaseSettings, ext: &Extender) -> LeaseLost {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let mut last_renewal = Instant::now();
    loop {
        tokio::time::sleep(s.renew_interval).await;
        let attempt = Instant::now();
        let reason = match try_acquire(&api, s).await {
            Ok(true) => {
                last_renewal = attempt;
                ext.lease_renewed(attempt, s.renew_deadline);
                continue;
            }
            Ok(false) => "another replica holds it".to_owned(),
            Err(e) if last_renewal.elapsed() < s.renew_deadline => {
                warn!(lease = s.name.as_str(), error = %e, "lease renewal failed; retrying");
                continue;
            }
            Err(e) => format!(
                "could not renew within renewDeadline {:?}: {e}",
                s.renew_deadline
            ),
        };
        return LeaseLost {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            reason,
        };
    }
}

/// Gives the lease up if this replica holds it (holder cleared, as client-go's
/// `ReleaseOnCancel`), so a follower takes it at its next try. Best effort: a failure only
/// means the follower waits for the lease to expire.
pub async fn release(client: Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let released = async {
        let Some(mut lease) = api.get_opt(&s.name).await? else {
            return Ok::<bool, kube::Error>(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        api.replace(&s.name, &PostParams::default(), &lease).await?;
        Ok(true)
    };
    match released.await {
        Ok(true) => info!(lease = s.name.as_str(), "lease released"),
        Ok(false) => {}
        Err(e) => {
            warn!(lease = s.name.as_str(), error = %e, "cannot release the lease; it expires on its own")
        }
    }
}
