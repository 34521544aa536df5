//! Tables of custom resources, as kube-apiserver prints them from a CRD version's
//! `additionalPrinterColumns`: NAME, then each column's `jsonPath` value (a `date` column as an
//! age, a missing value empty for kubectl's `<none>`); NAME and AGE when the CRD names no
//! column.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::table::{Include, human_age, with_object};

/// The columns: NAME, then the CRD's (or AGE).
fn definitions(columns: &[Value]) -> Vec<Value> {
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "priority": 0, "description": "Name must be unique within a namespace."})];
    if columns.is_empty() {
        defs.push(
            json!({"name": "Age", "type": "date", "format": "", "priority": 0,
            "description": "Time since the object was created."}),
        );
    }
    for c in columns {
        defs.push(json!({
            "name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
            "description": c.get("description").cloned().unwrap_or(json!("")),
        }));
    }
    defs
}

/// The value at a CRD column's `jsonPath` (`.spec.a.b`, `.status.list[0].x`; other JSONPath
/// forms are not evaluated and print empty).
pub fn at_path<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = object;
    for part in path.trim().trim_start_matches('.').split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (part, None),
        };
        if !key.is_empty() {
            v = v.get(key)?;
        }
        if let Some(i) = index {
            v = v.get(i)?;
        }
    }
    (!v.is_null()).then_some(v)
}

fn cell(object: &Value, column: &Value, now: Timestamp) -> Value {
    let path = column["jsonPath"].as_str().unwrap_or("");
    let Some(value) = at_path(object, path) else {
        return Value::Null;
    };
    match (column["type"].as_str(), value.as_str()) {
        (Some("date"), Some(t)) => t
            .parse::<Timestamp>()
            .map_or_else(|_| value.clone(), |t| json!(human_age(now, t))),
        _ => value.clone(),
    }
}

/// The Table of `objects` at `now`.
pub fn table(
    columns: &[Value],
    objects: &[&Value],
    now: Timestamp,
    resource_version: &str,
    headers: bool,
    include: Include,
) -> Value {
    let age = [json!({"type": "date", "jsonPath": ".metadata.creationTimestamp"})];
    let shown: &[Value] = if columns.is_empty() { &age } else { columns };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(shown.iter().map(|c| cell(o, c, now)));
            with_object(Value::Array(cells), o, include)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": if headers { Value::Array(definitions(columns)) } else { json!([]) },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_their_paths_and_dates_read_as_ages() {
        let columns = vec![
            json!({"name": "Group", "type": "string", "jsonPath": ".spec.instanceGroup"}),
            json!({"name": "CPU", "type": "string", "jsonPath": ".status.allocated.cpu"}),
            json!({"name": "First", "type": "string", "jsonPath": ".spec.list[1].x"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let q = json!({"metadata": {"name": "etl", "creationTimestamp": "2026-12-07T11:58:00Z"},
            "spec": {"instanceGroup": "batch", "list": [{"x": 1}, {"x": 2}]}});
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let t = table(&columns, &[&q], now, "3", true, Include::Metadata);
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 5);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["etl", "batch", null, 2, "2m"])
        );
        let bare = table(&[], &[&q], now, "3", true, Include::None);
        assert_eq!(bare["rows"][0]["cells"], json!(["etl", "2m"]));
        assert_eq!(bare["columnDefinitions"][1]["name"], "Age");
    }
}
