//! The pure mutation: a Spark pod at CREATE → JSON Patch operations and warnings, or a denial.
//!
//! No I/O, no clock, no state: the same pod always gives the same answer, and a pod already
//! carrying the result gives no operations (idempotent under `reinvocationPolicy: IfNeeded`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Pod, PodSchedulingGate, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sparkgang_common::GpuResourceNames;
use sparkgang_common::annotations;
use sparkgang_common::api::{CONF_MAP_ANNOTATION, GANG_DEMAND_ANNOTATION, SPARK_CONF_GATE};
use sparkgang_common::demand_decision::{
    DemandError, DemandInputs, DemandRules, decide_gang_demand, recorded_gang_demand,
};
use sparkgang_common::pods::{self, SPARK_APP_ID_LABEL, SPARK_APP_SELECTOR_LABEL, SparkRole};
use sparkgang_common::text;

use crate::config::AdmissionConfig;

mod priority;
mod queue;

pub use priority::{DriverClass, PRIORITY_CLASS_LABEL, driver_to_look_up};
use priority::{priority_class, priority_class_ops};
pub use queue::{QueueLookup, queue_to_check};

/// The longest warning sent; the API server and kubectl want them under 120 characters.
pub const MAX_WARNING_CHARS: usize = 119;
/// Prefix of every denial message and warning, so users know where it comes from.
pub const MESSAGE_PREFIX: &str = "sparkgang: ";
/// The scheduler name the API server defaults to.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// A Spark pod's role, as far as the webhook cares.
pub type Role = SparkRole;

/// What the mutation needs from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MutationConfig {
    pub scheduler_name: String,
    pub instance_group_label: String,
    pub default_instance_group: Option<String>,
    pub default_instance_group_by_namespace: BTreeMap<String, String>,
    pub overwrite_scheduler_name: bool,
    pub spark_conf_gate: bool,
    pub gpu_resource_names: GpuResourceNames,
    pub default_priority_class: Option<String>,
    pub default_priority_class_by_namespace: BTreeMap<String, String>,
}

impl Default for MutationConfig {
    fn default() -> Self {
        MutationConfig::from(&AdmissionConfig::with_tls_files("tls.crt", "tls.key"))
    }
}

impl From<&AdmissionConfig> for MutationConfig {
    fn from(c: &AdmissionConfig) -> Self {
        MutationConfig {
            scheduler_name: c.scheduler_name.clone(),
            instance_group_label: c.instance_group_label.clone(),
            default_instance_group: c.default_instance_group.clone(),
            default_instance_group_by_namespace: c.default_instance_group_by_namespace.clone(),
            overwrite_scheduler_name: c.overwrite_scheduler_name,
            spark_conf_gate: c.spark_conf_gate,
            gpu_resource_names: GpuResourceNames::new(c.gpu_resource_names.iter().cloned()),
            default_priority_class: c.default_priority_class.clone(),
            default_priority_class_by_namespace: c.default_priority_class_by_namespace.clone(),
        }
    }
}

impl MutationConfig {
    fn default_instance_group_for(&self, namespace: &str) -> Option<&str> {
        self.default_instance_group_by_namespace
            .get(namespace)
            .or(self.default_instance_group.as_ref())
            .map(String::as_str)
    }

    pub(crate) fn default_priority_class_for(&self, namespace: &str) -> Option<&str> {
        self.default_priority_class_by_namespace
            .get(namespace)
            .or(self.default_priority_class.as_ref())
            .map(String::as_str)
    }
}

/// An RFC 6902 operation: `add`, `replace`, or `remove` (of `spec.priority` and
/// `spec.preemptionPolicy` when a priority class is set, see [`mutate_pod`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    pub op: Op,
    /// A JSON Pointer (RFC 6901), keys escaped with `~0` / `~1`.
    pub path: String,
    /// Absent for `remove` (`Value::Null` is not serialised).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// The operation name of a [`PatchOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// What one part of a patch changes (the `kind` label of the patches metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchKind {
    SchedulerName,
    AppIdLabel,
    InstanceGroup,
    AnnotationRewrite,
    ConfMapAnnotation,
    SchedulingGate,
    PriorityClass,
}

impl PatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchKind::SchedulerName => "scheduler_name",
            PatchKind::AppIdLabel => "app_id_label",
            PatchKind::InstanceGroup => "instance_group",
            PatchKind::AnnotationRewrite => "annotation_rewrite",
            PatchKind::ConfMapAnnotation => "conf_map_annotation",
            PatchKind::SchedulingGate => "scheduling_gate",
            PatchKind::PriorityClass => "priority_class",
        }
    }
}

