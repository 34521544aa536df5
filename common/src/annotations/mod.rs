//! The palantir driver annotations (`spark-driver-cpu`, …): parsing, validation and normalisation.
//!
//! Palantir's meaning is kept: cpu and memory are Kubernetes quantities, counts are quantities
//! rounded up (`Quantity.Value()`), `spark-dynamic-allocation-enabled` is a Go `ParseBool` value
//! (default false), static allocation uses `spark-executor-count`, dynamic allocation the min/max
//! counts. Its gaps are fixed: negative values and min > max are rejected, every error is reported
//! (not just the first), and Spark sizes in the memory annotations (`4g`, or `512m`, which as a
//! Kubernetes quantity would mean 0.512 bytes) are read as Spark means them and rewritten to a
//! canonical quantity with a warning.

use std::collections::BTreeMap;
use std::fmt;

use crate::gang_demand::GangDemand;
use crate::quantities::{
    QUANTITY_FORMS, QuantityError, format_memory_bytes, parse_count, parse_cpu_millis,
    parse_memory_bytes, parse_spark_size_mib,
};
use crate::resources::{DEFAULT_GPU_RESOURCE, GpuResourceNames, Resources};

pub const DRIVER_CPU: &str = "spark-driver-cpu";
pub const DRIVER_MEM: &str = "spark-driver-mem";
pub const DRIVER_GPU: &str = "spark-driver-nvidia.com/gpu";
pub const EXECUTOR_CPU: &str = "spark-executor-cpu";
pub const EXECUTOR_MEM: &str = "spark-executor-mem";
pub const EXECUTOR_GPU: &str = "spark-executor-nvidia.com/gpu";
pub const EXECUTOR_COUNT: &str = "spark-executor-count";
pub const DYNAMIC_ALLOCATION_ENABLED: &str = "spark-dynamic-allocation-enabled";
pub const DYNAMIC_MIN_EXECUTORS: &str = "spark-dynamic-allocation-min-executor-count";
pub const DYNAMIC_MAX_EXECUTORS: &str = "spark-dynamic-allocation-max-executor-count";

/// Prefix of the driver GPU annotation for a configured GPU resource name (`spark-driver-<name>`).
pub const DRIVER_GPU_PREFIX: &str = "spark-driver-";
/// Prefix of the executor GPU annotation for a configured GPU resource name.
pub const EXECUTOR_GPU_PREFIX: &str = "spark-executor-";

/// What `spark-dynamic-allocation-enabled` may look like (Go `strconv.ParseBool`).
pub const GO_BOOL_FORMS: &str =
    "a Go boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False";
/// What a memory annotation may look like.
pub const MEMORY_ANNOTATION_FORMS: &str = "a Kubernetes quantity such as 4Gi, 2432Mi or 1e9, \
     or a Spark size such as 4g or 512m (read as 4Gi, 512Mi)";
/// What a count annotation (executors, GPUs) may look like.
pub const COUNT_FORMS: &str =
    "a whole number such as 3 (a Kubernetes quantity; fractions round up)";

/// The largest count accepted (Spark's `Int.MaxValue`).
const MAX_COUNT: i64 = i32::MAX as i64;

/// One problem with one annotation. Every message names the key, the value and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {key}: {value:?} is not {accepted}")]
    BadQuantity {
        key: String,
        value: String,
        accepted: &'static str,
    },
    #[error("annotation {key}: {value:?} is not {accepted}", accepted = GO_BOOL_FORMS)]
    BadBoolean { key: String, value: String },
    #[error("annotation {key}: {value:?} is not {accepted}", accepted = COUNT_FORMS)]
    BadCount { key: String, value: String },
    #[error("annotation {key}: {value:?} is negative; accepted: zero or more, {accepted}")]
    Negative {
        key: String,
        value: String,
        accepted: &'static str,
    },
    #[error("annotation {key}: {value:?} is too large; accepted: {accepted}")]
    TooLarge {
        key: String,
        value: String,
        accepted: &'static str,
    },
    #[error(
        "annotation {min_key}: {min_value:?} is greater than {max_key}: {max_value:?}; accepted: min ≤ max",
        min_key = DYNAMIC_MIN_EXECUTORS,
        max_key = DYNAMIC_MAX_EXECUTORS
    )]
    MinGreaterThanMax {
        min_value: String,
        max_value: String,
    },
    #[error("annotation {key} is missing; accepted: {accepted}")]
    MissingRequired { key: String, accepted: &'static str },
    #[error(
        "annotation {key} is missing; it is required when {flag} is true; accepted: {accepted}",
        flag = DYNAMIC_ALLOCATION_ENABLED,
        accepted = COUNT_FORMS
    )]
    MissingWhenDynamicAllocation { key: String },
    #[error(
        "annotation {key} is missing; it is required when {flag} is absent or false; accepted: {accepted}",
        flag = DYNAMIC_ALLOCATION_ENABLED,
        accepted = COUNT_FORMS
    )]
    MissingWhenStatic { key: String },
}

