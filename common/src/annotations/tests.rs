//! Tests of the palantir annotations: parsing, normalisation and every error.

use super::*;

/// The full demand when the annotations give all of it, `None` when incomplete.
fn complete_demand(
    annotations: &BTreeMap<String, String>,
    gpus: &GpuResourceNames,
) -> Result<Option<GangDemand>, AnnotationErrors> {
    Ok(AnnotatedDemand::from_annotations(annotations, gpus)?.complete())
}

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(pairs: &[(&str, &str)]) -> Result<Normalised, AnnotationErrors> {
    normalise(&annotations(pairs), &GpuResourceNames::default())
}

const FULL_STATIC: [(&str, &str); 5] = [
    (DRIVER_CPU, "1"),
    (DRIVER_MEM, "1408Mi"),
    (EXECUTOR_CPU, "2"),
    (EXECUTOR_MEM, "4505Mi"),
    (EXECUTOR_COUNT, "8"),
];

#[test]
fn complete_static_annotations() {
    let n = parse(&FULL_STATIC).unwrap();
    assert!(n.rewrites.is_empty() && n.warnings.is_empty());
    assert_eq!(
        n.demand.complete(),
        Some(GangDemand {
            driver: Resources::new(1000, 1408 * MIB, 0),
            executor: Resources::new(2000, 4505 * MIB, 0),
            min_executors: 8,
            max_executors: 8,
        })
    );
}

#[test]
fn complete_demand_is_none_when_incomplete_and_err_when_malformed() {
    let gpus = GpuResourceNames::default();
    let full = annotations(&FULL_STATIC);
    assert_eq!(
        complete_demand(&full, &gpus)
            .unwrap()
            .map(|d| d.min_executors),
        Some(8)
    );
    assert_eq!(
        complete_demand(&annotations(&FULL_STATIC[..4]), &gpus),
        Ok(None)
    );
    let bad = annotations(&[(EXECUTOR_COUNT, "many")]);
    let e = complete_demand(&bad, &gpus).unwrap_err();
    let as_string: String = e.clone().into();
    assert_eq!(as_string, e.to_string());
    assert!(as_string.contains(EXECUTOR_COUNT), "{as_string}");
}

#[test]
fn complete_dynamic_annotations_ignore_the_static_count() {
    let n = parse(&[
        (DRIVER_CPU, "500m"),
        (DRIVER_MEM, "1Gi"),
        (DRIVER_GPU, "1"),
        (EXECUTOR_CPU, "1.5"),
        (EXECUTOR_MEM, "2432Mi"),
        (EXECUTOR_GPU, "2"),
        (EXECUTOR_COUNT, "7"),
        (DYNAMIC_ALLOCATION_ENABLED, "T"),
        (DYNAMIC_MIN_EXECUTORS, "2"),
        (DYNAMIC_MAX_EXECUTORS, "2.5"),
    ])
    .unwrap();
    let d = n.demand.complete().unwrap();
    assert_eq!(d.driver, Resources::new(500, GIB, 1));
    assert_eq!(d.executor, Resources::new(1500, 2432 * MIB, 2));
    assert_eq!((d.min_executors, d.max_executors), (2, 3));
    assert!(d.is_dynamic());
}

#[test]
fn incomplete_annotations_say_what_is_missing() {
    for (pairs, missing) in [
        (
            vec![],
            vec![
                DRIVER_CPU,
                DRIVER_MEM,
                EXECUTOR_CPU,
                EXECUTOR_MEM,
                EXECUTOR_COUNT,
            ],
        ),
        (
            vec![(EXECUTOR_COUNT, "3")],
            vec![DRIVER_CPU, DRIVER_MEM, EXECUTOR_CPU, EXECUTOR_MEM],
        ),
        (
            vec![
                (DRIVER_CPU, "1"),
                (DRIVER_MEM, "1Gi"),
                (EXECUTOR_CPU, "1"),
                (EXECUTOR_MEM, "1Gi"),
                (DYNAMIC_ALLOCATION_ENABLED, "true"),
                (DYNAMIC_MIN_EXECUTORS, "1"),
            ],
            vec![DYNAMIC_MAX_EXECUTORS],
        ),
        (
            vec![
                (DRIVER_CPU, "1"),
                (DRIVER_MEM, "1Gi"),
                (EXECUTOR_CPU, "1"),
                (EXECUTOR_MEM, "1Gi"),
                (DYNAMIC_ALLOCATION_ENABLED, "0"),
            ],
            vec![EXECUTOR_COUNT],
        ),
    ] {
        let d = parse(&pairs).unwrap().demand;
        assert_eq!(d.missing(), missing, "{pairs:?}");
        assert_eq!(d.complete(), None);
        let errors = d.require_complete().unwrap_err();
        let keys: Vec<&str> = errors.errors().iter().map(AnnotationError::key).collect();
        assert_eq!(keys, missing);
    }
    let d = parse(&[(DYNAMIC_ALLOCATION_ENABLED, "true")])
        .unwrap()
        .demand;
    let reasons: Vec<&str> = d
        .require_complete()
        .unwrap_err()
        .errors()
        .iter()
        .map(AnnotationError::reason)
        .collect();
    assert_eq!(
        reasons,
        [
            "missing_required",
            "missing_required",
            "missing_required",
            "missing_required",
            "missing_when_dynamic_allocation",
            "missing_when_dynamic_allocation"
        ]
    );
    let d = parse(&[]).unwrap().demand;
    assert!(d.is_empty());
    assert_eq!(
        d.require_complete()
            .unwrap_err()
            .errors()
            .last()
            .unwrap()
            .reason(),
        "missing_when_static_allocation"
    );
}