/// The webhook's answer for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Admit the pod with `patch` applied (empty: untouched).
    Allow {
        patch: Vec<PatchOp>,
        warnings: Vec<String>,
        /// What the patch changes, one entry per change.
        kinds: Vec<PatchKind>,
        /// True when the webhook deliberately left the pod alone (not a Spark pod, client-mode
        /// executor, another scheduler) rather than finding nothing to change.
        ignored: bool,
    },
    /// Reject the pod. `message` starts with [`MESSAGE_PREFIX`].
    Deny {
        /// A short machine-readable class (`denials` metric label).
        reason: &'static str,
        message: String,
        warnings: Vec<String>,
    },
}

/// A [`Verdict`] and the role of the pod it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub role: Option<Role>,
    pub verdict: Verdict,
}

impl Mutation {
    fn ignored(role: Option<Role>, warnings: Vec<String>) -> Self {
        Mutation {
            role,
            verdict: Verdict::Allow {
                patch: Vec::new(),
                warnings,
                kinds: Vec::new(),
                ignored: true,
            },
        }
    }
}

/// The parts of a pod the webhook reads. Decoding only these (and skipping containers, env,
/// ...) keeps the hot path short; [`parse_pod`] turns it into a [`Pod`] for `sparkgang_common`.
/// Both are decoded from JSON objects only (serde's derive would also take arrays).
#[derive(Default)]
struct PodView {
    metadata: Option<ObjectMeta>,
    spec: Option<SpecView>,
}

