//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: what the simulated kubelet can tell of a
//! container. It runs no process, so the log is the container's life as its status records
//! it: when it started, on which node, and how it ended. Errors are kube-apiserver's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::errors::ApiError;
use super::store::Store;

/// `(namespace, pod)` of a log path.
pub fn parse(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("pods/")?;
    let (name, tail) = rest.split_once('/')?;
    (tail == "log").then_some((namespace, name))
}

/// The log of `container` (the only one when `None`) of pod `namespace/name`.
pub fn log(
    store: &Store,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<Response, ApiError> {
    let table = store.table();
    let def = table
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::new(404, "NotFound", "pods are not served"))?;
    let pod = store
        .get(&def, namespace, name)
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("pods \"{name}\" not found")))?;
    let pod = &pod.value;
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match (container, names.as_slice()) {
        (Some(c), _) if names.contains(&c) => c,
        (Some(c), _) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        (None, [only]) => only,
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|s| s.iter().find(|c| c["name"] == container));
    let state = status.map_or(&Value::Null, |s| &s["state"]);
    let started = state["running"]["startedAt"]
        .as_str()
        .or_else(|| pod["status"]["startTime"].as_str());
    let Some(started) = started.filter(|_| !state.is_null()) else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("?");
    let image = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("?");
    let mut text = format!(
        "{started} sparkgang-sim: container {container} ({image}) of pod {namespace}/{name} \
         started on node {node}\n{started} sparkgang-sim: the simulated kubelet runs no \
         process; this log is the container's status\n"
    );
    if let Some(t) = state.get("terminated") {
        text.push_str(&format!(
            "{} sparkgang-sim: container {container} terminated: exit code {} ({})\n",
            t["finishedAt"].as_str().unwrap_or("?"),
            t["exitCode"],
            t["reason"].as_str().unwrap_or("?")
        ));
    }
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn log_paths_name_the_pod() {
        assert_eq!(
            parse("/api/v1/namespaces/spark/pods/p-driver/log"),
            Some(("spark", "p-driver"))
        );
        assert_eq!(parse("/api/v1/namespaces/spark/pods/p-driver/status"), None);
        assert_eq!(parse("/api/v1/namespaces/spark/pods/p-driver"), None);
    }
}
