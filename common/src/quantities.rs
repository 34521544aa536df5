//! Kubernetes quantities (`500m`, `1.5`, `2432Mi`, `1e3`) and Spark size strings (`4g`, `512m`).
//!
//! Kubernetes quantities follow `k8s.io/apimachinery/pkg/api/resource` exactly: an optional sign,
//! a decimal number (`1`, `1.5`, `.5`, `5.`), then one suffix — binary SI (`Ki` … `Ei`), decimal SI
//! (`n`, `u`, `m`, none, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`).
//! Values are exact (mantissa · 10^scale · 2^pow2) until converted, and conversions round up the
//! way `Quantity.MilliValue()` / `Quantity.Value()` do.

use std::fmt;

/// What a quantity string may look like; quoted in every error.
pub const QUANTITY_FORMS: &str = "a Kubernetes quantity such as 2, 500m, 1.5, 4Gi, 2432Mi, 1e3 or 1k \
     (binary suffixes Ki Mi Gi Ti Pi Ei, decimal suffixes n u m k M G T P E)";

/// What a Spark size string may look like; quoted in every error.
pub const SPARK_SIZE_FORMS: &str = "a Spark size: a whole number with an optional unit b, k, m, g, t or p \
     (also kb, mb, gb, tb, pb; any case), such as 4g, 512m or 2048k; a bare number means MiB";

/// Why a quantity or size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{given:?} is not {accepted}")]
    Syntax {
        given: String,
        accepted: &'static str,
    },
    #[error("{given:?} is too large")]
    TooLarge { given: String },
    #[error("{given:?} is negative; only zero or positive values are accepted")]
    Negative { given: String },
}

/// A parsed Kubernetes quantity: `(-1)^negative · mantissa · 10^scale · 2^pow2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    scale: i32,
    pow2: u32,
}

impl Quantity {
    /// Parses the full Kubernetes quantity grammar. Leading/trailing whitespace is rejected,
    /// as the API server does.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let syntax = || QuantityError::Syntax {
            given: s.to_owned(),
            accepted: QUANTITY_FORMS,
        };
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = bytes.first()
            && (c == b'+' || c == b'-')
        {
            negative = c == b'-';
            i = 1;
        }
        let (mantissa, frac_digits, end) = parse_decimal(bytes, i).ok_or_else(syntax)?;
        let mut scale = -(frac_digits as i32);
        let mut pow2 = 0u32;
        let suffix = &s[end..];
        match suffix {
            "" => {}
            "Ki" => pow2 = 10,
            "Mi" => pow2 = 20,
            "Gi" => pow2 = 30,
            "Ti" => pow2 = 40,
            "Pi" => pow2 = 50,
            "Ei" => pow2 = 60,
            "n" => scale -= 9,
            "u" => scale -= 6,
            "m" => scale -= 3,
            "k" => scale += 3,
            "M" => scale += 6,
            "G" => scale += 9,
            "T" => scale += 12,
            "P" => scale += 15,
            "E" => scale += 18,
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or_else(syntax)?;
                let (exp_neg, digits) = match exp.as_bytes().first() {
                    Some(b'-') => (true, &exp[1..]),
                    Some(b'+') => (false, &exp[1..]),
                    _ => (false, exp),
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                let e: i32 = digits.parse().map_err(|_| QuantityError::TooLarge {
                    given: s.to_owned(),
                })?;
                scale = scale
                    .checked_add(if exp_neg { -e } else { e })
                    .ok_or_else(|| QuantityError::TooLarge {
                        given: s.to_owned(),
                    })?;
            }
        }
        Ok(Quantity {
            negative: negative && mantissa != 0,
            mantissa,
            scale,
            pow2,
        })
    }

    /// True when the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The value in thousandths, rounded up (away from zero for positive values), like
    /// `Quantity.MilliValue()`: `1.0001m` → 2, `0.5` → 500.
    pub fn milli_ceil(&self, given: &str) -> Result<i64, QuantityError> {
        self.scaled_ceil(3, given)
    }

    /// The value as an integer, rounded up, like `Quantity.Value()`: `2.5` → 3, `1k` → 1000.
    pub fn value_ceil(&self, given: &str) -> Result<i64, QuantityError> {
        self.scaled_ceil(0, given)
    }

    fn scaled_ceil(&self, extra_scale: i32, given: &str) -> Result<i64, QuantityError> {
        let too_large = || QuantityError::TooLarge {
            given: given.to_owned(),
        };
        if self.mantissa == 0 {
            return Ok(0);
        }
        let mut num: u128 = self.mantissa;
        num = num
            .checked_shl(self.pow2)
            .filter(|v| v >> self.pow2 == num)
            .ok_or_else(too_large)?;
        let scale = self.scale + extra_scale;
        let magnitude = if scale >= 0 {
            let factor = 10u128.checked_pow(scale as u32).ok_or_else(too_large)?;
            num.checked_mul(factor).ok_or_else(too_large)?
        } else {
            let div = (-scale) as u32;
            if div > 38 {
                // Smaller than any representable unit: rounds to one unit (up) or zero (down).
                if self.negative { 0 } else { 1 }
            } else {
                let d = 10u128.pow(div);
                let q = num / d;
                if !num.is_multiple_of(d) && !self.negative {
                    q + 1
                } else {
                    q
                }
            }
        };
        let v = i64::try_from(magnitude).map_err(|_| too_large())?;
        Ok(if self.negative { -v } else { v })
    }
}

