//! `GangDemand`: what one Spark application needs — the driver, the size of one executor, and
//! how many executors — and how the sources of that knowledge are merged.

use serde::{Deserialize, Serialize};

use crate::annotations::{self, PartialDemand};
use crate::quantities::{format_cpu_millis, format_memory_bytes};
use crate::resources::Resources;
use crate::sparkconf::ConfDemand;

/// The gang one Spark application asks for.
///
/// `min_executors` are reserved together with the driver; under dynamic allocation executors
/// between `min_executors` and `max_executors` are placed if capacity exists (soft reservations).
/// Static allocation has `min_executors == max_executors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GangDemand {
    pub driver: Resources,
    pub executor: Resources,
    pub min_executors: u32,
    pub max_executors: u32,
}

impl GangDemand {
    /// True when executors above the minimum may come and go (dynamic allocation).
    pub fn is_dynamic(&self) -> bool {
        self.max_executors > self.min_executors
    }

    /// Driver plus the minimum executors: what must fit before the driver is placed.
    pub fn gang_total(&self) -> Resources {
        self.driver + self.executor.times(i64::from(self.min_executors))
    }
}

/// Where a merged demand came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DemandSource {
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
pub struct MergedDemand {
    pub demand: GangDemand,
    /// Dynamic allocation as decided by the annotation, else the conf, else the default.
    pub dynamic_allocation: bool,
    pub source: DemandSource,
    pub warnings: Vec<String>,
}

/// Why no demand could be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    #[error(
        "no spark.properties, no default demand, and the driver annotations are incomplete: missing {}",
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
pub fn merge_demand(
    pod_driver_requests: Option<Resources>,
    annotations: &PartialDemand,
    conf: Option<&ConfDemand>,
    default: Option<GangDemand>,
) -> Result<MergedDemand, DemandError> {
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

    Ok(MergedDemand {
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

    fn partial(pairs: &[(&str, &str)]) -> PartialDemand {
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
        let m = merge_demand(None, &PartialDemand::default(), Some(&c), None).unwrap();
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
        let m = merge_demand(Some(pod), &PartialDemand::default(), Some(&c), None).unwrap();
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
            &PartialDemand::default(),
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
