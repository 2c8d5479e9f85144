//! What a check's reason may show: no secret, no control character.
//!
//! A reason quotes text the tool does not control (a service's error page, a program's
//! stderr, a WebSocket close frame) and ends up on the terminal, in `run.log`, the journal and
//! the incident report. So every reason is scrubbed of the secrets of the whole configuration
//! (the checks' own headers and variables, the database URL, the deploy and webhook secrets),
//! and the credentials of any URL in it; and control characters are escaped, so that a
//! checked service cannot repaint the operator's terminal (`ESC[2K`, a fake `[ok]` line).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::{CheckConfig, CheckSpec};
use super::template::Template;
use crate::secret::{Secret, Secrets, url_passwords};

/// The secrets the checks hold or name: header values, `headers_env` and `vars_env`
/// variables, every `{{env:NAME}}` in their templates, passwords in their URLs.
pub(crate) fn check_secrets(checks: &[CheckConfig]) -> Secrets {
    let mut out = Secrets::default();
    for (i, check) in checks.iter().enumerate() {
        let headers = |out: &mut Secrets, key: &str, headers: &BTreeMap<String, Secret>| {
            for (name, value) in headers {
                out.add(&format!("{key}.headers.{name}"), value);
                env_templates(out, value.expose());
            }
        };
        let key = format!("checks[{i}]");
        match &check.spec {
            CheckSpec::Http(h) => {
                headers(&mut out, &key, &h.headers);
                h.headers_env.values().for_each(|v| out.add_env(v));
            }
            CheckSpec::Flow(f) => {
                f.vars_env.values().for_each(|v| out.add_env(v));
                for (j, step) in f.steps.iter().enumerate() {
                    headers(&mut out, &format!("{key}.steps[{j}]"), &step.headers);
                }
                for (j, step) in f.teardown.iter().enumerate() {
                    headers(&mut out, &format!("{key}.teardown[{j}]"), &step.headers);
                }
            }
            _ => {}
        }
        // Every other string of the check (header values serialize as `***`): its templates'
        // variables, and the password of each URL in it. Not the string itself: a URL with
        // an `@` in its path or query (`/users/@me`, `?to=ops@example.com`) is no secret,
        // and a reason quoting it must stay readable.
        if let Ok(value) = serde_json::to_value(&check.spec) {
            visit_strings(&value, key, &mut |key, s| {
                env_templates(&mut out, s);
                for password in url_passwords(s) {
                    out.add(&key, &Secret::new(password));
                }
            });
        }
    }
    out
}

/// Scrubs text a program printed outside the checks (a `[[restart]]` command's stderr) as a
/// check's reason is: of the `known` secret values (the configuration's and the checks',
/// [`known_secrets`], and whatever else the caller knows the program may print), of URL
/// passwords, and of control characters.
pub(crate) fn scrubber(known: Vec<String>) -> impl Fn(&str) -> String {
    let vars = super::template::Vars::with_known(known.into());
    move |text: &str| escape_controls(&vars.redact(text))
}

/// Scrubs the file at `path` in place: every occurrence of the `secrets` (of at least 4
/// bytes; a short one as a word: as [`crate::secret::redact_in`] scrubs) becomes as many `*`, every control
/// character but line breaks and tabs a `?` (ESC, BEL; C1 as `??`). The file keeps its
/// length, so what a program still running appends to it lands where it would have. For the
/// output files of a `[[restart]]` program, in the run's folder: what was written when this
/// runs is scrubbed, what a server it started writes later is that server's log.
pub(crate) fn scrub_file(path: &std::path::Path, secrets: &[String]) -> Result<(), crate::fsutil::IoError> {
    use std::os::unix::fs::FileExt;
    let secrets: Vec<&[u8]> = secrets.iter().map(String::as_bytes).filter(|s| s.len() >= 4).collect();
    let (file, meta) = crate::fsutil::open_private(path, std::fs::OpenOptions::new().read(true).write(true), "scrub")?;
    let end = meta.len();
    let io = |e| crate::fsutil::IoError::new("scrub", path, e);
    // Windows that overlap by the longest secret less one byte (and a C1 control's first
    // byte): whatever straddles two windows is whole in the second.
    let overlap = secrets.iter().map(|s| s.len()).max().unwrap_or(2).max(2) - 1;
    let mut buf = vec![0_u8; 64 * 1024 + overlap];
    let mut at = 0_u64;
    while at < end {
        let len = usize::try_from((end - at).min(buf.len() as u64)).unwrap_or(buf.len());
        let window = &mut buf[..len];
        file.read_exact_at(window, at).map_err(io)?;
        let read = window.to_vec();
        for secret in &secrets {
            let mut i = 0;
            while i + secret.len() <= window.len() {
                if crate::secret::secret_at(window, i, secret) {
                    window[i..i + secret.len()].fill(b'*');
                    i += secret.len();
                } else {
                    i += 1;
                }
            }
        }
        for i in 0..window.len() {
            let b = window[i];
            if (b < 0x20 && !matches!(b, b'\n' | b'\t' | b'\r')) || b == 0x7f {
                window[i] = b'?';
            } else if b == 0xc2 && window.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) {
                window[i..i + 2].fill(b'?');
            }
        }
        // Only the bytes changed are written: nothing else is touched.
        let mut i = 0;
        while i < len {
            if window[i] == read[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < len && window[i] != read[i] {
                i += 1;
            }
            file.write_all_at(&window[start..i], at + start as u64).map_err(io)?;
        }
        if len < buf.len() {
            break;
        }
        at += (buf.len() - overlap) as u64;
    }
    Ok(())
}