/// Parses `<digits>[.<digits>]` (either side may be empty but not both) from `start`.
/// Returns (mantissa, number of fraction digits, end index).
fn parse_decimal(b: &[u8], start: usize) -> Option<(u128, u32, usize)> {
    let mut i = start;
    let mut mantissa: u128 = 0;
    let mut any_digit = false;
    let mut frac = 0u32;
    let mut seen_dot = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            any_digit = true;
            // Trailing fraction zeros beyond precision are harmless; keep exactness while we can.
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(u128::from(c - b'0'))?;
            if seen_dot {
                frac += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    any_digit.then_some((mantissa, frac, i))
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}e{}*2^{}",
            if self.negative { "-" } else { "" },
            self.mantissa,
            self.scale,
            self.pow2
        )
    }
}

fn parse_non_negative(s: &str) -> Result<Quantity, QuantityError> {
    let q = Quantity::parse(s)?;
    if q.is_negative() {
        return Err(QuantityError::Negative {
            given: s.to_owned(),
        });
    }
    Ok(q)
}

/// CPU in millicores, rounded up: `"1"` → 1000, `"3500m"` → 3500, `"0.1"` → 100.
pub fn parse_cpu_millis(s: &str) -> Result<i64, QuantityError> {
    parse_non_negative(s)?.milli_ceil(s)
}

/// Memory in bytes, rounded up: `"4505Mi"` → 4723834880, `"1G"` → 10^9.
pub fn parse_memory_bytes(s: &str) -> Result<i64, QuantityError> {
    parse_non_negative(s)?.value_ceil(s)
}

/// A whole count (GPUs, executors), rounded up: `"2"` → 2, `"2.5"` → 3, `"1k"` → 1000.
pub fn parse_count(s: &str) -> Result<i64, QuantityError> {
    parse_non_negative(s)?.value_ceil(s)
}

