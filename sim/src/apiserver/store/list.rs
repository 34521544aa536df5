//! Lists: the objects of a resource matching selectors, in name order, paged by continue tokens.

use std::ops::Bound;
use std::sync::Arc;

use super::handle::Store;
use super::object::Stored;
use crate::apiserver::errors::ApiError;
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::selectors::Selectors;

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

impl Store {
    /// Objects of `def` (in `namespace`, or all namespaces) matching `selectors`, in
    /// namespace/name order, paged by `limit` / `continue_token`.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        selectors: &Selectors,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListResult, ApiError> {
        let namespace = namespace.filter(|n| def.namespaced && !n.is_empty());
        let (cont_rv, start) = match continue_token {
            Some(t) if !t.is_empty() => {
                let (rv, ns, name) = parse_continue(t)?;
                (Some(rv), Some((ns, name)))
            }
            _ => (None, None),
        };
        let st = self.lock();
        let Some(coll) = st.collections.get(&def.storage) else {
            return Ok(ListResult {
                items: Vec::new(),
                resource_version: st.rv,
                continue_token: None,
            });
        };
        if let Some(rv) = cont_rv
            && rv < coll.horizon
        {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        let list_rv = cont_rv.unwrap_or(st.rv);
        // A name pinned by the field selector: no scan.
        if let (Some(ns), Some(name)) = (
            namespace.or(if def.namespaced { None } else { Some("") }),
            selectors.fields.pinned_name(),
        ) {
            let items = coll
                .objects
                .get(&(ns.to_owned(), name.to_owned()))
                .filter(|o| selectors.matches(&o.value))
                .cloned()
                .into_iter()
                .collect();
            return Ok(ListResult {
                items,
                resource_version: list_rv,
                continue_token: None,
            });
        }
        let lower = match (&start, namespace) {
            (Some((ns, name)), _) => Bound::Excluded((ns.clone(), name.clone())),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for ((ns, _), obj) in coll.objects.range((lower, Bound::Unbounded)) {
            if namespace.is_some_and(|n| n != ns) {
                break;
            }
            if !selectors.matches(&obj.value) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(obj.clone());
        }
        let continue_token = if more {
            items
                .last()
                .map(|last| format!("{list_rv}/{}/{}", last.namespace(), last.name()))
        } else {
            None
        };
        Ok(ListResult {
            items,
            resource_version: list_rv,
            continue_token,
        })
    }
}

fn parse_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let mut parts = token.splitn(3, '/');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_owned();
    let name = parts.next().ok_or_else(bad)?.to_owned();
    Ok((rv, ns, name))
}
