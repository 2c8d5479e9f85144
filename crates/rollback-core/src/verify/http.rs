//! `kind = "http"`, and the request/response code the `flow` kind shares.

use std::collections::BTreeMap;

use super::Outcome;
use super::config::{ExpectStatus, HttpCheck};
use super::redact::escape_controls;
use super::template::Vars;
use crate::http::{CappedBody, describe_error, form_encode, host_port, read_capped};
use crate::secret::Secret;

/// Bytes of an unexpected response's body quoted in the reason.
const SNIPPET_BYTES: usize = 512;
/// Characters of a quoted body or JSON value in a reason.
const QUOTE_CHARS: usize = 120;

/// One request, its parts still templates.
pub(super) struct Request<'a> {
    pub method: &'a str,
    pub url: String,
    pub headers: &'a BTreeMap<String, Secret>,
    pub headers_env: Option<&'a BTreeMap<String, String>>,
    pub body: Option<&'a String>,
    pub json: Option<&'a serde_json::Value>,
    pub form: Option<&'a BTreeMap<String, String>>,
    pub follow_redirects: bool,
}

/// A response whose body has not been read yet.
pub(super) struct Response {
    pub status: u16,
    inner: reqwest::Response,
    target: String,
}

impl Response {
    /// Reads at most `max` bytes of the body.
    pub(super) async fn body(&mut self, max: usize) -> Result<CappedBody, Outcome> {
        read_capped(&mut self.inner, max).await.map_err(|e| Outcome::Error(describe_error(e, Some(&self.target))))
    }

    /// `status 502, expected 200: <start of the body>` (secrets scrubbed before it is cut short).
    pub(super) async fn unexpected_status(&mut self, expected: Option<&ExpectStatus>, vars: &Vars) -> Outcome {
        let mut reason = format!("status {}, expected {}", self.status, ExpectStatus::describe(expected));
        if let Ok(b) = read_capped(&mut self.inner, SNIPPET_BYTES).await {
            let mut raw = String::from_utf8_lossy(&b.bytes).into_owned();
            if b.truncated {
                // Its last word may be the start of a secret cut short, which no longer
                // matches the secret: not shown.
                raw.truncate(raw.rfind(char::is_whitespace).unwrap_or(0));
            }
            let text = quote(&vars.redact(&raw));
            if !text.is_empty() {
                reason.push_str(": ");
                reason.push_str(&text);
            }
        }
        Outcome::Failed(reason)
    }
}

/// `text` on one line, its control characters escaped, at most [`QUOTE_CHARS`] characters.
/// Text from a service or a program: scrub its secrets first (a secret cut short here would
/// no longer be recognised).
pub(super) fn quote(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (count, c) in one_line.chars().enumerate() {
        if count == QUOTE_CHARS {
            out.push('…');
            break;
        }
        // An escape (`\u{1b}`) is kept whole: it counts as one character.
        out.push_str(&escape_controls(c.encode_utf8(&mut [0; 4])));
    }
    out
}

/// Sends `req` (templates rendered with `vars`; header values become secrets). Errors are
/// [`Outcome::Error`]s (could not send, bad URL, unset environment variable).
pub(super) async fn send(req: &Request<'_>, vars: &mut Vars) -> Result<Response, Outcome> {
    let url_text = vars.render(&req.url).map_err(|e| Outcome::Error(format!("url: {e}")))?;
    let shown = crate::secret::redact_url_credentials(&url_text);
    let url =
        reqwest::Url::parse(&url_text).map_err(|e| Outcome::Error(format!("`{shown}` is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Outcome::Error(format!("`{shown}` is not an http:// or https:// URL")));
    }
    let target = host_port(&url);
    let client = if req.follow_redirects { crate::http::client() } else { crate::http::client_without_redirects() }
        .map_err(|e| Outcome::Error(e.to_string()))?;
    let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Outcome::Error(format!("`{}` is not an HTTP method", req.method)))?;
    let mut builder = client.request(method, url);
    for (name, value) in req.headers {
        vars.add_secret(value.expose());
        let value = vars.render(value.expose()).map_err(|e| Outcome::Error(format!("header `{name}`: {e}")))?;
        vars.add_secret(&value);
        builder = builder.header(name.as_str(), value);
    }
    for (name, var) in req.headers_env.into_iter().flatten() {
        let value = crate::secret::from_env(var).map_err(|e| Outcome::Error(format!("header `{name}`: {e}")))?;
        vars.add_secret(value.expose());
        builder = builder.header(name.as_str(), value.expose());
    }
    if let Some(body) = req.body {
        builder = builder.body(vars.render(body).map_err(|e| Outcome::Error(format!("body: {e}")))?);
    } else if let Some(json) = req.json {
        let value = vars.render_json(json).map_err(|e| Outcome::Error(format!("json: {e}")))?;
        let bytes = serde_json::to_vec(&value).map_err(|e| Outcome::Error(format!("json: {e}")))?;
        builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
    } else if let Some(form) = req.form {
        let mut pairs = Vec::with_capacity(form.len());
        for (k, v) in form {
            pairs.push((k.as_str(), vars.render(v).map_err(|e| Outcome::Error(format!("form `{k}`: {e}")))?));
        }
        let encoded = form_encode(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        builder = builder.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(encoded);
    }
    let inner = builder.send().await.map_err(|e| Outcome::Error(describe_error(e, Some(&target))))?;
    Ok(Response { status: inner.status().as_u16(), inner, target })
}

/// Whether `actual` equals `expected`, numbers compared by value (`1` equals `1.0`).
pub(super) fn json_matches(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (actual, expected) {
        // Exact equality is the point: `json_equals = 0.5` means 0.5.
        #[allow(clippy::float_cmp)]
        (V::Number(a), V::Number(b)) => a == b || a.as_f64().zip(b.as_f64()).is_some_and(|(x, y)| x == y),
        (V::Array(a), V::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_matches(x, y)),
        (V::Object(a), V::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, x)| b.get(k).is_some_and(|y| json_matches(x, y)))
        }
        _ => actual == expected,
    }
}

