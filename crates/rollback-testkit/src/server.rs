//! A real HTTP/1.1 and WebSocket server on `127.0.0.1:0` for tests of checks, hooks and
//! webhooks, shut down when dropped.
//!
//! It serves the seed's `FastAPI` app out of the box: `GET /` and `GET /health` answer
//! `{"status":"healthy"}`; `POST /register` (JSON `username`, `password`), `POST /token` (`OAuth2`
//! password form) → `{"access_token": ..., "token_type": "bearer"}` and `GET /protected`
//! (200 with the bearer token, 401 without) form the auth flow; `/ws/echo` is a WebSocket echo.
//! Any path's [`Behaviour`] can be switched at run time ([`TestServer::set`]): slow, hanging,
//! failing, a redirect loop, a huge streamed body. Every request is recorded (method, path,
//! headers, body) before it is answered ([`TestServer::requests`]).
//!
//! One thread per connection, one request per connection (`Connection: close`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// Largest request head and body read.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the server does for a path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behaviour {
    /// `200 {"status":"healthy"}`.
    Healthy,
    /// This status, with a short text body.
    Status(u16),
    /// This status and JSON text.
    Json(u16, String),
    /// This status and plain text.
    Text(u16, String),
    /// Waits, then behaves as the inner behaviour.
    Slow(Duration, Box<Behaviour>),
    /// Accepts, reads the request and never answers (until the server is dropped).
    Hang,
    /// `302` to itself, forever.
    RedirectLoop,
    /// `302` to this URL.
    Redirect(String),
    /// `200` and a body of this many bytes, streamed; with or without `Content-Length`.
    HugeBody {
        /// Body size.
        bytes: u64,
        /// Send a `Content-Length` header (else the body ends when the connection closes).
        content_length: bool,
    },
    /// `POST /register` of the auth flow.
    Register,
    /// `POST /token` of the auth flow.
    Token,
    /// `GET /protected` of the auth flow.
    Protected,
    /// `DELETE /users/me` with the bearer token: deletes that user (and its tokens), `204`.
    DeleteMe,
    /// A WebSocket echo.
    WsEcho,
    /// A WebSocket the server closes at once with this close code and reason (`1011`,
    /// `database unavailable`).
    WsClose(u16, String),
    /// Makes `path` behave as `to` from now on, then answers `200 {"switched": path}` (a
    /// deploy hook whose deploy heals the service).
    Switch {
        /// The path whose behaviour changes (without query).
        path: String,
        /// Its behaviour from now on.
        to: Box<Behaviour>,
    },
    /// This status, with the request's headers and body as plain text (a debug error page that
    /// shows what it was sent).
    Echo(u16),
    /// Prometheus text-format metrics of an app whose requests fail at this rate: every
    /// scrape adds 1000 requests to `http_requests_total`, `error_permille` of them with
    /// `status="500"`, the rest `status="200"` (real counters, so `rate()` works on them).
    Metrics {
        /// Failed requests per thousand.
        error_permille: u64,
    },
    /// The first `n` requests to this path get `first`, later ones `then` (a service that
    /// becomes ready after a while).
    After {
        /// Requests answered by `first`.
        n: usize,
        /// The behaviour of the first `n` requests.
        first: Box<Behaviour>,
        /// The behaviour of every later request.
        then: Box<Behaviour>,
    },
}

impl Behaviour {
    /// Healthy after `millis` ms.
    pub fn slow(millis: u64) -> Self {
        Behaviour::Slow(Duration::from_millis(millis), Box::new(Behaviour::Healthy))
    }

    /// [`Behaviour::Switch`]: requesting this path makes `path` behave as `to`.
    pub fn switch(path: &str, to: Behaviour) -> Self {
        Behaviour::Switch { path: path.to_owned(), to: Box::new(to) }
    }

    /// [`Behaviour::After`]: `first` for the first `n` requests, `then` afterwards.
    pub fn after(n: usize, first: Behaviour, then: Behaviour) -> Self {
        Behaviour::After { n, first: Box::new(first), then: Box::new(then) }
    }
}

