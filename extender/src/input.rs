//! What `/filter` and `/preempt` accept before decoding: JSON content type, a size cap, a nesting cap, and the 4xx answers that say what was wrong.
//!
//! kube-scheduler sends `Content-Type: application/json` and reads no body of a non-200 answer
//! (it logs "failed <verb> with extender at URL ..., code N"), so the messages are for the
//! extender's log and for whoever calls it by hand; the status code is what kube-scheduler sees.

use std::fmt;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use serde::de;

use crate::json_depth;

/// The largest request body accepted (a `Nodes` list of 5,000 kubelet-shaped nodes is 25 MiB;
/// `NodeNames` of as many nodes, 65 KiB).
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// The deepest nesting of JSON arrays and objects accepted (a Pod nests about 12 levels).
pub const MAX_JSON_DEPTH: usize = 64;

/// How much of an oversized body is read and thrown away so that the client, still sending,
/// receives the 413 rather than a reset connection; beyond it (or after [`DRAIN_TIME`]) the
/// connection is closed.
const DRAIN_LIMIT: u64 = MAX_BODY_BYTES as u64 + (16 << 20);
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// A request refused before any decision: the status and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
    /// The body was not read to its end: an HTTP/1 connection cannot be reused.
    close: bool,
}

impl Rejection {
    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            close: false,
        }
    }

    /// The answer to a `verb` request of HTTP version `version`, logged: kube-scheduler logs
    /// only the status code, so this line is where the reason shows.
    pub fn answer(self, verb: &'static str, version: Version) -> Response {
        tracing::warn!(
            verb,
            status = self.status.as_u16(),
            message = self.message.as_str(),
            "rejected a request"
        );
        let mut response = (self.status, self.message).into_response();
        if self.close && version < Version::HTTP_2 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Reads a request body of a JSON verb: checks the content type, reads at most
/// [`MAX_BODY_BYTES`] (a single-frame body is returned without copying) and checks the nesting
/// depth. `what` names the expected document in messages (`ExtenderArgs`).
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<Bytes, Rejection> {
    check_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = read_capped(body, declared).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::bad_request(format!(
            "the body is empty; send kube-scheduler's {what} as JSON"
        )));
    }
    json_depth::check_depth(&bytes, MAX_JSON_DEPTH)
        .map_err(|e| Rejection::bad_request(e.to_string()))?;
    Ok(bytes)
}

/// `application/json`, with any parameters and in any case; anything else is a 415.
fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let given = headers.get(header::CONTENT_TYPE);
    let media = given
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    if media.is_some_and(|m| m.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    let message = match given {
        None => "no content type; send application/json".to_owned(),
        Some(v) => format!(
            "content type {:?} is not application/json",
            String::from_utf8_lossy(v.as_bytes())
        ),
    };
    Err(Rejection {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message,
        close: false,
    })
}

async fn read_capped(body: Body, declared: Option<u64>) -> Result<Bytes, Rejection> {
    let too_large = || Rejection {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "the body is larger than {MAX_BODY_BYTES} bytes ({} MiB), the extender's cap",
            MAX_BODY_BYTES >> 20
        ),
        close: true,
    };
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        drain(&mut stream, total).await;
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Rejection::bad_request(format!("cannot read the body: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_BODY_BYTES as u64 {
            drain(&mut stream, total).await;
            return Err(too_large());
        }
        if let Some(all) = joined.as_mut() {
            all.extend_from_slice(&chunk);
        } else if let Some(head) = first.take() {
            // Declared lengths are at most the cap (checked above).
            let capacity = declared
                .map_or(0, |n| n as usize)
                .max(head.len() + chunk.len());
            let mut all = Vec::with_capacity(capacity);
            all.extend_from_slice(&head);
            all.extend_from_slice(&chunk);
            joined = Some(all);
        } else if !chunk.is_empty() {
            first = Some(chunk);
        }
    }
    Ok(joined.map(Bytes::from).or(first).unwrap_or_default())
}

/// Reads and drops what is left of an oversized body, bounded in bytes and time.
async fn drain(stream: &mut axum::body::BodyDataStream, mut total: u64) {
    let rest = async {
        while total < DRAIN_LIMIT {
            match stream.next().await {
                Some(Ok(chunk)) => total += chunk.len() as u64,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
}

/// The pod of a request, with the name and namespace every decision needs. `what` names the
/// document (`ExtenderArgs`).
pub fn require_pod<'p>(pod: Option<&'p Pod>, what: &str) -> Result<&'p Pod, Rejection> {
    let pod = pod.ok_or_else(|| Rejection::bad_request(format!("{what} has no Pod")))?;
    for (field, value) in [
        ("name", &pod.metadata.name),
        ("namespace", &pod.metadata.namespace),
    ] {
        if value.as_deref().is_none_or(str::is_empty) {
            return Err(Rejection::bad_request(format!(
                "{what}.Pod has no metadata.{field}"
            )));
        }
    }
    Ok(pod)
}

/// Prefixes a decoding error with the top-level field it happened in (serde_json keeps the
/// line and column at the end of the message).
pub fn in_field<E: de::Error>(field: &str) -> impl FnOnce(E) -> E + '_ {
    move |e| E::custom(InField(field, e))
}

struct InField<'a, E>(&'a str, E);

impl<E: fmt::Display> fmt::Display for InField<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_without_name_or_namespace_are_named() {
        let pod = |meta: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({ "metadata": meta })).unwrap()
        };
        let message = |p: Option<&Pod>| require_pod(p, "ExtenderArgs").unwrap_err().message;
        assert_eq!(message(None), "ExtenderArgs has no Pod");
        assert_eq!(
            message(Some(&pod(serde_json::json!({"namespace": "ns"})))),
            "ExtenderArgs.Pod has no metadata.name"
        );
        assert_eq!(
            message(Some(&pod(
                serde_json::json!({"name": "p", "namespace": ""})
            ))),
            "ExtenderArgs.Pod has no metadata.namespace"
        );
        let ok = pod(serde_json::json!({"name": "p", "namespace": "ns"}));
        assert!(require_pod(Some(&ok), "ExtenderArgs").is_ok());
    }

    #[test]
    fn content_types() {
        let headers = |v: Option<&'static str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            }
            h
        };
        for ok in ["application/json", "Application/JSON; charset=utf-8"] {
            assert!(check_content_type(&headers(Some(ok))).is_ok(), "{ok}");
        }
        let e = check_content_type(&headers(Some("text/plain"))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            e.message,
            r#"content type "text/plain" is not application/json"#
        );
        let e = check_content_type(&headers(None)).unwrap_err();
        assert_eq!(e.message, "no content type; send application/json");
    }

    #[test]
    fn field_errors_keep_serde_json_positions_once() {
        #[derive(Debug)]
        struct Wrapped;
        impl<'de> de::Deserialize<'de> for Wrapped {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = Wrapped;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a map")
                    }
                    fn visit_map<A: de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Wrapped, A::Error> {
                        while let Some(k) = m.next_key::<String>()? {
                            m.next_value::<Vec<String>>().map_err(in_field(&k))?;
                        }
                        Ok(Wrapped)
                    }
                }
                d.deserialize_map(V)
            }
        }
        let e = serde_json::from_str::<Wrapped>(r#"{"NodeNames": [1]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "NodeNames: invalid type: integer `1`, expected a string at line 1 column 16"
        );
    }
}
