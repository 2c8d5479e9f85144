//! What every platform adapter needs from HTTP: the token from its environment variable (never
//! printed), JSON requests, a bounded wait on `429 Too Many Requests` as `Retry-After` asks,
//! and errors that carry the platform's own message with any secret removed.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::http::{client_without_redirects, describe_error, host_port};
use crate::production::{Error, Release, Result};
use crate::secret::{self, EnvProblem, Secret, redact_in};

/// Most `429` answers waited out for one call.
pub const MAX_RETRIES: u32 = 4;
/// Longest single wait a `Retry-After` may ask for; a longer one is an error.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of a response read.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// One platform's API: where it is, who we are, and how it names itself in messages.
#[derive(Clone, Debug)]
pub struct Api {
    /// For messages: "railway service X".
    pub target: String,
    /// The API's base URL.
    pub base: String,
    /// The environment variable holding the token.
    pub token_env: String,
    /// What the token is, for the hint when it is missing ("a Railway project token").
    pub token_what: &'static str,
}

/// A response: its status, headers that matter, and its body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// Response headers (lowercase names).
    pub headers: reqwest::header::HeaderMap,
}

impl Response {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self, api: &Api) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| api.error(format!("unexpected answer from the API ({e})"), None))
    }
}

impl Api {
    /// An error about this target.
    pub fn error(&self, message: String, hint: Option<String>) -> Error {
        Error::Platform { target: self.target.clone(), message, hint }
    }

    /// The token, read now from its variable (white space around it dropped).
    pub fn token(&self) -> Result<Secret> {
        let problem = match secret::from_env(&self.token_env) {
            Ok(t) if !t.expose().trim().is_empty() => return Ok(Secret::new(t.expose().trim())),
            Ok(_) => EnvProblem::Empty,
            Err(e) => e.problem,
        };
        // Bad usage, as for any variable the config names: nothing was asked of the platform.
        Err(Error::Usage {
            target: self.target.clone(),
            message: format!("the environment variable {} {problem}", self.token_env),
            hint: Some(format!(
                "export {} with {}, or name another variable in `[deploy] token_env`",
                self.token_env, self.token_what
            )),
        })
    }

    /// An error that may pass when the call is repeated (no answer, or a `5xx`).
    pub fn unavailable(&self, message: String) -> Error {
        Error::Unavailable { target: self.target.clone(), message }
    }

    /// Sends the request `build` makes (called again for each retry), waiting out `429`s.
    /// Any status is returned; only transport failures and exhausted retries are errors.
    pub async fn send(
        &self,
        token: &Secret,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response> {
        let client = client_without_redirects().map_err(|e| self.error(e.message, None))?;
        let host = reqwest::Url::parse(&self.base).map(|u| host_port(&u)).unwrap_or_default();
        let mut attempt = 0;
        loop {
            let sent = build(client).timeout(REQUEST_TIMEOUT).send().await;
            let mut resp =
                sent.map_err(|e| self.unavailable(redact_in(&describe_error(e, Some(&host)), [token.expose()])))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = crate::http::read_capped(&mut resp, MAX_BODY)
                .await
                .map_err(|e| self.unavailable(redact_in(&describe_error(e, Some(&host)), [token.expose()])))?
                .bytes;
            if status != 429 {
                return Ok(Response { status, body, headers });
            }
            let wait = retry_after(&headers);
            attempt += 1;
            match wait {
                Some(w) if attempt <= MAX_RETRIES && w <= MAX_RETRY_AFTER => tokio::time::sleep(w).await,
                _ => {
                    return Err(Error::RateLimited {
                        target: self.target.clone(),
                        message: redact_in(
                            &format!(
                                "rate limited (429): {}",
                                platform_message(&body).unwrap_or_else(|| "too many requests".to_owned())
                            ),
                            [token.expose()],
                        ),
                        retry_after: wait,
                        hint: Some(format!(
                            "the API asked to wait {}; retry later",
                            wait.map_or_else(|| "an unknown time".to_owned(), |w| format!("{} s", w.as_secs()))
                        )),
                    });
                }
            }
        }
    }

    /// An error for a non-success answer, naming the platform's own message.
    pub fn status_error(&self, what: &str, resp: &Response, token: &Secret) -> Error {
        let said = platform_message(&resp.body)
            .unwrap_or_else(|| String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).trim().to_owned());
        let hint = match resp.status {
            401 | 403 => Some(format!(
                "check the token in {} ({}) and that it can reach this service",
                self.token_env, self.token_what
            )),
            _ => None,
        };
        let message = redact_in(&format!("{what} failed ({}): {said}", resp.status), [token.expose()]);
        if resp.status >= 500 {
            return self.unavailable(message);
        }
        self.error(message, hint)
    }
}

