//! Secrets from the configuration: database URLs with passwords, deploy hook URLs, webhook
//! URLs, `.env` values.
//!
//! A [`Secret`] can only be read through [`Secret::expose`]. Its `Debug`, `Display` and
//! `Serialize` print [`REDACTED`], so a secret cannot reach a log line, a plan, a report, a JSON
//! result or an error message by accident. [`redact_in`] scrubs known secret values out of
//! text that came from elsewhere (a child process's stderr, an HTTP error); [`secret_parts`]
//! adds the parts of a value that may be printed alone (the token of `Bearer TOKEN`, a URL's
//! password), and [`Secrets`] lists the secrets a configuration names, to resolve when text is
//! scrubbed.

use serde::{Deserialize, Serialize};

/// What a secret prints as.
pub const REDACTED: &str = "***";

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only to hand to a connection, a request or a child process.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// `text` with every occurrence of each secret value (of 4 bytes or more) replaced by
/// [`REDACTED`].
pub fn redact_in<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, REDACTED);
        }
    }
    out
}

/// `text` with the credentials of every URL in it (`scheme://user:password@host`) replaced by
/// [`REDACTED`]: for output of programs that may print a remote's URL (git).
pub fn redact_url_credentials(text: &str) -> String {
    redact_urls(text, false)
}

/// `text` with the password of every URL in it replaced by [`REDACTED`], the user name kept
/// (`postgresql://app:***@db/app`, as the database's own messages show it); user info without a
/// password (a token as the user name: `https://TOKEN@host`) is replaced whole.
pub fn redact_url_passwords(text: &str) -> String {
    redact_urls(text, true)
}

fn redact_urls(text: &str, keep_user: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first `/`, whitespace or quote; credentials end at its last `@`.
        let end = tail.find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"').unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                if keep_user && let Some((user, _)) = tail[..at].split_once(':') {
                    out.push_str(user);
                    out.push(':');
                }
                out.push_str(REDACTED);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Authorization schemes whose credential a service may quote alone (`token X has expired`).
const AUTH_SCHEMES: [&str; 8] = ["bearer", "token", "basic", "bot", "apikey", "api-key", "key", "jwt"];

/// `value` and the parts of it that may be printed on their own, each to scrub as a secret:
/// the credential of an `Authorization` value (`Bearer TOKEN` → `TOKEN`; `Basic B64` → its
/// decoded `user:password` and `password`) and the password of a URL (as written and decoded).
pub fn secret_parts(value: &str) -> Vec<String> {
    let mut parts = vec![value.to_owned()];
    let trimmed = value.trim();
    if trimmed != value {
        parts.push(trimmed.to_owned());
    }
    if let Some((scheme, credential)) = trimmed.split_once(' ')
        && AUTH_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme))
    {
        let credential = credential.trim();
        parts.push(credential.to_owned());
        if scheme.eq_ignore_ascii_case("basic")
            && let Some(decoded) = decode_base64(credential).and_then(|b| String::from_utf8(b).ok())
        {
            if let Some((_, password)) = decoded.split_once(':') {
                parts.push(password.to_owned());
            }
            parts.push(decoded);
        }
    }
    if let Some(raw) = url_password(trimmed) {
        parts.push(raw.to_owned());
        parts.push(percent_decode(raw));
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

/// The password exactly as written in a URL's user info (`scheme://user:PASSWORD@host`).
fn url_password(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, p)| p).filter(|p| !p.is_empty())
}

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |at: usize| b.get(at).and_then(|c| char::from(*c).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Base64, standard or URL-safe alphabet (padding optional, whitespace ignored); `None` when
/// it is not base64. The one decoder: a `Basic` credential here, a kubeconfig's data fields.
pub(crate) fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0_u32, 0_u32);
    for c in data.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    Some(out)
}

/// The secrets a configuration holds or names: values written in it, and the environment
/// variables it reads secrets from. [`Secrets::values`] resolves them when text is scrubbed,
/// so a variable set after the configuration was loaded counts too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    inline: Vec<Secret>,
    env: Vec<String>,
}

impl Secrets {
    /// A value written in the configuration.
    pub fn add(&mut self, value: &Secret) {
        if !value.is_empty() && !self.inline.contains(value) {
            self.inline.push(value.clone());
        }
    }

    /// An environment variable a secret is read from.
    pub fn add_env(&mut self, var: &str) {
        let var = var.trim();
        if !var.is_empty() && !self.env.iter().any(|v| v == var) {
            self.env.push(var.to_owned());
        }
    }

    /// Both lists of `other` added to these.
    pub fn extend(&mut self, other: &Secrets) {
        other.inline.iter().for_each(|s| self.add(s));
        other.env.iter().for_each(|v| self.add_env(v));
    }

