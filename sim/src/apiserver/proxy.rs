//! The service proxy subresource, `/api/v1/namespaces/{ns}/services/{[scheme:]name[:port]}/proxy/…`,
//! as kube-apiserver serves it: the request is forwarded over HTTP to the service's backend.
//! Backends are registered in-process (the simulator has no endpoints controller).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// `(namespace, name)` of a service → its port's name and the address behind it.
type Backends = HashMap<(String, String), (String, SocketAddr)>;

/// Service backends.
#[derive(Debug, Clone, Default)]
pub struct ServiceProxies(Arc<Mutex<Backends>>);

impl ServiceProxies {
    /// Requests to service `namespace/name`'s port `port` (a name; `""` for an unnamed port)
    /// go to `backend`.
    pub fn register(&self, namespace: &str, name: &str, port: &str, backend: SocketAddr) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                (namespace.to_owned(), name.to_owned()),
                (port.to_owned(), backend),
            );
        }
    }

    fn backend(&self, namespace: &str, name: &str) -> Option<(String, SocketAddr)> {
        self.0
            .lock()
            .ok()?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

/// `(namespace, service name, port name or "", path at the backend)` of a service proxy path.
pub fn parse(path: &str) -> Option<(&str, &str, &str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("services/")?;
    let (service, rest) = rest.split_once('/')?;
    let tail = rest.strip_prefix("proxy")?;
    if !(tail.is_empty() || tail.starts_with('/')) {
        return None;
    }
    let (name, port) = match service.split(':').collect::<Vec<_>>().as_slice() {
        [name] => (*name, ""),
        [name, port] | [_, name, port] => (*name, *port),
        _ => return None,
    };
    Some((
        namespace,
        name,
        port,
        if tail.is_empty() { "/" } else { tail },
    ))
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    let mut r = (code, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Forwards one request to the backend of the service `path` names.
/// The caller's headers go along, but for `Authorization` (kube-apiserver drops it once it
/// has authenticated the caller) and the connection's own.
pub async fn forward(
    proxies: &ServiceProxies,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some((namespace, name, port, target)) = parse(path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
        );
    };
    let Some((port_name, backend)) = proxies.backend(namespace, name) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("services \"{name}\" not found"),
        );
    };
    // As kube-apiserver: the endpoint port is chosen by name (`""` when the path names none),
    // so a path without the port finds no endpoint of a named port.
    if port != port_name && port != backend.port().to_string() {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("no endpoints available for service \"{name}\""),
        );
    }
    let unavailable = |e: String| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    };
    let stream = match tokio::net::TcpStream::connect(backend).await {
        Ok(s) => s,
        Err(e) => return unavailable(e.to_string()),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(c) => c,
        Err(e) => return unavailable(e.to_string()),
    };
    tokio::spawn(conn);
    let uri = if query.is_empty() {
        target.to_owned()
    } else {
        format!("{target}?{query}")
    };
    let mut request = hyper::Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::HOST, backend.to_string());
    for (name, value) in headers {
        let dropped = [
            header::AUTHORIZATION,
            header::HOST,
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
        ];
        if !dropped.contains(name) {
            request = request.header(name, value);
        }
    }
    let request = match request.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return unavailable(e.to_string()),
    };
    let answer = match sender.send_request(request).await {
        Ok(a) => a,
        Err(e) => return unavailable(e.to_string()),
    };
    let code = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = match answer.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return unavailable(e.to_string()),
    };
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = code;
    if let Some(t) = content_type {
        r.headers_mut().insert(header::CONTENT_TYPE, t);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn proxy_paths_name_the_service_in_each_form() {
        for (path, want) in [
            (
                "/api/v1/namespaces/ns/services/svc/proxy",
                Some(("ns", "svc", "", "/")),
            ),
            (
                "/api/v1/namespaces/ns/services/svc:8484/proxy/a/b",
                Some(("ns", "svc", "8484", "/a/b")),
            ),
            (
                "/api/v1/namespaces/ns/services/http:svc:web/proxy/",
                Some(("ns", "svc", "web", "/")),
            ),
            ("/api/v1/namespaces/ns/services/svc", None),
            ("/api/v1/namespaces/ns/services/svc/proxyx", None),
            ("/api/v1/namespaces/ns/pods/p/proxy/", None),
        ] {
            assert_eq!(parse(path), want, "{path}");
        }
    }
}