#[test]
fn go_parse_bool_forms() {
    for (value, want) in [
        ("1", true),
        ("t", true),
        ("T", true),
        ("TRUE", true),
        ("true", true),
        ("True", true),
        ("0", false),
        ("f", false),
        ("F", false),
        ("FALSE", false),
        ("false", false),
        ("False", false),
    ] {
        assert_eq!(
            parse(&[(DYNAMIC_ALLOCATION_ENABLED, value)])
                .unwrap()
                .demand
                .dynamic_allocation,
            Some(want),
            "{value}"
        );
    }
    for value in ["yes", "tRUE", " true", "2", ""] {
        let e = parse(&[(DYNAMIC_ALLOCATION_ENABLED, value)]).unwrap_err();
        assert_eq!(e.reason(), "bad_boolean", "{value:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(DYNAMIC_ALLOCATION_ENABLED)
                && msg.contains(&format!("{value:?}"))
                && msg.contains("Go boolean"),
            "{msg}"
        );
    }
}

#[test]
fn spark_sizes_are_rewritten_with_a_warning() {
    for (value, bytes, canonical) in [
        ("4g", 4 * GIB, "4Gi"),
        ("4gb", 4 * GIB, "4Gi"),
        ("1536m", 1536 * MIB, "1536Mi"),
        ("512m", 512 * MIB, "512Mi"),
        ("1t", 1024 * GIB, "1Ti"),
    ] {
        let n = parse(&[(EXECUTOR_MEM, value), (DRIVER_MEM, value)]).unwrap();
        assert_eq!(n.demand.executor_memory_bytes, Some(bytes), "{value}");
        assert_eq!(n.demand.driver_memory_bytes, Some(bytes), "{value}");
        assert_eq!(
            n.rewrites,
            annotations(&[(DRIVER_MEM, canonical), (EXECUTOR_MEM, canonical)])
        );
        assert_eq!(n.warnings.len(), 2);
        for w in &n.warnings {
            assert!(
                w.len() < 120 && w.contains(value) && w.contains(canonical),
                "{w}"
            );
        }
    }
    // Valid Kubernetes quantities keep their Kubernetes meaning and are not rewritten.
    for (value, bytes) in [
        ("4G", 4_000_000_000),
        ("2048k", 2_048_000),
        ("4096", 4096),
        ("1.5Gi", 3 * GIB / 2),
        ("0.5m", 1),
    ] {
        let n = parse(&[(EXECUTOR_MEM, value)]).unwrap();
        assert_eq!(n.demand.executor_memory_bytes, Some(bytes), "{value}");
        assert!(n.rewrites.is_empty() && n.warnings.is_empty(), "{value}");
    }
    // CPU is never rewritten: `1.5` is valid.
    let n = parse(&[(DRIVER_CPU, "1.5")]).unwrap();
    assert_eq!(n.demand.driver_cpu_milli, Some(1500));
    assert!(n.rewrites.is_empty());
}

#[test]
fn warnings_stay_short_for_long_values() {
    let value = format!("{}g", "1".repeat(10));
    let n = parse(&[(EXECUTOR_MEM, &value)]).unwrap();
    assert!(n.warnings[0].len() < 120, "{}", n.warnings[0]);
    assert_eq!(shown(&"9".repeat(40)).chars().count(), 24 + 3);
}

