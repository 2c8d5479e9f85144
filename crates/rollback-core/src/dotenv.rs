//! Reading dotenv files (`KEY=value` lines): shared by the env history, which compares keys
//! and values, and the scrubbing of restart output, which hides the values.

/// The `KEY=value` lines of a dotenv file, in order: comments and blank lines skipped, an
/// `export ` prefix and one pair of quotes around the value dropped; keys of letters, digits,
/// `_`, `.` and `-` only (other lines are not assignments).
pub(crate) fn entries(content: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(content);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.push((key.to_owned(), value.to_owned()));
    }
    out
}
