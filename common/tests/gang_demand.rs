//! The one gang-demand decision, as a table: precedence (recorded, Spark conf, annotations,
//! default), defaults, dynamic allocation and every rejection. Expected figures are written out
//! by hand from Spark's and palantir's rules, not computed with the code under test.

use std::collections::BTreeMap;

use sparkgang_common::api::GANG_DEMAND_ANNOTATION;
use sparkgang_common::demand_decision::{
    DemandError, DemandInputs, DemandRules, DemandSource, decide_gang_demand,
};
use sparkgang_common::sparkconf::SparkConf;
use sparkgang_common::{GangDemand, GpuResourceNames, Resources};

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;

/// What a case expects.
enum Want {
    Demand {
        driver: Resources,
        executor: Resources,
        executors: (u32, u32),
        source: DemandSource,
        /// A substring of some warning, or `""` for no warning at all.
        warning: &'static str,
    },
    Incomplete(&'static [&'static str]),
    MinGreaterThanMax,
    BadAnnotation(&'static str),
}

struct Case {
    name: &'static str,
    annotations: &'static [(&'static str, &'static str)],
    requests: Option<Resources>,
    conf: Option<&'static str>,
    default: Option<GangDemand>,
    want: Want,
}

fn r(cpu_milli: i64, memory_bytes: i64) -> Resources {
    Resources::new(cpu_milli, memory_bytes, 0)
}

const STATIC_ANNOTATIONS: &[(&str, &str)] = &[
    ("spark-driver-cpu", "1"),
    ("spark-driver-mem", "2Gi"),
    ("spark-executor-cpu", "2"),
    ("spark-executor-mem", "4Gi"),
    ("spark-executor-count", "3"),
];

/// driver 2g → 2048 + max(384, 204) MiB; executor 4g → 4096 + max(384, 409) MiB.
const STATIC_CONF: &str = "spark.driver.memory=2g\nspark.executor.memory=4g\n\
                           spark.executor.cores=2\nspark.executor.instances=3\n";

/// Dynamic allocation: the gang reserves the initial executors, max(2, 2, unset) = 2.
const DYNAMIC_CONF: &str = "spark.executor.memory=1g\nspark.dynamicAllocation.enabled=true\n\
                            spark.dynamicAllocation.minExecutors=2\n\
                            spark.dynamicAllocation.initialExecutors=2\n\
                            spark.dynamicAllocation.maxExecutors=10\n";

const RECORDED: &str = r#"{"driver":{"cpuMilli":3000,"memoryBytes":1073741824,"gpus":0},"executor":{"cpuMilli":1000,"memoryBytes":1073741824,"gpus":0},"minExecutors":1,"maxExecutors":1}"#;