#[test]
fn every_error_is_reported_with_key_value_and_accepted_forms() {
    let e = parse(&[
        (DRIVER_CPU, "1 core"),
        (DRIVER_MEM, "1.5g"),
        (DRIVER_GPU, "one"),
        (EXECUTOR_CPU, "-1"),
        (EXECUTOR_MEM, "-4g"),
        (EXECUTOR_GPU, "-1"),
        (EXECUTOR_COUNT, "1e12"),
        (DYNAMIC_ALLOCATION_ENABLED, "yes"),
        (DYNAMIC_MIN_EXECUTORS, "x"),
        (DYNAMIC_MAX_EXECUTORS, "-2"),
    ])
    .unwrap_err();
    let got: Vec<(&str, &str)> = e.errors().iter().map(|e| (e.key(), e.reason())).collect();
    assert_eq!(
        got,
        [
            (DRIVER_CPU, "bad_quantity"),
            (EXECUTOR_CPU, "negative"),
            (DRIVER_MEM, "bad_quantity"),
            (EXECUTOR_MEM, "negative"),
            (DRIVER_GPU, "bad_count"),
            (EXECUTOR_GPU, "negative"),
            (EXECUTOR_COUNT, "too_large"),
            (DYNAMIC_MIN_EXECUTORS, "bad_count"),
            (DYNAMIC_MAX_EXECUTORS, "negative"),
            (DYNAMIC_ALLOCATION_ENABLED, "bad_boolean"),
        ]
    );
    for err in e.errors() {
        let msg = err.to_string();
        assert!(msg.contains(err.key()), "{msg}");
        assert!(
            msg.contains("accepted") || msg.contains("is not a"),
            "{msg}"
        );
    }
    let msg = e.to_string();
    for value in ["1 core", "1.5g", "one", "-4g", "1e12", "yes"] {
        assert!(msg.contains(&format!("{value:?}")), "{value}: {msg}");
    }
    assert!(msg.contains("Spark size such as 4g"), "{msg}");
    assert_eq!(e.reason(), "bad_quantity");
}

#[test]
fn min_greater_than_max_is_rejected() {
    let e = parse(&[(DYNAMIC_MIN_EXECUTORS, "5"), (DYNAMIC_MAX_EXECUTORS, "3")]).unwrap_err();
    assert_eq!(e.reason(), "min_greater_than_max");
    assert!(
        e.to_string().contains("\"5\"") && e.to_string().contains("\"3\""),
        "{e}"
    );
    assert!(parse(&[(DYNAMIC_MIN_EXECUTORS, "3"), (DYNAMIC_MAX_EXECUTORS, "3")]).is_ok());
    assert!(parse(&[(DYNAMIC_MIN_EXECUTORS, "5")]).is_ok());
}

#[test]
fn other_configured_gpu_names() {
    let names = GpuResourceNames::new(["nvidia.com/gpu".to_owned(), "amd.com/gpu".to_owned()]);
    let a = annotations(&[
        ("spark-driver-amd.com/gpu", "2"),
        (DRIVER_GPU, "1"),
        ("spark-executor-amd.com/gpu", "1"),
        ("spark-executor-intel.com/gpu", "5"),
    ]);
    let d = normalise(&a, &names).unwrap().demand;
    assert_eq!((d.driver_gpus, d.executor_gpus), (Some(3), Some(1)));
    // Not configured: ignored.
    let d = normalise(&a, &GpuResourceNames::default()).unwrap().demand;
    assert_eq!((d.driver_gpus, d.executor_gpus), (Some(1), None));
    let e = normalise(
        &annotations(&[("spark-executor-amd.com/gpu", "lots")]),
        &names,
    )
    .unwrap_err();
    assert_eq!(e.errors()[0].key(), "spark-executor-amd.com/gpu");
}

#[test]
fn unrelated_annotations_are_ignored() {
    let n = parse(&[
        ("spark-executor-cpus", "x"),
        ("spark-app-id", "y"),
        ("example.com/thing", "z"),
    ])
    .unwrap();
    assert!(n.demand.is_empty());
}

mod props {
    use super::super::*;
    use proptest::collection::btree_map;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(DRIVER_CPU.to_owned()),
            Just(DRIVER_MEM.to_owned()),
            Just(DRIVER_GPU.to_owned()),
            Just(EXECUTOR_CPU.to_owned()),
            Just(EXECUTOR_MEM.to_owned()),
            Just(EXECUTOR_GPU.to_owned()),
            Just(EXECUTOR_COUNT.to_owned()),
            Just(DYNAMIC_ALLOCATION_ENABLED.to_owned()),
            Just(DYNAMIC_MIN_EXECUTORS.to_owned()),
            Just(DYNAMIC_MAX_EXECUTORS.to_owned()),
            "\\PC{0,20}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,24}",
            "[-+]?[0-9]{0,25}(\\.[0-9]{0,10})?([eE][-+]?[0-9]{0,4}|[kKmMgGtTpPeE]i?[bB]?)?",
        ]
    }

    proptest! {
        #[test]
        fn never_panics(a in btree_map(key(), value(), 0..12)) {
            let gpus = GpuResourceNames::new(["nvidia.com/gpu".to_owned(), "amd.com/gpu".to_owned()]);
            if let Ok(n) = normalise(&a, &gpus) {
                let _ = n.demand.complete();
                for w in &n.warnings {
                    prop_assert!(w.chars().count() < 120, "{}", w);
                }
                // Rewritten values are canonical: they parse again without a rewrite.
                let mut rewritten = a.clone();
                rewritten.extend(n.rewrites.clone());
                let again = normalise(&rewritten, &gpus).unwrap();
                prop_assert!(again.rewrites.is_empty());
                prop_assert_eq!(again.demand, n.demand);
            }
        }
    }
}
