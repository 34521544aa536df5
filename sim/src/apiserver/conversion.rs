//! `events.k8s.io/v1` Event ⇄ core/v1 Event, the field renames the real server applies (one storage, two views).

use serde_json::{Map, Value};

/// (core field, events.k8s.io field)
const RENAMES: [(&str, &str); 8] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("related", "related"),
];

fn rename(obj: &Value, to_events: bool) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = RENAMES
            .iter()
            .find(|(core, ev)| if to_events { k == core } else { k == ev })
            .map(|(core, ev)| if to_events { *ev } else { *core });
        out.insert(renamed.unwrap_or(k.as_str()).to_owned(), v.clone());
    }
    Value::Object(out)
}

/// A stored core/v1 Event as `events.k8s.io/v1`.
pub fn core_to_events_v1(obj: &Value) -> Value {
    let mut out = rename(obj, true);
    out["apiVersion"] = Value::from("events.k8s.io/v1");
    out["kind"] = Value::from("Event");
    out
}

/// An `events.k8s.io/v1` Event as stored (core/v1).
pub fn events_v1_to_core(obj: &Value) -> Value {
    let mut out = rename(obj, false);
    if out.is_object() {
        out["apiVersion"] = Value::from("v1");
        out["kind"] = Value::from("Event");
        // The core view shows the series count as `count` when the client only sent a series.
        if out.get("count").is_none()
            && let Some(n) = out.pointer("/series/count").cloned()
        {
            out["count"] = n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "p.1", "namespace": "spark"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "R",
            "reportingController": "sparkgang", "type": "Warning", "action": "Scheduling"});
        let core = events_v1_to_core(&ev);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core_to_events_v1(&core), ev);
    }
}
