//! `.properties` text read and written as `java.util.Properties` does: Spark's `spark.properties`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn writer_escapes_what_the_reader_would_change() {
        let written = write_properties([(" k=:#!", " v\t\n\\"), ("a", "b c")]);
        assert_eq!(written, "\\ k\\=\\:\\#\\!=\\ v\\t\\n\\\\\na=b c\n");
        assert_eq!(
            parse_properties(&written).unwrap(),
            map(&[(" k=:#!", " v\t\n\\"), ("a", "b c")])
        );
        assert_eq!(write_properties([("c", "\u{1}")]), "c=\\u0001\n");
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
        }
    }
}