impl AnnotationError {
    /// A short, stable label for metrics (`denials_total{reason=…}`).
    pub fn reason(&self) -> &'static str {
        match self {
            AnnotationError::BadQuantity { .. } => "bad_quantity",
            AnnotationError::BadBoolean { .. } => "bad_boolean",
            AnnotationError::BadCount { .. } => "bad_count",
            AnnotationError::Negative { .. } => "negative",
            AnnotationError::TooLarge { .. } => "too_large",
            AnnotationError::MinGreaterThanMax { .. } => "min_greater_than_max",
            AnnotationError::MissingRequired { .. } => "missing_required",
            AnnotationError::MissingWhenDynamicAllocation { .. } => {
                "missing_when_dynamic_allocation"
            }
            AnnotationError::MissingWhenStatic { .. } => "missing_when_static_allocation",
        }
    }

    /// The annotation the error is about (the min key for [`AnnotationError::MinGreaterThanMax`]).
    pub fn key(&self) -> &str {
        match self {
            AnnotationError::BadQuantity { key, .. }
            | AnnotationError::BadBoolean { key, .. }
            | AnnotationError::BadCount { key, .. }
            | AnnotationError::Negative { key, .. }
            | AnnotationError::TooLarge { key, .. }
            | AnnotationError::MissingRequired { key, .. }
            | AnnotationError::MissingWhenDynamicAllocation { key }
            | AnnotationError::MissingWhenStatic { key } => key,
            AnnotationError::MinGreaterThanMax { .. } => DYNAMIC_MIN_EXECUTORS,
        }
    }
}

/// Every problem found in a driver's annotations (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationErrors(Vec<AnnotationError>);

impl AnnotationErrors {
    /// The individual errors, in a fixed key order.
    pub fn errors(&self) -> &[AnnotationError] {
        &self.0
    }

    /// The metric label of the first error.
    pub fn reason(&self) -> &'static str {
        self.0.first().map_or("unknown", AnnotationError::reason)
    }
}

impl fmt::Display for AnnotationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AnnotationErrors {}

impl From<AnnotationErrors> for String {
    fn from(errors: AnnotationErrors) -> String {
        errors.to_string()
    }
}

/// What the annotations say about the gang; every field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnnotatedDemand {
    pub driver_cpu_milli: Option<i64>,
    pub driver_memory_bytes: Option<i64>,
    pub driver_gpus: Option<i64>,
    pub executor_cpu_milli: Option<i64>,
    pub executor_memory_bytes: Option<i64>,
    pub executor_gpus: Option<i64>,
    pub executor_count: Option<u32>,
    pub dynamic_allocation: Option<bool>,
    pub min_executors: Option<u32>,
    pub max_executors: Option<u32>,
}

