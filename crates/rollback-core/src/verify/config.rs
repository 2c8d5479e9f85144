//! `[[checks]]` and `[verify]`.
//!
//! ```toml
//! [[checks]]
//! name = "fastapi"
//! kind = "http"
//! url = "http://127.0.0.1:8000/"
//! expect_status = 200
//! body_contains = "healthy"
//! ```
//!
//! Every check has a `name`, a `kind` and the kind's own keys; `timeout_secs` (default:
//! `[verify] timeout_secs`), `retries` (default 0) and `backoff_secs` (default 0.5, doubled
//! after each attempt) apply to every kind. `timeout_secs` bounds the check as a whole,
//! retries included. Unknown keys are refused.
//!
//! Kinds and their keys:
//!
//! - `http`: `url`, `method` (`GET`), `headers` (values may use templates), `headers_env`
//!   (header → environment variable holding its value: tokens), one of `body` / `json` /
//!   `form`, `expect_status` (one code or a list; default any `2xx`), `body_contains`,
//!   `json_pointer` + `json_equals`, `max_body_bytes` (1 MiB: no more is ever read),
//!   `follow_redirects` (true; at most `http::MAX_REDIRECTS`);
//! - `tcp`: `address` (`host:port`) accepts a connection;
//! - `websocket`: `url` (`ws://`, templates allowed), optional `send` text, optional
//!   `expect_contains` in the first text reply;
//! - `command`: `argv` (no shell), `cwd` (relative to the work tree), `expect_exit` (0),
//!   `stdout_contains` (in the first `MAX_OUTPUT_BYTES` of stdout); on timeout the program's own
//!   process group is killed;
//! - `sql`: `query`, optional `expect` (the first column of the first row, as text);
//! - `db-revision`: the database is at the revisions the work tree's migrations expect;
//! - `flow`: `base_url`, `vars`, `vars_env` and `[[checks.steps]]` of HTTP requests, each with
//!   the `http` request keys, `expect_status`, `body_contains` and `capture` (variable → JSON
//!   pointer into the response), and `[[checks.teardown]]` steps run after them, always;
//! - `prometheus`: `url`, `query`, `min`/`max` (inclusive), `for`, `interval_secs`, `no_data`,
//!   `baseline` + `max_increase`/`max_ratio` (see [`super::prometheus`]).
//!
//! Timeouts are more than 0 and at most [`MAX_SECS`] (a day), as is a `prometheus` check's
//! `interval_secs`: larger values are refused naming the key, not cut short at run time.
//!
//! Templates: `{{name}}` in URLs, header values and bodies is replaced by a flow variable, a
//! captured value, `{{random}}` (a value unique to each attempt of the check, so a `register`
//! step works every run) or `{{env:NAME}}` (an environment variable, treated as a secret).

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

pub use super::expect_status::ExpectStatus;
pub use super::prometheus::{NoData, PrometheusCheck};
use super::template::Template;
use crate::secret::{Secret, Secrets};

/// One `[[checks]]` entry: the name and settings common to every kind, and the kind's own
/// keys in [`CheckSpec`]. Unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckConfig {
    /// Unique name.
    pub name: String,
    /// Longest the check may take, retries included, in seconds (default: `[verify]
    /// timeout_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Attempts after the first when it does not pass.
    pub retries: u32,
    /// Wait before the first retry, in seconds; doubled after each.
    pub backoff_secs: f64,
    /// The kind and its keys.
    #[serde(flatten)]
    pub spec: CheckSpec,
}

/// Default `backoff_secs`.
pub const DEFAULT_BACKOFF_SECS: f64 = 0.5;

impl CheckConfig {
    /// A check with default settings (no own timeout, no retries).
    pub fn new(name: impl Into<String>, spec: CheckSpec) -> Self {
        Self { name: name.into(), timeout_secs: None, retries: 0, backoff_secs: DEFAULT_BACKOFF_SECS, spec }
    }

    /// `http`, `tcp`, `websocket`, `command`, `sql`, `db-revision` or `flow`.
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }

    /// Its timeout in seconds: its own, else `[verify] timeout_secs`.
    pub fn timeout_secs_or(&self, settings: &VerifySettings) -> f64 {
        self.timeout_secs.unwrap_or(settings.timeout_secs)
    }
}

