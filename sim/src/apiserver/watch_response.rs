//! A watch answered as kube-apiserver answers it: a stream of JSON lines over HTTP, or, when
//! the client asks for a WebSocket (fabric8, the client inside Spark's driver, always does),
//! one text message per event with the same JSON.

use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::{SinkExt, Stream, StreamExt};

/// The events of a watch, in batches; each event is one JSON line (with its newline).
pub type Events = Pin<Box<dyn Stream<Item = Vec<Bytes>> + Send>>;

/// The response that carries `events`: the upgrade to a WebSocket when the client asked for
/// one, else a chunked HTTP body.
pub fn respond(events: Events, ws: Option<WebSocketUpgrade>) -> Response {
    match ws {
        Some(ws) => ws.on_upgrade(move |socket| async move {
            let (mut tx, mut rx) = socket.split();
            let mut events = events;
            loop {
                tokio::select! {
                    batch = events.next() => {
                        let Some(batch) = batch else { break };
                        for line in batch {
                            let text = String::from_utf8_lossy(line.trim_ascii_end()).into_owned();
                            if tx.send(Message::Text(text.into())).await.is_err() {
                                return;
                            }
                        }
                    }
                    // The client closed (or went away): stop watching.
                    incoming = rx.next() => match incoming {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
            let _ = tx.send(Message::Close(None)).await;
        }),
        None => {
            let body =
                events.map(|batch| Ok::<Bytes, std::convert::Infallible>(batch.concat().into()));
            let mut r = Response::new(Body::from_stream(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            r
        }
    }
}