fn default_demand() -> GangDemand {
    GangDemand {
        driver: r(500, GIB),
        executor: r(1000, 2 * GIB),
        min_executors: 2,
        max_executors: 2,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "complete static annotations alone",
            annotations: STATIC_ANNOTATIONS,
            requests: None,
            conf: None,
            default: None,
            want: Want::Demand {
                driver: r(1000, 2 * GIB),
                executor: r(2000, 4 * GIB),
                executors: (3, 3),
                source: DemandSource::Annotations,
                warning: "",
            },
        },
        Case {
            name: "complete dynamic annotations alone ignore no count",
            annotations: &[
                ("spark-driver-cpu", "1"),
                ("spark-driver-mem", "1Gi"),
                ("spark-executor-cpu", "1"),
                ("spark-executor-mem", "1Gi"),
                ("spark-dynamic-allocation-enabled", "true"),
                ("spark-dynamic-allocation-min-executor-count", "1"),
                ("spark-dynamic-allocation-max-executor-count", "5"),
            ],
            requests: None,
            conf: None,
            default: None,
            want: Want::Demand {
                driver: r(1000, GIB),
                executor: r(1000, GIB),
                executors: (1, 5),
                source: DemandSource::Annotations,
                warning: "",
            },
        },
        Case {
            name: "incomplete annotations, no conf, no default",
            annotations: &[("spark-driver-cpu", "1")],
            requests: None,
            conf: None,
            default: None,
            want: Want::Incomplete(&[
                "spark-driver-mem",
                "spark-executor-cpu",
                "spark-executor-mem",
                "spark-executor-count",
            ]),
        },
        Case {
            name: "no annotations, default: the default",
            annotations: &[],
            requests: None,
            conf: None,
            default: Some(default_demand()),
            want: Want::Demand {
                driver: r(500, GIB),
                executor: r(1000, 2 * GIB),
                executors: (2, 2),
                source: DemandSource::Default,
                warning: "using the default demand",
            },
        },
        Case {
            name: "partial annotations override the default per field",
            annotations: &[("spark-executor-count", "4")],
            requests: None,
            conf: None,
            default: Some(default_demand()),
            want: Want::Demand {
                driver: r(500, GIB),
                executor: r(1000, 2 * GIB),
                executors: (4, 4),
                source: DemandSource::Default,
                warning: "using the default demand",
            },
        },
        Case {
            name: "the conf alone",
            annotations: &[],
            requests: None,
            conf: Some(STATIC_CONF),
            default: Some(default_demand()),
            want: Want::Demand {
                driver: r(1000, 2432 * MIB),
                executor: r(2000, 4505 * MIB),
                executors: (3, 3),
                source: DemandSource::SparkConf,
                warning: "",
            },
        },
        Case {
            name: "an annotation overrides the conf's count",
            annotations: &[("spark-executor-count", "5")],
            requests: None,
            conf: Some(STATIC_CONF),
            default: None,
            want: Want::Demand {
                driver: r(1000, 2432 * MIB),
                executor: r(2000, 4505 * MIB),
                executors: (5, 5),
                source: DemandSource::SparkConfAndAnnotations,
                warning: "overrides 3 executors",
            },
        },
        Case {
            name: "an annotation below Spark's request is raised to it",
            annotations: &[("spark-executor-mem", "1Gi")],
            requests: None,
            conf: Some(STATIC_CONF),
            default: None,
            want: Want::Demand {
                driver: r(1000, 2432 * MIB),
                executor: r(2000, 4505 * MIB),
                executors: (3, 3),
                source: DemandSource::SparkConf,
                warning: "is below Spark's executor request",
            },
        },
        Case {
            name: "the driver is never smaller than its pod",
            annotations: STATIC_ANNOTATIONS,
            requests: Some(r(1500, 3 * GIB)),
            conf: None,
            default: None,
            want: Want::Demand {
                driver: r(1500, 3 * GIB),
                executor: r(2000, 4 * GIB),
                executors: (3, 3),
                source: DemandSource::Annotations,
                warning: "below the driver pod's requests",
            },
        },
        Case {
            name: "dynamic allocation from the conf reserves the initial executors",
            annotations: &[],
            requests: None,
            conf: Some(DYNAMIC_CONF),
            default: None,
            want: Want::Demand {
                driver: r(1000, 1408 * MIB),
                executor: r(1000, 1408 * MIB),
                executors: (2, 10),
                source: DemandSource::SparkConf,
                warning: "",
            },
        },
        Case {
            name: "the annotation turns the conf's dynamic allocation off",
            annotations: &[
                ("spark-dynamic-allocation-enabled", "false"),
                ("spark-executor-count", "4"),
            ],
            requests: None,
            conf: Some(DYNAMIC_CONF),
            default: None,
            want: Want::Demand {
                driver: r(1000, 1408 * MIB),
                executor: r(1000, 1408 * MIB),
                executors: (4, 4),
                source: DemandSource::SparkConfAndAnnotations,
                warning: "overrides 2 executors",
            },
        },
        Case {
            name: "an annotated minimum above the conf's maximum is rejected",
            annotations: &[("spark-dynamic-allocation-min-executor-count", "11")],
            requests: None,
            conf: Some(DYNAMIC_CONF),
            default: None,
            want: Want::MinGreaterThanMax,
        },
        Case {
            name: "the recorded demand wins over annotations and default",
            annotations: &[
                ("spark-executor-count", "9"),
                (GANG_DEMAND_ANNOTATION, RECORDED),
            ],
            requests: None,
            conf: None,
            default: Some(default_demand()),
            want: Want::Demand {
                driver: r(3000, GIB),
                executor: r(1000, GIB),
                executors: (1, 1),
                source: DemandSource::Recorded,
                warning: "",
            },
        },
        Case {
            name: "the recorded driver is raised to its pod",
            annotations: &[(GANG_DEMAND_ANNOTATION, RECORDED)],
            requests: Some(r(1000, 2 * GIB)),
            conf: None,
            default: None,
            want: Want::Demand {
                driver: r(3000, 2 * GIB),
                executor: r(1000, GIB),
                executors: (1, 1),
                source: DemandSource::Recorded,
                warning: "",
            },
        },
        Case {
            name: "a malformed recorded demand is ignored, with a warning",
            annotations: &[
                ("spark-driver-cpu", "1"),
                ("spark-driver-mem", "2Gi"),
                ("spark-executor-cpu", "2"),
                ("spark-executor-mem", "4Gi"),
                ("spark-executor-count", "3"),
                (GANG_DEMAND_ANNOTATION, "{not json"),
            ],
            requests: None,
            conf: None,
            default: None,
            want: Want::Demand {
                driver: r(1000, 2 * GIB),
                executor: r(2000, 4 * GIB),
                executors: (3, 3),
                source: DemandSource::Annotations,
                warning: "is not a gang demand",
            },
        },
        Case {
            name: "a recorded minimum above its maximum is ignored",
            annotations: &[(
                GANG_DEMAND_ANNOTATION,
                r#"{"driver":{"cpuMilli":1,"memoryBytes":1,"gpus":0},"executor":{"cpuMilli":1,"memoryBytes":1,"gpus":0},"minExecutors":3,"maxExecutors":1}"#,
            )],
            requests: None,
            conf: None,
            default: Some(default_demand()),
            want: Want::Demand {
                driver: r(500, GIB),
                executor: r(1000, 2 * GIB),
                executors: (2, 2),
                source: DemandSource::Default,
                warning: "at least 3 executors but at most 1",
            },
        },
        Case {
            name: "a malformed annotation is rejected even with a conf and a default",
            annotations: &[("spark-executor-count", "many")],
            requests: None,
            conf: Some(STATIC_CONF),
            default: Some(default_demand()),
            want: Want::BadAnnotation("spark-executor-count"),
        },
        Case {
            name: "annotated minimum above annotated maximum is rejected",
            annotations: &[
                ("spark-dynamic-allocation-min-executor-count", "5"),
                ("spark-dynamic-allocation-max-executor-count", "2"),
            ],
            requests: None,
            conf: None,
            default: Some(default_demand()),
            want: Want::BadAnnotation("spark-dynamic-allocation-min-executor-count"),
        },
    ]
}