/// What one look at a promoted release found.
#[derive(Debug)]
pub enum Poll {
    /// It serves.
    Live,
    /// It will not serve (its deploy failed): the wait ends with this error.
    Failed(Error),
    /// Not yet.
    Pending,
}

/// Looks with `check` every `interval` until the release serves, fails, or `timeout` passes
/// (then [`Error::NotLive`] naming `target`, the deployer's description). The last look is
/// taken at the deadline, never after it. A look that fails as [`Error::Unavailable`] (no
/// answer, a `5xx`, a timeout) is not an answer: platform APIs have such moments, and a
/// rollback must not fail on one in a ten-minute wait; nor is a `429` the retries of one
/// call could not wait out ([`Error::RateLimited`]: the next look waits at least what its
/// `Retry-After` asked, within the deadline). The looks go on until the deadline, and the
/// last such error is named if the release is still not live then. Any other error (a `4xx`:
/// a bad token, a service that is gone) ends the wait at once.
pub async fn poll_live<F, Fut>(
    target: impl FnOnce() -> String,
    release: &Release,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error;
    loop {
        let mut pause = interval;
        match check().await {
            Ok(Poll::Live) => return Ok(()),
            Ok(Poll::Failed(e)) => return Err(e),
            Ok(Poll::Pending) => last_error = None,
            Err(e) if e.is_transient() => {
                pause = pause.max(e.retry_after().unwrap_or_default());
                last_error = Some(e.to_string());
            }
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(Error::NotLive {
                target: target(),
                release: release.id.clone(),
                seconds: timeout.as_secs(),
                last_error,
            });
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// `Retry-After` as a wait: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3: the
/// IMF-fixdate form, which servers must send), counted from now and never below zero. A value
/// that is neither is taken as no header at all (the wait is unknown), not as "now".
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_value(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// One `Retry-After` value as a wait ([`retry_after`]).
pub(crate) fn retry_after_value(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = imf_fixdate(v)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn imf_fixdate(v: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let parts: Vec<&str> = v.split(' ').collect();
    let [weekday, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    if weekday.len() != 4 || !weekday.ends_with(',') || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> =
        time.split(':').map(|p| if p.len() == 2 { p.parse().ok() } else { None }).collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else { return None };
    if year < 1970 || !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from the epoch to the civil date (Howard Hinnant's `days_from_civil`).
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3_600 + m * 60 + s)
}

/// The message a platform put in an error body: `{"message"}`, `{"id","message"}` (Heroku),
/// `{"errors":[{"message"}]}` (GraphQL), `{"error"}`.
pub fn platform_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: Option<String>,
        error: Option<String>,
        errors: Option<Vec<Inner>>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        message: String,
    }
    let m: Msg = serde_json::from_slice(body).ok()?;
    if let Some(errs) = m.errors.filter(|e| !e.is_empty()) {
        return Some(errs.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; "));
    }
    m.message.or(m.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_messages_are_read_from_each_shape() {
        assert_eq!(
            platform_message(br#"{"errors":[{"message":"Not Authorized"}],"data":null}"#).as_deref(),
            Some("Not Authorized")
        );
        assert_eq!(platform_message(br#"{"id":"forbidden","message":"no access"}"#).as_deref(), Some("no access"));
        assert_eq!(platform_message(br#"{"error":"bad"}"#).as_deref(), Some("bad"));
        assert_eq!(platform_message(b"<html>"), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(imf_fixdate("Wed, 21 Oct 2099 07:28:00 GMT"), Some(4_096_250_880));
        assert_eq!(imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(imf_fixdate("soon"), None);
        let with = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&h)
        };
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        assert_eq!(with("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO), "a date past is now");
        assert!(with("Wed, 21 Oct 2099 07:28:00 GMT").is_some_and(|w| w > MAX_RETRY_AFTER));
        assert_eq!(with("later please"), None, "unreadable is no header");
    }
}
