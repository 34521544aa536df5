//! Deciding an application's gang demand: the one function the webhook, the gate controller and
//! the extender's state all call, over the driver's annotations, Spark's conf and the config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::annotations::{self, AnnotatedDemand, AnnotationErrors};
use crate::api::GANG_DEMAND_ANNOTATION;
use crate::gang_demand::GangDemand;
use crate::quantities::{format_cpu_millis, format_memory_bytes};
use crate::resources::{GpuResourceNames, Resources};
use crate::sparkconf::ConfDemand;

/// Where a decided demand came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DemandSource {
    /// The `sparkgang.io/demand` annotation: an earlier decision, recorded on the driver.
    Recorded,
    /// The Spark conf; no annotation changed anything.
    SparkConf,
    /// The Spark conf with at least one field taken from the annotations.
    SparkConfAndAnnotations,
    /// The annotations alone (no Spark conf).
    Annotations,
    /// The configured default demand (no Spark conf, incomplete annotations), annotations over it.
    Default,
}

/// The demand to reserve for one application, where it came from, and what the caller should
/// tell the user about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecidedDemand {
    pub demand: GangDemand,
    /// Dynamic allocation as decided by the annotation, else the conf, else the default.
    pub dynamic_allocation: bool,
    pub source: DemandSource,
    pub warnings: Vec<String>,
}

/// Why no demand could be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    #[error(
        "the driver's gang demand is unknown: no {GANG_DEMAND_ANNOTATION} annotation (is the \
         sparkgang webhook installed?), no spark.properties, no default demand configured, and \
         the driver annotations are incomplete: missing {}",
        missing.join(", ")
    )]
    Incomplete { missing: Vec<&'static str> },
    #[error("minimum executors {min} ({min_from}) exceed maximum executors {max} ({max_from})")]
    MinGreaterThanMax {
        min: u32,
        min_from: String,
        max: u32,
        max_from: String,
    },
    #[error(transparent)]
    Annotations(#[from] AnnotationErrors),
}

/// What is known about one application when its demand is decided.
#[derive(Debug, Clone, Copy)]
pub struct DemandInputs<'a> {
    /// The driver pod's annotations: palantir's `spark-*` and the recorded `sparkgang.io/demand`.
    pub annotations: &'a BTreeMap<String, String>,
    /// What the driver pod itself requests; the reservation is never smaller.
    pub driver_requests: Option<Resources>,
    /// What Spark's conf (`spark.properties`) says, when it has been read.
    pub spark_conf: Option<&'a ConfDemand>,
}

/// The configuration the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct DemandRules<'a> {
    /// Extended resources counted as GPUs.
    pub gpus: &'a GpuResourceNames,
    /// The demand of a driver about which nothing else is known, if configured.
    pub default: Option<GangDemand>,
}

/// The demand recorded on a driver as `sparkgang.io/demand`: `None` when absent, an error when it
/// is not a gang demand (or its minimum exceeds its maximum).
pub fn recorded_gang_demand(
    annotations: &BTreeMap<String, String>,
) -> Option<Result<GangDemand, String>> {
    let raw = annotations.get(GANG_DEMAND_ANNOTATION)?;
    Some(
        serde_json::from_str::<GangDemand>(raw)
            .map_err(|e| format!("annotation {GANG_DEMAND_ANNOTATION} is not a gang demand: {e}"))
            .and_then(|d| {
                if d.min_executors <= d.max_executors {
                    Ok(d)
                } else {
                    Err(format!(
                        "annotation {GANG_DEMAND_ANNOTATION} asks for at least {} executors but at most {}",
                        d.min_executors, d.max_executors
                    ))
                }
            }),
    )
}

