//! The shared HTTP client (checks, deploy hooks, webhooks): rustls with the `ring` provider,
//! no redirects followed beyond a small limit, no proxy surprises.
//!
//! Two clients are built once per process and shared (they pool connections): [`client`]
//! follows up to [`MAX_REDIRECTS`] redirects, [`client_without_redirects`] follows none
//! (deploy hooks and webhooks: a POST must not turn into a GET somewhere else). Neither uses a
//! proxy: a check of `127.0.0.1:8000` must reach `127.0.0.1:8000`, whatever `HTTP_PROXY` says.
//! Neither keeps idle connections: every request opens its own, so a health check proves the
//! service still accepts connections, and a client shared by the whole process is never left
//! holding a connection that belonged to a runtime that has since shut down.
//!
//! Also here: reading a body without buffering more than a cap ([`read_capped`]), and turning
//! a `reqwest` error into a sentence a person can act on without the URL in it
//! ([`describe_error`]).

use std::sync::{Once, OnceLock};
use std::time::Duration;

use reqwest::redirect::Policy;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("forge-rollback/", env!("CARGO_PKG_VERSION"));

/// The most redirects [`client`] follows before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// How long establishing a TCP connection may take, whatever the request's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client could not be built (no TLS roots, ...).
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {message}")]
#[non_exhaustive]
pub struct Error {
    /// What went wrong.
    pub message: String,
}

/// Installs rustls's `ring` crypto provider as the process default, once. Harmless when
/// another provider is already installed (that one stays).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn build(policy: Policy) -> Result<reqwest::Client, Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(policy)
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| Error { message: chain(&e.without_url()) })
}

/// The shared client that follows up to [`MAX_REDIRECTS`] redirects (checks), on the same
/// host only and never from `https` to `http`: a check's headers may carry tokens, and reqwest
/// forwards every header but `Authorization` and cookies to wherever a redirect points. A
/// redirect elsewhere is not followed: the check sees the `3xx` itself.
pub fn client() -> Result<&'static reqwest::Client, Error> {
    static CLIENT: OnceLock<Result<reqwest::Client, Error>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            build(Policy::custom(|attempt| {
                let Some(first) = attempt.previous().first() else { return attempt.follow() };
                let next = attempt.url();
                if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error(format!("too many redirects (more than {MAX_REDIRECTS})"))
                } else {
                    let same_host = first.host_str() == next.host_str();
                    let same_origin = same_host
                        && first.scheme() == next.scheme()
                        && first.port_or_known_default() == next.port_or_known_default();
                    let upgrade = same_host && first.scheme() == "http" && next.scheme() == "https";
                    if same_origin || upgrade { attempt.follow() } else { attempt.stop() }
                }
            }))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The shared client that follows no redirect (deploy hooks, webhooks): a `3xx` is returned
/// as is.
pub fn client_without_redirects() -> Result<&'static reqwest::Client, Error> {
    static CLIENT: OnceLock<Result<reqwest::Client, Error>> = OnceLock::new();
    CLIENT.get_or_init(|| build(Policy::none())).as_ref().map_err(Clone::clone)
}

/// A body read with [`read_capped`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedBody {
    /// At most the cap's worth of bytes, from the start of the body.
    pub bytes: Vec<u8>,
    /// The body was longer than the cap (the rest was not read).
    pub truncated: bool,
}

/// Reads at most `max` bytes of `response`'s body, chunk by chunk: a body of any size costs
/// at most `max` bytes of memory. The rest is left unread (the connection is closed when the
/// response is dropped).
pub async fn read_capped(response: &mut reqwest::Response, max: usize) -> Result<CappedBody, reqwest::Error> {
    let mut out = CappedBody::default();
    if response.content_length().is_some_and(|n| n > max as u64) {
        out.truncated = true;
    }
    while out.bytes.len() < max {
        let Some(chunk) = response.chunk().await? else {
            return Ok(out);
        };
        let room = max - out.bytes.len();
        if chunk.len() > room {
            out.bytes.extend_from_slice(&chunk[..room]);
            out.truncated = true;
            return Ok(out);
        }
        out.bytes.extend_from_slice(&chunk);
    }
    // Exactly `max` bytes read: the body is longer if anything follows.
    if !out.truncated && response.chunk().await?.is_some_and(|c| !c.is_empty()) {
        out.truncated = true;
    }
    Ok(out)
}

/// The error and its causes, `: `-joined, without the URL.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

/// The first `io::Error` in `err`'s causes.
fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = e.source();
    }
    None
}

/// What went wrong with a request, for a person: "connection refused to 127.0.0.1:8000",
/// "too many redirects (more than 5)", ...
///
/// `target` names the server (`host:port`) in the sentence; pass `None` when the URL is a
/// secret (hooks, webhooks): nothing of the URL is then printed. The URL `reqwest` keeps in its
/// errors is never printed either way.
pub fn describe_error(err: reqwest::Error, target: Option<&str>) -> String {
    let err = err.without_url();
    let to = target.map(|t| format!(" to {t}")).unwrap_or_default();
    let at = target.map(|t| format!(" {t}")).unwrap_or_default();
    if err.is_redirect() {
        return format!("too many redirects (more than {MAX_REDIRECTS})");
    }
    if err.is_timeout() {
        return format!("request{to} timed out");
    }
    if let Some(io) = io_cause(&err) {
        use std::io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused => return format!("connection refused{to}"),
            K::ConnectionReset => return format!("connection reset by the server{at}"),
            K::ConnectionAborted => return format!("connection aborted by the server{at}"),
            K::UnexpectedEof | K::BrokenPipe => return format!("the server{at} closed the connection early"),
            _ => {}
        }
    }
    if err.is_connect() {
        return format!("cannot connect{to}: {}", chain(&err));
    }
    if err.is_body() || err.is_decode() {
        return format!(
            "error reading the response{}: {}",
            target.map(|t| format!(" of {t}")).unwrap_or_default(),
            chain(&err)
        );
    }
    if err.is_builder() {
        return format!("invalid request: {}", chain(&err));
    }
    format!("request{to} failed: {}", chain(&err))
}

/// `host:port` of `url`, for messages.
pub fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// `application/x-www-form-urlencoded` encoding of `pairs` (what an `OAuth2` password form
/// sends).
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fn enc(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
                b' ' => out.push('+'),
                _ => {
                    use std::fmt::Write;
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        enc(&mut out, k);
        out.push('=');
        enc(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode([("username", "a b"), ("password", "p&w=d/é")]),
            "username=a+b&password=p%26w%3Dd%2F%C3%A9"
        );
        assert_eq!(form_encode([]), "");
    }

    #[test]
    fn clients_build_once() {
        let a = client().unwrap();
        let b = client().unwrap();
        assert!(std::ptr::eq(a, b));
        assert!(!std::ptr::eq(a, client_without_redirects().unwrap()));
    }

    #[test]
    fn host_port_uses_default_ports() {
        let u = reqwest::Url::parse("https://example.com/x").unwrap();
        assert_eq!(host_port(&u), "example.com:443");
        let u = reqwest::Url::parse("http://127.0.0.1:8000/").unwrap();
        assert_eq!(host_port(&u), "127.0.0.1:8000");
    }
}
