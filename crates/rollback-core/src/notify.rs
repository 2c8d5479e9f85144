//! `[[notify]]`: webhooks on start, success, failure and verification failure. Slack-compatible
//! (`{"text": ...}`), a generic JSON event (optionally signed with HMAC-SHA256), a PagerDuty
//! Events v2 change event, or an incident.io alert event. A failing or hanging webhook is
//! logged and never fails or delays a rollback beyond its timeout. Webhook URLs, signing
//! secrets, routing keys and tokens are secrets.
//!
//! ```toml
//! [[notify]]
//! url_env = "SLACK_WEBHOOK_URL"   # or url = "https://hooks.slack.com/..." (a secret either way)
//! format = "slack"                # "json" (default), "slack", "pagerduty" or "incident-io"
//! events = ["failed", "verification_failed"]   # default: all
//! timeout_secs = 5
//! retries = 1
//! # secret_env = "WEBHOOK_SECRET"      # sign the body: X-Forge-Signature-256 (see sign)
//! # routing_key_env = "PD_ROUTING_KEY" # pagerduty: the integration's routing key
//! # token_env = "INCIDENT_IO_TOKEN"    # incident-io: the alert source's bearer token
//! ```
//!
//! Signing: with `secret`/`secret_env`, every request carries `X-Forge-Timestamp: <unix
//! seconds>` and `X-Forge-Signature-256: sha256=<hex>`, the hex of HMAC-SHA256 keyed with the
//! secret over `<timestamp>.<body>` (the exact bytes sent). A receiver recomputes it, compares
//! in constant time, and refuses timestamps older than a few minutes (replays).
//!
//! [`send_all`] sends to every webhook at once and returns when all are done: each webhook
//! takes at most `timeout_secs × (retries + 1)`, waits between attempts included. A run sends
//! its `started` in the background ([`Sending`]) and, once it is recorded, its last event with
//! [`send_after`], within that same bound counted from then.

// "PagerDuty", "PromQL" are product names, not code.
#![allow(clippy::doc_markdown)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::deploy::secret_parts;
use crate::event::LogLevel;
use crate::http::{client_without_redirects, describe_error};
use crate::model::RunKind;
use crate::secret::{Secret, from_inline_or_env, redact_in};
use crate::time::Timestamp;
use crate::verify::config::valid_secs;
use crate::verify::{duration, millis, timed_out};

/// What happened to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEventKind {
    /// A run began.
    Started,
    /// A run finished and (if configured) verification passed.
    Succeeded,
    /// A run failed.
    Failed,
    /// A run finished but verification failed.
    VerificationFailed,
    /// A run was cancelled.
    Cancelled,
}

impl NotifyEventKind {
    /// Every kind.
    pub const ALL: [NotifyEventKind; 5] = [
        NotifyEventKind::Started,
        NotifyEventKind::Succeeded,
        NotifyEventKind::Failed,
        NotifyEventKind::VerificationFailed,
        NotifyEventKind::Cancelled,
    ];

    /// As written in the config (`verification_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEventKind::Started => "started",
            NotifyEventKind::Succeeded => "succeeded",
            NotifyEventKind::Failed => "failed",
            NotifyEventKind::VerificationFailed => "verification_failed",
            NotifyEventKind::Cancelled => "cancelled",
        }
    }

    /// `rollback FAILED`, `undo succeeded`: what happened to a run of kind `run`.
    fn headline(self, run: RunKind) -> String {
        let what = match self {
            NotifyEventKind::Started => "started",
            NotifyEventKind::Succeeded => "succeeded",
            NotifyEventKind::Failed => "FAILED",
            NotifyEventKind::VerificationFailed => "done but verification FAILED",
            NotifyEventKind::Cancelled => "cancelled",
        };
        format!("{} {what}", run.as_str())
    }
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyFormat {
    /// The [`NotifyEvent`] as a JSON object.
    #[default]
    Json,
    /// `{"text": "..."}` (Slack, Mattermost, Discord's `/slack` endpoint, ...).
    Slack,
    /// A PagerDuty Events API v2 change event (`routing_key`, `payload.summary`,
    /// `payload.custom_details`); the URL defaults to [`PAGERDUTY_CHANGE_URL`].
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// An incident.io HTTP alert event (`title`, markdown `description`,
    /// `deduplication_key` = the run id, `status` `firing` or `resolved`).
    #[serde(rename = "incident-io")]
    IncidentIo,
}