/// Decides the gang demand of one application. In order of precedence:
///
/// 1. malformed palantir annotations are an error (the webhook denies such drivers);
/// 2. a valid recorded `sparkgang.io/demand` is the answer (a malformed one is ignored with a
///    warning), the driver raised to the pod's requests;
/// 3. otherwise Spark's conf, the annotations and the default are merged as [`merge_demand`]
///    says: the conf if read, else complete annotations, else the default, annotations
///    overriding per field; else [`DemandError::Incomplete`].
pub fn decide_gang_demand(
    inputs: &DemandInputs<'_>,
    rules: &DemandRules<'_>,
) -> Result<DecidedDemand, DemandError> {
    let annotated = AnnotatedDemand::from_annotations(inputs.annotations, rules.gpus)?;
    let mut ignored = None;
    match recorded_gang_demand(inputs.annotations) {
        Some(Ok(recorded)) => {
            let driver = match inputs.driver_requests {
                Some(pod) => recorded.driver.max(&pod),
                None => recorded.driver,
            };
            return Ok(DecidedDemand {
                demand: GangDemand { driver, ..recorded },
                dynamic_allocation: recorded.is_dynamic(),
                source: DemandSource::Recorded,
                warnings: Vec::new(),
            });
        }
        Some(Err(e)) => ignored = Some(format!("{e}; ignoring it, the demand is computed")),
        None => {}
    }
    let mut decided = merge_demand(
        inputs.driver_requests,
        &annotated,
        inputs.spark_conf,
        rules.default,
    )?;
    if let Some(w) = ignored {
        decided.warnings.insert(0, w);
    }
    Ok(decided)
}

/// Palantir key names of the three dimensions, for warnings.
const DRIVER_KEYS: [&str; 3] = [
    annotations::DRIVER_CPU,
    annotations::DRIVER_MEM,
    annotations::DRIVER_GPU,
];
const EXECUTOR_KEYS: [&str; 3] = [
    annotations::EXECUTOR_CPU,
    annotations::EXECUTOR_MEM,
    annotations::EXECUTOR_GPU,
];

/// `base` with the annotated dimensions replaced; which dimensions came from an annotation.
fn overlay(
    base: Resources,
    cpu: Option<i64>,
    memory: Option<i64>,
    gpus: Option<i64>,
) -> (Resources, [bool; 3]) {
    let value = Resources::new(
        cpu.unwrap_or(base.cpu_milli),
        memory.unwrap_or(base.memory_bytes),
        gpus.unwrap_or(base.gpus),
    );
    (value, [cpu.is_some(), memory.is_some(), gpus.is_some()])
}

/// Raises each dimension of `value` to `floor`; warns for dimensions an annotation had set lower.
fn raise_to(
    value: &mut Resources,
    annotated: [bool; 3],
    keys: [&str; 3],
    floor: Resources,
    floor_name: &str,
    warnings: &mut Vec<String>,
) {
    let show = |dimension: usize, amount: i64| match dimension {
        0 => format_cpu_millis(amount),
        1 => format_memory_bytes(amount),
        _ => amount.to_string(),
    };
    let minimums = [floor.cpu_milli, floor.memory_bytes, floor.gpus];
    let currents = [
        &mut value.cpu_milli,
        &mut value.memory_bytes,
        &mut value.gpus,
    ];
    for (dimension, (current, minimum)) in currents.into_iter().zip(minimums).enumerate() {
        if *current < minimum {
            if annotated[dimension] {
                warnings.push(format!(
                    "annotation {} ({}) is below {floor_name} ({}); reserving it",
                    keys[dimension],
                    show(dimension, *current),
                    show(dimension, minimum),
                ));
            }
            *current = minimum;
        }
    }
}

