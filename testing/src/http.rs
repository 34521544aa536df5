//! One request over an established connection (plain TCP or TLS), as kube-apiserver calls
//! webhooks and kube-scheduler calls extenders: HTTP/1.1, one request per connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// POSTs a JSON `body` to `path` with `Host: host`; returns the status and the whole body.
pub async fn post_json<S>(
    stream: S,
    host: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    request(stream, Method::POST, host, path, body).await
}

/// Sends one request with a JSON content type; returns the status and the whole body.
pub async fn request<S>(
    stream: S,
    method: Method,
    host: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}