/// Where PagerDuty change events go when a `pagerduty` webhook sets no URL.
pub const PAGERDUTY_CHANGE_URL: &str = "https://events.pagerduty.com/v2/change/enqueue";

fn all_events() -> Vec<NotifyEventKind> {
    NotifyEventKind::ALL.to_vec()
}
fn default_timeout() -> f64 {
    5.0
}
fn default_retries() -> u32 {
    1
}

/// One `[[notify]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A name for logs and results (default: `webhook <n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The webhook URL (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// The environment variable holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// `json` or `slack`.
    #[serde(default)]
    pub format: NotifyFormat,
    /// The events sent (default: all).
    #[serde(default = "all_events")]
    pub events: Vec<NotifyEventKind>,
    /// Longest one attempt may take, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Attempts after the first when one fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The HMAC-SHA256 signing secret (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The environment variable holding the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// `pagerduty`: the integration's routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<Secret>,
    /// `pagerduty`: the environment variable holding the routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_env: Option<String>,
    /// `incident-io`: the alert source's bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// `incident-io`: the environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

impl NotifyConfig {
    /// A JSON webhook to `url` for every event, with the default timeout and retries.
    pub fn new(url: Secret) -> Self {
        Self {
            name: None,
            url: Some(url),
            url_env: None,
            format: NotifyFormat::Json,
            events: all_events(),
            timeout_secs: default_timeout(),
            retries: default_retries(),
            secret: None,
            secret_env: None,
            routing_key: None,
            routing_key_env: None,
            token: None,
            token_env: None,
        }
    }

    /// Checks the entry. `Err((field, message))`; the URL is never in the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match (&self.url, &self.url_env) {
            (None, None) if self.format == NotifyFormat::PagerDuty => {}
            (None, None) => return Err(("url".into(), "set `url` or `url_env`".into())),
            (Some(_), Some(_)) => return Err(("url".into(), "set either `url` or `url_env`, not both".into())),
            (Some(url), None) => {
                crate::deploy::check_hook_url(url).map_err(|m| ("url".to_owned(), m))?;
            }
            (None, Some(var)) if var.is_empty() => {
                return Err(("url_env".into(), "names no environment variable".into()));
            }
            (None, Some(_)) => {}
        }
        if !valid_secs(self.timeout_secs) {
            return Err(("timeout_secs".into(), format!("must be more than 0 (got {})", self.timeout_secs)));
        }
        if self.retries > MAX_RETRIES {
            return Err(("retries".into(), format!("at most {MAX_RETRIES} (got {})", self.retries)));
        }
        if self.events.is_empty() {
            return Err((
                "events".into(),
                "is an empty list: the webhook would never be sent anything (leave `events` out to send every event)"
                    .into(),
            ));
        }
        for (key, inline, env) in [
            ("secret", &self.secret, &self.secret_env),
            ("routing_key", &self.routing_key, &self.routing_key_env),
            ("token", &self.token, &self.token_env),
        ] {
            match (inline, env) {
                (Some(_), Some(_)) => {
                    return Err((key.into(), format!("set either `{key}` or `{key}_env`, not both")));
                }
                // An HMAC keyed with nothing, or a key nobody holds: never what was meant.
                (Some(value), None) if value.expose().trim().is_empty() => {
                    return Err((key.into(), format!("is empty (or only white space): set it, or leave `{key}` out")));
                }
                (None, Some(v)) if v.is_empty() => {
                    return Err((format!("{key}_env"), "names no environment variable".into()));
                }
                _ => {}
            }
        }
        let has = |inline: bool, env: &Option<String>| inline || env.is_some();
        if self.format == NotifyFormat::PagerDuty && !has(self.routing_key.is_some(), &self.routing_key_env) {
            return Err((
                "routing_key".into(),
                "a `pagerduty` webhook needs `routing_key` or `routing_key_env`".into(),
            ));
        }
        if self.format != NotifyFormat::PagerDuty && has(self.routing_key.is_some(), &self.routing_key_env) {
            return Err(("routing_key".into(), "only a `pagerduty` webhook takes a routing key".into()));
        }
        if self.format != NotifyFormat::IncidentIo && has(self.token.is_some(), &self.token_env) {
            return Err(("token".into(), "only an `incident-io` webhook takes a token".into()));
        }
        Ok(())
    }

    fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("webhook {}", index + 1))
    }
}

