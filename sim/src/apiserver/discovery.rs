//! Discovery documents: `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]` (legacy and aggregated v2), `/version`.

use serde_json::{Value, json};

use super::resources::{ResourceDef, ResourceTable, Subresource};

/// The media type of aggregated discovery (kube-rs `run_aggregated`, kubectl).
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Does the `Accept` header ask for aggregated discovery?
pub fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList"))
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-sparkgang-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn group_list(table: &ResourceTable) -> Value {
    let groups: Vec<Value> = table
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or `None` when the group is not served.
pub fn group(table: &ResourceTable, group: &str) -> Option<Value> {
    let (_, versions) = table
        .groups()
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())?;
    let mut v = group_entry(group, &versions);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn sub_verbs(s: Subresource) -> Vec<&'static str> {
    match s {
        Subresource::Status => vec!["get", "patch", "update"],
        Subresource::Binding | Subresource::Eviction => vec!["create"],
    }
}

fn sub_kind(def: &ResourceDef, s: Subresource) -> &str {
    match s {
        Subresource::Status => &def.kind,
        Subresource::Binding => "Binding",
        Subresource::Eviction => "Eviction",
    }
}

/// `/api/v1` or `/apis/<group>/<version>`, or `None` when not served.
pub fn resource_list(table: &ResourceTable, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<_> = table
        .all()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": ResourceDef::verbs(),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for s in &d.subresources {
            resources.push(json!({
                "name": format!("{}/{}", d.plural, s.name()),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": sub_kind(d, *s),
                "verbs": sub_verbs(*s),
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`) for the core group (`core == true`) or
/// every named group.
pub fn aggregated(table: &ResourceTable, core: bool) -> Value {
    let mut items = Vec::new();
    for (g, versions) in table.groups() {
        if g.is_empty() != core {
            continue;
        }
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = table
                    .all()
                    .filter(|d| d.group == g && &d.version == v)
                    .map(|d| {
                        let kind = |k: &str| json!({"group": d.group, "version": d.version, "kind": k});
                        let subs: Vec<Value> = d
                            .subresources
                            .iter()
                            .map(|s| json!({"subresource": s.name(), "responseKind": kind(sub_kind(d, *s)), "verbs": sub_verbs(*s)}))
                            .collect();
                        let mut r = json!({
                            "resource": d.plural,
                            "responseKind": kind(&d.kind),
                            "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": d.singular,
                            "verbs": ResourceDef::verbs(),
                        });
                        if !d.short_names.is_empty() {
                            r["shortNames"] = json!(d.short_names);
                        }
                        if !d.categories.is_empty() {
                            r["categories"] = json!(d.categories);
                        }
                        if !subs.is_empty() {
                            r["subresources"] = json!(subs);
                        }
                        r
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g}, "versions": vs}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