/// The values in dotenv text (`KEY=value`, `export KEY=value`, quoted or not; the lines
/// [`crate::dotenv::entries`] reads) that may be secret, to scrub from a restart program's
/// output: the value of a key that names a secret ([`SECRET_KEY_WORDS`]), a value that reads
/// like a generated credential ([`looks_generated`]), and the password of a URL in any value.
/// `PORT=8000`, `APP_ENV=production`, `DB_HOST=localhost` or `LOG_LEVEL=info` are left: hidden,
/// every `8000` and `info` of an outage's messages would go, with what they say.
///
/// A value of several lines (a PEM key) is scrubbed whole and line by line, each line trimmed,
/// since a program may print one line of it: every line of a secret value, and any line that
/// reads like a generated credential on its own. A PEM's armour lines (`-----BEGIN PRIVATE
/// KEY-----`) say what it is, not what it holds: they are left.
pub(crate) fn dotenv_values(content: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (key, value) in crate::dotenv::entries(content) {
        let mut secret: Vec<String> = crate::secret::url_passwords(&value);
        let named = names_a_secret(&key);
        if value.contains('\n') {
            let lines = value.lines().map(str::trim).filter(|l| !l.starts_with("-----"));
            secret.extend(lines.filter(|l| named || looks_generated(l)).map(str::to_owned));
        }
        if named || looks_generated(&value) {
            secret.push(value);
        }
        for value in secret {
            if value.len() >= MIN_ENV_SECRET_BYTES && !out.contains(&value) {
                out.push(value);
            }
        }
    }
    out
}

/// The shortest `[env]` value scrubbed from a restart program's output.
const MIN_ENV_SECRET_BYTES: usize = 4;

/// Words that make an `[env]` key name a secret, matched in its upper case anywhere in it
/// (`STRIPE_KEY`, `GITHUB_TOKEN`, `DB_PASSWORD`, `SENTRY_DSN`, `SESSION_COOKIE_SECRET`).
const SECRET_KEY_WORDS: [&str; 13] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASS",
    "PWD",
    "AUTH",
    "CREDENTIAL",
    "PRIVATE",
    "SALT",
    "SIGNATURE",
    "DSN",
    "COOKIE",
    "SESSION",
];

fn names_a_secret(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    SECRET_KEY_WORDS.iter().any(|w| key.contains(w))
}

/// A value that reads like a generated credential whatever its key is called: 16 bytes or
/// more without a blank, holding both letters and digits, and not a URL or an absolute path
/// (`sk_live_4eC39HqLyjWDarjt`, a hex or base64 key).
fn looks_generated(value: &str) -> bool {
    value.len() >= 16
        && !value.contains(char::is_whitespace)
        && value.contains(|c: char| c.is_ascii_alphabetic())
        && value.contains(|c: char| c.is_ascii_digit())
        && !value.contains("://")
        && !value.starts_with('/')
}

/// The values of every secret the configuration names (`settings.secrets`, filled when it is
/// loaded) and the checks hold, the environment read now.
pub(crate) fn known_secrets(settings: &super::config::VerifySettings, checks: &[CheckConfig]) -> Arc<[String]> {
    all_secrets(settings, checks).values().into()
}

/// Every secret the configuration names: `settings.secrets` and the checks'.
pub(crate) fn all_secrets(settings: &super::config::VerifySettings, checks: &[CheckConfig]) -> Secrets {
    let mut secrets = settings.secrets.clone();
    secrets.extend(&check_secrets(checks));
    secrets
}

