//! The extender wire types against bytes produced by kube-scheduler's own Go types.

use sparkgang_common::api::extender::*;
use sparkgang_testing::fixtures;

fn wire_fixture(name: &str) -> String {
    fixtures::read(fixtures::KUBE_SCHEDULER_WIRE, name)
}

#[test]
fn decodes_filter_args_from_kube_scheduler() {
    let args: ExtenderArgs =
        serde_json::from_str(&wire_fixture("filter-args.driver.json")).unwrap();
    let pod = args.pod.as_ref().expect("Pod");
    assert_eq!(
        pod.metadata.name.as_deref(),
        Some("pi-app-817565a213adafa7-driver")
    );
    assert!(args.nodes.is_none());
    assert_eq!(args.candidate_names(), ["node-a", "node-b", "node-c"]);

    let args: ExtenderArgs =
        serde_json::from_str(&wire_fixture("filter-args.executor.json")).unwrap();
    assert!(args.pod.is_some());

    let args: ExtenderArgs = serde_json::from_str(&wire_fixture(
        "filter-args.driver.nodes-not-cache-capable.json",
    ))
    .unwrap();
    assert!(args.node_names.is_none());
    assert_eq!(
        args.candidate_names().first().map(String::as_str),
        Some("node-a")
    );
}

#[test]
fn encodes_filter_results_exactly_as_go() {
    for name in ["filter-result.success.json", "filter-result.failure.json"] {
        let raw = wire_fixture(name);
        let decoded: ExtenderFilterResult = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            serde_json::to_string(&decoded).unwrap(),
            raw.trim(),
            "{name}"
        );
    }
    let ok = ExtenderFilterResult::nodes(vec!["node-b".into()]);
    assert_eq!(
        serde_json::to_string(&ok).unwrap(),
        wire_fixture("filter-result.success.json").trim()
    );
    let candidates = ["node-a", "node-b", "node-c"].map(String::from);
    let failed = ExtenderFilterResult::all_failed(&candidates, "application does not fit");
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        wire_fixture("filter-result.failure.json").trim()
    );
}

#[test]
fn other_verbs_round_trip() {
    let raw = wire_fixture("bind-args.json");
    let b: ExtenderBindingArgs = serde_json::from_str(&raw).unwrap();
    assert_eq!(b.node, "node-b");
    assert_eq!(serde_json::to_string(&b).unwrap(), raw.trim());
    let raw = wire_fixture("bind-result.json");
    let r: ExtenderBindingResult = serde_json::from_str(&raw).unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), raw.trim());
    let raw = wire_fixture("prioritize-result.json");
    let p: Vec<HostPriority> = serde_json::from_str(&raw).unwrap();
    assert_eq!(p[1].score, 10);
    assert_eq!(serde_json::to_string(&p).unwrap(), raw.trim());
}

#[test]
fn accepts_any_key_case_and_nulls() {
    let args: ExtenderArgs =
        serde_json::from_str(r#"{"pod":null,"NODES":null,"nodenames":["a"],"Extra":1}"#).unwrap();
    assert_eq!(args.node_names, Some(vec!["a".to_owned()]));
    let r: ExtenderFilterResult =
        serde_json::from_str(r#"{"error":null,"failednodes":{"a":"x"}}"#).unwrap();
    assert_eq!(r.error, "");
    assert_eq!(r.failed_nodes.unwrap()["a"], "x");
    let v: MetaVictims =
        serde_json::from_str(r#"{"pods":[{"uid":"u1"}],"numPDBViolations":null}"#).unwrap();
    assert_eq!(v.pods.unwrap()[0].uid, "u1");
    assert!(serde_json::from_str::<ExtenderArgs>("[1,2]").is_err());
    assert!(serde_json::from_str::<ExtenderArgs>(r#"{"NodeNames": 5}"#).is_err());
}
