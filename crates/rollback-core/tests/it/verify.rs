//! Service verification against a real HTTP/WebSocket server on 127.0.0.1, real programs and
//! a real SQLite file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rollback_core::rt;
use rollback_core::verify::config::{self, CheckSpec};
use rollback_core::verify::{
    CheckConfig, CheckResult, DbProbe, ServiceVerifier, VerificationReport, Verifier, VerifySettings,
};
use rollback_testkit::Reaper;
use rollback_testkit::server::{Behaviour, TestServer, refused_addr};
use serde::Deserialize;

#[derive(Deserialize)]
struct Parsed {
    #[serde(default)]
    checks: Vec<CheckConfig>,
    #[serde(default)]
    verify: VerifySettings,
}

fn parse(text: &str) -> Parsed {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn parse_err(text: &str) -> String {
    match toml::from_str::<Parsed>(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn verifier_with(text: &str, db: Option<Arc<dyn DbProbe>>, workdir: PathBuf) -> Verifier {
    let p = parse(text);
    config::validate(&p.checks, &p.verify, db.is_some()).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    Verifier::new(p.checks, p.verify, db, workdir)
}

fn verifier(text: &str) -> Verifier {
    verifier_with(text, None, std::env::temp_dir())
}

fn run(v: &Verifier) -> VerificationReport {
    rt::block_on(v.verify(None))
}

fn check<'a>(r: &'a VerificationReport, name: &str) -> &'a CheckResult {
    r.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no result for {name}: {r:#?}"))
}

/// The example of the issue, as written.
const EXAMPLE: &str = r#"
[[checks]]
name = "fastapi"
kind = "http"
url = "http://127.0.0.1:8000/"
expect_status = 200
body_contains = "healthy"
"#;

#[test]
fn the_example_toml_parses_as_written() {
    let p = parse(EXAMPLE);
    assert_eq!(p.checks.len(), 1);
    let c = &p.checks[0];
    assert_eq!((c.name.as_str(), c.kind(), c.timeout_secs, c.retries), ("fastapi", "http", None, 0));
    let CheckSpec::Http(h) = &c.spec else { panic!("{c:?}") };
    assert_eq!(h.url, "http://127.0.0.1:8000/");
    assert_eq!(h.method, "GET");
    assert_eq!(h.expect_status.as_ref().map(|s| s.0.clone()), Some(vec![200]));
    assert_eq!(h.body_contains.as_deref(), Some("healthy"));
    assert_eq!(h.max_body_bytes, 1024 * 1024);
    assert_eq!(p.verify, VerifySettings::default());
    config::validate(&p.checks, &p.verify, false).unwrap();
}

#[test]
fn every_kind_parses_and_validates() {
    let p = parse(
        r#"
[verify]
timeout_secs = 3
concurrency = 4
on_failure = "undo"

[[checks]]
name = "api"
kind = "http"
method = "post"
url = "http://127.0.0.1:8000/items?x={{random}}"
headers = { "X-Trace" = "t-{{random}}" }
headers_env = { Authorization = "API_TOKEN" }
json = { name = "probe" }
expect_status = [200, 201]
json_pointer = "/status"
json_equals = "healthy"
timeout_secs = 2.5
retries = 2
backoff_secs = 0.1
max_body_bytes = 4096
follow_redirects = false

[[checks]]
name = "db-port"
kind = "tcp"
address = "127.0.0.1:5432"

[[checks]]
name = "ws"
kind = "websocket"
url = "ws://127.0.0.1:8000/ws/echo"
send = "ping"
expect_contains = "ping"

[[checks]]
name = "cli"
kind = "command"
argv = ["python3", "-c", "print('ok')"]
cwd = "app"
expect_exit = 0
stdout_contains = "ok"

[[checks]]
name = "users"
kind = "sql"
query = "select count(*) from users"
expect = "3"

[[checks]]
name = "schema"
kind = "db-revision"

[[checks]]
name = "auth"
kind = "flow"
base_url = "http://127.0.0.1:8000"
vars = { user = "probe-{{random}}" }
vars_env = { password = "PROBE_PASSWORD" }

[[checks.steps]]
method = "POST"
url = "/register"
json = { username = "{{user}}", password = "{{password}}" }

[[checks.steps]]
name = "token"
method = "POST"
url = "/token"
form = { username = "{{user}}", password = "{{password}}" }
capture = { token = "/access_token" }

[[checks.steps]]
url = "/protected"
headers = { Authorization = "Bearer {{token}}" }
expect_status = 200
"#,
    );
    let kinds: Vec<_> = p.checks.iter().map(CheckConfig::kind).collect();
    assert_eq!(kinds, ["http", "tcp", "websocket", "command", "sql", "db-revision", "flow"]);
    assert_eq!((p.verify.timeout_secs, p.verify.concurrency), (3.0, 4));
    assert_eq!(p.verify.on_failure, config::OnFailure::Undo);
    let api = &p.checks[0];
    assert_eq!((api.timeout_secs, api.retries, api.backoff_secs), (Some(2.5), 2, 0.1));
    config::validate(&p.checks, &p.verify, true).unwrap();
    // sql and db-revision need a database.
    let (key, msg) = config::validate(&p.checks, &p.verify, false).unwrap_err();
    assert_eq!(key, "checks[4].kind");
    assert!(msg.contains("needs a `[database]`"), "{msg}");
    // Header values are secrets: not in Debug, not serialized.
    let debug = format!("{:?}", p.checks[0]);
    assert!(!debug.contains("t-{{random}}"), "{debug}");
    let json = serde_json::to_string(&p.checks[0]).unwrap();
    assert!(json.contains(r#""kind":"http""#) && json.contains(r#""name":"api""#) && !json.contains("t-{{"), "{json}");
}

#[test]
fn unknown_keys_and_kinds_are_refused() {
    let e = parse_err(&format!("{EXAMPLE}bogus = 1\n"));
    assert!(e.contains("check `fastapi`") && e.contains("unknown field `bogus`"), "{e}");
    let e = parse_err("[[checks]]\nname = \"x\"\nkind = \"ftp\"\n");
    assert!(e.contains("check `x`") && e.contains("unknown variant `ftp`"), "{e}");
    let e = parse_err("[[checks]]\nname = \"x\"\nurl = \"http://h/\"\n");
    assert!(e.contains("missing `kind`"), "{e}");
    let e = parse_err("[[checks]]\nkind = \"tcp\"\naddress = \"h:1\"\n");
    assert!(e.contains("missing field `name`"), "{e}");
    let e = parse_err("[[checks]]\nname = \"x\"\nkind = \"tcp\"\naddress = \"h:1\"\nretries = -1\n");
    assert!(e.contains("`retries`"), "{e}");
    let e = parse_err("[[checks]]\nname = \"x\"\nkind = \"http\"\nurl = \"http://h/\"\nexpect_status = 700\n");
    assert!(e.contains("700 is not an HTTP status code"), "{e}");
    let e = parse_err("[[checks]]\nname = \"f\"\nkind = \"flow\"\n[[checks.steps]]\nurl = \"http://h/\"\nnope = 1\n");
    assert!(e.contains("unknown field `nope`"), "{e}");
    let e = parse_err("[verify]\ntimeout = 3\n");
    assert!(e.contains("unknown field `timeout`"), "{e}");
}

#[test]
fn validation_names_the_key_and_the_problem() {
    let cases = [
        (format!("{EXAMPLE}{EXAMPLE}"), "checks[1].name", "used by two checks"),
        (
            "[[checks]]\nname = \"a\"\nkind = \"http\"\nurl = \"ftp://h/\"\n".into(),
            "checks[0].url",
            "must start with http://",
        ),
        ("[[checks]]\nname = \"a\"\nkind = \"http\"\nurl = \"not a url\"\n".into(), "checks[0].url", "not a valid URL"),
        (
            "[[checks]]\nname = \"a\"\nkind = \"websocket\"\nurl = \"wss://h/\"\n".into(),
            "checks[0].url",
            "not supported",
        ),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h\"\n".into(), "checks[0].address", "not `host:port`"),
        (
            "[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\ntimeout_secs = 0\n".into(),
            "checks[0].timeout_secs",
            "more than 0",
        ),
        ("[[checks]]\nname = \"a\"\nkind = \"command\"\nargv = []\n".into(), "checks[0].argv", "needs a program"),
        (
            "[[checks]]\nname = \"a\"\nkind = \"command\"\nargv = [\"ls\"]\ncwd = \"../x\"\n".into(),
            "checks[0].cwd",
            "inside the work tree",
        ),
        (
            "[[checks]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://h/\"\nbody = \"x\"\nform = { a = \"b\" }\n"
                .into(),
            "checks[0].body",
            "at most one",
        ),
        (
            "[[checks]]\nname = \"f\"\nkind = \"flow\"\n[[checks.steps]]\nurl = \"http://h/{{token}}\"\n".into(),
            "checks[0].steps[0].url",
            "unknown variable `{{token}}`",
        ),
        (
            "[[checks]]\nname = \"f\"\nkind = \"flow\"\n[[checks.steps]]\nurl = \"/register\"\n".into(),
            "checks[0].steps[0].url",
            "no `base_url`",
        ),
        ("[verify]\ntimeout_secs = -1\n".into(), "verify.timeout_secs", "more than 0"),
        ("[verify]\nconcurrency = 0\n".into(), "verify.concurrency", "at least 1"),
    ];
    for (text, key, msg) in cases {
        let p = parse(&text);
        let (k, m) = config::validate(&p.checks, &p.verify, false).expect_err(&text);
        assert_eq!(k, key, "{text}");
        assert!(m.contains(msg), "{m:?} does not contain {msg:?}\n{text}");
    }
}

fn http(name: &str, url: &str, extra: &str) -> String {
    format!("[[checks]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n")
}

#[test]
fn http_checks_pass_and_fail_with_reasons() {
    let s = TestServer::start();
    s.set("/bad", Behaviour::Status(502));
    s.set("/degraded", Behaviour::Json(200, r#"{"status":"degraded","db":{"ok":false}}"#.into()));
    s.set("/text", Behaviour::Text(200, "plain words".into()));
    s.set("/created", Behaviour::Status(201));
    let text = [
        http("ok", &s.url("/"), "expect_status = 200\nbody_contains = \"healthy\""),
        http("bad", &s.url("/bad"), "expect_status = 200"),
        http("missing", &s.url("/degraded"), "body_contains = \"healthy\""),
        http("pointer-ok", &s.url("/health"), "json_pointer = \"/status\"\njson_equals = \"healthy\""),
        http("pointer-wrong", &s.url("/degraded"), "json_pointer = \"/status\"\njson_equals = \"healthy\""),
        http("pointer-absent", &s.url("/degraded"), "json_pointer = \"/version\""),
        http("nested", &s.url("/degraded"), "json_pointer = \"/db/ok\"\njson_equals = false"),
        http("not-json", &s.url("/text"), "json_pointer = \"/status\""),
        http("status-list", &s.url("/created"), "expect_status = [200, 201]"),
        http("not-found", &s.url("/nowhere"), ""),
    ]
    .concat();
    let r = run(&verifier(&text));
    let expect = [
        ("ok", "passed", "status 200"),
        ("bad", "failed", "status 502, expected 200: status 502"),
        ("missing", "failed", "body does not contain `healthy`"),
        ("pointer-ok", "passed", "status 200"),
        ("pointer-wrong", "failed", "`/status` is \"degraded\", expected \"healthy\""),
        ("pointer-absent", "failed", "the JSON body has nothing at `/version`"),
        ("nested", "passed", "status 200"),
        ("not-json", "failed", "body is not JSON"),
        ("status-list", "passed", "status 201"),
        ("not-found", "failed", "status 404, expected 2xx"),
    ];
    for (name, status, reason) in expect {
        let c = check(&r, name);
        assert_eq!(c.status, status, "{c:?}");
        assert!(c.reason.starts_with(reason), "{name}: {:?} does not start with {reason:?}", c.reason);
        assert_eq!(c.passed, status == "passed");
        assert_eq!((c.attempts, c.kind.as_str()), (1, "http"));
    }
    assert!(!r.passed);
    assert_eq!(
        r.checks.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()[..3],
        ["ok", "bad", "missing"],
        "config order"
    );
    assert_eq!(s.requests_to("/bad").len(), 1);
    // The report serializes as the engine and the CLI print it.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["checks"][1]["status"], "failed");
    assert!(json["started_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn an_empty_or_all_passing_set_passes() {
    let r = run(&verifier(""));
    assert!(r.passed && r.checks.is_empty());
    let s = TestServer::start();
    let r = run(&verifier(&http("ok", &s.url("/health"), "")));
    assert!(r.passed, "{r:?}");
}

#[test]
fn refused_connections_are_errors_that_name_the_address() {
    let addr = refused_addr();
    let r = run(&verifier(&http("down", &format!("http://{addr}/"), "")));
    let c = check(&r, "down");
    assert_eq!(c.status, "error");
    assert_eq!(c.reason, format!("connection refused to {addr}"));
}

#[test]
fn a_hanging_endpoint_times_out_at_its_timeout() {
    let s = TestServer::start();
    s.set("/hang", Behaviour::Hang);
    let start = Instant::now();
    let r = run(&verifier(&http("hang", &s.url("/hang"), "timeout_secs = 1")));
    let c = check(&r, "hang");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("timeout", "timed out after 1.0 s"));
    assert!(c.latency_ms >= 1000, "{c:?}");
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[test]
fn a_redirect_loop_is_cut_short() {
    let s = TestServer::start();
    s.set("/loop", Behaviour::RedirectLoop);
    let text = [
        http("loop", &s.url("/loop"), ""),
        http("no-follow", &s.url("/loop"), "follow_redirects = false\nexpect_status = 302"),
    ]
    .concat();
    let r = run(&verifier(&text));
    let c = check(&r, "loop");
    assert_eq!(c.status, "error");
    assert_eq!(c.reason, "too many redirects (more than 5)");
    assert!(check(&r, "no-follow").passed);
    // The first request and five redirects, then the client stops (plus the no-follow one).
    assert_eq!(s.requests_to("/loop").len(), 7);
}

#[test]
fn a_redirect_to_another_origin_is_not_followed_so_header_tokens_stay_home() {
    let home = TestServer::start();
    let elsewhere = TestServer::start();
    home.set("/health", Behaviour::Redirect(elsewhere.url("/collect")));
    home.set("/same", Behaviour::Redirect(home.url("/")));
    let text = [
        http("away", &home.url("/health"), "headers = { X-Api-Key = \"tok-2291-secret\" }"),
        http("same", &home.url("/same"), "headers = { X-Api-Key = \"tok-2291-secret\" }"),
    ]
    .concat();
    let r = run(&verifier(&text));
    let away = check(&r, "away");
    assert!(!away.passed, "{away:?}");
    assert!(away.reason.contains("302"), "the check sees the redirect itself: {}", away.reason);
    assert!(elsewhere.requests().is_empty(), "nothing was sent to the other origin");
    assert!(check(&r, "same").passed, "a redirect on the same origin is followed");
}

#[test]
fn an_oversized_body_is_read_only_up_to_the_cap() {
    let s = TestServer::start();
    // 64 MB, with and without a Content-Length.
    s.set("/huge", Behaviour::HugeBody { bytes: 64 << 20, content_length: true });
    s.set("/stream", Behaviour::HugeBody { bytes: 64 << 20, content_length: false });
    let text = [
        http("huge", &s.url("/huge"), "body_contains = \"healthy\"\nmax_body_bytes = 65536"),
        http("stream", &s.url("/stream"), "body_contains = \"healthy\"\nmax_body_bytes = 65536"),
        http("json", &s.url("/stream"), "json_pointer = \"/status\"\nmax_body_bytes = 65536"),
        http("found", &s.url("/stream"), "body_contains = \"xxxx\"\nmax_body_bytes = 65536"),
        http("status-only", &s.url("/huge"), ""),
    ]
    .concat();
    let start = Instant::now();
    let r = run(&verifier(&text));
    for name in ["huge", "stream"] {
        let c = check(&r, name);
        assert_eq!(c.status, "failed", "{c:?}");
        assert!(c.reason.starts_with("body does not contain `healthy` in its first 65536 bytes"), "{c:?}");
    }
    assert!(check(&r, "json").reason.contains("larger than `max_body_bytes` (65536 bytes)"), "{r:?}");
    assert!(check(&r, "found").passed && check(&r, "status-only").passed, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    // Five 64 MB bodies were offered; the client stopped reading each after its cap, so the
    // server could only push what the socket buffers took on top of that.
    let sent = s.huge_bytes_sent();
    assert!(sent < 5 * (16 << 20), "{sent} bytes sent: the bodies were read to the end");
}

#[test]
fn retries_until_the_service_comes_back() {
    let s = Arc::new(TestServer::start());
    s.set("/flaky", Behaviour::Status(503));
    let flip = {
        let s = s.clone();
        std::thread::spawn(move || {
            s.wait_for_requests("/flaky", 2, Duration::from_secs(20));
            s.set("/flaky", Behaviour::Healthy);
        })
    };
    let r = run(&verifier(&http("flaky", &s.url("/flaky"), "retries = 20\nbackoff_secs = 0.05\ntimeout_secs = 30")));
    flip.join().unwrap();
    let c = check(&r, "flaky");
    assert!(c.passed, "{c:?}");
    assert!(c.attempts >= 3, "{c:?}");
    assert_eq!(c.attempts as usize, s.requests_to("/flaky").len());
    // Without enough retries the last failure is reported, with the attempts made.
    s.set("/flaky", Behaviour::Status(503));
    let r = run(&verifier(&http("flaky", &s.url("/flaky"), "retries = 2\nbackoff_secs = 0")));
    let c = check(&r, "flaky");
    assert_eq!((c.status.as_str(), c.attempts), ("failed", 3));
    assert!(c.reason.starts_with("status 503, expected 2xx"), "{c:?}");
}

#[test]
fn header_values_from_the_environment_are_sent_and_never_shown() {
    const VAR: &str = "FORGE_ROLLBACK_TEST_VERIFY_TOKEN";
    const TOKEN: &str = "s3cr3t-token-value-42";
    // SAFETY: nextest runs each test in its own process; no other thread reads this variable.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(VAR, format!("Bearer {TOKEN}"));
    }
    let s = TestServer::start();
    // A server that echoes the token back in an error page.
    s.set("/echo-token", Behaviour::Text(500, format!("invalid token Bearer {TOKEN} for user")));
    let env = format!("headers_env = {{ Authorization = \"{VAR}\" }}");
    let inline = format!("headers = {{ \"X-Api-Key\" = \"{TOKEN}\" }}");
    let text = [
        http("env", &s.url("/echo-token"), &env),
        http("inline", &s.url("/echo-token"), &inline),
        http("template", &s.url("/echo-token"), &format!("headers = {{ \"X-Key\" = \"{{{{env:{VAR}}}}}\" }}")),
    ]
    .concat();
    let v = verifier(&text);
    let r = run(&v);
    let sent = s.requests_to("/echo-token");
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().any(|q| q.header("authorization") == Some(&format!("Bearer {TOKEN}"))), "{sent:?}");
    assert!(sent.iter().any(|q| q.header("x-api-key") == Some(TOKEN)), "{sent:?}");
    assert!(sent.iter().any(|q| q.header("x-key") == Some(&format!("Bearer {TOKEN}"))), "{sent:?}");
    for c in &r.checks {
        assert_eq!(c.status, "failed", "{c:?}");
        assert!(c.reason.contains("***"), "{c:?}");
    }
    let everything = format!("{r:?} {} {v:?} {:?}", serde_json::to_string(&r).unwrap(), v.checks());
    assert!(!everything.contains(TOKEN), "{everything}");
    // An unset variable is an error that names the variable, not a request without the header.
    let text = http("unset", &s.url("/"), "headers_env = { Authorization = \"FORGE_ROLLBACK_SURELY_UNSET\" }");
    let c = run(&verifier(&text)).checks.remove(0);
    assert_eq!(c.status, "error");
    assert_eq!(c.reason, "header `Authorization`: the environment variable `FORGE_ROLLBACK_SURELY_UNSET` is not set");
}

#[test]
fn tcp_checks() {
    let s = TestServer::start();
    let down = refused_addr();
    let text = format!(
        "[[checks]]\nname = \"up\"\nkind = \"tcp\"\naddress = \"{}\"\n[[checks]]\nname = \"down\"\nkind = \"tcp\"\naddress = \"{down}\"\n",
        s.addr()
    );
    let r = run(&verifier(&text));
    assert!(check(&r, "up").passed, "{r:?}");
    assert_eq!(check(&r, "up").reason, format!("connected to {}", s.addr()));
    let c = check(&r, "down");
    assert_eq!((c.status.as_str(), c.reason.clone()), ("error", format!("connection refused to {down}")));
}

#[test]
fn websocket_checks() {
    let s = TestServer::start();
    let ws = |name: &str, url: &str, extra: &str| {
        format!("[[checks]]\nname = \"{name}\"\nkind = \"websocket\"\nurl = \"{url}\"\n{extra}\n")
    };
    let down = refused_addr();
    let text = [
        ws("echo", &s.ws_url("/ws/echo"), "send = \"ping-7\"\nexpect_contains = \"ping-7\""),
        ws("handshake", &s.ws_url("/ws/echo"), ""),
        ws("wrong-reply", &s.ws_url("/ws/echo"), "send = \"hello\"\nexpect_contains = \"pong\""),
        ws("not-ws", &s.ws_url("/health"), ""),
        ws("down", &format!("ws://{down}/ws"), ""),
    ]
    .concat();
    let r = run(&verifier(&text));
    assert!(check(&r, "echo").passed, "{r:?}");
    assert!(check(&r, "handshake").passed, "{r:?}");
    let c = check(&r, "wrong-reply");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("failed", "the reply does not contain `pong` (got hello)"));
    let c = check(&r, "not-ws");
    assert_eq!(c.status, "error");
    assert!(c.reason.contains("handshake") && c.reason.contains("status 200"), "{c:?}");
    assert_eq!(check(&r, "down").reason, format!("connection refused to {down}"));
}

fn command(name: &str, argv: &[&str], extra: &str) -> String {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[[checks]]\nname = \"{name}\"\nkind = \"command\"\nargv = [{}]\n{extra}\n", argv.join(", "))
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn wait_dead(pid: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn command_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/marker"), "here").unwrap();
    let text = [
        command("ok", &["sh", "-c", "echo all good; cat marker"], "cwd = \"app\"\nstdout_contains = \"here\""),
        command("exit", &["sh", "-c", "echo broken >&2; exit 3"], ""),
        command("expected-3", &["sh", "-c", "exit 3"], "expect_exit = 3"),
        command("stdout", &["echo", "nope"], "stdout_contains = \"yes\""),
        command("missing", &["/nonexistent/program"], ""),
        // No shell: the metacharacters reach `echo` as they are.
        command("no-shell", &["echo", "$HOME; rm -rf /"], "stdout_contains = \"$HOME; rm -rf /\""),
    ]
    .concat();
    let r = run(&verifier_with(&text, None, dir.path().to_owned()));
    assert!(check(&r, "ok").passed, "{r:?}");
    assert_eq!(check(&r, "ok").reason, "exit code 0");
    let c = check(&r, "exit");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("failed", "exit code 3, expected 0: broken"));
    assert!(check(&r, "expected-3").passed);
    assert_eq!(check(&r, "stdout").reason, "stdout does not contain `yes`");
    let c = check(&r, "missing");
    assert_eq!(c.status, "error");
    assert!(c.reason.starts_with("cannot run `/nonexistent/program`"), "{c:?}");
    assert!(check(&r, "no-shell").passed, "{r:?}");
}

#[test]
fn a_command_that_times_out_has_its_process_group_killed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut reaper =
        Reaper { children: vec![std::process::Command::new("sleep").arg("300").spawn().unwrap()], pids: vec![] };
    let bystander = reaper.children[0].id();
    let text = command("slow", &["sh", "-c", "sleep 300 & echo $! > child.pid; wait"], "timeout_secs = 1");
    let start = Instant::now();
    let r = run(&verifier_with(&text, None, dir.path().to_owned()));
    let c = check(&r, "slow");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("timeout", "timed out after 1.0 s"));
    assert!(start.elapsed() < Duration::from_secs(10));
    let pid: u32 = std::fs::read_to_string(dir.path().join("child.pid")).unwrap().trim().parse().unwrap();
    reaper.pids.push(pid);
    assert!(wait_dead(pid), "the check's grandchild {pid} survived");
    assert!(alive(bystander), "an unrelated `sleep` was killed");
}

/// A real SQLite database behind the `DbProbe` trait.
struct Sqlite {
    path: PathBuf,
    expected: Vec<String>,
}

#[async_trait]
impl DbProbe for Sqlite {
    async fn query_scalar(&self, sql: &str) -> Result<Option<String>, String> {
        let (path, sql) = (self.path.clone(), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            use rusqlite::types::ValueRef;
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            let value = conn.query_row(&sql, [], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(i) => Some(i.to_string()),
                    ValueRef::Real(f) => Some(f.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
                })
            });
            match value {
                Ok(v) => Ok(v),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn revisions(&self) -> Result<(Vec<String>, Vec<String>), String> {
        let at = self.query_scalar("select version_num from alembic_version").await?;
        Ok((at.into_iter().collect(), self.expected.clone()))
    }
}

#[test]
fn sql_and_db_revision_checks_through_a_real_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "create table users(name text); insert into users values ('a'), ('b'), ('c');
         create table alembic_version(version_num text); insert into alembic_version values ('ae1027a6acf');",
    )
    .unwrap();
    drop(conn);
    let text = r#"
[[checks]]
name = "users"
kind = "sql"
query = "select count(*) from users"
expect = "3"
[[checks]]
name = "wrong-count"
kind = "sql"
query = "select count(*) from users"
expect = "4"
[[checks]]
name = "no-row"
kind = "sql"
query = "select name from users where name = 'zed'"
expect = "zed"
[[checks]]
name = "bad-sql"
kind = "sql"
query = "select * from nowhere"
[[checks]]
name = "any"
kind = "sql"
query = "select name from users order by name"
[[checks]]
name = "schema"
kind = "db-revision"
"#;
    let probe = |expected: &str| -> Option<Arc<dyn DbProbe>> {
        Some(Arc::new(Sqlite { path: path.clone(), expected: vec![expected.to_owned()] }))
    };
    let r = run(&verifier_with(text, probe("ae1027a6acf"), dir.path().to_owned()));
    assert!(check(&r, "users").passed, "{r:?}");
    assert_eq!(check(&r, "wrong-count").reason, "the query returned `3`, expected `4`");
    assert_eq!(check(&r, "no-row").reason, "the query returned no value (no row, or NULL), expected `zed`");
    let c = check(&r, "bad-sql");
    assert_eq!(c.status, "error");
    assert!(c.reason.contains("no such table: nowhere"), "{c:?}");
    assert_eq!(check(&r, "any").reason, "the query returned `a`");
    assert_eq!(check(&r, "schema").reason, "the database is at ae1027a6acf, as the code expects");
    let r = run(&verifier_with(text, probe("1975ea83b712"), dir.path().to_owned()));
    let c = check(&r, "schema");
    assert_eq!(c.status, "failed");
    assert!(c.reason.starts_with("the database is at ae1027a6acf, the code expects 1975ea83b712"), "{c:?}");
    // Without a database (config not validated), the checks say why they cannot run.
    let p = parse(text);
    let v = Verifier::new(p.checks, p.verify, None, dir.path().to_owned());
    let r = run(&v);
    assert!(check(&r, "schema").reason.contains("none is configured"), "{r:?}");
    assert_eq!(check(&r, "users").status, "error");
}

fn auth_flow(s: &TestServer) -> String {
    format!(
        r#"
[[checks]]
name = "auth"
kind = "flow"
base_url = "{}"
vars = {{ user = "probe-{{{{random}}}}", password = "pw-{{{{random}}}}" }}

[[checks.steps]]
name = "register"
method = "POST"
url = "/register"
json = {{ username = "{{{{user}}}}", password = "{{{{password}}}}" }}
expect_status = 200

[[checks.steps]]
name = "token"
method = "POST"
url = "/token"
form = {{ username = "{{{{user}}}}", password = "{{{{password}}}}", grant_type = "password" }}
expect_status = 200
capture = {{ token = "/access_token" }}

[[checks.steps]]
name = "protected with token"
url = "/protected"
headers = {{ Authorization = "Bearer {{{{token}}}}" }}
expect_status = 200
body_contains = "probe-"

[[checks.steps]]
name = "protected without token"
url = "/protected"
expect_status = 401
"#,
        s.url("")
    )
}

#[test]
fn the_flow_check_runs_the_seeds_auth_checklist() {
    let s = TestServer::start();
    let v = verifier(&auth_flow(&s));
    // Twice: `{{random}}` makes a new user each run, so `register` keeps working.
    for round in 1..=2 {
        let r = run(&v);
        let c = check(&r, "auth");
        assert!(c.passed, "round {round}: {c:?}");
        assert_eq!((c.kind.as_str(), c.reason.as_str()), ("flow", "4 steps passed"));
    }
    let regs = s.requests_to("/register");
    assert_eq!(regs.len(), 2);
    let users: Vec<_> = regs.iter().map(|q| q.body_json()["username"].as_str().unwrap().to_owned()).collect();
    assert_ne!(users[0], users[1]);
    assert!(users[0].starts_with("probe-") && !users[0].contains('{'), "{users:?}");
    let token = s.requests_to("/token");
    assert_eq!(token[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(token[0].body_text().contains(&format!("username={}", users[0])), "{:?}", token[0]);
    let protected = s.requests_to("/protected");
    assert_eq!(protected.len(), 4);
    assert!(protected[0].header("authorization").is_some_and(|a| a.starts_with("Bearer tok-")));
    assert_eq!(protected[1].header("authorization"), None);
}

#[test]
fn a_failing_flow_names_the_step_and_hides_captured_tokens() {
    let s = TestServer::start();
    let v = verifier(&auth_flow(&s));
    // The protected endpoint breaks.
    s.set("/protected", Behaviour::Status(500));
    let c = run(&v).checks.remove(0);
    assert_eq!(c.status, "failed");
    assert!(c.reason.starts_with("step 3 `protected with token`: status 500, expected 200"), "{c:?}");
    // A step whose capture finds nothing.
    s.set("/token", Behaviour::Json(200, r#"{"token_type":"bearer"}"#.into()));
    let c = run(&v).checks.remove(0);
    assert_eq!(c.reason, "step 2 `token`: nothing at `/access_token` in the JSON body to capture as `token`");
    // Captured values never reach the reason, even when a server echoes them.
    s.set("/token", Behaviour::Json(200, r#"{"access_token":"tok-very-secret-1","token_type":"bearer"}"#.into()));
    s.set("/protected", Behaviour::Text(500, "bad token tok-very-secret-1".into()));
    let c = run(&v).checks.remove(0);
    assert!(c.reason.contains("bad token ***") && !c.reason.contains("tok-very-secret-1"), "{c:?}");
}

#[test]
fn a_hanging_check_does_not_delay_the_others() {
    let s = TestServer::start();
    s.set("/hang", Behaviour::Hang);
    s.set("/slow", Behaviour::slow(200));
    let text = [
        http("hang", &s.url("/hang"), "timeout_secs = 3"),
        http("fast", &s.url("/health"), "timeout_secs = 2"),
        http("slow", &s.url("/slow"), "timeout_secs = 2"),
        command("cmd", &["true"], "timeout_secs = 2"),
    ]
    .concat();
    let start = Instant::now();
    let r = run(&verifier(&text));
    let elapsed = start.elapsed();
    assert_eq!(check(&r, "hang").status, "timeout");
    // Each of the others passed, so each finished within its own 2 s timeout while the hanging
    // one was still waiting.
    for name in ["fast", "slow", "cmd"] {
        let c = check(&r, name);
        assert!(c.passed, "{c:?}");
        assert!(c.latency_ms < 2000, "{c:?}");
    }
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(r.duration_ms >= 3000 && !r.passed, "{r:?}");
}

#[test]
fn concurrency_one_runs_the_checks_one_at_a_time() {
    let s = TestServer::start();
    s.set("/hang", Behaviour::Hang);
    let checks: String = (0..3).map(|i| http(&format!("h{i}"), &s.url("/hang"), "timeout_secs = 1")).collect();
    let start = Instant::now();
    let r = run(&verifier(&format!("[verify]\nconcurrency = 1\n{checks}")));
    let sequential = start.elapsed();
    assert!(r.checks.iter().all(|c| c.status == "timeout"), "{r:?}");
    assert!(sequential >= Duration::from_secs(3), "{sequential:?}");
    let start = Instant::now();
    let r = run(&verifier(&checks));
    let concurrent = start.elapsed();
    assert!(r.checks.iter().all(|c| c.status == "timeout"), "{r:?}");
    // About 1 s; 3 s would mean one at a time.
    assert!(concurrent < Duration::from_millis(2900), "{concurrent:?}");
}

#[test]
fn only_the_named_checks_run() {
    let s = TestServer::start();
    let text = [http("a", &s.url("/health"), ""), http("b", &s.url("/"), "")].concat();
    let v = verifier(&text);
    let r = rt::block_on(v.verify(Some(&["b".to_owned(), "zzz".to_owned()])));
    let names: Vec<_> = r.checks.iter().map(|c| (c.name.as_str(), c.status.as_str())).collect();
    assert_eq!(names, [("b", "passed"), ("zzz", "error")]);
    assert_eq!(r.checks[1].reason, "no check named `zzz` in the configuration");
    assert!(!r.passed);
    assert!(s.requests_to("/health").is_empty());
}
