//! Label selectors (`metav1.LabelSelector`) over an object's labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// `LabelSelector` semantics: every `matchLabels` pair and every expression must hold; an
/// absent selector matches everything, as an empty one does. An unknown operator matches
/// nothing (the API server refuses such selectors; a stored one selects nothing).
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(s) = selector else { return true };
    s.match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && s.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn labels_and_expressions_must_all_hold() {
        let pod = labels(&[("team", "etl"), ("spark-role", "driver")]);
        let sel =
            |match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| LabelSelector {
                match_labels: Some(labels(match_labels)),
                match_expressions: Some(exprs),
            };
        assert!(selector_matches(None, &pod));
        assert!(selector_matches(Some(&LabelSelector::default()), &pod));
        assert!(selector_matches(
            Some(&sel(&[("team", "etl")], vec![])),
            &pod
        ));
        assert!(!selector_matches(
            Some(&sel(&[("team", "ml")], vec![])),
            &pod
        ));
        let cases = [
            (expr("spark-role", "In", &["driver", "executor"]), true),
            (expr("spark-role", "In", &["executor"]), false),
            (expr("spark-role", "NotIn", &["executor"]), true),
            (expr("queue", "NotIn", &["a"]), true),
            (expr("team", "Exists", &[]), true),
            (expr("queue", "Exists", &[]), false),
            (expr("queue", "DoesNotExist", &[]), true),
            (expr("team", "DoesNotExist", &[]), false),
            (expr("team", "Matches", &["etl"]), false),
        ];
        for (e, want) in cases {
            let s = sel(&[("team", "etl")], vec![e.clone()]);
            assert_eq!(selector_matches(Some(&s), &pod), want, "{e:?}");
        }
    }
}