/// One request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with its query string.
    pub path: String,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (up to 4 MiB).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An answer a [`Handler`] gives: status, extra headers, a JSON (or text) body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers beyond `Content-Type`, `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body, sent as `application/json`.
    pub body: String,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self { status, headers: Vec::new(), body: body.to_string() }
    }
}

/// Answers every request of a server started with [`TestServer::with_handler`] (a fake
/// platform API that keeps state between requests).
pub type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

#[derive(Default)]
struct Shared {
    handler: Option<Handler>,
    stop: AtomicBool,
    routes: Mutex<HashMap<String, Behaviour>>,
    requests: Mutex<Vec<RecordedRequest>>,
    users: Mutex<HashMap<String, String>>,
    tokens: Mutex<HashMap<String, String>>,
    next_token: AtomicU64,
    huge_bytes_sent: AtomicU64,
    /// The `http_requests_total` counters of [`Behaviour::Metrics`]: ok, failed.
    metric_counts: Mutex<(u64, u64)>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server; stops and joins its threads when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Default for TestServer {
    fn default() -> Self {
        Self::start()
    }
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server on `127.0.0.1` on a free port.
    pub fn start() -> Self {
        Self::start_shared(Shared::default())
    }

    /// Starts a server on `127.0.0.1` on a free port whose every request `handler` answers.
    pub fn with_handler(handler: Handler) -> Self {
        Self::start_shared(Shared { handler: Some(handler), ..Shared::default() })
    }

    fn start_shared(shared: Shared) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(shared);
        {
            let mut routes = lock(&shared.routes);
            for (path, b) in [
                ("/", Behaviour::Healthy),
                ("/health", Behaviour::Healthy),
                ("/register", Behaviour::Register),
                ("/token", Behaviour::Token),
                ("/protected", Behaviour::Protected),
                ("/users/me", Behaviour::DeleteMe),
                ("/ws/echo", Behaviour::WsEcho),
            ] {
                routes.insert(path.to_owned(), b);
            }
        }
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let s2 = s.clone();
                let handle = std::thread::spawn(move || serve(&s2, stream));
                let mut conns = lock(&s.connections);
                conns.retain(|h| !h.is_finished());
                conns.push(handle);
            }
        });
        Self { addr, shared, acceptor: Some(acceptor) }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Makes `path` (without query) behave as `behaviour` from now on.
    pub fn set(&self, path: &str, behaviour: Behaviour) {
        lock(&self.shared.routes).insert(path.to_owned(), behaviour);
    }

    /// Registers a user of the auth flow (an account created once by an operator).
    pub fn add_user(&self, name: &str, password: &str) {
        lock(&self.shared.users).insert(name.to_owned(), password.to_owned());
    }

    /// The registered users of the auth flow (the "rows" a check may leave behind).
    pub fn user_count(&self) -> usize {
        lock(&self.shared.users).len()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests to `path` (without query).
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.split('?').next() == Some(path)).collect()
    }

    /// Bytes of [`Behaviour::HugeBody`] bodies handed to the kernel so far (a client that stops
    /// reading makes this stop growing, give or take the socket buffers).
    pub fn huge_bytes_sent(&self) -> u64 {
        self.shared.huge_bytes_sent.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` until `path` has received `n` requests; returns them.
    pub fn wait_for_requests(&self, path: &str, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests_to(path);
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(TICK);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *lock(&self.shared.connections));
        for c in conns {
            let _ = c.join();
        }
    }
}

/// An address nothing listens on (a port bound, then released).
pub fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local address");
    drop(l);
    addr
}

fn stopped(s: &Shared) -> bool {
    s.stop.load(Ordering::SeqCst)
}

/// Sleeps `d`, or less if the server stops.
fn pause(s: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !stopped(s) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(TICK));
    }
}

fn serve(s: &Shared, mut stream: TcpStream) {
    if stopped(s) {
        return;
    }
    let _ = stream.set_read_timeout(Some(TICK));
    let _ = stream.set_write_timeout(Some(TICK));
    let _ = stream.set_nodelay(true);
    let Some((req, leftover)) = read_request(s, &mut stream) else { return };
    lock(&s.requests).push(req.clone());
    if let Some(h) = &s.handler {
        let reply = h(&req);
        let extra: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        send(s, &mut stream, reply.status, "application/json", &extra, reply.body.as_bytes());
        let _ = stream.flush();
        let _ = stream.shutdown(Shutdown::Write);
        return;
    }
    let path = req.path.split('?').next().unwrap_or("").to_owned();
    let behaviour = lock(&s.routes).get(&path).cloned().unwrap_or(Behaviour::Status(404));
    respond(s, &mut stream, &req, &path, &behaviour, leftover);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    // Let the client read everything before the socket closes (avoids a reset).
    let mut sink = [0_u8; 1024];
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end && !stopped(s) {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request; returns it and the bytes read past it.
fn read_request(s: &Shared, stream: &mut TcpStream) -> Option<(RecordedRequest, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD || stopped(s) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        if stopped(s) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return None,
        }
    }
    let leftover = body.split_off(len.min(body.len()));
    Some((RecordedRequest { method, path, headers, body }, leftover))
}

/// `write_all` that gives up when the server stops or the peer goes away.
fn write_all(s: &Shared, stream: &mut TcpStream, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        if stopped(s) {
            return false;
        }
        match stream.write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return false,
        }
    }
    true
}

