//! How deeply a JSON text nests its arrays and objects, found in one pass over its bytes.
//!
//! serde_json stops at 128 levels with a generic "recursion limit exceeded"; the extender caps
//! request bodies lower and says so. The scan does not validate JSON (the decoder does that
//! after it): it counts `[` and `{` against `]` and `}` outside strings, skipping string
//! contents with their escapes, so brackets inside strings do not count.

/// A JSON text that nests deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("JSON nesting deeper than {max} levels (at byte {offset})")]
pub struct TooDeep {
    /// The cap that was exceeded.
    pub max: usize,
    /// The byte offset of the bracket that opened level `max + 1`.
    pub offset: usize,
}

/// Checks that `json` nests at most `max` levels of arrays and objects (`[]` is one level,
/// `{"a":[1]}` two). Linear in the length, no allocation.
pub fn check_depth(json: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => i = string_end(json, i + 1),
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(TooDeep { max, offset: i });
                }
            }
            // More closers than openers is a syntax error the decoder reports.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the `"` closing the string whose contents start at `from` (or the length of
/// `json` when the string is not closed).
fn string_end(json: &[u8], mut from: usize) -> usize {
    loop {
        match json[from.min(json.len())..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
        {
            None => return json.len(),
            Some(p) if json[from + p] == b'\\' => from += p + 2,
            Some(p) => return from + p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!(
            "{}1{}",
            r#"{"a":["#.repeat(levels / 2),
            "]}".repeat(levels / 2)
        )
    }

    #[test]
    fn counts_arrays_and_objects() {
        assert_eq!(check_depth(b"1", 0), Ok(()));
        assert_eq!(check_depth(b"[]", 1), Ok(()));
        assert_eq!(check_depth(b"[]", 0), Err(TooDeep { max: 0, offset: 0 }));
        assert_eq!(check_depth(br#"{"a":[1]}"#, 2), Ok(()));
        assert_eq!(
            check_depth(br#"{"a":[1]}"#, 1),
            Err(TooDeep { max: 1, offset: 5 })
        );
        // Siblings do not add up.
        assert_eq!(check_depth(b"[[],[],{},[[]]]", 3), Ok(()));
    }

    #[test]
    fn rejects_deep_input_at_the_first_bracket_too_many() {
        let ok = nested(64);
        assert_eq!(check_depth(ok.as_bytes(), 64), Ok(()));
        let deep = nested(66);
        let err = check_depth(deep.as_bytes(), 64).unwrap_err();
        assert_eq!(err.max, 64);
        assert_eq!(&deep[err.offset..err.offset + 1], "{");
        assert_eq!(
            err.to_string().split(" (").next(),
            Some("JSON nesting deeper than 64 levels")
        );
        // Far beyond serde_json's own limit, and without closers (a truncated attack body).
        assert!(check_depth(&[b'['; 100_000], 64).is_err());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = format!(
            r#"{{"k":"{}","[{{":"\"[[[","e":"\\","x":[1]}}"#,
            "[{".repeat(500)
        );
        assert_eq!(check_depth(body.as_bytes(), 2), Ok(()));
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        // An escaped quote does not end the string; an escaped backslash before a quote does.
        assert_eq!(check_depth(br#"["\"[[[", "x"]"#, 1), Ok(()));
        assert_eq!(
            check_depth(br#"["\\", [[]]]"#, 2).map_err(|e| e.offset),
            Err(8)
        );
    }

    #[test]
    fn unterminated_strings_and_stray_closers_do_not_panic() {
        for body in [
            &b"\""[..],
            b"\"\\",
            b"[\"abc",
            b"]]]][",
            b"{\"a\\",
            b"\\\"[",
        ] {
            let _ = check_depth(body, 1);
        }
        assert_eq!(check_depth(b"]]][", 1), Ok(()));
        assert!(check_depth(b"]]][[", 1).is_err());
    }
}