impl AnnotatedDemand {
    /// Parses the annotations without rewriting them (see [`normalise`] for the rewrites).
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        gpus: &GpuResourceNames,
    ) -> Result<AnnotatedDemand, AnnotationErrors> {
        normalise(annotations, gpus).map(|n| n.demand)
    }

    /// True when no palantir annotation was given.
    pub fn is_empty(&self) -> bool {
        *self == AnnotatedDemand::default()
    }

    /// Palantir's default: dynamic allocation is off unless the annotation says true.
    pub fn dynamic_allocation_enabled(&self) -> bool {
        self.dynamic_allocation.unwrap_or(false)
    }

    /// The required annotations that are absent (palantir's rules: cpu and memory of both roles;
    /// `spark-executor-count` when dynamic allocation is off, else the min and max counts).
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        for (present, key) in [
            (self.driver_cpu_milli.is_some(), DRIVER_CPU),
            (self.driver_memory_bytes.is_some(), DRIVER_MEM),
            (self.executor_cpu_milli.is_some(), EXECUTOR_CPU),
            (self.executor_memory_bytes.is_some(), EXECUTOR_MEM),
        ] {
            if !present {
                missing.push(key);
            }
        }
        if self.dynamic_allocation_enabled() {
            if self.min_executors.is_none() {
                missing.push(DYNAMIC_MIN_EXECUTORS);
            }
            if self.max_executors.is_none() {
                missing.push(DYNAMIC_MAX_EXECUTORS);
            }
        } else if self.executor_count.is_none() {
            missing.push(EXECUTOR_COUNT);
        }
        missing
    }

    /// The full demand when the annotations alone give it (GPUs default to 0).
    pub fn complete(&self) -> Option<GangDemand> {
        let driver = Resources::new(
            self.driver_cpu_milli?,
            self.driver_memory_bytes?,
            self.driver_gpus.unwrap_or(0),
        );
        let executor = Resources::new(
            self.executor_cpu_milli?,
            self.executor_memory_bytes?,
            self.executor_gpus.unwrap_or(0),
        );
        let (min_executors, max_executors) = if self.dynamic_allocation_enabled() {
            (self.min_executors?, self.max_executors?)
        } else {
            let n = self.executor_count?;
            (n, n)
        };
        Some(GangDemand {
            driver,
            executor,
            min_executors,
            max_executors,
        })
    }

    /// Like [`AnnotatedDemand::complete`], but says which annotations are missing and why.
    pub fn require_complete(&self) -> Result<GangDemand, AnnotationErrors> {
        if let Some(demand) = self.complete() {
            return Ok(demand);
        }
        let errors = self
            .missing()
            .into_iter()
            .map(|key| match key {
                EXECUTOR_COUNT => AnnotationError::MissingWhenStatic {
                    key: key.to_owned(),
                },
                DYNAMIC_MIN_EXECUTORS | DYNAMIC_MAX_EXECUTORS => {
                    AnnotationError::MissingWhenDynamicAllocation {
                        key: key.to_owned(),
                    }
                }
                DRIVER_MEM | EXECUTOR_MEM => AnnotationError::MissingRequired {
                    key: key.to_owned(),
                    accepted: MEMORY_ANNOTATION_FORMS,
                },
                _ => AnnotationError::MissingRequired {
                    key: key.to_owned(),
                    accepted: QUANTITY_FORMS,
                },
            })
            .collect();
        Err(AnnotationErrors(errors))
    }
}

/// The result of [`normalise`]: the parsed annotations, the rewrites to apply and one warning each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalised {
    pub demand: AnnotatedDemand,
    /// Annotation key → canonical value, for every annotation given in a non-canonical form.
    pub rewrites: BTreeMap<String, String>,
    /// One warning per rewrite, each shorter than 120 characters (admission warnings).
    pub warnings: Vec<String>,
}

/// Shortens `value` for a warning so that the whole warning stays under 120 characters.
fn shown(value: &str) -> String {
    crate::text::quoted(value, 25)
}

fn quantity_error(
    key: &str,
    value: &str,
    e: QuantityError,
    accepted: &'static str,
) -> AnnotationError {
    let (key, value) = (key.to_owned(), value.to_owned());
    match e {
        QuantityError::Syntax { .. } if accepted == COUNT_FORMS => {
            AnnotationError::BadCount { key, value }
        }
        QuantityError::Syntax { .. } => AnnotationError::BadQuantity {
            key,
            value,
            accepted,
        },
        QuantityError::Negative { .. } => AnnotationError::Negative {
            key,
            value,
            accepted,
        },
        QuantityError::TooLarge { .. } => AnnotationError::TooLarge {
            key,
            value,
            accepted,
        },
    }
}

/// A memory annotation: a Kubernetes quantity, or a Spark size (rewritten). `<digits>m` is read
/// as Spark MiB: as a quantity it would be thousandths of a byte, which no one means.
fn parse_memory_annotation(
    key: &str,
    value: &str,
) -> Result<(i64, Option<String>), AnnotationError> {
    let spark_mib = value.len() > 1
        && value.ends_with('m')
        && value[..value.len() - 1].bytes().all(|b| b.is_ascii_digit());
    if !spark_mib {
        match parse_memory_bytes(value) {
            Ok(bytes) => return Ok((bytes, None)),
            Err(QuantityError::Syntax { .. }) => {}
            Err(e) => return Err(quantity_error(key, value, e, MEMORY_ANNOTATION_FORMS)),
        }
    }
    let mib = parse_spark_size_mib(value)
        .map_err(|e| quantity_error(key, value, e, MEMORY_ANNOTATION_FORMS))?;
    let bytes = i64::try_from(u128::from(mib) << 20).map_err(|_| AnnotationError::TooLarge {
        key: key.to_owned(),
        value: value.to_owned(),
        accepted: MEMORY_ANNOTATION_FORMS,
    })?;
    Ok((bytes, Some(format_memory_bytes(bytes))))
}

