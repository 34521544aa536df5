//! Validity windows (not-before / not-after) computed from a caller-supplied `now`.

use time::{Duration, OffsetDateTime};

use crate::error::{CertError, Result};
use crate::instant::format_instant;

/// Default CA lifetime: 10 years ([`Validity::ca_default`], `sparkgang-certs ca`).
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// Default serving certificate lifetime: 1 year ([`Validity::serving_default`]).
pub const DEFAULT_SERVING_DAYS: u32 = 365;

/// Longest lifetime accepted by [`Validity::for_days`]: 100 years.
pub const MAX_DAYS: u32 = 36_500;

/// How far before `now` a certificate made by [`Validity::for_days`] starts to be valid, so that
/// peers whose clocks are a little behind accept it at once.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::minutes(5);

/// The period in which a certificate is valid. Always non-empty, with whole seconds (X.509
/// times have no fractions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    /// A validity window with explicit bounds; `not_after` must be later than `not_before`.
    pub fn new(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Self> {
        let not_before = whole_seconds_utc(not_before);
        let not_after = whole_seconds_utc(not_after);
        if not_after <= not_before {
            return Err(CertError::InvalidValidity {
                reason: format!(
                    "not-after {} is not later than not-before {}",
                    format_instant(not_after),
                    format_instant(not_before)
                ),
            });
        }
        Ok(Self {
            not_before,
            not_after,
        })
    }

    /// `days` days from `now`, starting [`CLOCK_SKEW_ALLOWANCE`] before `now`.
    pub fn for_days(now: OffsetDateTime, days: u32) -> Result<Self> {
        if days == 0 || days > MAX_DAYS {
            return Err(CertError::InvalidValidity {
                reason: format!("days must be between 1 and {MAX_DAYS}, got {days}"),
            });
        }
        Self::new(
            now - CLOCK_SKEW_ALLOWANCE,
            now + Duration::days(i64::from(days)),
        )
    }

    /// The default CA lifetime ([`DEFAULT_CA_DAYS`]) from `now`.
    pub fn ca_default(now: OffsetDateTime) -> Self {
        Self::default_days(now, DEFAULT_CA_DAYS)
    }

    /// The default serving certificate lifetime ([`DEFAULT_SERVING_DAYS`]) from `now`.
    pub fn serving_default(now: OffsetDateTime) -> Self {
        Self::default_days(now, DEFAULT_SERVING_DAYS)
    }

    /// The first instant at which the certificate is valid.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The last instant at which the certificate is valid.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    fn default_days(now: OffsetDateTime, days: u32) -> Self {
        let not_before = whole_seconds_utc(now - CLOCK_SKEW_ALLOWANCE);
        Self {
            not_before,
            not_after: whole_seconds_utc(now + Duration::days(i64::from(days))),
        }
    }
}

fn whole_seconds_utc(instant: OffsetDateTime) -> OffsetDateTime {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    utc - Duration::nanoseconds(i64::from(utc.nanosecond()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn for_days_starts_slightly_before_now_and_drops_fractions() {
        let now = datetime!(2026-11-05 10:00:00.75 UTC);
        let validity = Validity::for_days(now, 365).unwrap();
        assert_eq!(validity.not_before(), datetime!(2026-11-05 09:55:00 UTC));
        assert_eq!(validity.not_after(), datetime!(2027-11-05 10:00:00 UTC));
    }

    #[test]
    fn zero_or_huge_day_counts_are_rejected() {
        let now = datetime!(2026-11-05 10:00 UTC);
        assert!(Validity::for_days(now, 0).is_err());
        assert!(Validity::for_days(now, MAX_DAYS + 1).is_err());
    }

    #[test]
    fn reversed_window_is_rejected() {
        let err = Validity::new(
            datetime!(2026-11-05 10:00 UTC),
            datetime!(2026-11-05 10:00 UTC),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not later than"), "{err}");
    }

    #[test]
    fn defaults_match_the_documented_lifetimes() {
        let now = datetime!(2026-11-05 10:00 UTC);
        assert_eq!(
            Validity::ca_default(now),
            Validity::for_days(now, DEFAULT_CA_DAYS).unwrap()
        );
        assert_eq!(
            Validity::serving_default(now),
            Validity::for_days(now, DEFAULT_SERVING_DAYS).unwrap()
        );
    }
}