fn reason(code: u16) -> &'static str {
    match code {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        426 => "Upgrade Required",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn send(s: &Shared, stream: &mut TcpStream, code: u16, content_type: &str, extra: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    for (k, v) in extra {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    if write_all(s, stream, head.as_bytes()) {
        write_all(s, stream, body);
    }
}

fn send_json(s: &Shared, stream: &mut TcpStream, code: u16, body: &serde_json::Value) {
    send(s, stream, code, "application/json", &[], body.to_string().as_bytes());
}

fn respond(s: &Shared, stream: &mut TcpStream, req: &RecordedRequest, path: &str, b: &Behaviour, leftover: Vec<u8>) {
    match b {
        Behaviour::Healthy => send_json(s, stream, 200, &serde_json::json!({"status": "healthy"})),
        Behaviour::Status(code) => send(s, stream, *code, "text/plain", &[], format!("status {code}").as_bytes()),
        Behaviour::Json(code, text) => send(s, stream, *code, "application/json", &[], text.as_bytes()),
        Behaviour::Text(code, text) => send(s, stream, *code, "text/plain", &[], text.as_bytes()),
        Behaviour::Metrics { error_permille } => {
            let (ok, failed) = {
                let mut c = lock(&s.metric_counts);
                let errors = (*error_permille).min(1000);
                c.0 += 1000 - errors;
                c.1 += errors;
                *c
            };
            let text = format!(
                "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n\
                 http_requests_total{{status=\"200\"}} {ok}\nhttp_requests_total{{status=\"500\"}} {failed}\n"
            );
            send(s, stream, 200, "text/plain; version=0.0.4", &[], text.as_bytes());
        }
        Behaviour::Slow(d, inner) => {
            pause(s, *d);
            if !stopped(s) {
                respond(s, stream, req, path, inner, leftover);
            }
        }
        Behaviour::Hang => {
            while !stopped(s) {
                std::thread::sleep(TICK);
            }
        }
        Behaviour::RedirectLoop => send(s, stream, 302, "text/plain", &[("Location", path)], b"again"),
        Behaviour::Redirect(to) => send(s, stream, 302, "text/plain", &[("Location", to.as_str())], b"moved"),
        Behaviour::HugeBody { bytes, content_length } => {
            let mut head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n".to_owned();
            if *content_length {
                let _ = write!(head, "Content-Length: {bytes}\r\n");
            }
            head.push_str("\r\n");
            if !write_all(s, stream, head.as_bytes()) {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = *bytes;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                if !write_all(s, stream, &chunk[..n]) {
                    return;
                }
                s.huge_bytes_sent.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
        }
        Behaviour::Register => {
            let body = req.body_json();
            let (Some(user), Some(pass)) = (body["username"].as_str(), body["password"].as_str()) else {
                return send_json(s, stream, 422, &serde_json::json!({"detail": "username and password required"}));
            };
            let mut users = lock(&s.users);
            if users.contains_key(user) {
                drop(users);
                return send_json(s, stream, 400, &serde_json::json!({"detail": "Username already registered"}));
            }
            users.insert(user.to_owned(), pass.to_owned());
            drop(users);
            send_json(s, stream, 200, &serde_json::json!({"username": user, "message": "registered"}));
        }
        Behaviour::Token => {
            let form = parse_form(&req.body_text());
            let (user, pass) = (form.get("username"), form.get("password"));
            let ok = match (user, pass) {
                (Some(u), Some(p)) => lock(&s.users).get(u) == Some(p),
                _ => false,
            };
            if !ok {
                return send_json(s, stream, 401, &serde_json::json!({"detail": "Incorrect username or password"}));
            }
            let user = user.cloned().unwrap_or_default();
            let token = format!("tok-{}-{}", s.next_token.fetch_add(1, Ordering::SeqCst), user.len());
            lock(&s.tokens).insert(token.clone(), user);
            send_json(s, stream, 200, &serde_json::json!({"access_token": token, "token_type": "bearer"}));
        }
        Behaviour::DeleteMe => {
            let token = req.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
            let user = token.and_then(|t| lock(&s.tokens).get(t).cloned());
            match (req.method.as_str(), user) {
                ("DELETE", Some(u)) => {
                    lock(&s.users).remove(&u);
                    lock(&s.tokens).retain(|_, owner| *owner != u);
                    send(s, stream, 204, "text/plain", &[], b"");
                }
                ("DELETE", None) => send_json(s, stream, 401, &serde_json::json!({"detail": "Not authenticated"})),
                _ => send_json(s, stream, 405, &serde_json::json!({"detail": "Method Not Allowed"})),
            }
        }
        Behaviour::Protected => {
            let user = req
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| lock(&s.tokens).get(t.trim()).cloned());
            match user {
                Some(u) => send_json(s, stream, 200, &serde_json::json!({"username": u})),
                None => send(
                    s,
                    stream,
                    401,
                    "application/json",
                    &[("WWW-Authenticate", "Bearer")],
                    br#"{"detail":"Not authenticated"}"#,
                ),
            }
        }
        Behaviour::WsEcho => ws_echo(s, stream, req, leftover),
        Behaviour::WsClose(code, reason) => ws_close(s, stream, req, leftover, *code, reason),
        Behaviour::Switch { path: other, to } => {
            lock(&s.routes).insert(other.clone(), (**to).clone());
            send_json(s, stream, 200, &serde_json::json!({ "switched": other }));
        }
        Behaviour::Echo(code) => {
            let mut text = format!("{} {}\n", req.method, req.path);
            for (k, v) in &req.headers {
                let _ = writeln!(text, "{k}: {v}");
            }
            text.push('\n');
            text.push_str(&req.body_text());
            send(s, stream, *code, "text/plain", &[], text.as_bytes());
        }
        Behaviour::After { n, first, then } => {
            // The request is recorded before it is answered: it counts itself.
            let seen = lock(&s.requests).iter().filter(|r| r.path.split('?').next() == Some(path)).count();
            let inner = if seen <= *n { first } else { then };
            respond(s, stream, req, path, inner, leftover);
        }
    }
}

/// Answers the WebSocket handshake (`426` to a plain request); the socket, once upgraded.
fn ws_accept(
    s: &Shared,
    stream: &mut TcpStream,
    req: &RecordedRequest,
    leftover: Vec<u8>,
) -> Option<WebSocket<TcpStream>> {
    let upgrade = req.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.header("sec-websocket-key").filter(|_| upgrade) else {
        send(s, stream, 426, "text/plain", &[("Upgrade", "websocket")], b"websocket only");
        return None;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if !write_all(s, stream, head.as_bytes()) {
        return None;
    }
    let clone = stream.try_clone().ok()?;
    Some(WebSocket::from_partially_read(clone, leftover, Role::Server, None))
}

fn ws_close(s: &Shared, stream: &mut TcpStream, req: &RecordedRequest, leftover: Vec<u8>, code: u16, reason: &str) {
    let Some(mut ws) = ws_accept(s, stream, req, leftover) else { return };
    let frame = tungstenite::protocol::CloseFrame { code: code.into(), reason: reason.to_owned().into() };
    let _ = ws.close(Some(frame));
    // Reading sends the close frame and waits for the client's answer to it.
    while !stopped(s) {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn ws_echo(s: &Shared, stream: &mut TcpStream, req: &RecordedRequest, leftover: Vec<u8>) {
    let Some(mut ws) = ws_accept(s, stream, req, leftover) else { return };
    while !stopped(s) {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// `application/x-www-form-urlencoded` → map.
fn parse_form(text: &str) -> HashMap<String, String> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| char::from(c).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (dec(k), dec(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form("username=a+b&password=p%26w%3Dd&x=%zz&y=%4");
        assert_eq!(f["username"], "a b");
        assert_eq!(f["password"], "p&w=d");
        assert_eq!(f["x"], "%zz");
        assert_eq!(f["y"], "%4");
    }

    #[test]
    fn serves_and_records() {
        let server = TestServer::start();
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.ends_with(r#"{"status":"healthy"}"#), "{out}");
        let reqs = server.requests_to("/health");
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].header("x-a"), Some("1"));
    }

    fn get(server: &TestServer, path: &str) -> String {
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out.lines().next().unwrap_or_default().to_owned()
    }

    #[test]
    fn switch_and_after() {
        let server = TestServer::start();
        server.set("/ready", Behaviour::after(2, Behaviour::Status(503), Behaviour::Healthy));
        assert_eq!(get(&server, "/ready"), "HTTP/1.1 503 Service Unavailable");
        assert_eq!(get(&server, "/ready"), "HTTP/1.1 503 Service Unavailable");
        assert_eq!(get(&server, "/ready"), "HTTP/1.1 200 OK");
        server.set("/health", Behaviour::Status(502));
        server.set("/deploy", Behaviour::switch("/health", Behaviour::Healthy));
        assert_eq!(get(&server, "/health"), "HTTP/1.1 502 Bad Gateway");
        assert_eq!(get(&server, "/deploy"), "HTTP/1.1 200 OK");
        assert_eq!(get(&server, "/health"), "HTTP/1.1 200 OK");
        server.set("/echo", Behaviour::Echo(500));
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Token: t0k\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 500") && out.contains("x-token: t0k"), "{out}");
    }
}
