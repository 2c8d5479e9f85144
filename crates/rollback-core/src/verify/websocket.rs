//! `kind = "websocket"`: a handshake, optionally a message and the text of the reply.

use std::fmt::Write as _;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

use super::Outcome;
use super::config::WebSocketCheck;
use super::http::quote;
use super::tcp::describe_io;
use super::template::Vars;
use crate::secret::redact_url_credentials;

/// Largest message read (bigger ones fail the check instead of being buffered).
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

fn describe(err: tungstenite::Error, target: &str) -> String {
    match err {
        tungstenite::Error::Io(e) => describe_io(&e, target),
        tungstenite::Error::Http(resp) => {
            format!("the WebSocket handshake with {target} was refused: status {}", resp.status().as_u16())
        }
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            format!("{target} closed the connection")
        }
        other => format!("WebSocket error with {target}: {other}"),
    }
}

/// Runs a `websocket` check once (the URL's templates rendered with `vars`, as an `http`
/// check's: `?token={{env:WS_TOKEN}}`).
pub(super) async fn run(check: &WebSocketCheck, vars: &mut Vars) -> Outcome {
    let url = match vars.render(&check.url) {
        Ok(u) => u,
        Err(e) => return Outcome::Error(format!("url: {e}")),
    };
    let target = match reqwest::Url::parse(&url) {
        Ok(u) if u.scheme() == "ws" => crate::http::host_port(&u),
        Ok(_) => return Outcome::Error(format!("`{}` is not a ws:// URL", redact_url_credentials(&url))),
        Err(e) => return Outcome::Error(format!("`{}` is not a valid URL: {e}", redact_url_credentials(&url))),
    };
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let (mut ws, _) = match tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await {
        Ok(c) => c,
        Err(e) => return Outcome::Error(describe(e, &target)),
    };
    if let Some(text) = &check.send
        && let Err(e) = ws.send(Message::text(text.as_str())).await
    {
        return Outcome::Error(describe(e, &target));
    }
    let outcome = match &check.expect_contains {
        None if check.send.is_none() => Outcome::Passed(format!("WebSocket handshake with {target}")),
        expect => loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break reply(t.as_str(), expect.as_deref(), vars),
                Some(Ok(Message::Binary(b))) => break reply(&String::from_utf8_lossy(&b), expect.as_deref(), vars),
                Some(Ok(Message::Close(Some(frame)))) => {
                    // The code and reason say why (`1011 database unavailable`).
                    let mut why =
                        format!("{target} closed the WebSocket without replying: code {}", u16::from(frame.code));
                    let text = quote(&vars.redact(frame.reason.as_str()));
                    if !text.is_empty() {
                        let _ = write!(why, " ({text})");
                    }
                    break Outcome::Failed(why);
                }
                Some(Ok(Message::Close(None))) | None => {
                    break Outcome::Failed(format!("{target} closed the WebSocket without replying"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Outcome::Error(describe(e, &target)),
            }
        },
    };
    // Be polite, but never wait long for the server's close frame.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ws.close(None)).await;
    outcome
}

fn reply(text: &str, expect: Option<&str>, vars: &Vars) -> Outcome {
    match expect {
        Some(needle) if !text.contains(needle) => {
            Outcome::Failed(format!("the reply does not contain `{needle}` (got {})", quote(&vars.redact(text))))
        }
        _ => Outcome::Passed("replied".to_owned()),
    }
}