impl<'de> Deserialize<'de> for CheckConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let name = match table.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err(D::Error::custom("`name` of a check must be a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let ctx = |e: String| D::Error::custom(format!("check `{name}`: {e}"));
        let timeout_secs = match table.remove("timeout_secs") {
            None => None,
            Some(v) => Some(number(&v).ok_or_else(|| ctx("`timeout_secs` must be a number".into()))?),
        };
        let retries = match table.remove("retries") {
            None => 0,
            Some(toml::Value::Integer(n)) => {
                u32::try_from(n).map_err(|_| ctx(format!("`retries` must be between 0 and {}", u32::MAX)))?
            }
            Some(_) => return Err(ctx("`retries` must be an integer".into())),
        };
        let backoff_secs = match table.remove("backoff_secs") {
            None => DEFAULT_BACKOFF_SECS,
            Some(v) => number(&v).ok_or_else(|| ctx("`backoff_secs` must be a number".into()))?,
        };
        if !table.contains_key("kind") {
            return Err(ctx(format!("missing `kind` (one of {})", CheckSpec::KINDS.join(", "))));
        }
        let spec: CheckSpec = toml::Value::Table(table).try_into().map_err(|e| ctx(e.to_string().trim().to_owned()))?;
        Ok(Self { name, timeout_secs, retries, backoff_secs, spec })
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// The kind of a check and its own keys (`kind = "..."`, kebab-case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
// Built once from the config and cloned once per round: size does not matter here.
#[allow(clippy::large_enum_variant)]
pub enum CheckSpec {
    /// An HTTP request and what its response must be.
    Http(HttpCheck),
    /// A TCP connection is accepted.
    Tcp(TcpCheck),
    /// A WebSocket handshake, optionally a message and its reply.
    Websocket(WebSocketCheck),
    /// A program exits as expected.
    Command(CommandCheck),
    /// A SQL query returns the expected value.
    Sql(SqlCheck),
    /// The database is at the revisions the code expects.
    DbRevision(DbRevisionCheck),
    /// A sequence of HTTP requests sharing variables (a sign-up and sign-in checklist).
    Flow(FlowCheck),
    /// A Prometheus query's value lies in a range (and near its baseline).
    Prometheus(PrometheusCheck),
}

impl CheckSpec {
    /// Every kind, as written in the config.
    pub const KINDS: [&'static str; 8] =
        ["http", "tcp", "websocket", "command", "sql", "db-revision", "flow", "prometheus"];

    /// The kind as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Http(_) => "http",
            CheckSpec::Tcp(_) => "tcp",
            CheckSpec::Websocket(_) => "websocket",
            CheckSpec::Command(_) => "command",
            CheckSpec::Sql(_) => "sql",
            CheckSpec::DbRevision(_) => "db-revision",
            CheckSpec::Flow(_) => "flow",
            CheckSpec::Prometheus(_) => "prometheus",
        }
    }
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_max_body() -> u64 {
    1024 * 1024
}
fn yes() -> bool {
    true
}
fn is_get(m: &str) -> bool {
    m.eq_ignore_ascii_case("GET")
}

/// `kind = "http"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// `http://` or `https://` URL (templates allowed).
    pub url: String,
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`.
    #[serde(default = "default_method", skip_serializing_if = "is_get")]
    pub method: String,
    /// Header values (templates allowed). Treated as secrets: never printed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// Header name → the environment variable holding its value (tokens).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_env: BTreeMap<String, String>,
    /// A raw request body (templates allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSON request body (templates allowed in its strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// A form request body, `application/x-www-form-urlencoded` (templates allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<BTreeMap<String, String>>,
    /// Expected status (default: any `2xx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<ExpectStatus>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// A JSON pointer (`/status`) that must exist in the JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// The value at `json_pointer` (or the whole body, without a pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_equals: Option<serde_json::Value>,
    /// Most bytes of the body read (no more is ever buffered).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Follow redirects (at most `http::MAX_REDIRECTS`).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
}

impl HttpCheck {
    /// A `GET` of `url` expecting any `2xx`.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: default_method(),
            headers: BTreeMap::new(),
            headers_env: BTreeMap::new(),
            body: None,
            json: None,
            form: None,
            expect_status: None,
            body_contains: None,
            json_pointer: None,
            json_equals: None,
            max_body_bytes: default_max_body(),
            follow_redirects: true,
        }
    }
}

