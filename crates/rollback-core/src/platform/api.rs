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
        Err(self.error(
            format!("the environment variable {} {problem}", self.token_env),
            Some(format!(
                "export {} with {}, or name another variable in `[deploy] token_env`",
                self.token_env, self.token_what
            )),
        ))
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
                sent.map_err(|e| self.error(redact_in(&describe_error(e, Some(&host)), [token.expose()]), None))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = crate::http::read_capped(&mut resp, MAX_BODY)
                .await
                .map_err(|e| self.error(redact_in(&describe_error(e, Some(&host)), [token.expose()]), None))?
                .bytes;
            if status != 429 {
                return Ok(Response { status, body, headers });
            }
            let wait = retry_after(&headers);
            attempt += 1;
            match wait {
                Some(w) if attempt <= MAX_RETRIES && w <= MAX_RETRY_AFTER => tokio::time::sleep(w).await,
                _ => {
                    return Err(self.error(
                        format!(
                            "rate limited (429): {}",
                            platform_message(&body).unwrap_or_else(|| "too many requests".to_owned())
                        ),
                        Some(format!(
                            "the API asked to wait {}; retry later",
                            wait.map_or_else(|| "an unknown time".to_owned(), |w| format!("{} s", w.as_secs()))
                        )),
                    ));
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
        self.error(redact_in(&format!("{what} failed ({}): {said}", resp.status), [token.expose()]), hint)
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
/// taken at the deadline, never after it.
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
    loop {
        match check().await? {
            Poll::Live => return Ok(()),
            Poll::Failed(e) => return Err(e),
            Poll::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::NotLive { target: target(), release: release.id.clone(), seconds: timeout.as_secs() });
        }
        tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// `Retry-After` in seconds (the HTTP-date form is read as "now").
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    match v.parse::<u64>() {
        Ok(s) => Some(Duration::from_secs(s)),
        Err(_) => Some(Duration::ZERO),
    }
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
}