#[derive(Default)]
struct SpecView {
    scheduler_name: Option<String>,
    node_selector: Option<BTreeMap<String, String>>,
    affinity: Option<Affinity>,
    volumes: Option<Vec<Volume>>,
    scheduling_gates: Option<Vec<PodSchedulingGate>>,
    priority_class_name: Option<String>,
    priority: Option<i32>,
    preemption_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum PodField {
    Metadata,
    Spec,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum SpecField {
    SchedulerName,
    NodeSelector,
    Affinity,
    Volumes,
    SchedulingGates,
    PriorityClassName,
    Priority,
    PreemptionPolicy,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for PodView {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PodView;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Pod object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PodView, A::Error> {
                let mut pod = PodView::default();
                while let Some(field) = map.next_key::<PodField>()? {
                    match field {
                        PodField::Metadata => pod.metadata = map.next_value()?,
                        PodField::Spec => pod.spec = map.next_value()?,
                        PodField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(pod)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for SpecView {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpecView;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a PodSpec object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpecView, A::Error> {
                let mut spec = SpecView::default();
                while let Some(field) = map.next_key::<SpecField>()? {
                    match field {
                        SpecField::SchedulerName => spec.scheduler_name = map.next_value()?,
                        SpecField::NodeSelector => spec.node_selector = map.next_value()?,
                        SpecField::Affinity => spec.affinity = map.next_value()?,
                        SpecField::Volumes => spec.volumes = map.next_value()?,
                        SpecField::SchedulingGates => spec.scheduling_gates = map.next_value()?,
                        SpecField::PriorityClassName => {
                            spec.priority_class_name = map.next_value()?
                        }
                        SpecField::Priority => spec.priority = map.next_value()?,
                        SpecField::PreemptionPolicy => spec.preemption_policy = map.next_value()?,
                        SpecField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(spec)
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes the fields of a pod the webhook reads: metadata, and of the spec `schedulerName`,
/// `nodeSelector`, `affinity`, `volumes`, `schedulingGates`, `priorityClassName`, `priority`
/// and `preemptionPolicy`. Containers and every other field are skipped (the returned spec has
/// no containers).
pub fn parse_pod(json: &str) -> Result<Pod, serde_json::Error> {
    let view: PodView = serde_json::from_str(json)?;
    Ok(Pod {
        metadata: view.metadata.unwrap_or_default(),
        spec: view.spec.map(|s| PodSpec {
            scheduler_name: s.scheduler_name,
            node_selector: s.node_selector,
            affinity: s.affinity,
            volumes: s.volumes,
            scheduling_gates: s.scheduling_gates,
            priority_class_name: s.priority_class_name,
            priority: s.priority,
            preemption_policy: s.preemption_policy,
            ..PodSpec::default()
        }),
        status: None,
    })
}

/// Escapes a key for a JSON Pointer: `~` → `~0`, `/` → `~1`.
pub fn escape_pointer_token(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts a warning to [`MAX_WARNING_CHARS`] characters (on a character boundary), with `…`.
pub fn clip_warning(text: String) -> String {
    match text::clip_chars(&text, MAX_WARNING_CHARS) {
        std::borrow::Cow::Borrowed(_) => text,
        clipped => clipped.into_owned(),
    }
}

/// Quotes a user value for a warning, shortened so the warning stays readable.
pub(crate) fn short(value: &str) -> String {
    text::quoted(value, 40)
}

/// Pending changes to one string map of the pod (`labels`, `annotations`, `nodeSelector`).
struct MapEdit<'a> {
    path: &'static str,
    current: Option<&'a BTreeMap<String, String>>,
    set: Vec<(String, String)>,
}

impl<'a> MapEdit<'a> {
    fn new(path: &'static str, current: Option<&'a BTreeMap<String, String>>) -> Self {
        MapEdit {
            path,
            current,
            set: Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.set
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .or_else(|| self.current.and_then(|m| m.get(key)).map(String::as_str))
    }

    /// Sets `key` to `value`; returns false (and does nothing) when it already has it.
    fn set(&mut self, key: &str, value: &str) -> bool {
        if self.get(key) == Some(value) {
            return false;
        }
        self.set.push((key.to_owned(), value.to_owned()));
        true
    }

    fn into_ops(self, ops: &mut Vec<PatchOp>) {
        if self.set.is_empty() {
            return;
        }
        match self.current {
            // `add` at `/metadata/labels/x` fails when `labels` is absent: add the whole map.
            None => {
                let map: serde_json::Map<String, Value> = self
                    .set
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                ops.push(PatchOp {
                    op: Op::Add,
                    path: self.path.to_owned(),
                    value: Value::Object(map),
                });
            }
            Some(current) => {
                for (key, value) in self.set {
                    let op = if current.contains_key(&key) {
                        Op::Replace
                    } else {
                        Op::Add
                    };
                    ops.push(PatchOp {
                        op,
                        path: format!("{}/{}", self.path, escape_pointer_token(&key)),
                        value: Value::String(value),
                    });
                }
            }
        }
    }
}

/// What the shell read from the API before the decision: an executor's driver (its priority
/// class), and the queue a driver names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiReads {
    pub driver: DriverClass,
    pub queue: QueueLookup,
}

/// Decides what to do with a pod at CREATE in `namespace` (the request's namespace; the object
/// usually has none yet), having read nothing from the API.
pub fn mutate_pod(config: &MutationConfig, namespace: &str, pod: &Pod) -> Mutation {
    mutate_pod_with_reads(config, namespace, pod, &ApiReads::default())
}

/// [`mutate_pod`], with what the shell read from the API ([`ApiReads`]).
pub fn mutate_pod_with_reads(
    config: &MutationConfig,
    namespace: &str,
    pod: &Pod,
    reads: &ApiReads,
) -> Mutation {
    let driver = &reads.driver;
    let Some(role) = pods::spark_role(pod) else {
        return Mutation::ignored(None, Vec::new());
    };
    if role == Role::Executor && pods::owning_driver(pod).is_none() {
        // Client mode: the driver runs outside the cluster, there is no gang to join.
        return Mutation::ignored(Some(role), Vec::new());
    }
    let spec = pod.spec.as_ref();
    let scheduler = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("");
    let set_scheduler = match scheduler {
        "" | DEFAULT_SCHEDULER => true,
        s if s == config.scheduler_name => false,
        other => {
            if !config.overwrite_scheduler_name {
                let warning = clip_warning(format!(
                    "{MESSAGE_PREFIX}pod asks for scheduler {}; left unchanged, no gang scheduling",
                    short(other)
                ));
                return Mutation::ignored(Some(role), vec![warning]);
            }
            true
        }
    };

    let mut warnings = Vec::new();
    let mut kinds = Vec::new();
    let metadata = &pod.metadata;
    let mut annotations = MapEdit::new("/metadata/annotations", metadata.annotations.as_ref());
    let mut labels = MapEdit::new("/metadata/labels", metadata.labels.as_ref());
    let mut node_selector = MapEdit::new(
        "/spec/nodeSelector",
        spec.and_then(|s| s.node_selector.as_ref()),
    );
    let mut spec_ops: Vec<PatchOp> = Vec::new();

    let mut wants_gate = false;
    if let Err((reason, message)) = queue::check(pod, &reads.queue, &mut warnings) {
        return Mutation {
            role: Some(role),
            verdict: Verdict::Deny {
                reason,
                message,
                warnings,
            },
        };
    }
    if role == Role::Driver {
        let empty = BTreeMap::new();
        let given = metadata.annotations.as_ref().unwrap_or(&empty);
        let normalised = match annotations::normalise(given, &config.gpu_resource_names) {
            Ok(n) => n,
            Err(errors) => {
                return Mutation {
                    role: Some(role),
                    verdict: Verdict::Deny {
                        reason: errors.reason(),
                        message: format!("{MESSAGE_PREFIX}{errors}"),
                        warnings,
                    },
                };
            }
        };
        for (key, canonical) in &normalised.rewrites {
            if annotations.set(key, canonical) {
                kinds.push(PatchKind::AnnotationRewrite);
            }
        }
        warnings.extend(
            normalised
                .warnings
                .iter()
                .map(|w| clip_warning(format!("{MESSAGE_PREFIX}{w}"))),
        );
        // The webhook has no default demand and no Spark conf: a demand it cannot decide from
        // the annotations alone is decided by the gate controller once the conf is readable.
        let decided = decide_gang_demand(
            &DemandInputs {
                annotations: given,
                driver_requests: None,
                spark_conf: None,
            },
            &DemandRules {
                gpus: &config.gpu_resource_names,
                default: None,
            },
        );
        match decided {
            Ok(_) | Err(DemandError::Incomplete { .. }) => {}
            Err(reason) => {
                return Mutation {
                    role: Some(role),
                    verdict: Verdict::Deny {
                        reason: "invalid-demand",
                        message: format!("{MESSAGE_PREFIX}{reason}"),
                        warnings,
                    },
                };
            }
        }
        if config.spark_conf_gate && decided.is_err() {
            if let Some(Err(_)) = recorded_gang_demand(given) {
                warnings.push(clip_warning(format!(
                    "{MESSAGE_PREFIX}ignoring malformed annotation {GANG_DEMAND_ANNOTATION}; \
                     the demand will be computed"
                )));
            }
            match spec.and_then(pods::driver_conf_map_name) {
                Some(conf_map) => {
                    if annotations.set(CONF_MAP_ANNOTATION, conf_map) {
                        kinds.push(PatchKind::ConfMapAnnotation);
                    }
                    wants_gate = true;
                }
                None => warnings.push(clip_warning(format!(
                    "{MESSAGE_PREFIX}no volume {} (spark.properties); demand from \
                     annotations or the extender's default",
                    pods::DRIVER_CONF_VOLUME
                ))),
            }
        }
    }

    if set_scheduler {
        let op = if spec.is_some_and(|s| s.scheduler_name.is_some()) {
            Op::Replace
        } else {
            Op::Add
        };
        spec_ops.push(PatchOp {
            op,
            path: "/spec/schedulerName".to_owned(),
            value: Value::String(config.scheduler_name.clone()),
        });
        kinds.push(PatchKind::SchedulerName);
    }

    let has_app_id = labels
        .get(SPARK_APP_ID_LABEL)
        .is_some_and(|v| !v.is_empty());
    if !has_app_id
        && let Some(selector) = labels
            .get(SPARK_APP_SELECTOR_LABEL)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
        && labels.set(SPARK_APP_ID_LABEL, &selector)
    {
        kinds.push(PatchKind::AppIdLabel);
    }

    let has_group = spec
        .and_then(|s| pods::instance_group(s, &config.instance_group_label))
        .is_some();
    if !has_group
        && let Some(group) = config.default_instance_group_for(namespace)
        && node_selector.set(&config.instance_group_label, group)
    {
        kinds.push(PatchKind::InstanceGroup);
    }

    if let Some(class) = priority_class(config, namespace, pod, role, driver, &mut warnings) {
        spec_ops.extend(priority_class_ops(spec, &class));
        kinds.push(PatchKind::PriorityClass);
    }

    if wants_gate {
        let gates = spec.and_then(|s| s.scheduling_gates.as_ref());
        let gate = serde_json::json!({ "name": SPARK_CONF_GATE });
        match gates {
            None => spec_ops.push(PatchOp {
                op: Op::Add,
                path: "/spec/schedulingGates".to_owned(),
                value: Value::Array(vec![gate]),
            }),
            Some(g) if g.iter().any(|g| g.name == SPARK_CONF_GATE) => {}
            Some(_) => spec_ops.push(PatchOp {
                op: Op::Add,
                path: "/spec/schedulingGates/-".to_owned(),
                value: gate,
            }),
        }
        if spec_ops
            .last()
            .is_some_and(|o| o.path.starts_with("/spec/schedulingGates"))
        {
            kinds.push(PatchKind::SchedulingGate);
        }
    }

    let mut patch = Vec::new();
    labels.into_ops(&mut patch);
    annotations.into_ops(&mut patch);
    node_selector.into_ops(&mut spec_ops);
    if !spec_ops.is_empty() && spec.is_none() {
        // Only a hand-made pod lacks `spec`; `add /spec/x` needs the parent.
        patch.push(PatchOp {
            op: Op::Add,
            path: "/spec".to_owned(),
            value: Value::Object(serde_json::Map::new()),
        });
    }
    patch.append(&mut spec_ops);
    Mutation {
        role: Some(role),
        verdict: Verdict::Allow {
            patch,
            warnings,
            kinds,
            ignored: false,
        },
    }
}

#[cfg(test)]
mod tests;
