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

use std::ffi::OsString;

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

/// The shortest secret [`redact_in`] replaces, in bytes. Shorter ones would turn every
/// `ok`, `db` or `200` of a reason into `***`; a configuration holding one is warned about
/// when it is loaded ([`Secrets::too_short`]).
pub const MIN_REDACTED_LEN: usize = 4;

/// A secret shorter than this, in bytes, is scrubbed only where it stands as a word of its own
/// ([`secret_at`]): the stock `postgres:postgres` or a Basic `user:pass` would otherwise turn
/// every `postgresql://` into `***ql://` and every `passed` into `***ed`. A longer one is
/// scrubbed wherever it is: no ordinary word holds it.
pub const WHOLE_WORD_BELOW: usize = 12;

/// `text` with every occurrence of each secret value (of [`MIN_REDACTED_LEN`] bytes or more)
/// replaced by [`REDACTED`]; of a short one ([`WHOLE_WORD_BELOW`]), every occurrence as a word.
pub fn redact_in<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= MIN_REDACTED_LEN && out.contains(s) {
            out = replace_secret(&out, s);
        }
    }
    out
}

fn replace_secret(text: &str, secret: &str) -> String {
    let step = secret.chars().next().map_or(1, char::len_utf8);
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(found) = text[from..].find(secret) {
        let at = from + found;
        if secret_at(text.as_bytes(), at, secret.as_bytes()) {
            out.push_str(&text[copied..at]);
            out.push_str(REDACTED);
            copied = at + secret.len();
            from = copied;
        } else {
            from = at + step;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether `secret` is at `hay[at..]` as it is scrubbed: anywhere when it is long
/// ([`WHOLE_WORD_BELOW`]); a short one only where no letter, digit or `_` touches it on a side
/// where it begins or ends with one (`role "postgres"`, not `postgresql`). Nothing touches it
/// beyond `hay`'s edges: in a window of a longer text, a word cut at the edge is scrubbed.
pub(crate) fn secret_at(hay: &[u8], at: usize, secret: &[u8]) -> bool {
    if secret.is_empty() || !hay[at..].starts_with(secret) {
        return false;
    }
    if secret.len() >= WHOLE_WORD_BELOW {
        return true;
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let end = at + secret.len();
    let touches_before = at > 0 && word(hay[at - 1]) && word(secret[0]);
    let touches_after = end < hay.len() && word(hay[end]) && word(secret[secret.len() - 1]);
    !touches_before && !touches_after
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
        let end = authority_end(tail);
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

/// Where the authority of a URL ends in `rest`, the text after its `://`: at the first `/`,
/// `?`, `#`, whitespace or quote after its credentials, which end at its last `@`; an `@` in
/// the path, the query or the fragment (`?email=ops@example.com`) is not one of them.
///
/// A password may hold a literal `?`, `#` or `@`, as libpq reads a URL (everything up to the
/// `@` before the path) and SQLAlchemy too (`postgresql://app:pa?ss@db/app` connects): when
/// the text before the first `@` is `user:...` (a user without `?` or `#`), the credentials
/// run to the last `@` before the first `?` or `#` that follows that first `@`.
fn authority_end(rest: &str) -> usize {
    let hard = rest.find(|c: char| matches!(c, '/' | '\'' | '"') || c.is_whitespace()).unwrap_or(rest.len());
    let candidate = &rest[..hard];
    let soft = |from: usize| candidate[from..].find(['?', '#']).map_or(hard, |i| from + i);
    match candidate.find('@') {
        Some(first_at) if candidate[..first_at].split_once(':').is_some_and(|(user, _)| !user.contains(['?', '#'])) => {
            let last_at = candidate[..soft(first_at)].rfind('@').unwrap_or(first_at);
            soft(last_at)
        }
        _ => soft(0),
    }
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
        // Not UTF-8 (a Latin-1 password): as a reason shows it, invalid bytes as U+FFFD.
        if scheme.eq_ignore_ascii_case("basic")
            && let Some(decoded) = decode_base64(credential).map(|b| String::from_utf8_lossy(&b).into_owned())
        {
            if let Some((_, password)) = decoded.split_once(':') {
                parts.push(password.to_owned());
            }
            parts.push(decoded);
        }
    }
    parts.extend(url_passwords(trimmed));
    parts.retain(|p| !p.trim().is_empty());
    parts
}

/// The password of every URL in `text` (`scheme://user:PASSWORD@host`), as written and
/// percent-decoded: what of a string that holds URLs is secret (not the URL, nor the text
/// around it).
pub(crate) fn url_passwords(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        rest = &rest[i + 3..];
        let authority = &rest[..authority_end(rest)];
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, raw)) = userinfo.split_once(':')
            && !raw.is_empty()
        {
            out.push(raw.to_owned());
            out.push(percent_decode(raw));
        }
        rest = &rest[authority.len()..];
    }
    out
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
    /// Where each value is written (`database.url`), and the value.
    inline: Vec<(String, Secret)>,
    env: Vec<String>,
}

impl Secrets {
    /// A value written in the configuration at `key` (`database.url`, named in warnings).
    pub fn add(&mut self, key: &str, value: &Secret) {
        if !value.is_empty() && !self.inline.iter().any(|(_, v)| v == value) {
            self.inline.push((key.to_owned(), value.clone()));
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
        other.inline.iter().for_each(|(k, s)| self.add(k, s));
        other.env.iter().for_each(|v| self.add_env(v));
    }

    /// The values now (variables read from the environment; unset ones give none), with
    /// their [`secret_parts`], longest first: a value that holds another is replaced whole.
    pub fn values(&self) -> Vec<String> {
        self.values_with(&|var| std::env::var_os(var))
    }

    /// [`Secrets::values`], the variables read through `env`. A value that is not UTF-8
    /// counts as text shows it (invalid bytes as U+FFFD, as a program's output is read), so
    /// it is scrubbed rather than skipped.
    fn values_with(&self, env: &dyn Fn(&str) -> Option<OsString>) -> Vec<String> {
        let mut out: Vec<String> = self.resolved(env).into_iter().flat_map(|(_, v)| secret_parts(&v)).collect();
        out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out.dedup();
        out
    }

    /// Each value now and where it comes from (`` `database.url` ``, "the environment
    /// variable `X`"); unset variables give none.
    fn resolved(&self, env: &dyn Fn(&str) -> Option<OsString>) -> Vec<(String, String)> {
        let inline = self.inline.iter().map(|(k, s)| (format!("`{k}`"), s.expose().to_owned()));
        let env = self.env.iter().filter_map(|var| {
            env(var).map(|v| (format!("the environment variable `{var}`"), v.to_string_lossy().into_owned()))
        });
        inline.chain(env).filter(|(_, v)| !v.is_empty()).collect()
    }

    /// One warning for each secret that is, or holds a password or token that is, shorter
    /// than [`MIN_REDACTED_LEN`]: [`redact_in`] leaves it as written in check reasons and
    /// restart output. The environment is read now.
    pub fn too_short(&self) -> Vec<String> {
        self.too_short_with(&|var| std::env::var_os(var))
    }

    fn too_short_with(&self, env: &dyn Fn(&str) -> Option<OsString>) -> Vec<String> {
        self.resolved(env)
            .into_iter()
            .filter(|(_, v)| secret_parts(v).iter().any(|p| p.len() < MIN_REDACTED_LEN))
            .map(|(place, _)| {
                format!(
                    "the secret in {place} (or its password or token) is shorter than {MIN_REDACTED_LEN} bytes: too short to be scrubbed, it shows as written in check reasons and restart output; use a longer one"
                )
            })
            .collect()
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
    fn a_short_secret_is_scrubbed_as_a_word_and_a_long_one_anywhere() {
        assert_eq!(
            redact_in("postgresql postgres _postgres postgres1 (postgres) postgres", ["postgres"]),
            "postgresql *** _postgres postgres1 (***) ***"
        );
        // One that begins or ends with punctuation needs no boundary on that side.
        assert_eq!(redact_in("a:pw-1:b x-pw-1:y", [":pw-1:"]), "a***b x-pw-1:y");
        assert_eq!(redact_in("idLONGSECRET-123456z", ["LONGSECRET-123456"]), "id***z");
        // Non-ASCII around and in it.
        assert_eq!(redact_in("é-p\u{e4}ss-é", ["p\u{e4}ss"]), "é-***-é");
        assert_eq!(redact_in("pässpäss päss", ["päss"]), "pässpäss ***");
    }

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
    fn an_at_in_a_query_or_a_fragment_is_no_credential() {
        for text in [
            "https://h?email=ops@example.com",
            "https://h/?email=ops@example.com",
            "https://status.example.com#ops@example.com",
            "https://h/users/@me",
        ] {
            assert_eq!(redact_url_passwords(text), text);
            assert_eq!(redact_url_credentials(text), text);
        }
        assert_eq!(
            redact_url_passwords("postgresql://app:pw@db?sslmode=require&x=a@b"),
            "postgresql://app:***@db?sslmode=require&x=a@b"
        );
    }

    #[test]
    fn a_password_may_hold_a_question_mark_a_hash_or_an_at() {
        for (url, password) in [
            ("postgresql://app:pa?ss@db/app", "pa?ss"),
            ("postgresql://app:pa#ss@db:5432/app?sslmode=require", "pa#ss"),
            ("postgresql://app:p@ss@db?x=a@b", "p@ss"),
            ("postgresql://app:p?s@s@db", "p?s@s"),
            ("mysql://app:%3Fpw?@db", "%3Fpw?"),
        ] {
            let redacted = redact_url_passwords(&format!("could not connect: {url} (timeout)"));
            assert!(!redacted.contains(password), "{redacted}");
            assert!(redacted.contains("app:***@"), "{redacted}");
            assert!(redacted.ends_with(" (timeout)"), "{redacted}");
            assert!(url_passwords(url).contains(&password.to_owned()), "{url}: {:?}", url_passwords(url));
        }
        // A port and a query with an `@` in it read as credentials: more hidden, nothing shown.
        assert_eq!(redact_url_passwords("https://h:8080?to=ops@x"), "https://h:***@x");
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
        use std::os::unix::ffi::OsStringExt;
        let mut s = Secrets::default();
        s.add("checks[0].headers.Authorization", &Secret::new("Bearer inline-tok-1"));
        s.add_env("SECRETS_VAR");
        s.add_env("SECRETS_UNSET");
        s.add_env("SECRETS_LATIN1");
        let unset = |_: &str| None;
        assert_eq!(s.values_with(&unset), ["Bearer inline-tok-1", "inline-tok-1"]);
        // Read each time: a variable set after the configuration was loaded counts.
        let set = |var: &str| match var {
            "SECRETS_VAR" => Some(OsString::from("https://u:pw-from-env@h/")),
            // Not UTF-8: scrubbed as a reason shows it, not skipped.
            "SECRETS_LATIN1" => Some(OsString::from_vec(b"caf\xe9-pw-9".to_vec())),
            _ => None,
        };
        assert_eq!(
            s.values_with(&set),
            ["https://u:pw-from-env@h/", "Bearer inline-tok-1", "inline-tok-1", "caf\u{fffd}-pw-9", "pw-from-env"]
        );
        assert_eq!(
            redact_in("key caf\u{fffd}-pw-9 refused", s.values_with(&set).iter().map(String::as_str)),
            "key *** refused"
        );
    }

    #[test]
    fn short_secrets_are_named_never_shown() {
        let mut s = Secrets::default();
        s.add("database.url", &Secret::new("postgresql://app:pw@db/app"));
        s.add("checks[0].headers.Authorization", &Secret::new("Bearer long-enough-token"));
        s.add_env("SHORT_VAR");
        s.add_env("LONG_VAR");
        let env = |var: &str| match var {
            "SHORT_VAR" => Some(OsString::from("Basic YTpi")), // `a:b`
            "LONG_VAR" => Some(OsString::from("long-enough")),
            _ => None,
        };
        let w = s.too_short_with(&env);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("the secret in `database.url` (or its password or token) is shorter than 4 bytes"));
        assert!(w[1].starts_with("the secret in the environment variable `SHORT_VAR`"), "{w:?}");
        assert!(w.iter().all(|w| !w.contains("pw") && !w.contains("YTpi")), "{w:?}");
    }

    #[test]
    fn url_passwords_of_every_url_in_a_text() {
        assert_eq!(
            url_passwords(
                "curl https://u:p%40w@h/x then postgresql://a:b2@db?x=c:d@e and https://h?to=ops:x@example.com"
            ),
            ["p%40w", "p@w", "b2", "b2"]
        );
        assert!(url_passwords("https://api.example.com/users/@me ops@example.com").is_empty());
    }
}