/// `kind = "tcp"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// `host:port`.
    pub address: String,
}

/// `kind = "websocket"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketCheck {
    /// `ws://` URL.
    pub url: String,
    /// A text message to send once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Text the first text (or binary) message received must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_contains: Option<String>,
}

/// `kind = "command"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    /// The program and its arguments (no shell).
    pub argv: Vec<String>,
    /// Working folder, relative to the work tree (default: the work tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// The exit code that means success.
    #[serde(default)]
    pub expect_exit: i32,
    /// Text its standard output must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_contains: Option<String>,
}

/// `kind = "sql"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    /// The query.
    pub query: String,
    /// The first column of its first row, as text. Without it, the query only has to
    /// succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// `kind = "db-revision"`: no keys of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbRevisionCheck {}

/// `kind = "flow"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowCheck {
    /// Prefix of step URLs that are paths (`/register`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Constant variables (templates allowed: `user-{{random}}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Variables read from the environment (secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars_env: BTreeMap<String, String>,
    /// The requests, in order; the flow stops at the first that fails.
    pub steps: Vec<FlowStep>,
    /// Requests run after `steps`, always (even after a failing step), each of them: they
    /// undo what the steps created (delete the check's user, log out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teardown: Vec<FlowStep>,
}

/// One `[[checks.steps]]` of a flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowStep {
    /// Name, for messages (default: `METHOD url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTTP method.
    #[serde(default = "default_method", skip_serializing_if = "is_get")]
    pub method: String,
    /// Absolute URL, or a path appended to the flow's `base_url`.
    pub url: String,
    /// Header values (templates allowed). Treated as secrets: never printed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// A raw request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSON request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// A form request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<BTreeMap<String, String>>,
    /// Expected status (default: any `2xx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<ExpectStatus>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Variable → JSON pointer: values taken from the JSON response for later steps.
    /// Captured values are treated as secrets (tokens).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
}

fn default_timeout() -> f64 {
    10.0
}
fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

/// Default `[verify] concurrency`: high enough that checks never wait for each other.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// What the engine does when verification after a run fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop: the run's status is `verification_failed`; the operator decides.
    #[default]
    Stop,
    /// Undo the rollback by itself.
    Undo,
}

/// `[verify]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifySettings {
    /// Per-check timeout when a check sets none, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// What to do when verification after a run fails.
    pub on_failure: OnFailure,
    /// Most checks running at once (1: one at a time).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The secrets of the rest of the configuration (`[database]`, `[deploy]`, `[[notify]]`),
    /// scrubbed from every check's reason with the checks' own. Filled when the configuration
    /// is loaded; not a key of `[verify]`.
    #[serde(skip)]
    pub secrets: Secrets,
}

impl Default for VerifySettings {
    fn default() -> Self {
        Self {
            timeout_secs: default_timeout(),
            on_failure: OnFailure::Stop,
            concurrency: DEFAULT_CONCURRENCY,
            secrets: Secrets::default(),
        }
    }
}

