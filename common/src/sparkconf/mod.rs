//! `SparkConf`: a Spark configuration (`spark.properties`) and its typed getters, read as Spark reads them.

mod sizing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::properties::{PropertiesError, parse_properties};
use crate::quantities::{
    QUANTITY_FORMS, QuantityError, SPARK_SIZE_FORMS, parse_cpu_millis, parse_spark_size_mib,
};

pub use sizing::{AppResourceType, ConfDemand, UNBOUNDED_EXECUTORS};

/// What a Spark boolean may look like.
pub const SPARK_BOOLEAN_FORMS: &str = "true or false (any case, surrounding blanks ignored)";
/// What a Spark int may look like.
pub const SPARK_INT_FORMS: &str = "a whole number between -2147483648 and 2147483647, such as 2";
/// What a Spark double may look like.
pub const SPARK_DOUBLE_FORMS: &str = "a decimal number such as 0.1, .4 or 1e-1";
/// What a Spark time string may look like (for settings whose bare unit is milliseconds).
pub const SPARK_TIME_MS_FORMS: &str = "a Spark time: a whole number with an optional unit us, ms, s, m, min, h or d \
     (any case), such as 1s or 500ms; a bare number means milliseconds";
/// What a Spark size in bytes (`spark.memory.offHeap.size`) may look like.
pub const SPARK_BYTE_SIZE_FORMS: &str = "a Spark size: a whole number with an optional unit b, k, m, g, t or p \
     (also kb, mb, gb, tb, pb; any case), such as 2g or 512m; a bare number means bytes";

/// Why a Spark setting cannot be used. Every variant names the key, the value and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SparkConfError {
    /// The value does not parse as what the key takes.
    #[error("{key}={value:?} is not valid; accepted: {accepted}")]
    Invalid {
        key: String,
        value: String,
        accepted: String,
    },
    /// The value parses but Spark rejects it (or the result does not fit).
    #[error("{key}={value:?} is out of range; accepted: {accepted}")]
    OutOfRange {
        key: String,
        value: String,
        accepted: String,
    },
    /// Two settings contradict each other.
    #[error("{key}={value:?} conflicts with {other_key}={other_value:?}; accepted: {rule}")]
    Conflict {
        key: String,
        value: String,
        other_key: String,
        other_value: String,
        rule: String,
    },
    /// A setting needs another one that is absent.
    #[error("{key}={value:?} requires {required_key} to be set; accepted: {accepted}")]
    Missing {
        key: String,
        value: String,
        required_key: String,
        accepted: String,
    },
}

impl SparkConfError {
    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            SparkConfError::Invalid { key, .. }
            | SparkConfError::OutOfRange { key, .. }
            | SparkConfError::Conflict { key, .. }
            | SparkConfError::Missing { key, .. } => key,
        }
    }
}

fn invalid(key: &str, value: &str, accepted: impl Into<String>) -> SparkConfError {
    SparkConfError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        accepted: accepted.into(),
    }
}

fn out_of_range(key: &str, value: &str, accepted: impl Into<String>) -> SparkConfError {
    SparkConfError::OutOfRange {
        key: key.to_owned(),
        value: value.to_owned(),
        accepted: accepted.into(),
    }
}

/// Java's `String.trim`: drops every character up to and including U+0020 at both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// A Spark configuration: the key/value pairs of `spark.properties`, with Spark's typed readers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparkConf(BTreeMap<String, String>);

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for SparkConf {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        SparkConf(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for SparkConf {
    fn from(map: BTreeMap<String, String>) -> Self {
        SparkConf(map)
    }
}

impl SparkConf {
    /// Parses `spark.properties` text (see [`parse_properties`]).
    pub fn parse(text: &str) -> Result<SparkConf, PropertiesError> {
        parse_properties(text).map(SparkConf)
    }

    /// The settings as a map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// True when `key` is set (to anything, even an invalid value), like `SparkConf.contains`.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The settings under `prefix`, keyed by the rest of the key (`getAllWithPrefix`).
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, v)| (&k[prefix.len()..], v.as_str()))
    }

    /// The settings under `prefix` as an owned map (node selectors, annotations).
    pub fn prefixed_map(&self, prefix: &str) -> BTreeMap<String, String> {
        self.with_prefix(prefix)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A boolean like Spark's `booleanConf`: `true`/`false`, any case, trimmed.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let trimmed = java_trim(raw);
        if trimmed.eq_ignore_ascii_case("true") {
            Ok(Some(true))
        } else if trimmed.eq_ignore_ascii_case("false") {
            Ok(Some(false))
        } else {
            Err(invalid(key, raw, SPARK_BOOLEAN_FORMS))
        }
    }

    /// A Java int like Spark's `intConf` (trimmed).
    pub fn get_int(&self, key: &str) -> Result<Option<i32>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        java_trim(raw)
            .parse::<i32>()
            .map(Some)
            .map_err(|_| invalid(key, raw, SPARK_INT_FORMS))
    }

    /// A double like Spark's `doubleConf` (trimmed; finite decimal notation, an optional Java
    /// `d`/`f` suffix).
    pub fn get_double(&self, key: &str) -> Result<Option<f64>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        parse_java_double(java_trim(raw))
            .map(Some)
            .ok_or_else(|| invalid(key, raw, SPARK_DOUBLE_FORMS))
    }

    /// A size in whole MiB like Spark's `bytesConf(ByteUnit.MiB)`: `4g` → 4096, a bare number is MiB.
    pub fn get_size_mib(&self, key: &str) -> Result<Option<u64>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        parse_spark_size_mib(raw)
            .map(Some)
            .map_err(|e| size_error(key, raw, e, SPARK_SIZE_FORMS))
    }

    /// A size in whole MiB (rounded down) for settings Spark reads in bytes
    /// (`bytesConf(ByteUnit.BYTE)`, e.g. `spark.memory.offHeap.size`): a bare number is bytes.
    pub fn get_byte_size_as_mib(&self, key: &str) -> Result<Option<u64>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let lower = java_trim(raw).to_ascii_lowercase();
        let with_unit = if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
            format!("{lower}b")
        } else {
            lower
        };
        parse_spark_size_mib(&with_unit)
            .map(Some)
            .map_err(|e| size_error(key, raw, e, SPARK_BYTE_SIZE_FORMS))
    }

    /// A duration in milliseconds like Spark's `timeConf(TimeUnit.MILLISECONDS)`.
    pub fn get_time_ms(&self, key: &str) -> Result<Option<i64>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        parse_spark_time_ms(raw)
            .map(Some)
            .ok_or_else(|| invalid(key, raw, SPARK_TIME_MS_FORMS))
    }

    /// A Kubernetes cpu quantity (`spark.kubernetes.*.request.cores`), in millicores.
    pub fn get_cpu_millis(&self, key: &str) -> Result<Option<i64>, SparkConfError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        parse_cpu_millis(raw)
            .map(Some)
            .map_err(|e| size_error(key, raw, e, QUANTITY_FORMS))
    }

    /// The application type Spark recorded in `spark.kubernetes.resource.type`.
    pub fn resource_type(&self) -> Result<Option<AppResourceType>, SparkConfError> {
        let Some(raw) = self.get(keys::RESOURCE_TYPE) else {
            return Ok(None);
        };
        match raw {
            "java" => Ok(Some(AppResourceType::Java)),
            "python" => Ok(Some(AppResourceType::Python)),
            "r" => Ok(Some(AppResourceType::R)),
            _ => Err(invalid(keys::RESOURCE_TYPE, raw, "java, python or r")),
        }
    }
}