/// Runs an `http` check once.
pub(super) async fn run(check: &HttpCheck, vars: &mut Vars) -> Outcome {
    let req = Request {
        method: &check.method,
        url: check.url.clone(),
        headers: &check.headers,
        headers_env: Some(&check.headers_env),
        body: check.body.as_ref(),
        json: check.json.as_ref(),
        form: check.form.as_ref(),
        follow_redirects: check.follow_redirects,
    };
    let mut resp = match send(&req, vars).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !ExpectStatus::accepts(check.expect_status.as_ref(), resp.status) {
        return resp.unexpected_status(check.expect_status.as_ref(), vars).await;
    }
    let wants_body = check.body_contains.is_some() || check.json_pointer.is_some() || check.json_equals.is_some();
    if !wants_body {
        return Outcome::Passed(format!("status {}", resp.status));
    }
    let max = usize::try_from(check.max_body_bytes).unwrap_or(usize::MAX);
    let body = match resp.body(max).await {
        Ok(b) => b,
        Err(o) => return o,
    };
    if let Some(needle) = &check.body_contains {
        let text = String::from_utf8_lossy(&body.bytes);
        if !text.contains(needle.as_str()) {
            return Outcome::Failed(if body.truncated {
                format!(
                    "body does not contain `{needle}` in its first {max} bytes (the body is longer: raise `max_body_bytes` if it should be read further)"
                )
            } else {
                format!("body does not contain `{needle}`")
            });
        }
    }
    if check.json_pointer.is_some() || check.json_equals.is_some() {
        if body.truncated {
            return Outcome::Failed(format!(
                "the body is larger than `max_body_bytes` ({max} bytes): cannot check its JSON"
            ));
        }
        let doc: serde_json::Value = match serde_json::from_slice(&body.bytes) {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(format!("body is not JSON: {e}")),
        };
        let pointer = check.json_pointer.as_deref().unwrap_or("");
        let Some(found) = doc.pointer(pointer) else {
            return Outcome::Failed(format!("the JSON body has nothing at `{pointer}`"));
        };
        if let Some(expected) = &check.json_equals
            && !json_matches(found, expected)
        {
            let what = if pointer.is_empty() { "the JSON body".to_owned() } else { format!("`{pointer}`") };
            return Outcome::Failed(format!(
                "{what} is {}, expected {}",
                quote(&vars.redact(&found.to_string())),
                quote(&expected.to_string())
            ));
        }
    }
    Outcome::Passed(format!("status {}", resp.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_compare_by_value() {
        assert!(json_matches(&json!(1), &json!(1.0)));
        assert!(json_matches(&json!({"a": [1, "x"]}), &json!({"a": [1.0, "x"]})));
        assert!(!json_matches(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_matches(&json!("1"), &json!(1)));
    }

    #[test]
    fn quotes_are_short_and_on_one_line() {
        assert_eq!(quote("a\n  b\tc"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(quote(&long).chars().count(), QUOTE_CHARS + 1);
        assert_eq!(quote("\u{1b}]0;owned\u{7} ok"), "\\u{1b}]0;owned\\u{7} ok");
        let escapes = "\u{1b}".repeat(QUOTE_CHARS + 5);
        assert_eq!(quote(&escapes), format!("{}…", "\\u{1b}".repeat(QUOTE_CHARS)));
    }
}