/// A positive, finite number of seconds.
pub(crate) fn valid_secs(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// The longest wait a check may set, in seconds (one day): no check waits longer.
pub const MAX_SECS: f64 = 86_400.0;

/// `Err` unless `v` is a timeout a check can have: more than 0, at most [`MAX_SECS`].
fn check_timeout_secs(v: f64) -> Result<(), String> {
    if !valid_secs(v) {
        return Err(format!("must be more than 0 (got {v})"));
    }
    if v > MAX_SECS {
        return Err(format!("must be at most {MAX_SECS} (one day; got {v})"));
    }
    Ok(())
}

/// Checks the `[[checks]]` list: unique names, valid URLs, sane timeouts, a `sql` or
/// `db-revision` check only with a `[database]`. `Err((key, message))`.
pub fn validate(checks: &[CheckConfig], settings: &VerifySettings, has_database: bool) -> Result<(), (String, String)> {
    check_timeout_secs(settings.timeout_secs).map_err(|m| ("verify.timeout_secs".to_owned(), m))?;
    if settings.concurrency == 0 {
        return Err(("verify.concurrency".into(), "must be at least 1".into()));
    }
    let mut names = HashSet::new();
    for (i, c) in checks.iter().enumerate() {
        let key = |k: &str| format!("checks[{i}].{k}");
        if c.name.trim().is_empty() {
            return Err((key("name"), "is empty".into()));
        }
        if !names.insert(c.name.as_str()) {
            return Err((key("name"), format!("`{}` is used by two checks: names must be unique", c.name)));
        }
        if let Some(t) = c.timeout_secs {
            check_timeout_secs(t).map_err(|m| (key("timeout_secs"), m))?;
        }
        if !(c.backoff_secs.is_finite() && c.backoff_secs >= 0.0) {
            return Err((key("backoff_secs"), format!("must be 0 or more (got {})", c.backoff_secs)));
        }
        validate_spec(&c.spec, has_database).map_err(|(k, m)| (key(&k), format!("check `{}`: {m}", c.name)))?;
        if let CheckSpec::Prometheus(p) = &c.spec {
            super::prometheus::check_timeout(p, c.timeout_secs_or(settings))
                .map_err(|m| (key("timeout_secs"), format!("check `{}`: {m}", c.name)))?;
        }
    }
    Ok(())
}

type Invalid = (String, String);

fn validate_spec(spec: &CheckSpec, has_database: bool) -> Result<(), Invalid> {
    match spec {
        CheckSpec::Http(h) => {
            let vars = builtin_vars();
            check_url(&h.url, &["http", "https"], &vars).map_err(|m| ("url".to_owned(), m))?;
            check_request(&h.method, &h.headers, h.body.as_ref(), h.json.as_ref(), h.form.as_ref(), &vars)?;
            for (name, var) in &h.headers_env {
                check_header_name(name).map_err(|m| (format!("headers_env.{name}"), m))?;
                if var.is_empty() {
                    return Err((format!("headers_env.{name}"), "names no environment variable".into()));
                }
            }
            if let Some(p) = &h.json_pointer {
                check_pointer(p).map_err(|m| ("json_pointer".to_owned(), m))?;
            }
            if h.max_body_bytes == 0 {
                return Err(("max_body_bytes".into(), "must be more than 0".into()));
            }
        }
        CheckSpec::Tcp(t) => {
            split_address(&t.address).map_err(|m| ("address".to_owned(), m))?;
        }
        CheckSpec::Websocket(w) => {
            check_url(&w.url, &["ws"], &builtin_vars()).map_err(|m| ("url".to_owned(), m))?;
        }
        CheckSpec::Command(c) => {
            if c.argv.first().is_none_or(String::is_empty) {
                return Err(("argv".into(), "needs a program to run".into()));
            }
            if let Some(cwd) = &c.cwd {
                check_relative(cwd).map_err(|m| ("cwd".to_owned(), m))?;
            }
        }
        CheckSpec::Sql(s) => {
            if !has_database {
                return Err(("kind".into(), "a `sql` check needs a `[database]` section".into()));
            }
            if s.query.trim().is_empty() {
                return Err(("query".into(), "is empty".into()));
            }
        }
        CheckSpec::DbRevision(_) => {
            if !has_database {
                return Err(("kind".into(), "a `db-revision` check needs a `[database]` section".into()));
            }
        }
        CheckSpec::Flow(f) => validate_flow(f)?,
        CheckSpec::Prometheus(p) => super::prometheus::validate(p)?,
    }
    Ok(())
}

fn validate_flow(f: &FlowCheck) -> Result<(), Invalid> {
    if f.steps.is_empty() {
        return Err(("steps".into(), "a flow needs at least one step".into()));
    }
    let mut vars = builtin_vars();
    for (name, value) in &f.vars {
        check_var_name(name).map_err(|m| (format!("vars.{name}"), m))?;
        check_template(value, &builtin_vars()).map_err(|m| (format!("vars.{name}"), m))?;
    }
    for (name, var) in &f.vars_env {
        check_var_name(name).map_err(|m| (format!("vars_env.{name}"), m))?;
        if var.is_empty() {
            return Err((format!("vars_env.{name}"), "names no environment variable".into()));
        }
        if f.vars.contains_key(name) {
            return Err((format!("vars_env.{name}"), format!("`{name}` is also set in `vars`")));
        }
    }
    vars.extend(f.vars.keys().cloned());
    vars.extend(f.vars_env.keys().cloned());
    if let Some(base) = &f.base_url {
        check_url(base, &["http", "https"], &vars).map_err(|m| ("base_url".to_owned(), m))?;
    }
    let all = f.steps.iter().enumerate().map(|(i, s)| (format!("steps[{i}]"), s));
    let teardown = f.teardown.iter().enumerate().map(|(i, s)| (format!("teardown[{i}]"), s));
    for (at, s) in all.chain(teardown) {
        let key = |k: &str| format!("{at}.{k}");
        let full = match (&f.base_url, s.url.starts_with('/')) {
            (Some(base), true) => format!("{}{}", base.trim_end_matches('/'), s.url),
            (None, true) => return Err((key("url"), format!("`{}` is a path but the flow has no `base_url`", s.url))),
            _ => s.url.clone(),
        };
        check_url(&full, &["http", "https"], &vars).map_err(|m| (key("url"), m))?;
        check_request(&s.method, &s.headers, s.body.as_ref(), s.json.as_ref(), s.form.as_ref(), &vars)
            .map_err(|(k, m)| (key(&k), m))?;
        for (name, pointer) in &s.capture {
            check_var_name(name).map_err(|m| (key(&format!("capture.{name}")), m))?;
            check_pointer(pointer).map_err(|m| (key(&format!("capture.{name}")), m))?;
            vars.insert(name.clone());
        }
    }
    Ok(())
}

fn builtin_vars() -> HashSet<String> {
    HashSet::from(["random".to_owned()])
}

fn check_var_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{name}` is not a variable name (letters, digits, `_`, `-`)"));
    }
    if name == "random" || name.starts_with("env:") {
        return Err(format!("`{name}` is reserved"));
    }
    Ok(())
}

/// Parses `text` as a template whose variables are all in `vars` (or `env:...`).
fn check_template(text: &str, vars: &HashSet<String>) -> Result<(), String> {
    let t = Template::parse(text)?;
    for v in t.variables() {
        if !v.starts_with("env:") && !vars.contains(v) {
            return Err(format!("unknown variable `{{{{{v}}}}}` (known: {})", known(vars)));
        }
    }
    Ok(())
}

fn known(vars: &HashSet<String>) -> String {
    let mut v: Vec<_> = vars.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.join(", ")
}

fn check_url(text: &str, schemes: &[&str], vars: &HashSet<String>) -> Result<(), String> {
    check_template(text, vars)?;
    // Placeholders stand for text that is only known when the check runs.
    let probe = Template::parse(text)?.render_with(|_| "x".to_owned());
    // A password in the URL must not reach the error (it is printed, logged, reported).
    let shown = crate::secret::redact_url_credentials(text);
    let url = reqwest::Url::parse(&probe).map_err(|e| format!("`{shown}` is not a valid URL: {e}"))?;
    if url.scheme() == "wss" {
        return Err(format!(
            "`{shown}`: `wss://` is not supported; check the service with an `http` check on its `https://` URL"
        ));
    }
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "`{shown}` must start with {}",
            schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    Ok(())
}