/// Canonical CPU quantity: whole cores when exact (`"2"`), else millicores (`"3500m"`).
pub fn format_cpu_millis(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Canonical memory quantity: the largest binary suffix that divides exactly
/// (`"4505Mi"`, `"1Gi"`), else plain bytes.
pub fn format_memory_bytes(bytes: i64) -> String {
    const UNITS: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    if bytes != 0 {
        for (suffix, shift) in UNITS {
            let unit = 1i64 << shift;
            if bytes % unit == 0 {
                return format!("{}{suffix}", bytes / unit);
            }
        }
    }
    bytes.to_string()
}

/// Parses a Spark size string (Spark's `JavaUtils.byteStringAs`) into whole MiB, rounding down as
/// Spark does for settings declared in MiB (`spark.executor.memory`, `memoryOverhead`, ...):
/// `"4g"` → 4096, `"512m"` → 512, `"2048k"` → 2, `"1t"` → 1048576, `"8"` → 8 (bare = MiB).
pub fn parse_spark_size_mib(s: &str) -> Result<u64, QuantityError> {
    let syntax = || QuantityError::Syntax {
        given: s.to_owned(),
        accepted: SPARK_SIZE_FORMS,
    };
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    if digits.starts_with('-') {
        return Err(QuantityError::Negative {
            given: s.to_owned(),
        });
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let n: u128 = digits.parse().map_err(|_| QuantityError::TooLarge {
        given: s.to_owned(),
    })?;
    let shift_from_bytes: u32 = match unit {
        "b" => 0,
        "k" | "kb" => 10,
        "" | "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        "p" | "pb" => 50,
        _ => return Err(syntax()),
    };
    let bytes = n
        .checked_shl(shift_from_bytes)
        .filter(|v| v >> shift_from_bytes == n)
        .ok_or_else(|| QuantityError::TooLarge {
            given: s.to_owned(),
        })?;
    u64::try_from(bytes >> 20).map_err(|_| QuantityError::TooLarge {
        given: s.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_round_up_to_millicores() {
        for (s, want) in [
            ("1", 1000),
            ("500m", 500),
            ("3500m", 3500),
            ("1.5", 1500),
            (".5", 500),
            ("5.", 5000),
            ("+2", 2000),
            ("0.0001", 1),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("1k", 1_000_000),
            ("100u", 1),
            ("1n", 1),
            ("0", 0),
            ("-0", 0),
        ] {
            assert_eq!(parse_cpu_millis(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn memory_quantities_are_bytes() {
        for (s, want) in [
            ("1408Mi", 1408 << 20),
            ("4505Mi", 4505 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("1.5Gi", 3 << 29),
            ("1", 1),
            ("1e3", 1000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("123Mi", 123 << 20),
            ("1Ki", 1024),
            ("1Ei", 1 << 60),
            ("0.5", 1),
            ("1m", 1),
        ] {
            assert_eq!(parse_memory_bytes(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn malformed_quantities_name_the_input_and_the_accepted_forms() {
        for s in [
            "", "1g", "4gb", "Gi", "1.2.3", "1 Gi", " 1", "1Gi ", "--1", "e3", "1e", "1e+", "1ki",
            "1MiB", "0x10", "1,5", ".",
        ] {
            let err = parse_memory_bytes(s).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("{s:?}")), "{msg}");
            assert!(msg.contains("Kubernetes quantity"), "{msg}");
        }
    }

    #[test]
    fn negative_and_huge_values_are_rejected() {
        assert_eq!(
            parse_cpu_millis("-1"),
            Err(QuantityError::Negative { given: "-1".into() })
        );
        assert!(matches!(
            parse_memory_bytes("9Ei"),
            Err(QuantityError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_memory_bytes("1e400"),
            Err(QuantityError::TooLarge { .. })
        ));
        assert_eq!(parse_memory_bytes("1e-400"), Ok(1));
    }

    #[test]
    fn counts_round_up_like_value() {
        assert_eq!(parse_count("2.5"), Ok(3));
        assert_eq!(parse_count("1k"), Ok(1000));
        assert_eq!(parse_count("3"), Ok(3));
    }

    #[test]
    fn canonical_formatting() {
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_cpu_millis(3500), "3500m");
        assert_eq!(format_cpu_millis(0), "0");
        assert_eq!(format_memory_bytes(4505 << 20), "4505Mi");
        assert_eq!(format_memory_bytes(1 << 30), "1Gi");
        assert_eq!(format_memory_bytes(1000), "1000");
        assert_eq!(format_memory_bytes(0), "0");
    }

    #[test]
    fn spark_sizes_are_mib() {
        for (s, want) in [
            ("4g", 4096),
            ("4G", 4096),
            ("4gb", 4096),
            ("512m", 512),
            ("1t", 1 << 20),
            ("2048k", 2),
            ("1023k", 0),
            ("8", 8),
            ("384m", 384),
            ("1p", 1 << 30),
            ("1048576b", 1),
        ] {
            assert_eq!(parse_spark_size_mib(s), Ok(want), "{s}");
        }
        for s in ["", "g", "1.5g", "4 gib", "4gi", "x", "1e3"] {
            let msg = parse_spark_size_mib(s).unwrap_err().to_string();
            assert!(msg.contains("Spark size"), "{s}: {msg}");
        }
        assert!(matches!(
            parse_spark_size_mib("-1g"),
            Err(QuantityError::Negative { .. })
        ));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsers_never_panic(s in "\\PC{0,24}") {
                let _ = parse_cpu_millis(&s);
                let _ = parse_memory_bytes(&s);
                let _ = parse_count(&s);
                let _ = parse_spark_size_mib(&s);
            }

            #[test]
            fn quantity_like_strings_never_panic(s in "[-+]?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][-+]?[0-9]{0,12}|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?") {
                let _ = parse_cpu_millis(&s);
                let _ = parse_memory_bytes(&s);
            }

            #[test]
            fn cpu_round_trips(m in 0i64..10_000_000_000) {
                prop_assert_eq!(parse_cpu_millis(&format_cpu_millis(m)), Ok(m));
            }

            #[test]
            fn memory_round_trips(b in 0i64..(1i64 << 62)) {
                prop_assert_eq!(parse_memory_bytes(&format_memory_bytes(b)), Ok(b));
            }

            #[test]
            fn spark_sizes_round_trip_in_mib(mib in 0u64..(1u64 << 40)) {
                prop_assert_eq!(parse_spark_size_mib(&format!("{mib}m")), Ok(mib));
                prop_assert_eq!(parse_spark_size_mib(&format!("{mib}")), Ok(mib));
            }
        }
    }
}
