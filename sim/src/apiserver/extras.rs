//! Paths served beside the resources: `/openapi/v3`, the review APIs, `pods/log` and the
//! service proxy.

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;

use super::container_logs::ContainerLogs;
use super::errors::ApiError;
use super::proxy::ServiceProxies;
use super::responses::{error_response, not_found_path, value_response};
use super::reviews::Identities;
use super::store::Store;

/// What these paths read.
pub(super) struct Extras<'a> {
    pub store: &'a Store,
    pub identities: &'a Identities,
    pub proxies: &'a ServiceProxies,
    pub logs: &'a ContainerLogs,
}

impl Extras<'_> {
    /// The answer when `path` is one of these, else `None`.
    pub(super) async fn serve(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Response> {
        if let Some(rest) = path.strip_prefix("/openapi/v3") {
            return Some(match super::openapi::serve(&self.store.table(), rest) {
                Some(doc) => value_response(200, &doc),
                None => error_response(&not_found_path()),
            });
        }
        if method == Method::POST
            && let Some(review) = super::reviews::answer(self.identities, path, body)
        {
            return Some(match review {
                Ok(v) => value_response(201, &v),
                Err(why) => error_response(&ApiError::bad_request(why)),
            });
        }
        if method == Method::GET
            && let Some((namespace, name)) = super::logs::parse(path)
        {
            let answer = super::logs::LogQuery::parse(query, self.store.clock().now())
                .and_then(|q| super::logs::log(self.store, self.logs, namespace, name, &q));
            return Some(answer.unwrap_or_else(|e| error_response(&e)));
        }
        if super::proxy::parse(path).is_some() {
            return Some(
                super::proxy::forward(self.proxies, method, path, query, headers, body.clone())
                    .await,
            );
        }
        None
    }
}
