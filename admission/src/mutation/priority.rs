//! A Spark pod's priority class: its label, else (an executor) its driver's class, else its
//! namespace's default; and the patch that sets it so the API server resolves it.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::Value;
use sparkgang_common::pods;

use super::{MESSAGE_PREFIX, MutationConfig, Op, PatchOp, Role, clip_warning, short};

/// The pod label naming a priority class: `spark.kubernetes.driver.label.sparkgang.io/priority-class=high`
/// from a plain spark-submit. Executors inherit their driver's class without it.
pub const PRIORITY_CLASS_LABEL: &str = "sparkgang.io/priority-class";

/// What the shell read of an executor's driver before the decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DriverClass {
    /// Not read: not needed, or the webhook runs without API access.
    #[default]
    Unknown,
    /// The driver's `spec.priorityClassName` (`None`: it names none).
    Known(Option<String>),
    /// Reading the driver failed, with why.
    Failed(String),
}

/// The driver whose class an executor inherits, when the executor names no class of its own
/// (no label, no `priorityClassName`): the name of its controlling owner pod.
pub fn driver_to_look_up(pod: &Pod) -> Option<&str> {
    if pods::spark_role(pod) != Some(Role::Executor)
        || own_class(pod).is_some()
        || current_class(pod).is_some()
    {
        return None;
    }
    pods::owning_driver(pod).map(|o| o.name.as_str())
}

/// Its `priorityClassName`, when not empty.
fn current_class(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        .filter(|c| !c.is_empty())
}

fn own_class(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(PRIORITY_CLASS_LABEL))
        .map(String::as_str)
        .filter(|c| !c.is_empty())
}

/// The priority class `pod` should get, when it differs from the one it names: its
/// [`PRIORITY_CLASS_LABEL`] label; else, for a pod that names none, its driver's class (an
/// executor whose driver was read) or its namespace's default. A label that overrides a
/// different `priorityClassName` wins, with a warning.
pub(super) fn priority_class(
    config: &MutationConfig,
    namespace: &str,
    pod: &Pod,
    role: Role,
    driver: &DriverClass,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let current = current_class(pod);
    let wanted = match (own_class(pod), current) {
        (Some(l), Some(c)) if l != c => {
            warnings.push(clip_warning(format!(
                "{MESSAGE_PREFIX}label {PRIORITY_CLASS_LABEL}={} replaces priorityClassName {}",
                short(l),
                short(c)
            )));
            l
        }
        (Some(l), _) => l,
        (None, Some(_)) => return None,
        (None, None) => match (role, driver) {
            (Role::Executor, DriverClass::Known(Some(class))) if !class.is_empty() => class,
            (Role::Executor, DriverClass::Failed(why)) => {
                warnings.push(clip_warning(format!(
                    "{MESSAGE_PREFIX}driver not read ({why}); executor gets the default class"
                )));
                config.default_priority_class_for(namespace)?
            }
            _ => config.default_priority_class_for(namespace)?,
        },
    };
    (current != Some(wanted)).then(|| wanted.to_owned())
}

/// Sets `priorityClassName` and removes `priority` and `preemptionPolicy`: the API server's
/// Priority plugin filled those from the pod's old class before webhooks ran, and resolves the
/// new class only if they are gone (left in place, they contradict it and the pod is refused).
pub(super) fn priority_class_ops(spec: Option<&PodSpec>, class: &str) -> Vec<PatchOp> {
    let mut ops = vec![PatchOp {
        op: if spec.is_some_and(|s| s.priority_class_name.is_some()) {
            Op::Replace
        } else {
            Op::Add
        },
        path: "/spec/priorityClassName".to_owned(),
        value: Value::String(class.to_owned()),
    }];
    if spec.is_some_and(|s| s.priority.is_some()) {
        ops.push(PatchOp {
            op: Op::Remove,
            path: "/spec/priority".to_owned(),
            value: Value::Null,
        });
    }
    if spec.is_some_and(|s| s.preemption_policy.is_some()) {
        ops.push(PatchOp {
            op: Op::Remove,
            path: "/spec/preemptionPolicy".to_owned(),
            value: Value::Null,
        });
    }
    ops
}
