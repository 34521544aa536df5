//! `NODES.json`: the output of `kubectl get nodes -o json` (a `List` of `Node`s) read into nodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Taint};
use serde::Serialize;
use serde_json::Value;
use sparkgang_common::resources::{GpuResourceNames, Resources, node_allocatable};

/// One node of the cluster to replay on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    pub name: String,
    /// `status.allocatable` (missing resources are zero).
    pub allocatable: Resources,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The object as read, for code that wants the rest.
    #[serde(skip)]
    pub node: Node,
}

/// Why a nodes file cannot be used. Each names the file, and the item where there is one.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is not `kubectl get nodes -o json` output: {reason}", path.display())]
    NotAList { path: PathBuf, reason: String },
    #[error("{} item {index} ({name}): {reason}", path.display())]
    Item {
        path: PathBuf,
        index: usize,
        name: String,
        reason: String,
    },
}

/// Reads a nodes file: a `List`/`NodeList` with `items`, or a single `Node`.
pub fn read_nodes(path: &Path) -> Result<Vec<ClusterNode>, NodesError> {
    let text = std::fs::read(path).map_err(|source| NodesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_nodes(&text, path, &GpuResourceNames::default())
}

/// Parses nodes-file content; `path` only names it in errors.
pub fn parse_nodes(
    text: &[u8],
    path: &Path,
    gpus: &GpuResourceNames,
) -> Result<Vec<ClusterNode>, NodesError> {
    let value: Value = serde_json::from_slice(text).map_err(|source| NodesError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let not_list = |reason: String| NodesError::NotAList {
        path: path.to_path_buf(),
        reason,
    };
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let items: Vec<Value> = match kind {
        "Node" => vec![value],
        "List" | "NodeList" => match value.get("items") {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(not_list("`items` is not an array".to_owned())),
        },
        "" => {
            return Err(not_list(
                "no `kind` (expected List, NodeList or Node)".to_owned(),
            ));
        }
        other => {
            return Err(not_list(format!(
                "kind `{other}` (expected List, NodeList or Node)"
            )));
        }
    };
    let mut nodes = Vec::with_capacity(items.len());
    let mut seen = BTreeMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<no name>")
            .to_owned();
        let bad = |reason: String| NodesError::Item {
            path: path.to_path_buf(),
            index,
            name: name.clone(),
            reason,
        };
        match item.get("kind").and_then(Value::as_str) {
            Some("Node") | None => {}
            Some(other) => return Err(bad(format!("kind `{other}`, not Node"))),
        }
        let node: Node =
            serde_json::from_value(item).map_err(|e| bad(format!("not a Node: {e}")))?;
        let Some(node_name) = node.metadata.name.clone().filter(|n| !n.is_empty()) else {
            return Err(bad("no metadata.name".to_owned()));
        };
        if let Some(first) = seen.insert(node_name.clone(), index) {
            return Err(bad(format!("same name as item {first}")));
        }
        let allocatable =
            node_allocatable(&node, gpus).map_err(|e| bad(format!("allocatable {e}")))?;
        if node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .is_none()
        {
            return Err(bad("no status.allocatable".to_owned()));
        }
        nodes.push(ClusterNode {
            name: node_name,
            allocatable,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default(),
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            node,
        });
    }
    Ok(nodes)
}