/// Most retries a webhook may ask for (a webhook must not hold a rollback up for long).
pub const MAX_RETRIES: u32 = 10;

/// Checks every `[[notify]]` entry. `Err((key, message))` with keys like `notify[0].url`.
pub fn validate(configs: &[NotifyConfig]) -> Result<(), (String, String)> {
    for (i, c) in configs.iter().enumerate() {
        c.validate().map_err(|(k, m)| (format!("notify[{i}].{k}"), m))?;
    }
    Ok(())
}

/// What is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEvent {
    /// What happened.
    pub kind: NotifyEventKind,
    /// The run's kind: `rollback`, or `undo` (of an earlier run).
    pub run_kind: RunKind,
    /// The run.
    pub run_id: String,
    /// How bad it is.
    pub level: LogLevel,
    /// The commit production ran before the rollback.
    pub from: Option<String>,
    /// The rollback target.
    pub to: Option<String>,
    /// The repository (its folder name or remote URL without credentials).
    pub repository: String,
    /// One line for people (no secrets).
    pub message: String,
    /// When.
    pub time: Timestamp,
}

impl NotifyEvent {
    /// The Slack text: `[forge-rollback] rollback FAILED in shop (run r1, 1a2b3c4 → 9f8e7d6): message`
    /// (`undo FAILED` for an undo).
    pub fn text(&self) -> String {
        let short = |c: &Option<String>| c.as_deref().map(|c| c.get(..7).unwrap_or(c).to_owned());
        let commits = match (short(&self.from), short(&self.to)) {
            (Some(f), Some(t)) => format!(", {f} → {t}"),
            (None, Some(t)) => format!(", to {t}"),
            _ => String::new(),
        };
        let mut text = format!(
            "[forge-rollback] {} in {} (run {}{commits})",
            self.kind.headline(self.run_kind),
            self.repository,
            self.run_id
        );
        if !self.message.is_empty() {
            text.push_str(": ");
            text.push_str(&self.message);
        }
        text
    }

    /// `9f8e7d6 → 1a2b3c4`, or what is known of it.
    fn commits(&self) -> String {
        let short = |c: &Option<String>| c.as_deref().map_or("?", |c| c.get(..7).unwrap_or(c)).to_owned();
        format!("{} → {}", short(&self.from), short(&self.to))
    }

    /// What an incident tool shows as a title: `forge-rollback: rollback FAILED in shop
    /// (9f8e7d6 → 1a2b3c4)` (`undo FAILED` for an undo, which puts the broken release back).
    pub fn title(&self) -> String {
        format!("forge-rollback: {} in {} ({})", self.kind.headline(self.run_kind), self.repository, self.commits())
    }

    fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "run_id": self.run_id,
            "level": self.level,
            "status": self.kind.as_str(),
            "run_kind": self.run_kind,
            "from": self.from,
            "to": self.to,
            "repository": self.repository,
            "message": self.message,
        })
    }

    fn markdown(&self) -> String {
        let code = |c: &Option<String>| c.as_deref().map_or("unknown".to_owned(), |c| format!("`{c}`"));
        let mut md = format!(
            "**{}** in **{}**\n\n- run: `{}`\n- from: {}\n- to: {}\n- level: {}\n- at: {}\n",
            self.kind.headline(self.run_kind),
            self.repository,
            self.run_id,
            code(&self.from),
            code(&self.to),
            serde_json::to_value(self.level).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            self.time
        );
        if !self.message.is_empty() {
            let _ = write!(md, "\n{}\n", self.message);
        }
        md
    }

    /// The body for `format`; `key` is the PagerDuty routing key.
    fn body(&self, format: NotifyFormat, key: Option<&Secret>) -> serde_json::Value {
        match format {
            NotifyFormat::Slack => serde_json::json!({ "text": self.text() }),
            NotifyFormat::Json => serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
            NotifyFormat::PagerDuty => serde_json::json!({
                "routing_key": key.map(Secret::expose),
                "payload": {
                    // PagerDuty cuts summaries at 1024 characters.
                    "summary": truncate(&format!("{}: {}", self.title(), self.message), 1024),
                    "timestamp": self.time,
                    "source": "forge-rollback",
                    "custom_details": self.details(),
                },
            }),
            NotifyFormat::IncidentIo => serde_json::json!({
                "title": self.title(),
                "description": self.markdown(),
                "deduplication_key": self.run_id,
                "status": match self.kind {
                    NotifyEventKind::Started | NotifyEventKind::Failed | NotifyEventKind::VerificationFailed => "firing",
                    NotifyEventKind::Succeeded | NotifyEventKind::Cancelled => "resolved",
                },
                "metadata": self.details(),
            }),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// `sha256=<hex>`: HMAC-SHA256 keyed with `secret` over `<timestamp>.<body>`, the value of
/// `X-Forge-Signature-256`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut out = String::from("sha256=");
    for b in mac.finalize().into_bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Forge-Signature-256";
/// The timestamp header's name.
pub const TIMESTAMP_HEADER: &str = "X-Forge-Timestamp";

/// What happened to one webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyResult {
    /// The webhook's name (`webhook 2` without one).
    pub name: String,
    /// The event sent.
    pub kind: NotifyEventKind,
    /// Delivered (a `2xx` answer).
    pub ok: bool,
    /// Attempts made.
    pub attempts: u32,
    /// The last answer's status, if there was one.
    pub status: Option<u16>,
    /// Wall time in milliseconds.
    pub millis: u64,
    /// For logs: `status 200`, `status 500 (3 attempts)`, `timed out after 5.0 s`; never the URL.
    pub detail: String,
}

impl NotifyResult {
    /// Not delivered, with why.
    fn failed(name: String, kind: NotifyEventKind, detail: String) -> Self {
        Self { name, kind, ok: false, attempts: 0, status: None, millis: 0, detail }
    }

    /// The run's warning when the webhook failed (``webhook `ops` (started) failed: timed out
    /// after 5.0 s``), as logged and as reports list it; `None` when it was delivered.
    pub fn warning(&self) -> Option<String> {
        (!self.ok).then(|| format!("webhook `{}` ({}) failed: {}", self.name, self.kind.as_str(), self.detail))
    }
}

/// The detail of a send given up because the caller stopped waiting ([`send_after`]'s `stop`).
pub const INTERRUPTED: &str = "interrupted before it was answered";

/// How often [`send_after`] asks its `stop`.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The longest one webhook may take for one event: `timeout_secs × (retries + 1)`.
fn budget(config: &NotifyConfig) -> Duration {
    duration(config.timeout_secs).saturating_mul(config.retries.min(MAX_RETRIES) + 1)
}

/// Sends `event` to every webhook subscribed to its kind, at once; one result per webhook
/// sent to (unsubscribed ones are left out). Never fails: problems are in the results. Each
/// webhook takes at most its `timeout_secs × (retries + 1)`.
pub async fn send_all(configs: &[NotifyConfig], event: &NotifyEvent) -> Vec<NotifyResult> {
    let sends = configs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.events.contains(&event.kind))
        .map(|(i, c)| send_one(c, c.label(i), event, None));
    futures_util::future::join_all(sends).await
}

