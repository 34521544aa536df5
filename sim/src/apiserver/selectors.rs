//! Label and field selectors: the kube-apiserver syntax, parsed once and matched against JSON objects.

use serde_json::Value;

use super::errors::ApiError;
use super::resources::ResourceDef;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed `labelSelector`: all requirements must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

/// One field requirement (`=`/`==` or `!=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && k.matches('/').count() <= 1
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (v.is_empty()
            || (v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())))
}

fn label_err(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: found invalid label selector {sel:?}: {why}"
    ))
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, ()> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(rest: &str) -> Option<Vec<String>> {
    let rest = rest.trim();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    Some(values)
}

impl LabelSelector {
    /// Parses the `labelSelector` syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
    /// `a`, `!a`, `a>1`, `a<1`, comma-separated.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        let parts = split_top(s).map_err(|()| label_err(s, "unbalanced parentheses"))?;
        for part in parts {
            let p = part.trim();
            if p.is_empty() {
                return Err(label_err(s, "empty requirement"));
            }
            let req = if let Some(key) = p.strip_prefix('!') {
                let key = key.trim();
                if !valid_key(key) {
                    return Err(label_err(s, &format!("invalid key {key:?}")));
                }
                LabelReq::NotExists(key.to_owned())
            } else if let Some(i) = p.find("!=") {
                LabelReq::NotEq(p[..i].trim().to_owned(), p[i + 2..].trim().to_owned())
            } else if let Some(i) = p.find("==") {
                LabelReq::Eq(p[..i].trim().to_owned(), p[i + 2..].trim().to_owned())
            } else if let Some(i) = p.find('=') {
                LabelReq::Eq(p[..i].trim().to_owned(), p[i + 1..].trim().to_owned())
            } else if let Some(i) = p.find('>') {
                let n = p[i + 1..]
                    .trim()
                    .parse()
                    .map_err(|_| label_err(s, "the value of > must be an integer"))?;
                LabelReq::Gt(p[..i].trim().to_owned(), n)
            } else if let Some(i) = p.find('<') {
                let n = p[i + 1..]
                    .trim()
                    .parse()
                    .map_err(|_| label_err(s, "the value of < must be an integer"))?;
                LabelReq::Lt(p[..i].trim().to_owned(), n)
            } else if let Some((key, rest)) = p.split_once(char::is_whitespace) {
                let rest = rest.trim_start();
                if let Some(set) = rest.strip_prefix("notin") {
                    let values = parse_set(set)
                        .ok_or_else(|| label_err(s, "expected a parenthesised set after notin"))?;
                    LabelReq::NotIn(key.to_owned(), values)
                } else if let Some(set) = rest.strip_prefix("in") {
                    let values = parse_set(set)
                        .ok_or_else(|| label_err(s, "expected a parenthesised set after in"))?;
                    LabelReq::In(key.to_owned(), values)
                } else {
                    return Err(label_err(s, &format!("unknown operator in {p:?}")));
                }
            } else {
                LabelReq::Exists(p.to_owned())
            };
            let (key, values): (&str, Vec<&str>) = match &req {
                LabelReq::Eq(k, v) | LabelReq::NotEq(k, v) => (k, vec![v]),
                LabelReq::In(k, vs) | LabelReq::NotIn(k, vs) => {
                    (k, vs.iter().map(String::as_str).collect())
                }
                LabelReq::Exists(k)
                | LabelReq::NotExists(k)
                | LabelReq::Gt(k, _)
                | LabelReq::Lt(k, _) => (k, vec![]),
            };
            if !valid_key(key) {
                return Err(label_err(s, &format!("invalid label key {key:?}")));
            }
            if let Some(v) = values.iter().find(|v| !valid_value(v)) {
                return Err(label_err(s, &format!("invalid label value {v:?}")));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does an object (its `metadata.labels`) satisfy every requirement?
    pub fn matches(&self, object: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// Splits a field selector at unescaped commas and unescapes `\,`, `\=`, `\\`.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                cur.push('\\');
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses `a=b,c!=d` (also `==`), checking each field is supported by `def`.
    pub fn parse(s: &str, def: &ResourceDef) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for part in split_escaped(s, ',') {
            let p = part.trim();
            let (field, value, equal) = if let Some(i) = p.find("!=") {
                (&p[..i], &p[i + 2..], false)
            } else if let Some(i) = p.find("==") {
                (&p[..i], &p[i + 2..], true)
            } else if let Some(i) = p.find('=') {
                (&p[..i], &p[i + 1..], true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {s:?}: {p:?} is not of the form field=value or field!=value"
                )));
            };
            let field = field.trim();
            if !def.supports_field(field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push(FieldReq {
                field: field.to_owned(),
                value: unescape(value.trim()),
                equal,
            });
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|r| (field_value(object, &r.field) == r.value) == r.equal)
    }

    /// The name when the selector pins `metadata.name=<x>` (lets a list skip the scan).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equal && r.field == "metadata.name")
            .map(|r| r.value.as_str())
    }
}

/// The string value of a dotted field path, as the real server's field sets render it.
pub fn field_value(object: &Value, field: &str) -> String {
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let mut v = object;
    for part in path.split('.') {
        match v.get(part) {
            Some(x) => v = x,
            None => {
                // Booleans default to false in the real field sets (spec.unschedulable).
                return if field == "spec.unschedulable" || field == "spec.hostNetwork" {
                    "false".to_owned()
                } else {
                    String::new()
                };
            }
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Both selectors of a request.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "spark", "labels": labels}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let p = pod(json!({"spark-role": "executor", "app": "a", "n": "5"}));
        let ok = [
            "spark-role=executor",
            "spark-role==executor",
            "spark-role!=driver",
            "spark-role in (driver, executor)",
            "spark-role notin (driver)",
            "app",
            "!missing",
            "missing!=x",
            "missing notin (x)",
            "n>4,n<6",
            "spark-role=executor,app=a,spark-exec-inactive!=true",
        ];
        for s in ok {
            assert!(LabelSelector::parse(s).unwrap().matches(&p), "{s}");
        }
        let no = [
            "spark-role=driver",
            "spark-role in (driver)",
            "spark-role notin (executor)",
            "missing",
            "!app",
            "n>5",
            "missing in (x)",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&p), "{s}");
        }
    }

    #[test]
    fn bad_label_selectors() {
        for s in [
            "a in (b",
            "a=b,",
            "=b",
            "a in b",
            "a=b c",
            "a>x",
            "!",
            "a foo (x)",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn field_selectors() {
        let table = super::super::resources::ResourceTable::builtin();
        let pods = table.lookup("", "v1", "pods").unwrap();
        let p = pod(json!({}));
        let sel = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", &pods).unwrap();
        assert!(sel.matches(&p));
        let sel = FieldSelector::parse("spec.nodeName==", &pods).unwrap();
        assert!(!sel.matches(&p));
        let sel = FieldSelector::parse("metadata.namespace=spark", &pods).unwrap();
        assert!(sel.matches(&p));
        assert!(FieldSelector::parse("spec.foo=x", &pods).is_err());
        assert!(FieldSelector::parse("spec.nodeName", &pods).is_err());
    }
}