    /// The values now (variables read from the environment; unset ones give none), with
    /// their [`secret_parts`], longest first: a value that holds another is replaced whole.
    pub fn values(&self) -> Vec<String> {
        let env = self.env.iter().filter_map(|v| std::env::var(v).ok());
        let mut out: Vec<String> =
            self.inline.iter().map(|s| s.expose().to_owned()).chain(env).flat_map(|v| secret_parts(&v)).collect();
        out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out.dedup();
        out
    }
}

/// Why an environment variable gives no secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvProblem {
    /// Not in the environment.
    Unset,
    /// Set to the empty string.
    Empty,
    /// Set, but not valid UTF-8.
    NotUnicode,
}

impl std::fmt::Display for EnvProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvProblem::Unset => "is not set",
            EnvProblem::Empty => "is empty",
            EnvProblem::NotUnicode => "is not valid UTF-8",
        })
    }
}

impl From<std::env::VarError> for EnvProblem {
    fn from(e: std::env::VarError) -> Self {
        match e {
            std::env::VarError::NotPresent => EnvProblem::Unset,
            std::env::VarError::NotUnicode(_) => EnvProblem::NotUnicode,
        }
    }
}

/// An environment variable that gives no value, and why: "the environment variable `VAR` is
/// not set" (or "is empty", "is not valid UTF-8").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the environment variable `{var}` {problem}")]
pub struct EnvError {
    /// The variable.
    pub var: String,
    /// Why it gives no value.
    pub problem: EnvProblem,
}

/// The value of the environment variable `var`, which must be set and UTF-8; it may be empty.
pub fn env_value(var: &str) -> Result<String, EnvError> {
    std::env::var(var).map_err(|e| EnvError { var: var.to_owned(), problem: e.into() })
}

/// The value of the environment variable `var`, which must be set and not empty.
pub fn from_env(var: &str) -> Result<Secret, EnvError> {
    match env_value(var)? {
        val if val.is_empty() => Err(EnvError { var: var.to_owned(), problem: EnvProblem::Empty }),
        val => Ok(Secret(val)),
    }
}

/// Reads a secret from the environment variable `var`, or takes `inline`; exactly one of the
/// two should be set. `Ok(None)` when neither is.
pub fn from_inline_or_env(inline: Option<&Secret>, var: Option<&str>) -> Result<Option<Secret>, String> {
    match (inline, var) {
        (Some(_), Some(v)) => Err(format!("set either the value or `{v}` in the environment, not both")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(v)) => from_env(v).map(Some).map_err(|e| e.to_string()),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2-very-secret");
        assert_eq!(redact_in("url https://x/hunter2-very-secret/y", ["hunter2-very-secret"]), "url https://x/***/y");
        assert_eq!(redact_in("abc", ["a"]), "abc");
        assert_eq!(
            redact_url_credentials("fatal: unable to access 'https://deploy:tok3n@git.example.com/app.git/': 403"),
            "fatal: unable to access 'https://***@git.example.com/app.git/': 403"
        );
        assert_eq!(redact_url_credentials("ssh://git@host/x and http://h/p"), "ssh://***@host/x and http://h/p");
        assert_eq!(
            redact_url_passwords("postgresql://app:pw@db/app, postgresql://app:***@db/app, https://tok@h/"),
            "postgresql://app:***@db/app, postgresql://app:***@db/app, https://***@h/"
        );
    }

    #[test]
    fn parts_that_may_be_printed_alone() {
        assert_eq!(secret_parts("Bearer tok-12345"), ["Bearer tok-12345", "tok-12345"]);
        assert_eq!(secret_parts(" token  tok-12345"), [" token  tok-12345", "token  tok-12345", "tok-12345"]);
        // `alice:s3cret-pw`, base64.
        assert_eq!(
            secret_parts("Basic YWxpY2U6czNjcmV0LXB3"),
            ["Basic YWxpY2U6czNjcmV0LXB3", "YWxpY2U6czNjcmV0LXB3", "s3cret-pw", "alice:s3cret-pw"]
        );
        assert_eq!(
            secret_parts("postgresql://app:p%40ss-word@db:5432/app"),
            ["postgresql://app:p%40ss-word@db:5432/app", "p%40ss-word", "p@ss-word"]
        );
        // Not an auth scheme: the value only.
        assert_eq!(secret_parts("some text"), ["some text"]);
        assert_eq!(decode_base64("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn secrets_resolve_the_environment_when_asked() {
        let mut s = Secrets::default();
        s.add(&Secret::new("Bearer inline-tok-1"));
        s.add_env("FORGE_ROLLBACK_TEST_SECRETS_VAR");
        s.add_env("FORGE_ROLLBACK_TEST_SECRETS_UNSET");
        assert_eq!(s.values(), ["Bearer inline-tok-1", "inline-tok-1"]);
        // SAFETY: nextest runs each test in its own process; no other thread reads it.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("FORGE_ROLLBACK_TEST_SECRETS_VAR", "https://u:pw-from-env@h/");
        }
        assert_eq!(s.values(), ["https://u:pw-from-env@h/", "Bearer inline-tok-1", "inline-tok-1", "pw-from-env"]);
    }
}
