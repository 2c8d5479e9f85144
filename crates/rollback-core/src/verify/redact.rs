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
use super::template::{Template, visit_json_strings};
use crate::secret::{Secret, Secrets};

/// The secrets the checks hold or name: header values, `headers_env` and `vars_env`
/// variables, every `{{env:NAME}}` in their templates, passwords in their URLs.
pub(crate) fn check_secrets(checks: &[CheckConfig]) -> Secrets {
    let mut out = Secrets::default();
    for check in checks {
        let headers = |out: &mut Secrets, headers: &BTreeMap<String, Secret>| {
            for value in headers.values() {
                out.add(value);
                env_templates(out, value.expose());
            }
        };
        match &check.spec {
            CheckSpec::Http(h) => {
                headers(&mut out, &h.headers);
                h.headers_env.values().for_each(|v| out.add_env(v));
            }
            CheckSpec::Flow(f) => {
                f.vars_env.values().for_each(|v| out.add_env(v));
                f.steps.iter().chain(&f.teardown).for_each(|s| headers(&mut out, &s.headers));
            }
            _ => {}
        }
        // Every other string of the check (header values serialize as `***`).
        if let Ok(value) = serde_json::to_value(&check.spec) {
            visit_json_strings(&value, &mut |s| {
                env_templates(&mut out, s);
                if s.contains("://") && s.contains('@') {
                    out.add(&Secret::new(s));
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
    let mut secrets = settings.secrets.clone();
    secrets.extend(&check_secrets(checks));
    secrets.values().into()
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