/// An event being sent in the background, one task per webhook subscribed to it: a run's
/// `started`, sent while its first steps run, so that a slow webhook does not hold up an
/// emergency. Collected by [`send_after`]; dropping it stops the sends not done yet.
#[derive(Debug)]
pub struct Sending {
    /// By webhook, in the configuration's order; `None`: not subscribed to the event.
    sends: Vec<Option<Background>>,
}

/// One webhook's send on the shared runtime, stopped when dropped.
#[derive(Debug)]
struct Background(tokio::task::JoinHandle<NotifyResult>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Sending {
    /// Starts sending `event` to every webhook of `configs` subscribed to it, on the shared
    /// runtime, and returns at once. Each send is bounded as [`send_all`]'s are.
    pub fn start(configs: &[NotifyConfig], event: &NotifyEvent) -> Self {
        let sends = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.events.contains(&event.kind).then(|| {
                    let (config, event) = (c.clone(), event.clone());
                    Background(
                        crate::rt::runtime()
                            .spawn(async move { send_one(&config, config.label(i), &event, None).await }),
                    )
                })
            })
            .collect();
        Self { sends }
    }
}

/// Sends `event`, a run's last, to every webhook of `configs` subscribed to it, collecting
/// `before` (the run's `started`, from [`Sending::start`] with the same `configs`) meanwhile.
/// Returns the results of both: `before`'s, then `event`'s. Never fails.
///
/// At each webhook the two stay in order: `event` goes out once that webhook's `started` is
/// answered or given up, so that an incident tool never sees an alert resolved before it
/// fired. And each webhook's share of the wait, its `started` included, ends `timeout_secs ×
/// (retries + 1)` after this is called: the bound a webhook may hold a run up by. What a slow
/// `started` used of it, `event` does not get (a `started` that took it all leaves `event`
/// unsent, a failed result saying so).
///
/// `stop` is asked every 50 ms: once it says `true`, what is not done yet is given up at once,
/// each a failed result with the detail [`INTERRUPTED`].
pub async fn send_after(
    configs: &[NotifyConfig],
    before: Option<Sending>,
    event: &NotifyEvent,
    stop: &(dyn Fn() -> bool + Sync),
) -> (Vec<NotifyResult>, Vec<NotifyResult>) {
    let start = tokio::time::Instant::now();
    let mut before = before.map(|b| b.sends).unwrap_or_default();
    let each = configs.iter().enumerate().map(|(i, c)| {
        let earlier = before.get_mut(i).and_then(Option::take);
        async move {
            let name = c.label(i);
            let subscribed = c.events.contains(&event.kind);
            let given_up = |kind| NotifyResult::failed(name.clone(), kind, INTERRUPTED.to_owned());
            let stopped = async {
                while !stop() {
                    tokio::time::sleep(STOP_POLL).await;
                }
            };
            tokio::pin!(stopped);
            let mut started = None;
            // Its share of the wait ends here, its `started` included (without one, the last
            // event has it all).
            let mut deadline = None;
            if let Some(mut send) = earlier {
                deadline = Some(start + budget(c));
                // Begun before this call and bounded by the same budget: over before `deadline`.
                let result = tokio::select! {
                    joined = &mut send.0 => joined.unwrap_or_else(|e| {
                        NotifyResult::failed(name.clone(), NotifyEventKind::Started, format!("the send stopped: {e}"))
                    }),
                    () = &mut stopped => {
                        return (Some(given_up(NotifyEventKind::Started)), subscribed.then(|| given_up(event.kind)));
                    }
                };
                started = Some(result);
            }
            let last = if subscribed {
                Some(tokio::select! {
                    r = send_one(c, name.clone(), event, deadline) => r,
                    () = &mut stopped => given_up(event.kind),
                })
            } else {
                None
            };
            (started, last)
        }
    });
    let (started, last): (Vec<_>, Vec<_>) = futures_util::future::join_all(each).await.into_iter().unzip();
    (started.into_iter().flatten().collect(), last.into_iter().flatten().collect())
}

