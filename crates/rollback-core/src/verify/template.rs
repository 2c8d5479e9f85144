//! `{{name}}` templates in check URLs, headers and bodies.
//!
//! A name is a flow variable, a captured value, `random` (unique to each attempt of a check)
//! or `env:NAME` (an environment variable). Values from the environment and captured values
//! are secrets: [`Vars`] remembers them so they can be scrubbed from every message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::secret::{redact_in, redact_url_passwords, secret_parts};

/// A parsed template: literal text and variable names, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template<'a> {
    parts: Vec<Part<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
}

impl<'a> Template<'a> {
    /// Parses `text`; an unclosed `{{` or an empty `{{}}` is an error.
    pub(crate) fn parse(text: &'a str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(&rest[..start]));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| "unclosed `{{` (write `{{name}}`)".to_owned())?;
            let name = after[..end].trim();
            if name.is_empty() {
                return Err("empty `{{}}`".to_owned());
            }
            parts.push(Part::Var(name));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest));
        }
        Ok(Self { parts })
    }

    /// The variable names used.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    /// The text with each variable replaced by `value(name)`.
    pub(crate) fn render_with(&self, mut value: impl FnMut(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(&value(v)),
            }
        }
        out
    }
}

/// Calls `f` on every string inside a JSON value (keys excluded).
pub(crate) fn visit_json_strings(v: &serde_json::Value, f: &mut impl FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| visit_json_strings(x, f)),
        serde_json::Value::Object(o) => o.values().for_each(|x| visit_json_strings(x, f)),
        _ => {}
    }
}

/// A value unique to this process and moment: 12 hex characters.
pub(crate) fn unique_value() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes()).update(&std::process::id().to_le_bytes()).update(&n.to_le_bytes());
    h.finalize().to_hex()[..12].to_owned()
}

/// The variables of one attempt of a check, and the secret values seen.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    values: BTreeMap<String, String>,
    secrets: Vec<String>,
    /// The configuration's secrets, resolved when the round began (longest first).
    known: Arc<[String]>,
}

impl Vars {
    /// Variables with a fresh `random`.
    pub(crate) fn new() -> Self {
        let mut v = Self::default();
        v.values.insert("random".to_owned(), unique_value());
        v
    }

    /// [`Vars::new`], scrubbing `known` secrets too.
    pub(crate) fn with_known(known: Arc<[String]>) -> Self {
        Self { known, ..Self::new() }
    }

    /// Sets a plain variable.
    pub(crate) fn set(&mut self, name: &str, value: String) {
        self.values.insert(name.to_owned(), value);
    }

    /// Sets a variable whose value is a secret.
    pub(crate) fn set_secret(&mut self, name: &str, value: String) {
        self.add_secret(&value);
        self.values.insert(name.to_owned(), value);
    }

    /// Remembers a secret value to scrub from messages, and the parts of it a service may
    /// quote alone (the token of `Bearer TOKEN`).
    pub(crate) fn add_secret(&mut self, value: &str) {
        for part in secret_parts(value) {
            if !self.secrets.contains(&part) {
                self.secrets.push(part);
            }
        }
    }

    /// `text` with the passwords of its URLs, the secrets seen so far and the known ones
    /// replaced by `***`. URL passwords go first: a URL holding a secret password keeps its
    /// user, host and path in the text.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut all: Vec<&str> = self.secrets.iter().chain(self.known.iter()).map(String::as_str).collect();
        // Longest first, the check's and the configuration's together: a secret that holds
        // another is replaced whole, never cut by the shorter one first.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        redact_in(&redact_url_passwords(text), all)
    }

    /// Renders `text`; `{{env:NAME}}` reads the environment (its value becomes a secret).
    pub(crate) fn render(&mut self, text: &str) -> Result<String, String> {
        let t = Template::parse(text)?;
        let mut missing = None;
        let mut env_values = Vec::new();
        let out = t.render_with(|name| {
            if let Some(var) = name.strip_prefix("env:") {
                // An empty value is a value here (a template may concatenate it).
                match crate::secret::env_value(var.trim()) {
                    Ok(v) => {
                        env_values.push(v.clone());
                        v
                    }
                    Err(e) => {
                        missing.get_or_insert_with(|| e.to_string());
                        String::new()
                    }
                }
            } else if let Some(v) = self.values.get(name) {
                v.clone()
            } else {
                missing.get_or_insert_with(|| format!("unknown variable `{{{{{name}}}}}`"));
                String::new()
            }
        });
        for v in env_values {
            self.add_secret(&v);
        }
        match missing {
            Some(m) => Err(m),
            None => Ok(out),
        }
    }

    /// Renders every string of a JSON value.
    pub(crate) fn render_json(&mut self, v: &serde_json::Value) -> Result<serde_json::Value, String> {
        Ok(match v {
            serde_json::Value::String(s) => serde_json::Value::String(self.render(s)?),
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.iter().map(|x| self.render_json(x)).collect::<Result<_, _>>()?)
            }
            serde_json::Value::Object(o) => serde_json::Value::Object(
                o.iter().map(|(k, x)| Ok((k.clone(), self.render_json(x)?))).collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Template::parse("a {{ x }}-{{y}} b").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(t.render_with(str::to_uppercase), "a X-Y b");
        assert_eq!(Template::parse("plain }} text").unwrap().render_with(|_| String::new()), "plain }} text");
        assert!(Template::parse("a {{x").is_err());
        assert!(Template::parse("a {{ }}").is_err());
    }

    #[test]
    fn vars_render_and_remember_secrets() {
        let mut v = Vars::new();
        v.set("user", "alice".into());
        v.set_secret("token", "tok-123456".into());
        assert_eq!(v.render("{{user}}:{{token}}").unwrap(), "alice:tok-123456");
        assert_eq!(v.redact("bearer tok-123456"), "bearer ***");
        assert_eq!(v.render("{{nope}}").unwrap_err(), "unknown variable `{{nope}}`");
        assert!(v.render("{{env:FORGE_ROLLBACK_SURELY_UNSET_VAR}}").unwrap_err().contains("is not set"));
        // SAFETY: nextest runs each test in its own process; no other thread reads these.
        #[allow(unsafe_code)]
        unsafe {
            use std::os::unix::ffi::OsStrExt;
            std::env::set_var("FORGE_ROLLBACK_TEST_TEMPLATE_LATIN1", std::ffi::OsStr::from_bytes(b"caf\xe9"));
            std::env::set_var("FORGE_ROLLBACK_TEST_TEMPLATE_EMPTY", "");
        }
        assert_eq!(
            v.render("{{env:FORGE_ROLLBACK_TEST_TEMPLATE_LATIN1}}").unwrap_err(),
            "the environment variable `FORGE_ROLLBACK_TEST_TEMPLATE_LATIN1` is not valid UTF-8"
        );
        assert_eq!(v.render("[{{env:FORGE_ROLLBACK_TEST_TEMPLATE_EMPTY}}]").unwrap(), "[]");
        let r = v.render("{{random}}").unwrap();
        assert_eq!(r.len(), 12);
        assert_eq!(v.render("{{random}}").unwrap(), r, "stable within one attempt");
        assert_ne!(Vars::new().render("{{random}}").unwrap(), r, "fresh for the next attempt");
        let j = v.render_json(&serde_json::json!({"u": "{{user}}", "n": [1, "{{user}}"]})).unwrap();
        assert_eq!(j, serde_json::json!({"u": "alice", "n": [1, "alice"]}));
    }
}