fn check_header_name(name: &str) -> Result<(), String> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("`{name}` is not a valid header name"))
}

pub(crate) const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn check_request(
    method: &str,
    headers: &BTreeMap<String, Secret>,
    body: Option<&String>,
    json: Option<&serde_json::Value>,
    form: Option<&BTreeMap<String, String>>,
    vars: &HashSet<String>,
) -> Result<(), Invalid> {
    if !METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return Err(("method".into(), format!("`{method}` is not one of {}", METHODS.join(", "))));
    }
    for (name, value) in headers {
        check_header_name(name).map_err(|m| (format!("headers.{name}"), m))?;
        // The value is a secret: name the header, never the value.
        check_template(value.expose(), vars)
            .map_err(|m| (format!("headers.{name}"), redact_template_error(&m, value.expose())))?;
    }
    let bodies = usize::from(body.is_some()) + usize::from(json.is_some()) + usize::from(form.is_some());
    if bodies > 1 {
        return Err(("body".into(), "set at most one of `body`, `json` and `form`".into()));
    }
    if let Some(b) = body {
        check_template(b, vars).map_err(|m| ("body".to_owned(), m))?;
    }
    if let Some(j) = json {
        let mut err = Ok(());
        super::template::visit_json_strings(j, &mut |s| {
            if err.is_ok() {
                err = check_template(s, vars);
            }
        });
        err.map_err(|m| ("json".to_owned(), m))?;
    }
    if let Some(f) = form {
        for (k, v) in f {
            check_template(v, vars).map_err(|m| (format!("form.{k}"), m))?;
        }
    }
    Ok(())
}

