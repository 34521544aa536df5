//! Instants as text for messages, shared by the error type and the validity windows.

use time::OffsetDateTime;

/// `instant` as RFC 3339 text (for example `2027-11-05T10:00:00Z`), for messages.
pub fn format_instant(instant: OffsetDateTime) -> String {
    instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| instant.to_string())
}
