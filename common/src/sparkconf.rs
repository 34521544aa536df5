//! `spark.properties` read as `java.util.Properties` does, and the gang demand Spark 4.x requests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::demand::GangDemand;
use crate::quantities::{
    QUANTITY_FORMS, QuantityError, SPARK_SIZE_FORMS, parse_cpu_millis, parse_spark_size_mib,
};
use crate::resources::{GpuResourceNames, Resources};

// ---------------------------------------------------------------------------------------------
// java.util.Properties
// ---------------------------------------------------------------------------------------------

/// Why a `.properties` text was rejected. `line` is the 1-based physical line of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    #[error(
        "line {line}: malformed \\uXXXX escape {found:?}; accepted: \\u followed by exactly four hex digits (0-9, a-f, A-F)"
    )]
    MalformedUnicodeEscape { line: usize, found: String },
    #[error(
        "line {line}: \\uXXXX escape {found:?} is an unpaired UTF-16 surrogate; accepted: a high surrogate \\uD800-\\uDBFF directly followed by a low surrogate \\uDC00-\\uDFFF"
    )]
    UnpairedSurrogate { line: usize, found: String },
}

/// One logical line: its characters (continuations joined) and where each physical piece starts.
struct LogicalLine {
    chars: Vec<char>,
    /// `(index in chars, index in the whole text)` for the first character of each physical line.
    pieces: Vec<(usize, usize)>,
}

impl LogicalLine {
    /// The index in the whole text of `chars[at]`.
    fn source_index(&self, at: usize) -> usize {
        let (start, source) = self
            .pieces
            .iter()
            .rev()
            .find(|(start, _)| *start <= at)
            .copied()
            .unwrap_or((0, 0));
        source + (at - start)
    }
}

fn is_properties_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Splits `text` into logical lines exactly as `java.util.Properties.LineReader` does: `\n`, `\r`
/// and `\r\n` end lines; leading blanks (space, tab, form feed) are skipped; lines whose first
/// non-blank character is `#` or `!` are comments (never continued); a line ending in an odd
/// number of backslashes continues on the next line, whose leading blanks are dropped.
fn logical_lines(text: &[char]) -> Vec<LogicalLine> {
    let mut lines = Vec::new();
    let mut i = 0;
    loop {
        let mut chars: Vec<char> = Vec::new();
        let mut pieces = Vec::new();
        let mut new_piece = true;
        let mut skip_blanks = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        loop {
            let Some(&c) = text.get(i) else {
                // End of input.
                if chars.is_empty() {
                    return lines;
                }
                if preceding_backslash {
                    chars.pop();
                }
                lines.push(LogicalLine { chars, pieces });
                return lines;
            };
            i += 1;
            if skip_blanks {
                if is_properties_blank(c) {
                    continue;
                }
                if !appended_line_begin && (c == '\r' || c == '\n') {
                    continue;
                }
                skip_blanks = false;
                appended_line_begin = false;
            }
            if chars.is_empty() && (c == '#' || c == '!') {
                while i < text.len() && text[i] != '\n' && text[i] != '\r' {
                    i += 1;
                }
                skip_blanks = true;
                continue;
            }
            if c != '\n' && c != '\r' {
                if new_piece {
                    pieces.push((chars.len(), i - 1));
                    new_piece = false;
                }
                chars.push(c);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            // End of a physical line.
            if chars.is_empty() {
                skip_blanks = true;
                continue;
            }
            if i >= text.len() {
                if preceding_backslash {
                    chars.pop();
                }
                lines.push(LogicalLine { chars, pieces });
                return lines;
            }
            if preceding_backslash {
                chars.pop();
                skip_blanks = true;
                appended_line_begin = true;
                preceding_backslash = false;
                new_piece = true;
                if c == '\r' && text.get(i) == Some(&'\n') {
                    i += 1;
                }
            } else {
                lines.push(LogicalLine { chars, pieces });
                break;
            }
        }
    }
}

/// The 1-based physical line of `text[index]` (`\r\n` counts as one line break).
fn physical_line(text: &[char], index: usize) -> usize {
    let end = index.min(text.len());
    let mut line = 1;
    for (k, &c) in text[..end].iter().enumerate() {
        if c == '\n' || (c == '\r' && text.get(k + 1) != Some(&'\n')) {
            line += 1;
        }
    }
    line
}

/// Undoes `\` escapes in `line.chars[from..to]` like `Properties.loadConvert`: `\t \n \r \f`,
/// `\uXXXX` (UTF-16 units; surrogate pairs are joined), any other `\x` is `x`.
fn unescape(
    text: &[char],
    line: &LogicalLine,
    from: usize,
    to: usize,
) -> Result<String, PropertiesError> {
    let s = &line.chars[from..to];
    let line_of = |k: usize| physical_line(text, line.source_index(from + k));
    let mut out = String::with_capacity(s.len());
    // A high surrogate from `\uD8xx` waiting for its low half: (unit, index of its backslash).
    let mut pending_high: Option<(u16, usize)> = None;
    let unpaired = |unit: u16, at: usize| PropertiesError::UnpairedSurrogate {
        line: line_of(at),
        found: format!("\\u{unit:04X}"),
    };
    let mut k = 0;
    while k < s.len() {
        let start = k;
        let c = s[k];
        k += 1;
        if c != '\\' {
            if let Some((unit, at)) = pending_high {
                return Err(unpaired(unit, at));
            }
            out.push(c);
            continue;
        }
        // The line reader never leaves an unescaped backslash last; stay total anyway.
        let Some(&escaped) = s.get(k) else { break };
        k += 1;
        if escaped != 'u' {
            if let Some((unit, at)) = pending_high {
                return Err(unpaired(unit, at));
            }
            out.push(match escaped {
                't' => '\t',
                'n' => '\n',
                'r' => '\r',
                'f' => '\x0c',
                other => other,
            });
            continue;
        }
        let digits = &s[k..(k + 4).min(s.len())];
        let unit = if digits.len() == 4 && digits.iter().all(char::is_ascii_hexdigit) {
            digits.iter().fold(0u16, |acc, d| {
                (acc << 4) | d.to_digit(16).map_or(0, |v| v as u16)
            })
        } else {
            let shown: String = s[start..(k + 4).min(s.len())].iter().collect();
            return Err(PropertiesError::MalformedUnicodeEscape {
                line: line_of(start),
                found: shown,
            });
        };
        k += 4;
        match (unit, pending_high.take()) {
            (0xD800..=0xDBFF, None) => pending_high = Some((unit, start)),
            (0xDC00..=0xDFFF, Some((high, _))) => {
                let code =
                    0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            (0xDC00..=0xDFFF, None) => return Err(unpaired(unit, start)),
            (_, Some((high, at))) => return Err(unpaired(high, at)),
            (_, None) => {
                out.push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER))
            }
        }
    }
    if let Some((unit, at)) = pending_high {
        return Err(unpaired(unit, at));
    }
    Ok(out)
}