/// Sends `event` to one webhook, within its budget, and within `deadline` when given (what
/// its `started` left of the wait).
async fn send_one(
    config: &NotifyConfig,
    name: String,
    event: &NotifyEvent,
    deadline: Option<tokio::time::Instant>,
) -> NotifyResult {
    let start = Instant::now();
    let mut result = NotifyResult::failed(name, event.kind, String::new());
    let per_attempt = duration(config.timeout_secs);
    let attempts = config.retries.min(MAX_RETRIES) + 1;
    let own = budget(config);
    let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
    if left.is_some_and(|l| l.is_zero()) {
        result.detail = format!("not sent: its `started` took all the {:.1} s it may hold a run up", own.as_secs_f64());
        return result;
    }
    let allowed = left.map_or(own, |l| l.min(own));
    let bounded = tokio::time::timeout(allowed, attempt_all(config, event, per_attempt, attempts, &mut result)).await;
    if bounded.is_err() {
        result.ok = false;
        let mut gave_up = format!("gave up after {:.1} s", allowed.as_secs_f64());
        if allowed < own {
            gave_up.push_str(", the time its `started` left");
        }
        result.detail = if result.detail.is_empty() { gave_up } else { format!("{}; {gave_up}", result.detail) };
    }
    if result.attempts > 1 {
        let _ = write!(result.detail, " ({} attempts)", result.attempts);
    }
    result.millis = millis(start.elapsed());
    result
}

async fn attempt_all(
    config: &NotifyConfig,
    event: &NotifyEvent,
    per_attempt: Duration,
    attempts: u32,
    result: &mut NotifyResult,
) {
    let secret = |inline: Option<&Secret>, env: Option<&str>| from_inline_or_env(inline, env);
    let (signing, key, token) = match (
        secret(config.secret.as_ref(), config.secret_env.as_deref()),
        secret(config.routing_key.as_ref(), config.routing_key_env.as_deref()),
        secret(config.token.as_ref(), config.token_env.as_deref()),
    ) {
        (Ok(s), Ok(k), Ok(t)) => (s, k, t),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            result.detail = e;
            return;
        }
    };
    let url = match from_inline_or_env(config.url.as_ref(), config.url_env.as_deref()) {
        Ok(Some(u)) => u,
        Ok(None) if config.format == NotifyFormat::PagerDuty => Secret::new(PAGERDUTY_CHANGE_URL),
        Ok(None) => {
            "no URL (set `url` or `url_env`)".clone_into(&mut result.detail);
            return;
        }
        Err(e) => {
            result.detail = e;
            return;
        }
    };
    let parsed = match crate::deploy::check_hook_url(&url) {
        Ok(p) => p,
        Err(e) => {
            result.detail = e;
            return;
        }
    };
    let mut secrets = secret_parts(url.expose(), &parsed);
    secrets.extend([&signing, &key, &token].into_iter().flatten().map(|s| s.expose().to_owned()));
    let client = match client_without_redirects() {
        Ok(c) => c,
        Err(e) => {
            result.detail = e.to_string();
            return;
        }
    };
    let body = event.body(config.format, key.as_ref()).to_string();
    let mut pause = Duration::from_millis(200);
    loop {
        result.attempts += 1;
        let mut request =
            client.post(parsed.clone()).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        if let Some(s) = &signing {
            // Signed per attempt: a retry carries a fresh timestamp.
            let now = Timestamp::now().as_unix();
            request = request
                .header(TIMESTAMP_HEADER, now.to_string())
                .header(SIGNATURE_HEADER, sign(s.expose().as_bytes(), now, body.as_bytes()));
        }
        if let Some(t) = &token {
            request = request.bearer_auth(t.expose());
        }
        let request = request.send();
        match tokio::time::timeout(per_attempt, request).await {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                result.status = Some(status);
                result.detail = format!("status {status}");
                if resp.status().is_success() {
                    result.ok = true;
                    return;
                }
            }
            Ok(Err(e)) => {
                result.detail = redact_in(&describe_error(e, None), secrets.iter().map(String::as_str));
            }
            Err(_) => result.detail = timed_out(per_attempt),
        }
        if result.attempts >= attempts {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = pause.saturating_mul(2);
    }
}
