//! `TokenReview` and `SubjectAccessReview`, as kube-apiserver answers them for servers that
//! delegate authentication and authorization to it (the extender's explain API), over tokens
//! and grants registered in-process: the simulator has no authenticator and no RBAC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use serde_json::Value;

pub const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
pub const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// One permission: `verb` on `resource` (`pods`, `nodes`, ...) in `namespace` (`None`: in
/// every namespace and cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: String,
    pub verb: String,
    pub resource: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: HashMap<String, (String, Vec<String>)>,
    grants: Vec<Grant>,
}

/// Who the bearer tokens are, and what they may do.
#[derive(Debug, Clone, Default)]
pub struct Identities(Arc<Mutex<Inner>>);

impl Identities {
    /// `token` authenticates as `user` in `groups`.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        if let Ok(mut i) = self.0.lock() {
            i.tokens.insert(
                token.to_owned(),
                (
                    user.to_owned(),
                    groups.iter().map(|g| (*g).to_owned()).collect(),
                ),
            );
        }
    }

    /// `user` may `verb` `resource` in `namespace` (`None`: everywhere).
    pub fn grant(&self, user: &str, verb: &str, resource: &str, namespace: Option<&str>) {
        if let Ok(mut i) = self.0.lock() {
            i.grants.push(Grant {
                user: user.to_owned(),
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                namespace: namespace.map(str::to_owned),
            });
        }
    }

    fn token(&self, token: &str) -> Option<(String, Vec<String>)> {
        self.0.lock().ok()?.tokens.get(token).cloned()
    }

    fn allows(&self, user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
        self.0.lock().is_ok_and(|i| {
            i.grants.iter().any(|g| {
                g.user == user
                    && (g.verb == verb || g.verb == "*")
                    && g.resource == resource
                    && g.namespace.as_deref().is_none_or(|n| n == namespace)
            })
        })
    }
}

/// The answer to a `POST` of a review at `path`; `None` when `path` is no review.
pub fn answer(ids: &Identities, path: &str, body: &[u8]) -> Option<Result<Value, String>> {
    let result = match path {
        TOKEN_REVIEWS => token_review(ids, body),
        ACCESS_REVIEWS => access_review(ids, body),
        _ => return None,
    };
    Some(result)
}

fn token_review(ids: &Identities, body: &[u8]) -> Result<Value, String> {
    let mut review: TokenReview =
        serde_json::from_slice(body).map_err(|e| format!("not a TokenReview: {e}"))?;
    let token = review.spec.token.clone().unwrap_or_default();
    review.status = Some(match ids.token(&token) {
        Some((user, groups)) => TokenReviewStatus {
            authenticated: Some(true),
            user: Some(UserInfo {
                username: Some(user),
                groups: Some(groups),
                ..UserInfo::default()
            }),
            ..TokenReviewStatus::default()
        },
        None => TokenReviewStatus {
            authenticated: Some(false),
            error: Some("invalid bearer token".to_owned()),
            ..TokenReviewStatus::default()
        },
    });
    serde_json::to_value(&review).map_err(|e| e.to_string())
}

fn access_review(ids: &Identities, body: &[u8]) -> Result<Value, String> {
    let mut review: SubjectAccessReview =
        serde_json::from_slice(body).map_err(|e| format!("not a SubjectAccessReview: {e}"))?;
    let user = review.spec.user.clone().unwrap_or_default();
    let attrs = review.spec.resource_attributes.clone().unwrap_or_default();
    let allowed = ids.allows(
        &user,
        attrs.verb.as_deref().unwrap_or(""),
        attrs.resource.as_deref().unwrap_or(""),
        attrs.namespace.as_deref().unwrap_or(""),
    );
    review.status = Some(SubjectAccessReviewStatus {
        allowed,
        reason: Some(if allowed {
            "granted by the simulator".to_owned()
        } else {
            "no grant in the simulator".to_owned()
        }),
        ..SubjectAccessReviewStatus::default()
    });
    serde_json::to_value(&review).map_err(|e| e.to_string())
}