/// Parses `.properties` text exactly as `java.util.Properties.load(Reader)`: comment lines
/// (`#`, `!`), separators `=`, `:` or blanks (the first unescaped one; blanks around it skipped),
/// `\` escapes, line continuations, `\uXXXX`, `\n`/`\r`/`\r\n` line ends. Later keys win.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, PropertiesError> {
    let chars: Vec<char> = text.chars().collect();
    let mut map = BTreeMap::new();
    for line in logical_lines(&chars) {
        let limit = line.chars.len();
        let mut key_len = 0;
        let mut value_start = limit;
        let mut has_separator = false;
        let mut preceding_backslash = false;
        while key_len < limit {
            let c = line.chars[key_len];
            if (c == '=' || c == ':') && !preceding_backslash {
                value_start = key_len + 1;
                has_separator = true;
                break;
            } else if is_properties_blank(c) && !preceding_backslash {
                value_start = key_len + 1;
                break;
            }
            preceding_backslash = c == '\\' && !preceding_backslash;
            key_len += 1;
        }
        while value_start < limit {
            let c = line.chars[value_start];
            if !is_properties_blank(c) {
                if !has_separator && (c == '=' || c == ':') {
                    has_separator = true;
                } else {
                    break;
                }
            }
            value_start += 1;
        }
        let key = unescape(&chars, &line, 0, key_len)?;
        let value = unescape(&chars, &line, value_start, limit)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// Writes `entries` as `.properties` text that [`parse_properties`] (and Java) reads back
/// unchanged: `key=value` lines with `\`, separators, comment characters, control characters and
/// the blanks that would otherwise be dropped escaped.
pub fn write_properties<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fn escape(out: &mut String, s: &str, is_key: bool) {
        for (index, c) in s.chars().enumerate() {
            match c {
                ' ' if is_key || index == 0 => out.push_str("\\ "),
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\x0c' => out.push_str("\\f"),
                '=' | ':' | '#' | '!' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c < ' ' || c == '\x7f' => {
                    let _ = write!(out, "\\u{:04X}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    let mut out = String::new();
    for (key, value) in entries {
        escape(&mut out, key, true);
        out.push('=');
        escape(&mut out, value, false);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SparkConf and typed getters
// ---------------------------------------------------------------------------------------------

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

    /// The gang demand Spark 4.x will create from this conf (default resource profile).
    ///
    /// Driver: cpu = `spark.kubernetes.driver.request.cores` (a quantity) else
    /// `spark.driver.cores` (default 1); memory = `spark.driver.memory` (default 1g) + overhead,
    /// overhead = `spark.driver.memoryOverhead` else
    /// `max((factor * memoryMiB).toInt, spark.driver.minMemoryOverhead (384m))`, factor =
    /// `spark.driver.memoryOverheadFactor` else `spark.kubernetes.memoryOverheadFactor` else 0.4
    /// for Python/R apps (`spark.kubernetes.resource.type`), 0.1 otherwise.
    ///
    /// Executor: cpu = `spark.kubernetes.executor.request.cores` else `spark.executor.cores`
    /// (default 1); memory = `spark.executor.memory` (default 1g) plus the overhead (executor keys;
    /// factor = `spark.executor.memoryOverheadFactor` else `spark.kubernetes.memoryOverheadFactor`),
    /// plus `spark.memory.offHeap.size` when off-heap is enabled, plus
    /// `spark.executor.pyspark.memory` for Python apps. Spark's executor code has no 0.4 default of
    /// its own: in cluster mode the driver writes its default factor into
    /// `spark.kubernetes.memoryOverheadFactor` (so a driver's ConfigMap always carries it); when it
    /// is absent we apply the driver's rule only for `spark.submit.deployMode=cluster` and use 0.1
    /// otherwise (client mode, where no driver step runs).
    ///
    /// GPUs: `spark.{driver,executor}.resource.<name>.amount` (> 0) with `.vendor`; the Kubernetes
    /// resource is `<vendor>/<name>` and counts as GPUs when it is in `gpus`.
    ///
    /// Executors: static: `spark.executor.instances` (default 2), min = max. Dynamic allocation:
    /// `min_executors` is the **initial target** `max(minExecutors, initialExecutors, instances)`,
    /// the executors the driver creates at once, so the gang reserves those; the floor
    /// `spark.dynamicAllocation.minExecutors` is in [`ConfDemand::dynamic_min_executors`];
    /// `max_executors` = `spark.dynamicAllocation.maxExecutors`, default Spark's `Int.MaxValue`
    /// ([`UNBOUNDED_EXECUTORS`]).
    pub fn demand(&self, gpus: &GpuResourceNames) -> Result<ConfDemand, SparkConfError> {
        let resource_type = self.resource_type()?;
        let (driver, driver_custom_resources) =
            self.role_resources(&DRIVER_KEYS, resource_type, gpus)?;
        let (executor, executor_custom_resources) =
            self.role_resources(&EXECUTOR_KEYS, resource_type, gpus)?;
        let counts = self.executor_counts()?;

        let allocation_batch_size = match self.get_int(keys::BATCH_SIZE)? {
            None => 5,
            Some(n) if n > 0 => n as u32,
            Some(_) => {
                return Err(out_of_range(
                    keys::BATCH_SIZE,
                    self.get(keys::BATCH_SIZE).unwrap_or_default(),
                    "a whole number ≥ 1",
                ));
            }
        };
        let allocation_batch_delay_ms = match self.get_time_ms(keys::BATCH_DELAY)? {
            None => 1000,
            Some(ms) if ms > 0 => ms,
            Some(_) => {
                return Err(out_of_range(
                    keys::BATCH_DELAY,
                    self.get(keys::BATCH_DELAY).unwrap_or_default(),
                    "a positive time such as 1s",
                ));
            }
        };

        let global_selector = self.prefixed_map(keys::NODE_SELECTOR_PREFIX);
        let mut driver_node_selector = global_selector.clone();
        driver_node_selector.extend(self.prefixed_map(keys::DRIVER_NODE_SELECTOR_PREFIX));
        let mut executor_node_selector = global_selector;
        executor_node_selector.extend(self.prefixed_map(keys::EXECUTOR_NODE_SELECTOR_PREFIX));
        let scheduler_name = self.get(keys::SCHEDULER_NAME);

        Ok(ConfDemand {
            demand: GangDemand {
                driver,
                executor,
                min_executors: counts.initial,
                max_executors: counts.max,
            },
            dynamic_allocation: counts.dynamic,
            dynamic_min_executors: counts.floor,
            resource_type,
            deploy_mode: self.get(keys::DEPLOY_MODE).map(str::to_owned),
            app_id: self.get(keys::APP_ID).map(str::to_owned),
            app_name: self.get(keys::APP_NAME).map(str::to_owned),
            namespace: self.get(keys::NAMESPACE).unwrap_or("default").to_owned(),
            driver_scheduler_name: self
                .get(keys::DRIVER_SCHEDULER_NAME)
                .or(scheduler_name)
                .map(str::to_owned),
            executor_scheduler_name: self
                .get(keys::EXECUTOR_SCHEDULER_NAME)
                .or(scheduler_name)
                .map(str::to_owned),
            driver_node_selector,
            executor_node_selector,
            driver_annotations: self.prefixed_map(keys::DRIVER_ANNOTATION_PREFIX),
            driver_custom_resources,
            executor_custom_resources,
            allocation_batch_size,
            allocation_batch_delay_ms,
        })
    }

    fn is_cluster_mode(&self) -> bool {
        self.get(keys::DEPLOY_MODE) == Some("cluster")
    }

    /// An overhead factor; `strictly_positive` for the per-role keys (Spark: `> 0`), else `>= 0`.
    fn overhead_factor(
        &self,
        key: &str,
        strictly_positive: bool,
    ) -> Result<Option<f64>, SparkConfError> {
        let Some(factor) = self.get_double(key)? else {
            return Ok(None);
        };
        let ok = if strictly_positive {
            factor > 0.0
        } else {
            factor >= 0.0
        };
        if ok {
            Ok(Some(factor))
        } else {
            Err(out_of_range(
                key,
                self.get(key).unwrap_or_default(),
                if strictly_positive {
                    "a number > 0"
                } else {
                    "a number ≥ 0"
                },
            ))
        }
    }

    /// `defaultOverheadFactor` of BasicDriverFeatureStep.
    fn driver_default_factor(
        &self,
        resource_type: Option<AppResourceType>,
    ) -> Result<f64, SparkConfError> {
        let shared = self.overhead_factor(keys::K8S_OVERHEAD_FACTOR, false)?;
        Ok(
            match (
                shared,
                resource_type.is_some_and(AppResourceType::is_non_jvm),
            ) {
                (Some(f), _) => f,
                (None, true) => NON_JVM_OVERHEAD_FACTOR,
                (None, false) => JVM_OVERHEAD_FACTOR,
            },
        )
    }

    fn role_overhead_factor(
        &self,
        role: &RoleKeys,
        resource_type: Option<AppResourceType>,
    ) -> Result<f64, SparkConfError> {
        if let Some(f) = self.overhead_factor(role.overhead_factor, true)? {
            return Ok(f);
        }
        if role.is_driver || self.is_cluster_mode() {
            return self.driver_default_factor(resource_type);
        }
        Ok(self
            .overhead_factor(keys::K8S_OVERHEAD_FACTOR, false)?
            .unwrap_or(JVM_OVERHEAD_FACTOR))
    }

    /// cpu, memory and GPUs of one pod of `role`, plus every custom resource by Kubernetes name.
    fn role_resources(
        &self,
        role: &RoleKeys,
        resource_type: Option<AppResourceType>,
        gpus: &GpuResourceNames,
    ) -> Result<(Resources, BTreeMap<String, i64>), SparkConfError> {
        let cpu_milli = match self.get_cpu_millis(role.request_cores)? {
            Some(m) => m,
            None => {
                let cores = self.get_int(role.cores)?.unwrap_or(1);
                if cores < role.min_cores {
                    return Err(out_of_range(
                        role.cores,
                        self.get(role.cores).unwrap_or_default(),
                        format!("a whole number ≥ {}", role.min_cores),
                    ));
                }
                i64::from(cores) * 1000
            }
        };

        let memory_mib = self.get_size_mib(role.memory)?.unwrap_or(1024);
        let explicit_overhead = self.get_size_mib(role.overhead)?;
        let min_overhead = self
            .get_size_mib(role.min_overhead)?
            .unwrap_or(DEFAULT_MIN_OVERHEAD_MIB);
        let overhead_mib = match explicit_overhead {
            Some(mib) => mib,
            None => {
                let factor = self.role_overhead_factor(role, resource_type)?;
                // Scala's `(factor * memoryMiB).toInt`: truncation toward zero, saturating.
                let scaled = (factor * memory_mib as f64) as i32;
                u64::try_from(scaled).unwrap_or(0).max(min_overhead)
            }
        };
        let mut total_mib = u128::from(memory_mib) + u128::from(overhead_mib);
        if !role.is_driver {
            total_mib += u128::from(self.off_heap_mib()?);
            let pyspark = self.get_size_mib(keys::PYSPARK_MEMORY)?.unwrap_or(0);
            if resource_type == Some(AppResourceType::Python) {
                total_mib += u128::from(pyspark);
            }
        }
        let memory_bytes = i64::try_from(total_mib << 20).map_err(|_| {
            out_of_range(
                role.memory,
                self.get(role.memory).unwrap_or("1g"),
                "a total memory (with overhead) below 8 EiB",
            )
        })?;

        let custom = self.custom_resources(role.resource_prefix)?;
        let gpu_count = custom
            .iter()
            .filter(|(name, _)| gpus.contains(name))
            .map(|(_, amount)| *amount)
            .sum();
        Ok((Resources::new(cpu_milli, memory_bytes, gpu_count), custom))
    }

    /// `Utils.executorOffHeapMemorySizeAsMb`: the size is always validated; it counts only when
    /// `spark.memory.offHeap.enabled` (alternative `spark.unsafe.offHeap`) is true, and must then be
    /// at least 1 MiB.
    fn off_heap_mib(&self) -> Result<u64, SparkConfError> {
        let size_mib = self.get_byte_size_as_mib(keys::OFF_HEAP_SIZE)?.unwrap_or(0);
        let enabled_key = if self.contains(keys::OFF_HEAP_ENABLED) {
            keys::OFF_HEAP_ENABLED
        } else {
            keys::OFF_HEAP_ENABLED_ALTERNATIVE
        };
        if !self.get_bool(enabled_key)?.unwrap_or(false) {
            return Ok(0);
        }
        if size_mib == 0 {
            return Err(SparkConfError::Missing {
                key: enabled_key.to_owned(),
                value: self.get(enabled_key).unwrap_or_default().to_owned(),
                required_key: keys::OFF_HEAP_SIZE.to_owned(),
                accepted: "a size of at least 1 MiB, such as 2g, when off-heap memory is enabled"
                    .to_owned(),
            });
        }
        Ok(size_mib)
    }

    /// `spark.<role>.resource.<name>.{amount,vendor}` → Kubernetes name `<vendor>/<name>` → amount,
    /// like `ResourceUtils.parseAllResourceRequests` (amounts ≤ 0 are dropped) and
    /// `KubernetesUtils.buildResourcesQuantities` (a vendor is required).
    fn custom_resources(&self, prefix: &str) -> Result<BTreeMap<String, i64>, SparkConfError> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for (rest, value) in self.with_prefix(prefix) {
            match rest.split_once('.') {
                Some((name, _)) => {
                    names.insert(name);
                }
                None => {
                    return Err(invalid(
                        &format!("{prefix}{rest}"),
                        value,
                        format!("keys of the form {prefix}<name>.amount and {prefix}<name>.vendor"),
                    ));
                }
            }
        }
        let mut resources = BTreeMap::new();
        for name in names {
            let amount_key = format!("{prefix}{name}.amount");
            let vendor_key = format!("{prefix}{name}.vendor");
            let Some(raw_amount) = self.get(&amount_key) else {
                let (first_key, first_value) = self
                    .with_prefix(prefix)
                    .find(|(rest, _)| rest.split_once('.').is_some_and(|(n, _)| n == name))
                    .map(|(rest, v)| (format!("{prefix}{rest}"), v.to_owned()))
                    .unwrap_or_default();
                return Err(SparkConfError::Missing {
                    key: first_key,
                    value: first_value,
                    required_key: amount_key,
                    accepted: "a whole number of units, such as 1".to_owned(),
                });
            };
            // `ResourceUtils.parseResourceRequest`: `.toInt`, no trimming.
            let amount: i32 = raw_amount
                .parse()
                .map_err(|_| invalid(&amount_key, raw_amount, SPARK_INT_FORMS))?;
            if amount <= 0 {
                continue;
            }
            let vendor = self.get(&vendor_key).filter(|v| !v.is_empty()).ok_or_else(|| {
                SparkConfError::Missing {
                    key: amount_key.clone(),
                    value: raw_amount.to_owned(),
                    required_key: vendor_key.clone(),
                    accepted: format!(
                        "the vendor domain of the Kubernetes resource <vendor>/{name}, such as nvidia.com"
                    ),
                }
            })?;
            *resources.entry(format!("{vendor}/{name}")).or_insert(0) += i64::from(amount);
        }
        Ok(resources)
    }

    /// `SchedulerBackendUtils.getInitialTargetExecutorNumber` plus the checks of
    /// `ExecutorAllocationManager.validateSettings`.
    fn executor_counts(&self) -> Result<ExecutorCounts, SparkConfError> {
        let raw = |key: &str| self.get(key).unwrap_or_default().to_owned();
        let instances = self.get_int(keys::INSTANCES)?;
        if let Some(n) = instances
            && n < 0
        {
            return Err(out_of_range(
                keys::INSTANCES,
                &raw(keys::INSTANCES),
                "a whole number ≥ 0",
            ));
        }
        if !self.get_bool(keys::DA_ENABLED)?.unwrap_or(false) {
            let n = instances.map_or(DEFAULT_EXECUTOR_INSTANCES, |n| n as u32);
            return Ok(ExecutorCounts {
                dynamic: false,
                initial: n,
                floor: n,
                max: n,
            });
        }
        let min = self.get_int(keys::DA_MIN)?.unwrap_or(0);
        let initial_setting = self.get_int(keys::DA_INITIAL)?.unwrap_or(min);
        let max = self.get_int(keys::DA_MAX)?.unwrap_or(i32::MAX);
        if min < 0 {
            return Err(out_of_range(
                keys::DA_MIN,
                &raw(keys::DA_MIN),
                "a whole number ≥ 0",
            ));
        }
        if max <= 0 {
            return Err(out_of_range(
                keys::DA_MAX,
                &raw(keys::DA_MAX),
                "a whole number ≥ 1",
            ));
        }
        if min > max {
            return Err(SparkConfError::Conflict {
                key: keys::DA_MIN.to_owned(),
                value: raw(keys::DA_MIN),
                other_key: keys::DA_MAX.to_owned(),
                other_value: raw(keys::DA_MAX),
                rule: "minExecutors ≤ maxExecutors".to_owned(),
            });
        }
        let from_instances = instances.unwrap_or(0);
        let initial = min.max(initial_setting).max(from_instances);
        if initial > max {
            let key = if from_instances == initial {
                keys::INSTANCES
            } else {
                keys::DA_INITIAL
            };
            return Err(SparkConfError::Conflict {
                key: key.to_owned(),
                value: raw(key),
                other_key: keys::DA_MAX.to_owned(),
                other_value: raw(keys::DA_MAX),
                rule: "the initial executors max(minExecutors, initialExecutors, spark.executor.instances) \
                       must not exceed maxExecutors"
                    .to_owned(),
            });
        }
        Ok(ExecutorCounts {
            dynamic: true,
            initial: initial as u32,
            floor: min as u32,
            max: max as u32,
        })
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

// ---------------------------------------------------------------------------------------------
// The computed demand
// ---------------------------------------------------------------------------------------------

/// `spark.dynamicAllocation.maxExecutors` when unset: Spark's `Int.MaxValue`, i.e. no upper bound.
pub const UNBOUNDED_EXECUTORS: u32 = i32::MAX as u32;

const DEFAULT_EXECUTOR_INSTANCES: u32 = 2;
const DEFAULT_MIN_OVERHEAD_MIB: u64 = 384;
const JVM_OVERHEAD_FACTOR: f64 = 0.1;
const NON_JVM_OVERHEAD_FACTOR: f64 = 0.4;

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
    pub const DRIVER_ANNOTATION_PREFIX: &str = "spark.kubernetes.driver.annotation.";
}

/// The per-role keys of the cpu/memory/resource formulas.
struct RoleKeys {
    is_driver: bool,
    cores: &'static str,
    min_cores: i32,
    request_cores: &'static str,
    memory: &'static str,
    overhead: &'static str,
    overhead_factor: &'static str,
    min_overhead: &'static str,
    resource_prefix: &'static str,
}

const DRIVER_KEYS: RoleKeys = RoleKeys {
    is_driver: true,
    cores: "spark.driver.cores",
    min_cores: 0,
    request_cores: "spark.kubernetes.driver.request.cores",
    memory: "spark.driver.memory",
    overhead: "spark.driver.memoryOverhead",
    overhead_factor: "spark.driver.memoryOverheadFactor",
    min_overhead: "spark.driver.minMemoryOverhead",
    resource_prefix: "spark.driver.resource.",
};

const EXECUTOR_KEYS: RoleKeys = RoleKeys {
    is_driver: false,
    cores: "spark.executor.cores",
    min_cores: 1,
    request_cores: "spark.kubernetes.executor.request.cores",
    memory: "spark.executor.memory",
    overhead: "spark.executor.memoryOverhead",
    overhead_factor: "spark.executor.memoryOverheadFactor",
    min_overhead: "spark.executor.minMemoryOverhead",
    resource_prefix: "spark.executor.resource.",
};

struct ExecutorCounts {
    dynamic: bool,
    initial: u32,
    floor: u32,
    max: u32,
}

/// The main resource type Spark records in `spark.kubernetes.resource.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppResourceType {
    Java,
    Python,
    R,
}

impl AppResourceType {
    /// Python and R apps get the 0.4 default overhead factor.
    pub fn is_non_jvm(self) -> bool {
        matches!(self, AppResourceType::Python | AppResourceType::R)
    }
}

/// What a Spark conf says about the gang, plus what the extender and simulator need besides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfDemand {
    /// Driver, one executor, and executors to reserve (`min_executors` is the initial target
    /// under dynamic allocation; see [`SparkConf::demand`]).
    pub demand: GangDemand,
    /// `spark.dynamicAllocation.enabled`.
    pub dynamic_allocation: bool,
    /// The dynamic-allocation floor `spark.dynamicAllocation.minExecutors` (equals the count when
    /// static).
    pub dynamic_min_executors: u32,
    pub resource_type: Option<AppResourceType>,
    /// `spark.submit.deployMode` (`cluster` in a driver's ConfigMap).
    pub deploy_mode: Option<String>,
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    /// `spark.kubernetes.namespace` (default `default`).
    pub namespace: String,
    /// `spark.kubernetes.driver.scheduler.name` else `spark.kubernetes.scheduler.name`.
    pub driver_scheduler_name: Option<String>,
    /// `spark.kubernetes.executor.scheduler.name` else `spark.kubernetes.scheduler.name`.
    pub executor_scheduler_name: Option<String>,
    /// `spark.kubernetes.node.selector.*` overlaid with `spark.kubernetes.driver.node.selector.*`.
    pub driver_node_selector: BTreeMap<String, String>,
    /// `spark.kubernetes.node.selector.*` overlaid with `spark.kubernetes.executor.node.selector.*`.
    pub executor_node_selector: BTreeMap<String, String>,
    /// `spark.kubernetes.driver.annotation.*` (raw; Spark substitutes `{{APP_ID}}` later).
    pub driver_annotations: BTreeMap<String, String>,
    /// Every extended resource of the driver (`<vendor>/<name>` → amount), GPUs or not.
    pub driver_custom_resources: BTreeMap<String, i64>,
    /// Every extended resource of one executor.
    pub executor_custom_resources: BTreeMap<String, i64>,
    /// `spark.kubernetes.allocation.batch.size` (default 5): executors created per round.
    pub allocation_batch_size: u32,
    /// `spark.kubernetes.allocation.batch.delay` in ms (default 1000): pause between rounds.
    pub allocation_batch_delay_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1 << 20;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties(text).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn properties_separators_comments_and_blanks() {
        for (text, want) in [
            ("a=b", vec![("a", "b")]),
            ("a:b", vec![("a", "b")]),
            ("a b", vec![("a", "b")]),
            ("a\tb", vec![("a", "b")]),
            ("a\x0cb", vec![("a", "b")]),
            ("a = b", vec![("a", "b")]),
            ("a  :  b", vec![("a", "b")]),
            ("a b=c", vec![("a", "b=c")]),
            ("a = = b", vec![("a", "= b")]),
            ("a==b", vec![("a", "=b")]),
            ("a:=b", vec![("a", "=b")]),
            ("a", vec![("a", "")]),
            ("a=", vec![("a", "")]),
            ("=b", vec![("", "b")]),
            ("   a=b   ", vec![("a", "b   ")]),
            ("# c\n! c\n  # c\na=b", vec![("a", "b")]),
            ("a=b # not a comment", vec![("a", "b # not a comment")]),
            ("a=#b", vec![("a", "#b")]),
            ("\n\n   \n\t\na=b\n\n", vec![("a", "b")]),
            ("a=1\na=2", vec![("a", "2")]),
            (
                "a=b\r\nc=d\re=f\ng=h",
                vec![("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")],
            ),
            ("", vec![]),
            ("# only a comment", vec![]),
        ] {
            assert_eq!(props(text), map(&want), "{text:?}");
        }
    }

    #[test]
    fn properties_escapes() {
        for (text, want) in [
            (r"a=\t\n\r\f", vec![("a", "\t\n\r\x0c")]),
            (r"a=\\", vec![("a", "\\")]),
            (r"a\=b=c", vec![("a=b", "c")]),
            (r"a\:b:c", vec![("a:b", "c")]),
            (r"a\ b c", vec![("a b", "c")]),
            (r"\#a=b", vec![("#a", "b")]),
            (r"\!a=b", vec![("!a", "b")]),
            (r"a=\ b", vec![("a", " b")]),
            (r"a=\q\z\x", vec![("a", "qzx")]),
            (r"a=b\\\\", vec![("a", r"b\\")]),
            (r"k8s\://host\:1=master", vec![("k8s://host:1", "master")]),
            (
                "spark.master=k8s\\://http\\://127.0.0.1\\:18081",
                vec![("spark.master", "k8s://http://127.0.0.1:18081")],
            ),
        ] {
            assert_eq!(props(text), map(&want), "{text:?}");
        }
    }

    #[test]
    fn properties_unicode_escapes() {
        assert_eq!(props(r"a=\u0041\u00e9\u00E9"), map(&[("a", "Aéé")]));
        assert_eq!(props(r"\u0061=b"), map(&[("a", "b")]));
        assert_eq!(props(r"a=\uD83D\uDE00"), map(&[("a", "😀")]));
        assert_eq!(props("a=é😀"), map(&[("a", "é😀")]));
        assert_eq!(props(r"a=\u003d"), map(&[("a", "=")]));

        for (text, line, found) in [
            (r"a=\u12", 1, r"\u12"),
            (r"a=\u12G4", 1, r"\u12G4"),
            ("x=1\ny=2\n\na=\\uZZZZ", 4, r"\uZZZZ"),
            ("x=1\r\ny=2\r\na=\\u", 3, r"\u"),
            ("a=x\\\n  \\u00g1", 2, r"\u00g1"),
        ] {
            assert_eq!(
                parse_properties(text),
                Err(PropertiesError::MalformedUnicodeEscape {
                    line,
                    found: found.to_owned()
                }),
                "{text:?}"
            );
            let msg = parse_properties(text).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("line {line}:")), "{msg}");
            assert!(msg.contains("four hex digits"), "{msg}");
        }
        for text in [r"a=\uD83D", r"a=\uD83Dx", r"a=\uDE00", r"a=\uD83D\u0041"] {
            assert!(
                matches!(
                    parse_properties(text),
                    Err(PropertiesError::UnpairedSurrogate { line: 1, .. })
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn properties_continuations() {
        for (text, want) in [
            ("a=b\\\nc", vec![("a", "bc")]),
            ("a=b\\\n    c", vec![("a", "bc")]),
            ("a=b\\\r\n\t c", vec![("a", "bc")]),
            ("a=b\\\r  c", vec![("a", "bc")]),
            ("a=b\\\\\nc=d", vec![("a", "b\\"), ("c", "d")]),
            ("a=b\\\\\\\nc", vec![("a", "b\\c")]),
            ("a=b\\", vec![("a", "b")]),
            ("a=b\\\n", vec![("a", "b")]),
            ("a=b\\\n\nc=d", vec![("a", "b"), ("c", "d")]),
            ("a=b\\\n   \nc=d", vec![("a", "b"), ("c", "d")]),
            ("a=b\\\n# not a comment", vec![("a", "b# not a comment")]),
            ("# comment \\\na=b", vec![("a", "b")]),
            ("ke\\\n  y=v", vec![("key", "v")]),
            ("key\\\n  =v", vec![("key", "v")]),
            ("\\\n#c\na=b", vec![("a", "b")]),
        ] {
            assert_eq!(props(text), map(&want), "{text:?}");
        }
    }

    #[test]
    fn properties_written_by_spark_read_back() {
        let text = "#Java properties built from Kubernetes config map with name: spark-drv-1-conf-map\n\
                    #Wed Nov 25 17:08:00 UTC 2026\n\
                    spark.executor.memory=4g\n\
                    spark.master=k8s\\://http\\://127.0.0.1\\:18081\n\
                    spark.submit.pyFiles=\n";
        let conf = SparkConf::parse(text).unwrap();
        assert_eq!(conf.get("spark.executor.memory"), Some("4g"));
        assert_eq!(
            conf.get("spark.master"),
            Some("k8s://http://127.0.0.1:18081")
        );
        assert_eq!(conf.get("spark.submit.pyFiles"), Some(""));
        assert_eq!(conf.as_map().len(), 3);
    }

    #[test]
    fn writer_escapes_what_the_reader_would_change() {
        let written = write_properties([(" k=:#!", " v\t\n\\"), ("a", "b c")]);
        assert_eq!(written, "\\ k\\=\\:\\#\\!=\\ v\\t\\n\\\\\na=b c\n");
        assert_eq!(
            parse_properties(&written).unwrap(),
            map(&[(" k=:#!", " v\t\n\\"), ("a", "b c")])
        );
        assert_eq!(write_properties([("c", "\u{1}")]), "c=\\u0001\n");
    }

    fn conf(pairs: &[(&str, &str)]) -> SparkConf {
        pairs.iter().copied().collect()
    }

    fn demand(pairs: &[(&str, &str)]) -> ConfDemand {
        conf(pairs).demand(&GpuResourceNames::default()).unwrap()
    }

    fn demand_err(pairs: &[(&str, &str)]) -> SparkConfError {
        conf(pairs)
            .demand(&GpuResourceNames::default())
            .unwrap_err()
    }

    #[test]
    fn defaults_match_spark() {
        let d = demand(&[]);
        assert_eq!(d.demand.driver, Resources::new(1000, 1408 * MIB, 0));
        assert_eq!(d.demand.executor, Resources::new(1000, 1408 * MIB, 0));
        assert_eq!((d.demand.min_executors, d.demand.max_executors), (2, 2));
        assert!(!d.dynamic_allocation);
        assert_eq!(d.allocation_batch_size, 5);
        assert_eq!(d.allocation_batch_delay_ms, 1000);
        assert_eq!(d.namespace, "default");
    }

    #[test]
    fn driver_cpu_prefers_request_cores() {
        for (pairs, want) in [
            (vec![("spark.driver.cores", "3")], 3000),
            (vec![("spark.driver.cores", " 3 ")], 3000),
            (vec![("spark.kubernetes.driver.request.cores", "500m")], 500),
            (
                vec![
                    ("spark.kubernetes.driver.request.cores", "1.5"),
                    ("spark.driver.cores", "4"),
                ],
                1500,
            ),
        ] {
            assert_eq!(demand(&pairs).demand.driver.cpu_milli, want, "{pairs:?}");
        }
    }

    #[test]
    fn executor_cpu_prefers_request_cores() {
        for (pairs, want) in [
            (vec![("spark.executor.cores", "4")], 4000),
            (
                vec![
                    ("spark.kubernetes.executor.request.cores", "3500m"),
                    ("spark.executor.cores", "4"),
                ],
                3500,
            ),
            (
                vec![("spark.kubernetes.executor.request.cores", "0.25")],
                250,
            ),
        ] {
            assert_eq!(demand(&pairs).demand.executor.cpu_milli, want, "{pairs:?}");
        }
    }

    #[test]
    fn memory_overhead_rules() {
        // (settings, driver MiB, executor MiB)
        for (pairs, driver_mib, executor_mib) in [
            // minimum 384 dominates below 3840 MiB; 10% above, truncated.
            (
                vec![
                    ("spark.driver.memory", "1g"),
                    ("spark.executor.memory", "2g"),
                ],
                1024 + 384,
                2048 + 384,
            ),
            (
                vec![
                    ("spark.driver.memory", "4g"),
                    ("spark.executor.memory", "4g"),
                ],
                4096 + 409,
                4096 + 409,
            ),
            (vec![("spark.executor.memory", "3841m")], 1408, 3841 + 384),
            (vec![("spark.executor.memory", "3850")], 1408, 3850 + 385),
            (vec![("spark.executor.memory", "3859m")], 1408, 3859 + 385),
            // shared factor applies to both roles.
            (
                vec![
                    ("spark.kubernetes.memoryOverheadFactor", "0.25"),
                    ("spark.executor.memory", "4g"),
                    ("spark.driver.memory", "2g"),
                ],
                2048 + 512,
                4096 + 1024,
            ),
            // per-role factor beats the shared one.
            (
                vec![
                    ("spark.kubernetes.memoryOverheadFactor", "0.25"),
                    ("spark.driver.memoryOverheadFactor", "0.5"),
                    ("spark.executor.memoryOverheadFactor", "0.2"),
                    ("spark.driver.memory", "2g"),
                    ("spark.executor.memory", "4g"),
                ],
                2048 + 1024,
                4096 + 819,
            ),
            // explicit overhead beats every factor and the minimum.
            (
                vec![
                    ("spark.driver.memoryOverhead", "100m"),
                    ("spark.driver.memoryOverheadFactor", "0.5"),
                    ("spark.executor.memoryOverhead", "1g"),
                    ("spark.executor.minMemoryOverhead", "2g"),
                ],
                1024 + 100,
                1024 + 1024,
            ),
            (vec![("spark.executor.memoryOverhead", "0")], 1408, 1024),
            // configurable minimum (Spark 4.0).
            (
                vec![
                    ("spark.driver.minMemoryOverhead", "1g"),
                    ("spark.executor.minMemoryOverhead", "500m"),
                ],
                1024 + 1024,
                1024 + 500,
            ),
            (
                vec![
                    ("spark.executor.minMemoryOverhead", "0"),
                    ("spark.executor.memory", "1000m"),
                ],
                1408,
                1000 + 100,
            ),
        ] {
            let d = demand(&pairs);
            assert_eq!(
                d.demand.driver.memory_bytes,
                driver_mib * MIB,
                "driver {pairs:?}"
            );
            assert_eq!(
                d.demand.executor.memory_bytes,
                executor_mib * MIB,
                "executor {pairs:?}"
            );
        }
    }

    #[test]
    fn non_jvm_default_factor() {
        // Python/R: the driver uses 0.4 unless the shared factor is set.
        for (pairs, driver_mib, executor_mib) in [
            (
                vec![
                    ("spark.kubernetes.resource.type", "python"),
                    ("spark.driver.memory", "2g"),
                    ("spark.executor.memory", "2g"),
                ],
                2048 + 819,
                2048 + 384,
            ),
            (
                vec![
                    ("spark.kubernetes.resource.type", "r"),
                    ("spark.driver.memory", "2g"),
                ],
                2048 + 819,
                1408,
            ),
            (
                vec![
                    ("spark.kubernetes.resource.type", "java"),
                    ("spark.driver.memory", "2g"),
                ],
                2048 + 384,
                1408,
            ),
            (
                vec![
                    ("spark.kubernetes.resource.type", "python"),
                    ("spark.kubernetes.memoryOverheadFactor", "0.1"),
                    ("spark.driver.memory", "8g"),
                ],
                8192 + 819,
                1408,
            ),
            // cluster mode: executors see what the driver writes into the shared factor.
            (
                vec![
                    ("spark.kubernetes.resource.type", "python"),
                    ("spark.submit.deployMode", "cluster"),
                    ("spark.executor.memory", "2g"),
                ],
                1024 + 409,
                2048 + 819,
            ),
            (
                vec![
                    ("spark.kubernetes.resource.type", "java"),
                    ("spark.submit.deployMode", "cluster"),
                    ("spark.executor.memory", "8g"),
                ],
                1408,
                8192 + 819,
            ),
            // client mode: no driver step, executors use the shared factor or 0.1.
            (
                vec![
                    ("spark.kubernetes.resource.type", "python"),
                    ("spark.submit.deployMode", "client"),
                    ("spark.executor.memory", "8g"),
                ],
                1024 + 409,
                8192 + 819,
            ),
            (
                vec![
                    ("spark.kubernetes.resource.type", "python"),
                    ("spark.submit.deployMode", "client"),
                    ("spark.kubernetes.memoryOverheadFactor", "0.4"),
                    ("spark.executor.memory", "8g"),
                ],
                1024 + 409,
                8192 + 3276,
            ),
        ] {
            let d = demand(&pairs);
            assert_eq!(
                d.demand.driver.memory_bytes,
                driver_mib * MIB,
                "driver {pairs:?}"
            );
            assert_eq!(
                d.demand.executor.memory_bytes,
                executor_mib * MIB,
                "executor {pairs:?}"
            );
        }
    }

    #[test]
    fn off_heap_and_pyspark_memory() {
        for (pairs, executor_mib) in [
            (
                vec![
                    ("spark.memory.offHeap.enabled", "true"),
                    ("spark.memory.offHeap.size", "2g"),
                ],
                1408 + 2048,
            ),
            (
                vec![
                    ("spark.memory.offHeap.enabled", " TRUE "),
                    ("spark.memory.offHeap.size", "1048576"),
                ],
                1408 + 1,
            ),
            (
                vec![
                    ("spark.memory.offHeap.enabled", "false"),
                    ("spark.memory.offHeap.size", "2g"),
                ],
                1408,
            ),
            (vec![("spark.memory.offHeap.size", "2g")], 1408),
            (
                vec![
                    ("spark.unsafe.offHeap", "true"),
                    ("spark.memory.offHeap.size", "512m"),
                ],
                1408 + 512,
            ),
            (
                vec![
                    ("spark.memory.offHeap.enabled", "false"),
                    ("spark.unsafe.offHeap", "true"),
                    ("spark.memory.offHeap.size", "512m"),
                ],
                1408,
            ),
            (vec![("spark.executor.pyspark.memory", "1g")], 1408),
            (
                vec![
                    ("spark.executor.pyspark.memory", "1g"),
                    ("spark.kubernetes.resource.type", "python"),
                ],
                1408 + 1024,
            ),
            (
                vec![
                    ("spark.executor.pyspark.memory", "300"),
                    ("spark.kubernetes.resource.type", "python"),
                    ("spark.memory.offHeap.enabled", "true"),
                    ("spark.memory.offHeap.size", "1g"),
                ],
                1408 + 300 + 1024,
            ),
        ] {
            let d = demand(&pairs);
            assert_eq!(
                d.demand.executor.memory_bytes,
                executor_mib * MIB,
                "{pairs:?}"
            );
            let python = pairs.contains(&("spark.kubernetes.resource.type", "python"));
            let driver_mib = if python { 1024 + 409 } else { 1408 };
            assert_eq!(
                d.demand.driver.memory_bytes,
                driver_mib * MIB,
                "driver {pairs:?}"
            );
        }
    }

    #[test]
    fn gpus_need_a_vendor_and_a_configured_name() {
        let d = demand(&[
            ("spark.driver.resource.gpu.amount", "1"),
            ("spark.driver.resource.gpu.vendor", "nvidia.com"),
            ("spark.driver.resource.gpu.discoveryScript", "/opt/gpu.sh"),
            ("spark.executor.resource.gpu.amount", "2"),
            ("spark.executor.resource.gpu.vendor", "nvidia.com"),
            ("spark.executor.resource.fpga.amount", "1"),
            ("spark.executor.resource.fpga.vendor", "xilinx.com"),
        ]);
        assert_eq!(d.demand.driver.gpus, 1);
        assert_eq!(d.demand.executor.gpus, 2);
        assert_eq!(
            d.executor_custom_resources,
            BTreeMap::from([
                ("nvidia.com/gpu".to_owned(), 2),
                ("xilinx.com/fpga".to_owned(), 1)
            ])
        );

        // Only configured names count as GPUs.
        let amd = conf(&[
            ("spark.executor.resource.gpu.amount", "1"),
            ("spark.executor.resource.gpu.vendor", "amd.com"),
        ]);
        assert_eq!(
            amd.demand(&GpuResourceNames::default())
                .unwrap()
                .demand
                .executor
                .gpus,
            0
        );
        let names = GpuResourceNames::new(["amd.com/gpu".to_owned()]);
        assert_eq!(amd.demand(&names).unwrap().demand.executor.gpus, 1);

        // Amount 0 (or below) requests nothing, and then needs no vendor.
        assert_eq!(
            demand(&[("spark.executor.resource.gpu.amount", "0")])
                .demand
                .executor
                .gpus,
            0
        );
        assert_eq!(
            demand(&[("spark.driver.resource.gpu.amount", "-1")])
                .demand
                .driver
                .gpus,
            0
        );
    }

    #[test]
    fn gpu_errors_name_the_key() {
        let e = demand_err(&[("spark.executor.resource.gpu.amount", "1")]);
        assert_eq!(e.key(), "spark.executor.resource.gpu.amount");
        assert!(
            e.to_string().contains("spark.executor.resource.gpu.vendor"),
            "{e}"
        );
        let e = demand_err(&[("spark.driver.resource.gpu.vendor", "nvidia.com")]);
        assert!(
            e.to_string().contains("spark.driver.resource.gpu.amount"),
            "{e}"
        );
        let e = demand_err(&[
            ("spark.driver.resource.gpu.amount", "1.5"),
            ("spark.driver.resource.gpu.vendor", "nvidia.com"),
        ]);
        assert_eq!(e.key(), "spark.driver.resource.gpu.amount");
        let e = demand_err(&[("spark.driver.resource.gpu", "1")]);
        assert_eq!(e.key(), "spark.driver.resource.gpu");
    }

    #[test]
    fn static_executor_count() {
        for (pairs, want) in [
            (vec![], 2),
            (vec![("spark.executor.instances", "8")], 8),
            (vec![("spark.executor.instances", "0")], 0),
            (
                vec![
                    ("spark.executor.instances", "8"),
                    ("spark.dynamicAllocation.enabled", "false"),
                    ("spark.dynamicAllocation.maxExecutors", "3"),
                ],
                8,
            ),
        ] {
            let d = demand(&pairs);
            assert_eq!(
                (
                    d.demand.min_executors,
                    d.demand.max_executors,
                    d.dynamic_min_executors
                ),
                (want, want, want),
                "{pairs:?}"
            );
            assert!(!d.dynamic_allocation);
        }
    }

    #[test]
    fn dynamic_executor_counts() {
        let da = ("spark.dynamicAllocation.enabled", "true");
        // (settings, initial, floor, max)
        for (pairs, initial, floor, max) in [
            (vec![da], 0, 0, UNBOUNDED_EXECUTORS),
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.minExecutors", "2"),
                    ("spark.dynamicAllocation.maxExecutors", "10"),
                ],
                2,
                2,
                10,
            ),
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.minExecutors", "2"),
                    ("spark.dynamicAllocation.initialExecutors", "5"),
                ],
                5,
                2,
                UNBOUNDED_EXECUTORS,
            ),
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.minExecutors", "2"),
                    ("spark.dynamicAllocation.initialExecutors", "1"),
                ],
                2,
                2,
                UNBOUNDED_EXECUTORS,
            ),
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.minExecutors", "1"),
                    ("spark.executor.instances", "4"),
                    ("spark.dynamicAllocation.maxExecutors", "4"),
                ],
                4,
                1,
                4,
            ),
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.initialExecutors", "3"),
                    ("spark.executor.instances", "1"),
                ],
                3,
                0,
                UNBOUNDED_EXECUTORS,
            ),
            (
                vec![
                    ("spark.dynamicAllocation.enabled", "True"),
                    ("spark.dynamicAllocation.maxExecutors", "1"),
                ],
                0,
                0,
                1,
            ),
        ] {
            let d = demand(&pairs);
            assert!(d.dynamic_allocation, "{pairs:?}");
            assert_eq!(
                (
                    d.demand.min_executors,
                    d.dynamic_min_executors,
                    d.demand.max_executors
                ),
                (initial, floor, max),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn dynamic_allocation_errors() {
        let da = ("spark.dynamicAllocation.enabled", "true");
        for (pairs, key) in [
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.minExecutors", "5"),
                    ("spark.dynamicAllocation.maxExecutors", "3"),
                ],
                "spark.dynamicAllocation.minExecutors",
            ),
            (
                vec![
                    da,
                    ("spark.dynamicAllocation.initialExecutors", "5"),
                    ("spark.dynamicAllocation.maxExecutors", "3"),
                ],
                "spark.dynamicAllocation.initialExecutors",
            ),
            (
                vec![
                    da,
                    ("spark.executor.instances", "5"),
                    ("spark.dynamicAllocation.maxExecutors", "3"),
                ],
                "spark.executor.instances",
            ),
            (
                vec![da, ("spark.dynamicAllocation.maxExecutors", "0")],
                "spark.dynamicAllocation.maxExecutors",
            ),
            (
                vec![da, ("spark.dynamicAllocation.minExecutors", "-1")],
                "spark.dynamicAllocation.minExecutors",
            ),
            (
                vec![da, ("spark.dynamicAllocation.minExecutors", "two")],
                "spark.dynamicAllocation.minExecutors",
            ),
            (
                vec![("spark.dynamicAllocation.enabled", "yes")],
                "spark.dynamicAllocation.enabled",
            ),
            (
                vec![("spark.executor.instances", "-2")],
                "spark.executor.instances",
            ),
            (
                vec![("spark.executor.instances", "3000000000")],
                "spark.executor.instances",
            ),
        ] {
            let e = demand_err(&pairs);
            assert_eq!(e.key(), key, "{pairs:?}: {e}");
            let value = pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .unwrap();
            assert!(e.to_string().contains(&format!("{value:?}")), "{e}");
            assert!(e.to_string().contains("accepted"), "{e}");
        }
    }

    #[test]
    fn value_errors_name_key_value_and_accepted_forms() {
        for (key, value, accepted) in [
            ("spark.executor.memory", "4gib", "Spark size"),
            ("spark.driver.memory", "-1g", "positive"),
            ("spark.driver.memoryOverhead", "1.5g", "Spark size"),
            ("spark.executor.minMemoryOverhead", "x", "Spark size"),
            ("spark.executor.pyspark.memory", "1 g", "Spark size"),
            (
                "spark.memory.offHeap.size",
                "lots",
                "bare number means bytes",
            ),
            (
                "spark.kubernetes.driver.request.cores",
                "1 core",
                "Kubernetes quantity",
            ),
            ("spark.kubernetes.executor.request.cores", "-1", "positive"),
            ("spark.driver.cores", "1.5", "whole number"),
            ("spark.driver.cores", "-1", "≥ 0"),
            ("spark.executor.cores", "0", "≥ 1"),
            (
                "spark.kubernetes.memoryOverheadFactor",
                "ten percent",
                "decimal number",
            ),
            ("spark.kubernetes.memoryOverheadFactor", "-0.1", "≥ 0"),
            ("spark.driver.memoryOverheadFactor", "0", "> 0"),
            (
                "spark.executor.memoryOverheadFactor",
                "NaN",
                "decimal number",
            ),
            ("spark.memory.offHeap.enabled", "1", "true or false"),
            (
                "spark.kubernetes.resource.type",
                "Python",
                "java, python or r",
            ),
            ("spark.kubernetes.allocation.batch.size", "0", "≥ 1"),
            (
                "spark.kubernetes.allocation.batch.delay",
                "1 sec",
                "Spark time",
            ),
            ("spark.kubernetes.allocation.batch.delay", "0s", "positive"),
            ("spark.executor.memory", "99999999999t", "below 8 EiB"),
        ] {
            let e = demand_err(&[(key, value)]);
            let msg = e.to_string();
            assert_eq!(e.key(), key, "{msg}");
            assert!(msg.contains(&format!("{value:?}")), "{msg}");
            assert!(msg.contains(accepted), "{key}={value}: {msg}");
        }
        let e = demand_err(&[("spark.memory.offHeap.enabled", "true")]);
        assert!(e.to_string().contains("spark.memory.offHeap.size"), "{e}");
        let e = demand_err(&[
            ("spark.memory.offHeap.enabled", "true"),
            ("spark.memory.offHeap.size", "1000"),
        ]);
        assert!(e.to_string().contains("at least 1 MiB"), "{e}");
    }

    #[test]
    fn typed_getters() {
        let c = conf(&[
            ("b1", " FALSE "),
            ("i1", "+7"),
            ("d1", "4e-1"),
            ("d2", ".5d"),
            ("d3", "1."),
            ("t1", "2min"),
            ("t2", "1500us"),
            ("t3", "3H"),
            ("t4", "250"),
            ("s1", "2048k"),
        ]);
        assert_eq!(c.get_bool("b1"), Ok(Some(false)));
        assert_eq!(c.get_bool("missing"), Ok(None));
        assert_eq!(c.get_int("i1"), Ok(Some(7)));
        assert_eq!(c.get_double("d1"), Ok(Some(0.4)));
        assert_eq!(c.get_double("d2"), Ok(Some(0.5)));
        assert_eq!(c.get_double("d3"), Ok(Some(1.0)));
        assert_eq!(c.get_time_ms("t1"), Ok(Some(120_000)));
        assert_eq!(c.get_time_ms("t2"), Ok(Some(1)));
        assert_eq!(c.get_time_ms("t3"), Ok(Some(10_800_000)));
        assert_eq!(c.get_time_ms("t4"), Ok(Some(250)));
        assert_eq!(c.get_size_mib("s1"), Ok(Some(2)));
        assert_eq!(c.get_byte_size_as_mib("s1"), Ok(Some(2)));
        for bad in ["", "e1", "1e", "0x10", "Infinity", "1,5", "--1"] {
            assert!(parse_java_double(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn selectors_annotations_and_names() {
        let d = demand(&[
            ("spark.kubernetes.node.selector.instance-group", "batch"),
            ("spark.kubernetes.node.selector.zone", "a"),
            ("spark.kubernetes.driver.node.selector.zone", "b"),
            ("spark.kubernetes.executor.node.selector.disk", "ssd"),
            (
                "spark.kubernetes.driver.annotation.spark-executor-count",
                "3",
            ),
            ("spark.kubernetes.executor.annotation.ignored", "x"),
            ("spark.kubernetes.scheduler.name", "spark-scheduler"),
            ("spark.kubernetes.executor.scheduler.name", "exec-scheduler"),
            ("spark.app.id", "spark-123"),
            ("spark.app.name", "pi"),
            ("spark.kubernetes.namespace", "spark"),
            ("spark.kubernetes.allocation.batch.size", "10"),
            ("spark.kubernetes.allocation.batch.delay", "2s"),
        ]);
        assert_eq!(
            d.driver_node_selector,
            map(&[("instance-group", "batch"), ("zone", "b")])
        );
        assert_eq!(
            d.executor_node_selector,
            map(&[("instance-group", "batch"), ("zone", "a"), ("disk", "ssd")])
        );
        assert_eq!(d.driver_annotations, map(&[("spark-executor-count", "3")]));
        assert_eq!(d.driver_scheduler_name.as_deref(), Some("spark-scheduler"));
        assert_eq!(d.executor_scheduler_name.as_deref(), Some("exec-scheduler"));
        assert_eq!(d.app_id.as_deref(), Some("spark-123"));
        assert_eq!(d.app_name.as_deref(), Some("pi"));
        assert_eq!(d.namespace, "spark");
        assert_eq!(
            (d.allocation_batch_size, d.allocation_batch_delay_ms),
            (10, 2000)
        );
    }

    mod props {
        use super::super::*;
        use proptest::collection::btree_map;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parser_never_panics(text in "\\PC{0,200}") {
                let _ = parse_properties(&text);
            }

            #[test]
            fn parser_never_panics_on_escape_heavy_text(text in "[ \\\\\\t\\r\\n=:#!u0-9a-fA-FD8]{0,120}") {
                let _ = parse_properties(&text);
            }

            #[test]
            fn written_maps_read_back(entries in btree_map("\\PC{0,16}|[ \\\\\\t\\r\\n=:#!\\x0c\\x01]{0,6}", "\\PC{0,24}|[ \\\\\\t\\r\\n=:#!\\x0c\\x01]{0,6}", 0..8)) {
                let text = write_properties(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                prop_assert_eq!(parse_properties(&text), Ok(entries));
            }

            #[test]
            fn demand_never_panics(entries in btree_map(
                prop_oneof![
                    Just("spark.executor.memory".to_owned()),
                    Just("spark.executor.memoryOverheadFactor".to_owned()),
                    Just("spark.driver.memoryOverhead".to_owned()),
                    Just("spark.executor.instances".to_owned()),
                    Just("spark.dynamicAllocation.enabled".to_owned()),
                    Just("spark.dynamicAllocation.maxExecutors".to_owned()),
                    Just("spark.executor.resource.gpu.amount".to_owned()),
                    Just("spark.memory.offHeap.size".to_owned()),
                    Just("spark.kubernetes.allocation.batch.delay".to_owned()),
                ],
                "\\PC{0,12}|[0-9]{1,22}[a-z]{0,3}|-?[0-9]{0,5}(\\.[0-9]{0,20})?(e[0-9]{1,4})?",
                0..9,
            )) {
                let conf = SparkConf::from(entries);
                let _ = conf.demand(&GpuResourceNames::default());
            }
        }
    }
}
