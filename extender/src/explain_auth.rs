//! Who may read the explain API on its own listener: a bearer token checked with a
//! `TokenReview`, applications shown per namespace to callers that may `get pods` there, and
//! capacity to callers that may `list nodes` (`SubjectAccessReview`s). Answers are cached.
//!
//! The token is read from `Authorization: Bearer …`, else from `X-Sparkgang-Authorization`:
//! kube-apiserver's service proxy drops the caller's `Authorization` after authenticating it,
//! so `kubectl sparkgang` sends its token in the second header through the proxy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use tracing::warn;

/// The header `kubectl sparkgang` carries its token in through the API server's proxy.
pub const PROXIED_TOKEN_HEADER: &str = "x-sparkgang-authorization";

/// Entries kept per cache before it is emptied (a flood of distinct tokens cannot grow it).
const CACHE_LIMIT: usize = 10_000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// The token's extra attributes (scopes, credential id), passed on to authorization.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("cannot check the caller with the API server: {0}")]
    Unavailable(String),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let status = match self {
            Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denied::Forbidden(_) => StatusCode::FORBIDDEN,
            Denied::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = sparkgang_common::api::explain::ErrorBody {
            error: self.to_string(),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// One question for a `SubjectAccessReview`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    user: User,
    verb: &'static str,
    resource: &'static str,
    namespace: Option<String>,
}

/// Reviewed answers by key, with when each was received.
type Cache<K, V> = Mutex<HashMap<K, (V, Instant)>>;

/// Delegated authentication and authorization through the API server.
pub struct Reviewer {
    client: kube::Client,
    ttl: Duration,
    tokens: Cache<String, Result<User, String>>,
    decisions: Cache<Question, bool>,
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviewer").field("ttl", &self.ttl).finish()
    }
}

impl Reviewer {
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Reviewer {
            client,
            ttl,
            tokens: Mutex::default(),
            decisions: Mutex::default(),
        }
    }

    /// The caller of a request, from its bearer token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<User, Denied> {
        let token = bearer(headers).ok_or_else(|| {
            Denied::Unauthenticated(
                "a Kubernetes bearer token is required (Authorization: Bearer TOKEN, or \
                 X-Sparkgang-Authorization through the API server's service proxy); kubectl \
                 sparkgang sends the one of your kubeconfig, or --token"
                    .to_owned(),
            )
        })?;
        if let Some(answer) = cached(&self.tokens, &token, self.ttl) {
            return answer.map_err(Denied::Unauthenticated);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.clone()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                warn!(error = %e, "TokenReview failed");
                Denied::Unavailable(format!("TokenReview: {e}"))
            })?;
        let status = answer.status.unwrap_or_default();
        let result = match (status.authenticated, status.user) {
            (Some(true), Some(u)) => Ok(User {
                name: u.username.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            }),
            _ => Err(format!(
                "the bearer token was not accepted by the API server{}",
                status.error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
        };
        remember(&self.tokens, token, result.clone());
        result.map_err(Denied::Unauthenticated)
    }

    /// Whether `user` may `verb` `resource` (core group) in `namespace` (`None`:
    /// cluster-wide).
    pub async fn allowed(
        &self,
        user: &User,
        verb: &'static str,
        resource: &'static str,
        namespace: Option<&str>,
    ) -> Result<bool, Denied> {
        let question = Question {
            user: user.clone(),
            verb,
            resource,
            namespace: namespace.map(str::to_owned),
        };
        if let Some(allowed) = cached(&self.decisions, &question, self.ttl) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(String::new()),
                    resource: Some(resource.to_owned()),
                    verb: Some(verb.to_owned()),
                    namespace: namespace.map(str::to_owned),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                warn!(error = %e, "SubjectAccessReview failed");
                Denied::Unavailable(format!("SubjectAccessReview: {e}"))
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        remember(&self.decisions, question, allowed);
        Ok(allowed)
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    [
        axum::http::header::AUTHORIZATION.as_str(),
        PROXIED_TOKEN_HEADER,
    ]
    .iter()
    .filter_map(|h| headers.get(*h)?.to_str().ok())
    .find_map(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .then(|| token.trim().to_owned())
    })
}

fn cached<K: std::hash::Hash + Eq, V: Clone>(
    cache: &Cache<K, V>,
    key: &K,
    ttl: Duration,
) -> Option<V> {
    let cache = cache.lock().ok()?;
    let (value, at) = cache.get(key)?;
    (at.elapsed() < ttl).then(|| value.clone())
}

fn remember<K: std::hash::Hash + Eq, V>(cache: &Cache<K, V>, key: K, value: V) {
    if let Ok(mut cache) = cache.lock() {
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (value, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::bearer;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_comes_from_either_header() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Some("abc".into())
        );
        assert_eq!(
            bearer(&headers(&[("x-sparkgang-authorization", "bearer xyz")])),
            Some("xyz".into())
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }
}