fn size_error(key: &str, raw: &str, e: QuantityError, accepted: &str) -> SparkConfError {
    match e {
        QuantityError::Syntax { .. } => invalid(key, raw, accepted),
        QuantityError::Negative { .. } => out_of_range(key, raw, "zero or a positive value"),
        QuantityError::TooLarge { .. } => out_of_range(key, raw, "a smaller value"),
    }
}

/// `Double.parseDouble` for the finite decimal forms: `[+-]` digits `[.digits]` `[e[+-]digits]`
/// with an optional `d`/`f` suffix; `None` for anything else (hex, NaN, Infinity).
fn parse_java_double(s: &str) -> Option<f64> {
    let body = s.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(s);
    let bytes = body.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let int_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    body.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `JavaUtils.timeStringAs(s, MILLISECONDS)`: `-?digits` and an optional unit (us, ms, s, m, min,
/// h, d; any case; trimmed); a bare number is milliseconds; smaller units round toward zero.
fn parse_spark_time_ms(s: &str) -> Option<i64> {
    let lower = java_trim(s).to_ascii_lowercase();
    let unit_start = lower
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(lower.len(), |(i, _)| i);
    let (number, unit) = lower.split_at(unit_start);
    let value: i64 = number.parse().ok()?;
    match unit {
        "us" => Some(value / 1000),
        "" | "ms" => Some(value),
        "s" => value.checked_mul(1000),
        "m" | "min" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        _ => None,
    }
}

/// The Spark keys read here.
pub mod keys {
    pub const APP_ID: &str = "spark.app.id";
    pub const APP_NAME: &str = "spark.app.name";
    pub const DEPLOY_MODE: &str = "spark.submit.deployMode";
    pub const NAMESPACE: &str = "spark.kubernetes.namespace";
    pub const RESOURCE_TYPE: &str = "spark.kubernetes.resource.type";
    pub const K8S_OVERHEAD_FACTOR: &str = "spark.kubernetes.memoryOverheadFactor";
    pub const OFF_HEAP_ENABLED: &str = "spark.memory.offHeap.enabled";
    pub const OFF_HEAP_ENABLED_ALTERNATIVE: &str = "spark.unsafe.offHeap";
    pub const OFF_HEAP_SIZE: &str = "spark.memory.offHeap.size";
    pub const PYSPARK_MEMORY: &str = "spark.executor.pyspark.memory";
    pub const INSTANCES: &str = "spark.executor.instances";
    pub const DA_ENABLED: &str = "spark.dynamicAllocation.enabled";
    pub const DA_MIN: &str = "spark.dynamicAllocation.minExecutors";
    pub const DA_INITIAL: &str = "spark.dynamicAllocation.initialExecutors";
    pub const DA_MAX: &str = "spark.dynamicAllocation.maxExecutors";
    pub const BATCH_SIZE: &str = "spark.kubernetes.allocation.batch.size";
    pub const BATCH_DELAY: &str = "spark.kubernetes.allocation.batch.delay";
    pub const SCHEDULER_NAME: &str = "spark.kubernetes.scheduler.name";
    pub const DRIVER_SCHEDULER_NAME: &str = "spark.kubernetes.driver.scheduler.name";
    pub const EXECUTOR_SCHEDULER_NAME: &str = "spark.kubernetes.executor.scheduler.name";
    pub const NODE_SELECTOR_PREFIX: &str = "spark.kubernetes.node.selector.";
    pub const DRIVER_NODE_SELECTOR_PREFIX: &str = "spark.kubernetes.driver.node.selector.";
    pub const EXECUTOR_NODE_SELECTOR_PREFIX: &str = "spark.kubernetes.executor.node.selector.";
    pub const EXECUTOR_LABEL_PREFIX: &str = "spark.kubernetes.executor.label.";
    pub const DRIVER_ANNOTATION_PREFIX: &str = "spark.kubernetes.driver.annotation.";
}