/// Calls `f` with each string in `v` and its key (`checks[0].steps[1].url`), `key` being `v`'s.
fn visit_strings(v: &serde_json::Value, key: String, f: &mut impl FnMut(String, &str)) {
    match v {
        serde_json::Value::String(s) => f(key, s),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                visit_strings(x, format!("{key}[{i}]"), f);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                visit_strings(x, format!("{key}.{k}"), f);
            }
        }
        _ => {}
    }
}

/// The variables of the `{{env:NAME}}` templates in `text`.
fn env_templates(out: &mut Secrets, text: &str) {
    if let Ok(t) = Template::parse(text) {
        t.variables().filter_map(|v| v.strip_prefix("env:")).for_each(|v| out.add_env(v));
    }
}

/// `text` with control characters escaped (`\u{1b}`): line breaks and tabs become a space,
/// the rest (ESC, BEL, DEL, C1) visible escapes.
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !c.is_control() {
            out.push(c);
        } else if c.is_whitespace() {
            out.push(' ');
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_scrubbed_in_place_keeping_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        // The secret straddles the first two windows.
        let mut text = vec![b'.'; 64 * 1024 - 3];
        text.extend_from_slice(b"sk_live_123 \x1b[2K ok\tdone\n\xc2\x9b\n");
        std::fs::write(&path, &text).unwrap();
        scrub_file(&path, &["sk_live_123".to_owned(), "abc".to_owned()]).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), text.len());
        assert_eq!(&got[64 * 1024 - 3..], b"*********** ?[2K ok\tdone\n??\n");
    }

    #[test]
    fn dotenv_values_are_read_unquoted_and_short_ones_left() {
        let text = b"# comment\nSTRIPE_KEY=sk_live_abc\nexport TOKEN = \"quoted value\"\nDB_PASS='single'\nAPI_KEY=1\n\nnot a line\n";
        assert_eq!(dotenv_values(text), ["sk_live_abc", "quoted value", "single"]);
    }

    #[test]
    fn dotenv_values_are_read_as_the_app_reads_them() {
        let text = b"\xef\xbb\xbfAPI_TOKEN=tok12345short\nSECRET_KEY=abcdEFGH1234 # rotated 2026-01\n\
            TLS_PRIVATE_KEY=\"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\nab\n-----END PRIVATE KEY-----\"\n\
            CA_BUNDLE=\"-----BEGIN CERTIFICATE-----\n  MIIDdzCCAl+gAwIBAgIEc3x9\n-----END CERTIFICATE-----\"\nPORT=8000\n";
        assert_eq!(
            dotenv_values(text),
            [
                "tok12345short",
                "abcdEFGH1234",
                "MIIEvQIBADANBgkq",
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\nab\n-----END PRIVATE KEY-----",
                "MIIDdzCCAl+gAwIBAgIEc3x9",
            ]
        );
        let scrub = scrubber(dotenv_values(text));
        assert_eq!(scrub("bad PEM line MIIEvQIBADANBgkq"), "bad PEM line ***");
    }

    #[test]
    fn dotenv_values_that_say_what_failed_are_left() {
        let text = b"PORT=8000\nDEBUG=true\nAPP_ENV=production\nLOG_LEVEL=info\nDB_HOST=localhost\n\
            DATA_DIR=/var/lib/app/2024-uploads-v2\nSTATUS_URL=https://status.example.com/v1\n\
            UPSTREAM=ab12CD34ef56GH78ij90\nDATABASE_URL=postgresql://app:pa?ss-77@db:5432/app\n";
        assert_eq!(dotenv_values(text), ["ab12CD34ef56GH78ij90", "pa?ss-77"]);
        assert!(names_a_secret("session_cookie_secret") && names_a_secret("SENTRY_DSN"));
        assert!(!names_a_secret("APP_ENV") && !names_a_secret("LOG_LEVEL"));
    }

    #[test]
    fn controls_are_escaped_and_whitespace_folded() {
        assert_eq!(escape_controls("plain text"), "plain text");
        assert_eq!(escape_controls("a\tb\nc"), "a b c");
        assert_eq!(
            escape_controls("\u{1b}[2K\u{1b}[32m[ok]\u{7}\u{9b}x\u{7f}"),
            "\\u{1b}[2K\\u{1b}[32m[ok]\\u{7}\\u{9b}x\\u{7f}"
        );
    }
}
