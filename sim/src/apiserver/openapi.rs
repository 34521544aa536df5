//! `/openapi/v3`: just enough of the OpenAPI v3 discovery for `kubectl apply` and `kubectl
//! create` to find that every resource accepts the `fieldValidation` parameter, so they leave
//! validation to the server (as against kube-apiserver since 1.27) instead of downloading
//! schemas. No schemas are served.

use serde_json::{Value, json};

use super::resources::ResourceTable;

/// What `/openapi/v3{rest}` answers: the root for `""`, a group-version's document for
/// `/api/v1` or `/apis/GROUP/VERSION`; `None`: not found.
pub fn serve(table: &ResourceTable, rest: &str) -> Option<Value> {
    match rest.strip_prefix('/') {
        None if rest.is_empty() => Some(root(table)),
        Some(gv) => document(table, gv),
        None => None,
    }
}

/// The `/openapi/v3` root: one document per group-version.
fn root(table: &ResourceTable) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in table.groups() {
        for version in versions {
            let gv = group_version_path(&group, &version);
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=sparkgang-sim")}),
            );
        }
    }
    json!({"paths": paths})
}

/// `api/v1` or `apis/GROUP/VERSION`.
fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document of `/openapi/v3/{gv}`: for each resource, its collection path with a `post`
/// that names the kind and takes `fieldValidation`. `None` for an unknown group-version.
fn document(table: &ResourceTable, gv: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for d in table.all() {
        if group_version_path(&d.group, &d.version) != gv {
            continue;
        }
        let collection = if d.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("/{gv}/{}", d.plural)
        };
        let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
        let field_validation = json!({"name": "fieldValidation", "in": "query",
            "schema": {"type": "string", "uniqueItems": true}});
        paths.insert(
            collection.clone(),
            json!({"post": {"x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "responses": {"201": {"description": "Created"}}}}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"patch": {"x-kubernetes-group-version-kind": gvk,
                "parameters": [field_validation],
                "responses": {"200": {"description": "OK"}}}}),
        );
    }
    (!paths.is_empty()).then(|| {
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (sparkgang-sim)",
            "version": "v1.33.0"}, "paths": paths, "components": {"schemas": {}}})
    })
}
