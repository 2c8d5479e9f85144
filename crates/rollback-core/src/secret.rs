//! Secrets from the configuration: database URLs with passwords, deploy hook URLs, webhook
//! URLs, `.env` values.
//!
//! A [`Secret`] can only be read through [`Secret::expose`]. Its `Debug`, `Display` and
//! `Serialize` print [`REDACTED`], so a secret cannot reach a log line, a plan, a report, a JSON
//! result or an error message by accident. [`redact_in`] scrubs known secret values out of
//! text that came from elsewhere (a child process's stderr, an HTTP error).

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
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first `/`, whitespace or quote; credentials end at its last `@`.
        let end = tail.find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"').unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
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
    }
}
