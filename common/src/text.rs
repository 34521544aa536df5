//! Shortening text for messages, warnings and metric labels, always on a character boundary.

use std::borrow::Cow;

/// At most `max` bytes of `s`, cut at a character boundary (for size-limited API fields).
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most `max` characters of `s`; when cut, the last of them is `…`.
pub fn clip_chars(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let cut = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &s[..cut]))
        }
    }
}

/// A user's value quoted for a message, at most `max` characters inside the quotes.
pub fn quoted(value: &str, max: usize) -> String {
    format!("{:?}", clip_chars(value, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_bytes_never_splits_a_character() {
        assert_eq!(truncate_bytes("abc", 3), "abc");
        assert_eq!(truncate_bytes("abcd", 3), "abc");
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("ééé", 5), "éé");
        assert_eq!(truncate_bytes("", 0), "");
    }

    #[test]
    fn clip_chars_counts_characters_and_marks_the_cut() {
        assert_eq!(clip_chars("abc", 3), "abc");
        assert_eq!(clip_chars("abcd", 3), "ab…");
        assert_eq!(clip_chars("ééééé", 4).chars().count(), 4);
        assert_eq!(clip_chars("ééééé", 4), "ééé…");
        assert!(matches!(clip_chars("short", 10), Cow::Borrowed(_)));
    }

    #[test]
    fn quoted_escapes_and_clips() {
        assert_eq!(quoted("a\"b", 10), "\"a\\\"b\"");
        assert_eq!(quoted("abcdef", 4), "\"abc…\"");
    }
}