/// One demand from what Spark will request (`conf`), the driver annotations and the driver pod.
///
/// The conf is what Spark will request; annotations override it per field. A reservation is never
/// smaller than the pod Spark creates (palantir issue #152): the driver is raised per dimension to
/// the driver pod's requests and to the conf's driver, the executor to the conf's executor, with
/// a warning for every annotated value that was raised. Executor counts follow palantir: the
/// annotation `spark-dynamic-allocation-enabled` (else the conf) decides between
/// `spark-executor-count` and the min/max counts; an annotation that is ignored or that changes
/// Spark's count is reported. Without a conf the annotations must be complete, else `default` is
/// used (annotations still override it), else [`DemandError::Incomplete`] lists what is missing.
fn merge_demand(
    pod_driver_requests: Option<Resources>,
    annotations: &AnnotatedDemand,
    conf: Option<&ConfDemand>,
    default: Option<GangDemand>,
) -> Result<DecidedDemand, DemandError> {
    let mut warnings = Vec::new();
    let (base, base_dynamic, mut source) = match (conf, annotations.complete(), default) {
        (Some(c), _, _) => (c.demand, c.dynamic_allocation, DemandSource::SparkConf),
        (None, Some(d), _) => (
            d,
            annotations.dynamic_allocation_enabled(),
            DemandSource::Annotations,
        ),
        (None, None, Some(d)) => {
            warnings.push(format!(
                "no spark.properties and incomplete annotations (missing {}): using the default demand",
                annotations.missing().join(", ")
            ));
            (d, d.is_dynamic(), DemandSource::Default)
        }
        (None, None, None) => {
            return Err(DemandError::Incomplete {
                missing: annotations.missing(),
            });
        }
    };
    let base_name = match source {
        DemandSource::Default => "the default demand",
        _ => "spark.properties",
    };

    let (mut driver, driver_annotated) = overlay(
        base.driver,
        annotations.driver_cpu_milli,
        annotations.driver_memory_bytes,
        annotations.driver_gpus,
    );
    let (mut executor, executor_annotated) = overlay(
        base.executor,
        annotations.executor_cpu_milli,
        annotations.executor_memory_bytes,
        annotations.executor_gpus,
    );
    if let Some(pod) = pod_driver_requests {
        raise_to(
            &mut driver,
            driver_annotated,
            DRIVER_KEYS,
            pod,
            "the driver pod's requests",
            &mut warnings,
        );
    }
    if let Some(c) = conf {
        let what = "Spark's driver request from spark.properties";
        raise_to(
            &mut driver,
            driver_annotated,
            DRIVER_KEYS,
            c.demand.driver,
            what,
            &mut warnings,
        );
        let what = "Spark's executor request from spark.properties";
        raise_to(
            &mut executor,
            executor_annotated,
            EXECUTOR_KEYS,
            c.demand.executor,
            what,
            &mut warnings,
        );
    }

    let dynamic = annotations.dynamic_allocation.unwrap_or(base_dynamic);
    let (min_executors, max_executors) = if dynamic {
        if let Some(n) = annotations.executor_count {
            warnings.push(format!(
                "annotation {}={n} ignored: dynamic allocation is on; using min {} and max {}",
                annotations::EXECUTOR_COUNT,
                annotations.min_executors.unwrap_or(base.min_executors),
                annotations.max_executors.unwrap_or(base.max_executors),
            ));
        }
        let min = annotations.min_executors.unwrap_or(base.min_executors);
        let max = annotations.max_executors.unwrap_or(base.max_executors);
        for (annotated, value, key, base_value) in [
            (
                annotations.min_executors.is_some(),
                min,
                annotations::DYNAMIC_MIN_EXECUTORS,
                base.min_executors,
            ),
            (
                annotations.max_executors.is_some(),
                max,
                annotations::DYNAMIC_MAX_EXECUTORS,
                base.max_executors,
            ),
        ] {
            if annotated && conf.is_some() && value != base_value {
                warnings.push(format!(
                    "annotation {key}={value} overrides {base_value} from {base_name}"
                ));
            }
        }
        if min > max {
            let from = |annotated: bool, key: &str| {
                if annotated {
                    format!("annotation {key}")
                } else {
                    base_name.to_owned()
                }
            };
            return Err(DemandError::MinGreaterThanMax {
                min,
                min_from: from(
                    annotations.min_executors.is_some(),
                    annotations::DYNAMIC_MIN_EXECUTORS,
                ),
                max,
                max_from: from(
                    annotations.max_executors.is_some(),
                    annotations::DYNAMIC_MAX_EXECUTORS,
                ),
            });
        }
        (min, max)
    } else {
        for (value, key) in [
            (
                annotations.min_executors,
                annotations::DYNAMIC_MIN_EXECUTORS,
            ),
            (
                annotations.max_executors,
                annotations::DYNAMIC_MAX_EXECUTORS,
            ),
        ] {
            if let Some(n) = value {
                warnings.push(format!(
                    "annotation {key}={n} ignored: dynamic allocation is off"
                ));
            }
        }
        let count = annotations.executor_count.unwrap_or(base.min_executors);
        if let Some(n) = annotations.executor_count
            && conf.is_some()
            && (n != base.min_executors || n != base.max_executors)
        {
            warnings.push(format!(
                "annotation {}={n} overrides {} executors from {base_name}",
                annotations::EXECUTOR_COUNT,
                base.min_executors
            ));
        }
        (count, count)
    };
    let overridden = driver != base.driver
        || executor != base.executor
        || (min_executors, max_executors) != (base.min_executors, base.max_executors)
        || dynamic != base_dynamic;
    if source == DemandSource::SparkConf && overridden {
        source = DemandSource::SparkConfAndAnnotations;
    }

    Ok(DecidedDemand {
        demand: GangDemand {
            driver,
            executor,
            min_executors,
            max_executors,
        },
        dynamic_allocation: dynamic,
        source,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{normalise, *};
    use crate::resources::GpuResourceNames;
    use crate::sparkconf::SparkConf;
    use std::collections::BTreeMap;

    const MIB: i64 = 1 << 20;

    fn conf(pairs: &[(&str, &str)]) -> ConfDemand {
        pairs
            .iter()
            .copied()
            .collect::<SparkConf>()
            .demand(&GpuResourceNames::default())
            .unwrap()
    }

    fn partial(pairs: &[(&str, &str)]) -> AnnotatedDemand {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        normalise(&map, &GpuResourceNames::default())
            .unwrap()
            .demand
    }

    fn static_conf() -> ConfDemand {
        // driver 1 cpu / 1408Mi, executors 2 cpu / 4505Mi, 8 of them.
        conf(&[
            ("spark.executor.instances", "8"),
            ("spark.executor.cores", "2"),
            ("spark.executor.memory", "4g"),
        ])
    }

    fn dynamic_conf() -> ConfDemand {
        conf(&[
            ("spark.dynamicAllocation.enabled", "true"),
            ("spark.dynamicAllocation.minExecutors", "2"),
            ("spark.dynamicAllocation.maxExecutors", "10"),
        ])
    }

    #[test]
    fn conf_alone_is_used_as_is() {
        let c = static_conf();
        let m = merge_demand(None, &AnnotatedDemand::default(), Some(&c), None).unwrap();
        assert_eq!(m.demand, c.demand);
        assert_eq!(m.source, DemandSource::SparkConf);
        assert!(!m.dynamic_allocation);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn annotations_below_spark_are_raised_with_a_warning() {
        let c = static_conf();
        let a = partial(&[
            (DRIVER_MEM, "1Gi"),
            (DRIVER_CPU, "2"),
            (EXECUTOR_MEM, "4Gi"),
            (EXECUTOR_CPU, "500m"),
        ]);
        let m = merge_demand(None, &a, Some(&c), None).unwrap();
        // Larger annotations win, smaller ones are raised to what Spark requests.
        assert_eq!(m.demand.driver, Resources::new(2000, 1408 * MIB, 0));
        assert_eq!(m.demand.executor, Resources::new(2000, 4505 * MIB, 0));
        assert_eq!(m.source, DemandSource::SparkConfAndAnnotations);
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
        assert!(
            m.warnings[0].contains(DRIVER_MEM) && m.warnings[0].contains("1408Mi"),
            "{:?}",
            m.warnings
        );
        assert!(
            m.warnings[1].contains(EXECUTOR_CPU)
                && m.warnings[1]
                    .contains("(500m) is below Spark's executor request from spark.properties (2)"),
            "{:?}",
            m.warnings
        );
        assert!(
            m.warnings[2].contains(EXECUTOR_MEM) && m.warnings[2].contains("4505Mi"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn raised_annotations_that_end_equal_to_spark_keep_the_conf_source() {
        let c = static_conf();
        let a = partial(&[(DRIVER_MEM, "1Gi")]);
        let m = merge_demand(None, &a, Some(&c), None).unwrap();
        assert_eq!(m.demand, c.demand);
        assert_eq!(m.source, DemandSource::SparkConf);
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn the_driver_pod_is_a_floor() {
        let c = static_conf();
        // A sidecar from a pod template: the pod asks for more than Spark's container.
        let pod = Resources::new(1250, 1600 * MIB, 0);
        let m = merge_demand(Some(pod), &AnnotatedDemand::default(), Some(&c), None).unwrap();
        assert_eq!(m.demand.driver, pod);
        assert!(m.warnings.is_empty());
        let a = partial(&[(DRIVER_CPU, "1")]);
        let m = merge_demand(Some(pod), &a, Some(&c), None).unwrap();
        assert_eq!(m.demand.driver.cpu_milli, 1250);
        assert!(
            m.warnings[0].contains("the driver pod's requests"),
            "{:?}",
            m.warnings
        );
        // A pod smaller than the conf does not lower the reservation.
        let m = merge_demand(
            Some(Resources::new(100, MIB, 0)),
            &AnnotatedDemand::default(),
            Some(&c),
            None,
        )
        .unwrap();
        assert_eq!(m.demand.driver, c.demand.driver);
    }

    #[test]
    fn static_count_annotation_is_ignored_under_dynamic_allocation() {
        // The cluster-dynamic-gpu capture: spark-executor-count=3 next to DA 2..10 in the conf.
        let c = dynamic_conf();
        let m = merge_demand(None, &partial(&[(EXECUTOR_COUNT, "3")]), Some(&c), None).unwrap();
        assert_eq!((m.demand.min_executors, m.demand.max_executors), (2, 10));
        assert!(m.dynamic_allocation);
        assert_eq!(m.source, DemandSource::SparkConf);
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].contains("spark-executor-count=3 ignored"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn count_annotations_override_the_conf() {
        let m = merge_demand(
            None,
            &partial(&[(EXECUTOR_COUNT, "3")]),
            Some(&static_conf()),
            None,
        )
        .unwrap();
        assert_eq!((m.demand.min_executors, m.demand.max_executors), (3, 3));
        assert_eq!(m.source, DemandSource::SparkConfAndAnnotations);
        assert!(
            m.warnings[0].contains("overrides 8 executors"),
            "{:?}",
            m.warnings
        );

        let a = partial(&[
            (DYNAMIC_ALLOCATION_ENABLED, "true"),
            (DYNAMIC_MIN_EXECUTORS, "1"),
            (DYNAMIC_MAX_EXECUTORS, "4"),
        ]);
        let m = merge_demand(None, &a, Some(&static_conf()), None).unwrap();
        assert!(m.dynamic_allocation);
        assert_eq!((m.demand.min_executors, m.demand.max_executors), (1, 4));

        let m = merge_demand(
            None,
            &partial(&[(DYNAMIC_MAX_EXECUTORS, "4")]),
            Some(&dynamic_conf()),
            None,
        )
        .unwrap();
        assert_eq!((m.demand.min_executors, m.demand.max_executors), (2, 4));

        let a = partial(&[
            (DYNAMIC_ALLOCATION_ENABLED, "false"),
            (DYNAMIC_MIN_EXECUTORS, "1"),
        ]);
        let m = merge_demand(None, &a, Some(&dynamic_conf()), None).unwrap();
        assert!(!m.dynamic_allocation);
        assert_eq!((m.demand.min_executors, m.demand.max_executors), (2, 2));
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("ignored: dynamic allocation is off")),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn min_above_max_across_sources_is_an_error() {
        let e = merge_demand(
            None,
            &partial(&[(DYNAMIC_MIN_EXECUTORS, "12")]),
            Some(&dynamic_conf()),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            DemandError::MinGreaterThanMax {
                min: 12,
                min_from: format!("annotation {DYNAMIC_MIN_EXECUTORS}"),
                max: 10,
                max_from: "spark.properties".to_owned(),
            }
        );
    }

    #[test]
    fn complete_annotations_without_conf() {
        let a = partial(&[
            (DRIVER_CPU, "1"),
            (DRIVER_MEM, "1Gi"),
            (EXECUTOR_CPU, "2"),
            (EXECUTOR_MEM, "2Gi"),
            (EXECUTOR_COUNT, "4"),
        ]);
        let m = merge_demand(Some(Resources::new(1000, 1408 * MIB, 0)), &a, None, None).unwrap();
        assert_eq!(m.source, DemandSource::Annotations);
        assert_eq!(m.demand.driver, Resources::new(1000, 1408 * MIB, 0));
        assert_eq!(m.demand.executor, Resources::new(2000, 2048 * MIB, 0));
        assert_eq!((m.demand.min_executors, m.demand.max_executors), (4, 4));
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    }

    #[test]
    fn incomplete_annotations_without_conf_use_the_default_or_fail() {
        let a = partial(&[(EXECUTOR_MEM, "8Gi")]);
        let e = merge_demand(None, &a, None, None).unwrap_err();
        assert_eq!(
            e,
            DemandError::Incomplete {
                missing: vec![DRIVER_CPU, DRIVER_MEM, EXECUTOR_CPU, EXECUTOR_COUNT]
            }
        );
        assert!(
            e.to_string().contains("spark-driver-cpu, spark-driver-mem"),
            "{e}"
        );

        let default = GangDemand {
            driver: Resources::new(1000, 2048 * MIB, 0),
            executor: Resources::new(1000, 2048 * MIB, 0),
            min_executors: 2,
            max_executors: 2,
        };
        let m = merge_demand(None, &a, None, Some(default)).unwrap();
        assert_eq!(m.source, DemandSource::Default);
        assert_eq!(m.demand.executor, Resources::new(1000, 8192 * MIB, 0));
        assert_eq!(m.demand.driver, default.driver);
        assert!(m.warnings[0].contains("default demand"), "{:?}", m.warnings);
    }
}
