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
/// check's reason is: the configuration's secrets and the checks' (`settings.secrets` is
/// filled when the configuration is loaded), URL passwords, control characters. The
/// environment is read once, when this is made.
pub(crate) fn scrubber(settings: &super::config::VerifySettings, checks: &[CheckConfig]) -> impl Fn(&str) -> String {
    let vars = super::template::Vars::with_known(known_secrets(settings, checks));
    move |text: &str| escape_controls(&vars.redact(text))
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
    fn controls_are_escaped_and_whitespace_folded() {
        assert_eq!(escape_controls("plain text"), "plain text");
        assert_eq!(escape_controls("a\tb\nc"), "a b c");
        assert_eq!(
            escape_controls("\u{1b}[2K\u{1b}[32m[ok]\u{7}\u{9b}x\u{7f}"),
            "\\u{1b}[2K\\u{1b}[32m[ok]\\u{7}\\u{9b}x\\u{7f}"
        );
    }
}
