//! Reading dotenv files as the app reads them: shared by the env history, which compares keys
//! and values, and the scrubbing of restart output, which hides the values.
//!
//! The rules are python-dotenv's, which docker compose's env files follow too: a value read
//! differently from the app's loader is a secret left in the restart output.

/// A key and its value.
pub(crate) type Entry = (String, String);

/// The assignments of a dotenv file, in order, each key with its value as python-dotenv reads
/// it:
/// - a UTF-8 byte order mark at the start, blank lines and `#` comments are skipped, and an
///   `export ` prefix dropped; `\r\n` and `\r` are line breaks as `\n` is (Python reads text
///   so);
/// - an unquoted value ends with its line, or where a `#` follows a blank (a comment:
///   `K=abc # rotated` is `abc`), trailing blanks trimmed;
/// - a quoted value ends at its closing quote, on its line or a later one (a PEM key); in
///   double quotes `\n`, `\t`, `\r`, `\a`, `\b`, `\f`, `\v`, `\"`, `\'` and `\\` are escapes,
///   in single quotes `\'` and `\\` only;
/// - keys of letters, digits, `_`, `.` and `-` only: other lines are not assignments, and
///   neither is a line python-dotenv cannot read (a quote never closed, text after the
///   closing quote); reading goes on at the next line.
pub(crate) fn entries(content: &[u8]) -> Vec<Entry> {
    let text = String::from_utf8_lossy(content);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = if text.contains('\r') { text.replace("\r\n", "\n").replace('\r', "\n") } else { text.to_owned() };
    let mut rest = text.as_str();
    let mut out = Vec::new();
    while !rest.is_empty() {
        rest = match binding(rest) {
            Ok((entry, after)) => {
                out.extend(entry);
                after
            }
            Err(at) => next_line(at),
        };
    }
    out
}

/// Reads one binding (or comment, or blank) from the start of `s`: the assignment, if it is
/// one, and the text after it. `Err`: where the text stops being readable.
fn binding(s: &str) -> Result<(Option<Entry>, &str), &str> {
    let s = s.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok((None, next_line(s)));
    }
    let s = match s.strip_prefix("export") {
        Some(after) if after.starts_with(is_blank) => after.trim_start_matches(is_blank),
        _ => s,
    };
    let (key, s) = key(s)?;
    let s = s.trim_start_matches(is_blank);
    let (value, s) = match s.strip_prefix('=') {
        Some(after) => {
            let (value, after) = value(after.trim_start_matches(is_blank))?;
            (Some(value), after)
        }
        None => (None, s),
    };
    let s = s.trim_start_matches(is_blank);
    let s = if s.starts_with('#') { s.trim_start_matches(|c| c != '\n') } else { s };
    let after = match s.strip_prefix('\n') {
        Some(after) => after,
        None if s.is_empty() => s,
        None => return Err(s),
    };
    let valid = key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    Ok((value.filter(|_| valid).map(|v| (key.to_owned(), v)), after))
}

/// A key, bare or in single quotes, and the text after it.
fn key(s: &str) -> Result<(&str, &str), &str> {
    if let Some(quoted) = s.strip_prefix('\'') {
        return match quoted.split_once('\'') {
            Some((key, after)) if !key.is_empty() => Ok((key, after)),
            _ => Err(s),
        };
    }
    let end = s.find(|c: char| c == '=' || c == '#' || c.is_whitespace()).unwrap_or(s.len());
    if end == 0 { Err(s) } else { Ok((&s[..end], &s[end..])) }
}

/// A value, from just after `=` and its blanks, and the text after it.
fn value(s: &str) -> Result<(String, &str), &str> {
    match s.chars().next() {
        Some(q @ ('"' | '\'')) => quoted(s, q),
        None | Some('\n') => Ok((String::new(), s)),
        Some(_) => {
            let end = s.find('\n').unwrap_or(s.len());
            let line = &s[..end];
            // A `#` after a blank starts a comment; a `#` within a word is the value's.
            let mut value = line;
            let mut prev_blank = false;
            for (i, c) in line.char_indices() {
                if c == '#' && prev_blank {
                    value = &line[..i];
                    break;
                }
                prev_blank = c.is_whitespace();
            }
            Ok((value.trim_end().to_owned(), &s[end..]))
        }
    }
}

/// A value in `q` quotes (`s` starts with the opening one), its escapes decoded, and the text
/// after the closing quote. `Err` when it never closes.
fn quoted(s: &str, q: char) -> Result<(String, &str), &str> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, &s[i + c.len_utf8()..]));
        }
        let escaped = match chars.peek().map(|&(_, n)| n) {
            Some(n) if c == '\\' && q == '"' => match n {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                'a' => Some('\u{7}'),
                'b' => Some('\u{8}'),
                'f' => Some('\u{c}'),
                'v' => Some('\u{b}'),
                '"' | '\'' | '\\' => Some(n),
                _ => None,
            },
            Some(n @ ('\'' | '\\')) if c == '\\' => Some(n),
            _ => None,
        };
        match escaped {
            Some(e) => {
                chars.next();
                out.push(e);
            }
            None => out.push(c),
        }
    }
    Err(s)
}

/// The text after the line `s` starts in.
fn next_line(s: &str) -> &str {
    s.find('\n').map_or("", |i| &s[i + 1..])
}

/// A blank within a line: whitespace but a line break.
fn is_blank(c: char) -> bool {
    c.is_whitespace() && c != '\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(String, String)> {
        entries(text.as_bytes())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn an_unquoted_value_ends_at_a_comment_after_a_blank() {
        let text = "SECRET_KEY=abcdEFGH1234 # rotated 2026-01\nURL=http://h/#frag\nTAB=v\t# c\nSPACED=a b  \nEMPTY=\n";
        assert_eq!(
            read(text),
            pairs(&[
                ("SECRET_KEY", "abcdEFGH1234"),
                ("URL", "http://h/#frag"),
                ("TAB", "v"),
                ("SPACED", "a b"),
                ("EMPTY", ""),
            ])
        );
    }

    #[test]
    fn a_quoted_value_may_span_lines() {
        let text = "TLS_PRIVATE_KEY=\"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\"\n\
            CERT='line one\r\nline two' # comment\nAFTER=1\n";
        assert_eq!(
            read(text),
            pairs(&[
                ("TLS_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"),
                ("CERT", "line one\nline two"),
                ("AFTER", "1"),
            ])
        );
    }

    #[test]
    fn escapes_are_read_as_python_dotenv_reads_them() {
        let text = r#"D="a\nb\t\"q\" \\ \$ \'"
S='it\'s \\ \n'
E="ends with \\"
"#;
        assert_eq!(read(text), pairs(&[("D", "a\nb\t\"q\" \\ \\$ '"), ("S", "it's \\ \\n"), ("E", "ends with \\")]));
    }

    #[test]
    fn a_byte_order_mark_and_export_are_dropped() {
        assert_eq!(read("\u{feff}API_TOKEN=tok12345short\n"), pairs(&[("API_TOKEN", "tok12345short")]));
        assert_eq!(
            read("export\tA=1\nexport B = \"2\"\nexportC=3\n'D'=4\n"),
            pairs(&[("A", "1"), ("B", "2"), ("exportC", "3"), ("D", "4")])
        );
    }

    #[test]
    fn lines_that_cannot_be_read_are_skipped_and_reading_goes_on() {
        let text = "bad line\nC=\"x\" trailing\nD:E=5\n# K=v\n  \n=no key\nA='never closed\nB=2\nF=6";
        assert_eq!(read(text), pairs(&[("B", "2"), ("F", "6")]));
    }
}
