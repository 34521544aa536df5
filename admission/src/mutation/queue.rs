//! The queue a driver names (`sparkgang.io/queue`, from a plain spark-submit as
//! `spark.kubernetes.driver.label.sparkgang.io/queue`): a queue that does not exist is refused
//! at admission, with the queues there are, rather than left pending at the scheduler.

use k8s_openapi::api::core::v1::Pod;
use sparkgang_common::api::queue::QUEUE_LABEL;
use sparkgang_common::pods;

use super::{MESSAGE_PREFIX, Role, clip_warning, short};

/// What the shell read of the queue a driver names, before the decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueueLookup {
    /// Not read: the pod names no queue, or the webhook runs without API access.
    #[default]
    Unknown,
    /// The queue exists.
    Exists,
    /// No such queue; `known` are the queues there are.
    Missing { known: Vec<String> },
    /// Reading it failed, with why: the pod is admitted with a warning (the extender says
    /// so again if the queue is still missing when it decides).
    Failed(String),
}

/// The queue a driver names, when it names one.
pub fn queue_to_check(pod: &Pod) -> Option<&str> {
    if pods::spark_role(pod) != Some(Role::Driver) {
        return None;
    }
    pod.metadata
        .labels
        .as_ref()?
        .get(QUEUE_LABEL)
        .map(String::as_str)
}

/// `Err((reason, message))` when the driver names a queue that does not exist (or an empty
/// name); a warning when the queue could not be read.
pub(super) fn check(
    pod: &Pod,
    lookup: &QueueLookup,
    warnings: &mut Vec<String>,
) -> Result<(), (&'static str, String)> {
    let Some(name) = queue_to_check(pod) else {
        return Ok(());
    };
    if name.trim().is_empty() {
        return Err((
            "unknown-queue",
            format!(
                "{MESSAGE_PREFIX}label {QUEUE_LABEL} is empty; name a queue (kubectl get queues)"
            ),
        ));
    }
    match lookup {
        QueueLookup::Missing { known } => {
            let known = if known.is_empty() {
                "there are none (kubectl get queues)".to_owned()
            } else {
                format!("the queues are: {}", known.join(", "))
            };
            Err((
                "unknown-queue",
                format!(
                    "{MESSAGE_PREFIX}label {QUEUE_LABEL}={} names a queue that does not exist; {known}",
                    short(name)
                ),
            ))
        }
        QueueLookup::Failed(why) => {
            warnings.push(clip_warning(format!(
                "{MESSAGE_PREFIX}queue {} not checked ({why})",
                short(name)
            )));
            Ok(())
        }
        QueueLookup::Unknown | QueueLookup::Exists => Ok(()),
    }
}
