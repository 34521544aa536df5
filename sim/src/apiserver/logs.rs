//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a container's output. A pod that runs as a
//! local process (real Spark) has its stdout and stderr in [`ContainerLogs`]; for any other
//! pod the simulated kubelet runs nothing, so the log is the container's life as its status
//! records it: when it started, on which node, and how it ended. Errors are kube-apiserver's.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::container_logs::{self, ContainerLogs, LogOptions};
use super::errors::ApiError;
use super::store::Store;

/// `pods/log`'s query: the container, whether the previous instance is asked, and the rest.
#[derive(Debug, Default)]
pub struct LogQuery {
    pub container: Option<String>,
    pub previous: bool,
    pub options: LogOptions,
}

impl LogQuery {
    /// Reads the query string as kube-apiserver does; a bad value is a 400 naming it.
    pub fn parse(query: &str, now: Timestamp) -> Result<LogQuery, ApiError> {
        let mut q = LogQuery::default();
        let mut since_given = 0;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let flag = || match v.as_ref() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                other => Err(ApiError::bad_request(format!(
                    "{k}: invalid boolean {other:?}: true or false is accepted"
                ))),
            };
            let number = || {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0 || k == "tailLines")
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{k}: {v:?} is not a valid number: a whole number is accepted"
                        ))
                    })
            };
            match k.as_ref() {
                "container" => q.container = Some(v.into_owned()),
                "previous" => q.previous = flag()?,
                "follow" => q.options.follow = flag()?,
                "timestamps" => q.options.timestamps = flag()?,
                "tailLines" => {
                    let n = number()?;
                    if n < 0 {
                        return Err(ApiError::invalid(
                            "PodLogOptions",
                            "",
                            vec![super::errors::invalid_value(
                                "tailLines",
                                &n.to_string(),
                                "must be greater than or equal to 0",
                            )],
                        ));
                    }
                    q.options.tail_lines = usize::try_from(n).ok();
                }
                "limitBytes" => {
                    let n = number()?;
                    if n < 1 {
                        return Err(ApiError::bad_request(
                            "limitBytes: must be greater than 0".to_owned(),
                        ));
                    }
                    q.options.limit_bytes = usize::try_from(n).ok();
                }
                "sinceSeconds" => {
                    since_given += 1;
                    let n = number()?;
                    if n < 1 {
                        return Err(ApiError::bad_request(
                            "sinceSeconds: must be greater than 0".to_owned(),
                        ));
                    }
                    let back = k8s_openapi::jiff::SignedDuration::from_secs(n);
                    q.options.since = now.checked_sub(back).ok();
                }
                "sinceTime" => {
                    since_given += 1;
                    q.options.since = Some(v.parse().map_err(|e| {
                        ApiError::bad_request(format!(
                            "sinceTime: {v:?} is not an RFC 3339 time ({e})"
                        ))
                    })?)
                }
                // Accepted and meaningless here: no TLS between API server and kubelet.
                "insecureSkipTLSVerifyBackend" | "pretty" => {}
                _ => {}
            }
        }
        if since_given > 1 {
            return Err(ApiError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified".to_owned(),
            ));
        }
        Ok(q)
    }
}

/// `(namespace, pod)` of a log path.
pub fn parse(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("pods/")?;
    let (name, tail) = rest.split_once('/')?;
    (tail == "log").then_some((namespace, name))
}

/// The log of the query's container (the only one when unnamed) of pod `namespace/name`.
pub fn log(
    store: &Store,
    logs: &ContainerLogs,
    namespace: &str,
    name: &str,
    query: &LogQuery,
) -> Result<Response, ApiError> {
    let container = query.container.as_deref();
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
    if query.previous {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    if let Some(file) = logs
        .get(namespace, name)
        .filter(|f| f.uid == uid && f.container == container)
    {
        return process_log(file, &query.options);
    }
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|s| s.iter().find(|c| c["name"] == container));
    let state = status.map_or(&Value::Null, |s| &s["state"]);
    let started = state["running"]["startedAt"]
        .as_str()
        .or_else(|| pod["status"]["startTime"].as_str());
    let Some(started) = started.filter(|_| !state.is_null() && state.get("waiting").is_none())
    else {
        let reason = state["waiting"]["reason"]
            .as_str()
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
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
    let text = container_logs::render(
        &text
            .lines()
            .map(|l| {
                let (time, _) = l.split_once(' ').unwrap_or((l, ""));
                format!("{time} stdout F {l}\n")
            })
            .collect::<String>(),
        &LogOptions {
            timestamps: false,
            ..query.options.clone()
        },
        true,
    );
    Ok(plain(Body::from(text)))
}

/// The output of a process the kubelet runs.
fn process_log(file: container_logs::LogFile, options: &LogOptions) -> Result<Response, ApiError> {
    if options.follow && !file.ended() {
        return Ok(plain(Body::from_stream(container_logs::follow(
            file,
            options.clone(),
        ))));
    }
    let text = container_logs::read(&file, options)
        .map_err(|e| ApiError::new(500, "InternalError", format!("reading the log: {e}")))?;
    Ok(plain(Body::from(text)))
}

fn plain(body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
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