fn redact_template_error(message: &str, value: &str) -> String {
    crate::secret::redact_in(message, [value])
}

fn check_pointer(p: &str) -> Result<(), String> {
    if p.is_empty() || p.starts_with('/') {
        Ok(())
    } else {
        Err(format!("`{p}` is not a JSON pointer (it starts with `/`, e.g. `/status`)"))
    }
}

fn check_relative(p: &Path) -> Result<(), String> {
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("`{}` must be a folder inside the work tree (relative, no `..`)", p.display()));
    }
    Ok(())
}

/// Where in the configuration `text` the error `message` about a check is: the key it names
/// first in backticks, in the `[[checks]]` entry it is about (for an unknown field
/// `expect_stauts` of check `api`, that key in that entry), else that entry's header. `None`
/// when the message is about no entry of `text`. (An entry is read through a table, and the
/// parser's own position is then the first `[[checks]]` header, whichever entry is wrong.)
///
/// The entry is the one that gives this very message when read alone: two entries may have
/// the same name, and a name may hold `` `: ``, so the name in the message is not enough.
/// Only the first backticked word can be the key: the others list what was expected
/// (`` expected one of `name`, `kind` ``), keys the entry holds and that are not wrong.
pub(crate) fn error_offset(text: &str, message: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let message = message.trim();
    let doc = DeTable::parse(text).ok()?;
    let DeValue::Array(entries) = doc.get_ref().get("checks")?.get_ref() else { return None };
    let plain: toml::Table = text.parse().ok()?;
    let plain = plain.get("checks")?.as_array()?;
    let (entry, rest) = entries.iter().zip(plain).find_map(|(entry, value)| {
        let DeValue::Table(t) = entry.get_ref() else { return None };
        let Some(DeValue::String(name)) = t.get("name").map(toml::Spanned::get_ref) else { return None };
        let rest = message.strip_prefix(&format!("check `{name}`: "))?;
        let alone = value.clone().try_into::<CheckConfig>().err()?;
        (alone.message().trim() == message).then_some((entry, rest))
    })?;
    let DeValue::Table(table) = entry.get_ref() else { return None };
    let first = rest.split('`').nth(1);
    let key = first.and_then(|word| table.keys().find(|k| k.get_ref() == word));
    Some(key.map_or(entry.span().start, |k| k.span().start))
}

/// Splits `host:port` (`[::1]:8000` for IPv6).
pub(crate) fn split_address(address: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{address}` is not `host:port`");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(split_address("127.0.0.1:5432").unwrap(), ("127.0.0.1".into(), 5432));
        assert_eq!(split_address("[::1]:80").unwrap(), ("::1".into(), 80));
        for bad in ["localhost", ":80", "h:0", "h:x", "h:70000"] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_deserialize_from_json_too() {
        // The Python module hands configs over as JSON-like values.
        let c: CheckConfig = serde_json::from_value(serde_json::json!({
            "name": "api", "kind": "http", "url": "http://127.0.0.1:8000/", "expect_status": [200, 204],
            "timeout_secs": 2, "retries": 1
        }))
        .unwrap();
        assert_eq!((c.kind(), c.timeout_secs, c.retries), ("http", Some(2.0), 1));
        let CheckSpec::Http(h) = &c.spec else { panic!("{c:?}") };
        assert_eq!(h.expect_status, Some(ExpectStatus(vec![200, 204])));
        // And serialize back to the same shape.
        let back: CheckConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let e = serde_json::from_value::<CheckConfig>(
            serde_json::json!({"name": "x", "kind": "tcp", "address": "h:1", "port": 2}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
    }
}
