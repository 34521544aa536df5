//! Paths served beside the resources: `/openapi/v3`, the review APIs and the service proxy.

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;

use super::errors::ApiError;
use super::http::{AppState, error_response, not_found_path, value_response};

/// The answer when `path` is one of these, else `None`.
pub(super) async fn serve(
    app: &AppState,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        return Some(match super::openapi::serve(&app.store.table(), rest) {
            Some(doc) => value_response(200, &doc),
            None => error_response(&not_found_path()),
        });
    }
    if method == Method::POST
        && let Some(review) = super::reviews::answer(&app.identities, path, body)
    {
        return Some(match review {
            Ok(v) => value_response(201, &v),
            Err(why) => error_response(&ApiError::bad_request(why)),
        });
    }
    if super::proxy::parse(path).is_some() {
        return Some(
            super::proxy::forward(&app.proxies, method, path, query, headers, body.clone()).await,
        );
    }
    None
}