#[test]
fn gang_demand_table() {
    let gpus = GpuResourceNames::default();
    let mut failures = Vec::new();
    for case in cases() {
        let annotations: BTreeMap<String, String> = case
            .annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let conf = case.conf.map(|text| {
            SparkConf::parse(text)
                .expect("the case's conf parses")
                .demand(&gpus)
                .expect("the case's conf has a demand")
        });
        let got = decide_gang_demand(
            &DemandInputs {
                annotations: &annotations,
                driver_requests: case.requests,
                spark_conf: conf.as_ref(),
            },
            &DemandRules {
                gpus: &gpus,
                default: case.default,
            },
        );
        let ok = match (&case.want, &got) {
            (
                Want::Demand {
                    driver,
                    executor,
                    executors,
                    source,
                    warning,
                },
                Ok(d),
            ) => {
                d.demand.driver == *driver
                    && d.demand.executor == *executor
                    && (d.demand.min_executors, d.demand.max_executors) == *executors
                    && d.source == *source
                    && if warning.is_empty() {
                        d.warnings.is_empty()
                    } else {
                        d.warnings.iter().any(|w| w.contains(warning))
                    }
            }
            (Want::Incomplete(missing), Err(DemandError::Incomplete { missing: got })) => {
                got == missing
            }
            (Want::MinGreaterThanMax, Err(DemandError::MinGreaterThanMax { .. })) => true,
            (Want::BadAnnotation(key), Err(DemandError::Annotations(e))) => {
                e.errors().iter().any(|e| e.key() == *key)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: got {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rejection_says_what_was_wrong() {
    let gpus = GpuResourceNames::default();
    let decide = |pairs: &[(&str, &str)]| {
        let annotations: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        decide_gang_demand(
            &DemandInputs {
                annotations: &annotations,
                driver_requests: None,
                spark_conf: None,
            },
            &DemandRules {
                gpus: &gpus,
                default: None,
            },
        )
        .unwrap_err()
        .to_string()
    };
    let incomplete = decide(&[]);
    assert!(incomplete.contains("spark-executor-count"), "{incomplete}");
    assert!(incomplete.contains("no default demand"), "{incomplete}");
    let bad = decide(&[("spark-driver-mem", "lots")]);
    assert!(
        bad.contains("spark-driver-mem") && bad.contains("lots"),
        "{bad}"
    );
}