fn parse_count_annotation(key: &str, value: &str) -> Result<i64, AnnotationError> {
    let n = parse_count(value).map_err(|e| quantity_error(key, value, e, COUNT_FORMS))?;
    if n > MAX_COUNT {
        return Err(AnnotationError::TooLarge {
            key: key.to_owned(),
            value: value.to_owned(),
            accepted: COUNT_FORMS,
        });
    }
    Ok(n)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The GPU annotation keys of one role: the palantir key plus one per configured GPU name.
fn gpu_keys(prefix: &str, palantir_key: &'static str, gpus: &GpuResourceNames) -> Vec<String> {
    let mut keys = vec![palantir_key.to_owned()];
    for name in gpus.names() {
        if name != DEFAULT_GPU_RESOURCE && name != "cpu" && name != "mem" {
            keys.push(format!("{prefix}{name}"));
        }
    }
    keys
}

/// Validates the palantir annotations, collecting every error, and returns the parsed demand
/// with the canonical rewrites (`4g` → `4Gi`) and a warning for each.
///
/// GPU annotations: `spark-driver-nvidia.com/gpu` / `spark-executor-nvidia.com/gpu` always, and
/// `spark-driver-<name>` / `spark-executor-<name>` for every other configured GPU resource name;
/// the amounts are summed.
pub fn normalise(
    annotations: &BTreeMap<String, String>,
    gpus: &GpuResourceNames,
) -> Result<Normalised, AnnotationErrors> {
    let mut out = Normalised::default();
    let mut errors = Vec::new();
    let get = |key: &str| annotations.get(key).map(String::as_str);

    let cpu = |key: &str, errors: &mut Vec<AnnotationError>| -> Option<i64> {
        let value = get(key)?;
        parse_cpu_millis(value)
            .map_err(|e| errors.push(quantity_error(key, value, e, QUANTITY_FORMS)))
            .ok()
    };
    out.demand.driver_cpu_milli = cpu(DRIVER_CPU, &mut errors);
    out.demand.executor_cpu_milli = cpu(EXECUTOR_CPU, &mut errors);

    for (key, slot) in [
        (DRIVER_MEM, &mut out.demand.driver_memory_bytes),
        (EXECUTOR_MEM, &mut out.demand.executor_memory_bytes),
    ] {
        let Some(value) = get(key) else { continue };
        match parse_memory_annotation(key, value) {
            Ok((bytes, rewrite)) => {
                *slot = Some(bytes);
                if let Some(canonical) = rewrite {
                    out.warnings.push(format!(
                        "annotation {key}: Spark size {} rewritten to {canonical}",
                        shown(value)
                    ));
                    out.rewrites.insert(key.to_owned(), canonical);
                }
            }
            Err(e) => errors.push(e),
        }
    }

    for (prefix, palantir_key, slot) in [
        (DRIVER_GPU_PREFIX, DRIVER_GPU, &mut out.demand.driver_gpus),
        (
            EXECUTOR_GPU_PREFIX,
            EXECUTOR_GPU,
            &mut out.demand.executor_gpus,
        ),
    ] {
        for key in gpu_keys(prefix, palantir_key, gpus) {
            let Some(value) = get(&key) else { continue };
            match parse_count_annotation(&key, value) {
                Ok(n) => *slot = Some(slot.unwrap_or(0).saturating_add(n)),
                Err(e) => errors.push(e),
            }
        }
    }

    let count = |key: &str, errors: &mut Vec<AnnotationError>| -> Option<u32> {
        let value = get(key)?;
        parse_count_annotation(key, value)
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|n| u32::try_from(n).ok())
    };
    out.demand.executor_count = count(EXECUTOR_COUNT, &mut errors);
    out.demand.min_executors = count(DYNAMIC_MIN_EXECUTORS, &mut errors);
    out.demand.max_executors = count(DYNAMIC_MAX_EXECUTORS, &mut errors);

    if let Some(value) = get(DYNAMIC_ALLOCATION_ENABLED) {
        match parse_go_bool(value) {
            Some(b) => out.demand.dynamic_allocation = Some(b),
            None => errors.push(AnnotationError::BadBoolean {
                key: DYNAMIC_ALLOCATION_ENABLED.to_owned(),
                value: value.to_owned(),
            }),
        }
    }

    if let (Some(min), Some(max)) = (out.demand.min_executors, out.demand.max_executors)
        && min > max
    {
        errors.push(AnnotationError::MinGreaterThanMax {
            min_value: get(DYNAMIC_MIN_EXECUTORS).unwrap_or_default().to_owned(),
            max_value: get(DYNAMIC_MAX_EXECUTORS).unwrap_or_default().to_owned(),
        });
    }

    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AnnotationErrors(errors))
    }
}

#[cfg(test)]
mod tests;
