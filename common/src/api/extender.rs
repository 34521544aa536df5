//! The kube-scheduler HTTP extender protocol (`k8s.io/kube-scheduler/extender/v1`).
//!
//! The Go types have no JSON tags, so keys are the Go field names (`Pod`, `NodeNames`, ...),
//! unset pointers arrive as `null`, and Go decodes keys case-insensitively. These types emit
//! PascalCase exactly as Go does and accept any key case and `null` for every field on input.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::List;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Node name → why the pod cannot go there.
pub type FailedNodesMap = BTreeMap<String, String>;

/// Deserializes `null` as `T::default()`.
struct NullAsDefault<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for NullAsDefault<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(NullAsDefault(
            Option::<T>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// A Go-style wire struct: PascalCase keys out, any key case and `null`s in.
macro_rules! go_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $key:literal => pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct $name {
            $($(#[$fmeta])* #[serde(rename = $key)] pub $field: $ty,)*
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct FieldsVisitor;
                impl<'de> Visitor<'de> for FieldsVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($name), ")"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<String>()? {
                            $(
                                if key.eq_ignore_ascii_case($key) {
                                    out.$field = map.next_value::<NullAsDefault<$ty>>()?.0;
                                    continue;
                                }
                            )*
                            map.next_value::<IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(FieldsVisitor)
            }
        }
    };
}

go_struct! {
    /// `ExtenderArgs`: the body of filter and prioritize calls.
    pub struct ExtenderArgs {
        "Pod" => pub pod: Option<Pod>,
        /// Set only when the extender is not `nodeCacheCapable`.
        "Nodes" => pub nodes: Option<List<Node>>,
        /// Set only when the extender is `nodeCacheCapable`.
        "NodeNames" => pub node_names: Option<Vec<String>>,
    }
}

impl ExtenderArgs {
    /// The candidate node names, from `NodeNames` or else from `Nodes`.
    pub fn candidate_names(&self) -> Vec<String> {
        match (&self.node_names, &self.nodes) {
            (Some(names), _) => names.clone(),
            (None, Some(list)) => list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
            (None, None) => Vec::new(),
        }
    }
}

go_struct! {
    /// `ExtenderFilterResult`.
    pub struct ExtenderFilterResult {
        "Nodes" => pub nodes: Option<List<Node>>,
        "NodeNames" => pub node_names: Option<Vec<String>>,
        "FailedNodes" => pub failed_nodes: Option<FailedNodesMap>,
        /// Takes precedence over `FailedNodes`; preemption will not help on these nodes.
        "FailedAndUnresolvableNodes" => pub failed_and_unresolvable_nodes: Option<FailedNodesMap>,
        "Error" => pub error: String,
    }
}

go_struct! {
    /// `ExtenderBindingArgs`.
    pub struct ExtenderBindingArgs {
        "PodName" => pub pod_name: String,
        "PodNamespace" => pub pod_namespace: String,
        "PodUID" => pub pod_uid: String,
        "Node" => pub node: String,
    }
}

go_struct! {
    /// `ExtenderBindingResult`.
    pub struct ExtenderBindingResult {
        "Error" => pub error: String,
    }
}

go_struct! {
    /// One entry of a `HostPriorityList` (the prioritize result is a bare JSON array of these).
    pub struct HostPriority {
        "Host" => pub host: String,
        /// 0 ..= 10.
        "Score" => pub score: i64,
    }
}

go_struct! {
    /// `ExtenderPreemptionArgs`.
    pub struct ExtenderPreemptionArgs {
        "Pod" => pub pod: Option<Pod>,
        "NodeNameToVictims" => pub node_name_to_victims: Option<BTreeMap<String, Victims>>,
        "NodeNameToMetaVictims" => pub node_name_to_meta_victims: Option<BTreeMap<String, MetaVictims>>,
    }
}

go_struct! {
    /// `ExtenderPreemptionResult`.
    pub struct ExtenderPreemptionResult {
        "NodeNameToMetaVictims" => pub node_name_to_meta_victims: Option<BTreeMap<String, MetaVictims>>,
    }
}

go_struct! {
    /// `Victims`: pods to evict on a node.
    pub struct Victims {
        "Pods" => pub pods: Option<Vec<Pod>>,
        "NumPDBViolations" => pub num_pdb_violations: i64,
    }
}

go_struct! {
    /// `MetaPod`: a pod by UID.
    pub struct MetaPod {
        "UID" => pub uid: String,
    }
}

go_struct! {
    /// `MetaVictims`: pods to evict on a node, by UID.
    pub struct MetaVictims {
        "Pods" => pub pods: Option<Vec<MetaPod>>,
        "NumPDBViolations" => pub num_pdb_violations: i64,
    }
}

impl ExtenderFilterResult {
    /// Success: exactly these nodes.
    pub fn nodes(names: Vec<String>) -> Self {
        ExtenderFilterResult {
            node_names: Some(names),
            ..Default::default()
        }
    }

    /// Success for an extender that is not `nodeCacheCapable`: kube-scheduler reads `Nodes`
    /// then, and finds each of its nodes by name (only `metadata.name` is sent).
    pub fn node_objects(names: Vec<String>) -> Self {
        ExtenderFilterResult {
            nodes: Some(List {
                items: names
                    .into_iter()
                    .map(|name| Node {
                        metadata: ObjectMeta {
                            name: Some(name),
                            ..ObjectMeta::default()
                        },
                        ..Node::default()
                    })
                    .collect(),
                ..List::default()
            }),
            ..Default::default()
        }
    }

    /// Failure: every candidate fails with the same message.
    pub fn all_failed<S: AsRef<str>>(candidates: &[S], message: &str) -> Self {
        let failed = candidates
            .iter()
            .map(|n| (n.as_ref().to_owned(), message.to_owned()))
            .collect();
        ExtenderFilterResult {
            failed_nodes: Some(failed),
            ..Default::default()
        }
    }
}
