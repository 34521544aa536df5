//! Objects as stored (their JSON encoded once) and the helpers that read or shape their JSON.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::apiserver::conversion;
use crate::apiserver::resources::{ResourceDef, View};

/// An object as stored, with its JSON encoding computed once on first use.
#[derive(Debug)]
pub struct Stored {
    pub value: Value,
    json: OnceLock<Bytes>,
}

impl Stored {
    pub fn new(value: Value) -> Self {
        Stored {
            value,
            json: OnceLock::new(),
        }
    }

    /// The object's JSON encoding (cached).
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&self.value).unwrap_or_default()))
            .clone()
    }

    pub fn name(&self) -> &str {
        meta_str(&self.value, "name")
    }

    pub fn namespace(&self) -> &str {
        meta_str(&self.value, "namespace")
    }

    pub fn uid(&self) -> &str {
        meta_str(&self.value, "uid")
    }

    /// `metadata.resourceVersion` as a number (0 when absent).
    pub fn resource_version(&self) -> u64 {
        meta_str(&self.value, "resourceVersion")
            .parse()
            .unwrap_or(0)
    }
}

pub(super) fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata` of `v` as a mutable map (created when absent).
pub fn metadata_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = Value::Object(Map::new());
    }
    v["metadata"].as_object_mut().expect("object")
}

/// The object as shown on `def`'s endpoint (converted for `events.k8s.io`, `apiVersion` of
/// the endpoint's version).
pub fn view_of<'a>(def: &ResourceDef, stored: &'a Value) -> Cow<'a, Value> {
    match def.view {
        View::EventsV1 => Cow::Owned(conversion::core_to_events_v1(stored)),
        View::Native => {
            let api_version = def.api_version();
            if stored.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
                Cow::Borrowed(stored)
            } else {
                let mut v = stored.clone();
                v["apiVersion"] = json!(api_version);
                Cow::Owned(v)
            }
        }
    }
}

/// Does the stored form need converting to be shown on `def`'s endpoint?
pub fn needs_view(def: &ResourceDef, stored: &Value) -> bool {
    def.view != View::Native
        || stored.get("apiVersion").and_then(Value::as_str) != Some(def.api_version().as_str())
}
