//! What a check's reason says when the service or the program misbehaves, against real servers
//! on 127.0.0.1 and real programs: no credential a service quotes back, no control character
//! that repaints the terminal, the WebSocket's close code, the folder that is missing, the
//! output past the cap, a Prometheus answer too large to read; and the waits and timeouts that
//! are refused when the configuration is loaded instead of crashing the check.

use std::sync::Arc;

use rollback_core::verify::{Verifier, config};
use rollback_testkit::server::{Behaviour, Reply, TestServer};

use crate::verify::{check, command, http, parse, run, verifier, verifier_with};

/// Sets an environment variable for this test (nextest runs each test in its own process).
fn set_env(var: &str, value: &str) {
    // SAFETY: nextest runs each test in its own process; no other thread reads the variable.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(var, value);
    }
}

#[test]
fn the_credential_of_an_auth_header_is_not_shown_when_the_service_quotes_it_alone() {
    // `alice:s3cret-pw`, base64.
    const BASIC: &str = "Basic YWxpY2U6czNjcmV0LXB3";
    set_env("FR_TEST_REASONS_BEARER", "Bearer env-tok-7777");
    // An API that says which credential it refused, as many do.
    let s = TestServer::with_handler(Arc::new(|req| {
        let auth = req.header("authorization").unwrap_or_default();
        let said = match auth.split_once(' ') {
            Some(("Basic", _)) => "user alice:s3cret-pw refused (password s3cret-pw)".to_owned(),
            Some((_, credential)) => format!("token {credential} has expired"),
            None => "no token".to_owned(),
        };
        Reply::json(401, &serde_json::json!({ "detail": said }))
    }));
    let text = [
        http("env", &s.url("/me"), "headers_env = { Authorization = \"FR_TEST_REASONS_BEARER\" }"),
        http("inline", &s.url("/me"), "headers = { Authorization = \"Token inline-tok-7777\" }"),
        http("basic", &s.url("/me"), &format!("headers = {{ Authorization = \"{BASIC}\" }}")),
    ]
    .concat();
    let r = run(&verifier(&text));
    let sent: Vec<String> =
        s.requests().iter().map(|q| q.header("authorization").unwrap_or_default().to_owned()).collect();
    assert!(sent.contains(&"Bearer env-tok-7777".to_owned()) && sent.contains(&BASIC.to_owned()), "{sent:?}");
    assert_eq!(check(&r, "env").reason, r#"status 401, expected 2xx: {"detail":"token *** has expired"}"#);
    assert_eq!(check(&r, "inline").reason, r#"status 401, expected 2xx: {"detail":"token *** has expired"}"#);
    assert_eq!(check(&r, "basic").reason, r#"status 401, expected 2xx: {"detail":"user *** refused (password ***)"}"#);
}

#[test]
fn control_characters_from_a_service_or_a_program_are_escaped() {
    let s = TestServer::start();
    // A line that erases itself, moves up, paints a green `[ok]` and retitles the window.
    let paint = "upstream failed\u{1b}[2K\u{1b}[1A\u{1b}[32m [ok] api all good\u{1b}]0;owned\u{7}";
    s.set("/paint", Behaviour::Text(502, paint.to_owned()));
    s.set("/ws/paint", Behaviour::WsClose(1011, "db down\u{1b}[2K".to_owned()));
    let text = [
        http("api", &s.url("/paint"), ""),
        command("prog", &["sh", "-c", "printf 'boom\\033[2K\\033[32m [ok]\\007\\n' >&2; exit 1"], ""),
        format!(
            "[[checks]]\nname = \"ws\"\nkind = \"websocket\"\nurl = \"{}\"\nsend = \"hi\"\nexpect_contains = \"hi\"\n",
            s.ws_url("/ws/paint")
        ),
    ]
    .concat();
    let r = run(&verifier(&text));
    for c in &r.checks {
        assert!(!c.reason.chars().any(char::is_control), "{c:?}");
    }
    assert_eq!(
        check(&r, "api").reason,
        "status 502, expected 2xx: upstream failed\\u{1b}[2K\\u{1b}[1A\\u{1b}[32m [ok] api all good\\u{1b}]0;owned\\u{7}"
    );
    assert_eq!(check(&r, "prog").reason, "exit code 1, expected 0: boom\\u{1b}[2K\\u{1b}[32m [ok]\\u{7}");
    assert!(check(&r, "ws").reason.ends_with("code 1011 (db down\\u{1b}[2K)"), "{:?}", check(&r, "ws"));
}

#[test]
fn websocket_urls_render_templates_like_http_urls() {
    set_env("FR_TEST_REASONS_WS_TOKEN", "ws-tok-4242");
    let s = TestServer::start();
    let ws = |name: &str, path: &str, extra: &str| {
        format!("[[checks]]\nname = \"{name}\"\nkind = \"websocket\"\nurl = \"{}\"\n{extra}\n", s.ws_url(path))
    };
    let text = [
        ws("echo", "/ws/echo?token={{env:FR_TEST_REASONS_WS_TOKEN}}", "send = \"ping\"\nexpect_contains = \"ping\""),
        ws("unset", "/ws/echo?token={{env:FR_TEST_REASONS_SURELY_UNSET}}", ""),
        ws(
            "bad-reply",
            "/ws/echo?t={{env:FR_TEST_REASONS_WS_TOKEN}}",
            "send = \"ws-tok-4242\"\nexpect_contains = \"x\"",
        ),
    ]
    .concat();
    let r = run(&verifier(&text));
    assert!(check(&r, "echo").passed, "{r:?}");
    let paths: Vec<String> = s.requests_to("/ws/echo").iter().map(|q| q.path.clone()).collect();
    assert!(paths.contains(&"/ws/echo?token=ws-tok-4242".to_owned()), "the token is sent: {paths:?}");
    assert!(!paths.iter().any(|p| p.contains("{{")), "{paths:?}");
    let c = check(&r, "unset");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("error", "url: the environment variable `FR_TEST_REASONS_SURELY_UNSET` is not set")
    );
    // The value is a secret, as in an `http` URL: the service quoting it back does not show it.
    assert_eq!(check(&r, "bad-reply").reason, "the reply does not contain `x` (got ***)");
}

#[test]
fn a_websocket_closed_by_the_server_says_its_code_and_reason() {
    let s = TestServer::start();
    s.set("/ws/down", Behaviour::WsClose(1011, "database unavailable".to_owned()));
    s.set("/ws/bare", Behaviour::WsClose(1008, String::new()));
    let ws = |name: &str, path: &str| {
        format!(
            "[[checks]]\nname = \"{name}\"\nkind = \"websocket\"\nurl = \"{}\"\nsend = \"hello\"\nexpect_contains = \"hello\"\n",
            s.ws_url(path)
        )
    };
    let r = run(&verifier(&[ws("down", "/ws/down"), ws("bare", "/ws/bare")].concat()));
    let c = check(&r, "down");
    assert_eq!(
        (c.status.as_str(), c.reason.clone()),
        ("failed", format!("{} closed the WebSocket without replying: code 1011 (database unavailable)", s.addr()))
    );
    assert_eq!(check(&r, "bare").reason, format!("{} closed the WebSocket without replying: code 1008", s.addr()));
}

#[test]
fn a_missing_cwd_is_named_not_the_program() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let text = [
        command("missing", &["true"], "cwd = \"services/api\""),
        command("file", &["true"], "cwd = \"file\""),
        command("no-program", &["/nonexistent/program"], ""),
    ]
    .concat();
    let r = run(&verifier_with(&text, None, dir.path().to_owned()));
    let c = check(&r, "missing");
    assert_eq!(c.status, "error");
    assert!(c.reason.starts_with("`cwd` `services/api` does not exist in the work tree ("), "{c:?}");
    assert!(!c.reason.contains("cannot run"), "{c:?}");
    assert!(check(&r, "file").reason.starts_with("`cwd` `file` is not a folder"), "{r:?}");
    // A program that is missing is still named as such.
    assert!(check(&r, "no-program").reason.starts_with("cannot run `/nonexistent/program`"), "{r:?}");
}

#[test]
fn output_past_the_cap_says_so_and_the_last_lines_of_stderr_are_the_real_ones() {
    let text = [
        // 2 MB before the word: only the first MiB is read.
        command(
            "late-word",
            &["sh", "-c", "head -c 2000000 /dev/zero | tr '\\0' x; echo READY"],
            "stdout_contains = \"READY\"\ntimeout_secs = 60",
        ),
        // 1.4 MB of chatter on stderr, then the error.
        command(
            "late-error",
            &[
                "sh",
                "-c",
                "yes 'debug: working on item' | head -n 60000 >&2; echo 'FATAL: cannot open config.yml' >&2; exit 1",
            ],
            "timeout_secs = 60",
        ),
        command("short", &["sh", "-c", "echo nope"], "stdout_contains = \"READY\""),
    ]
    .concat();
    let r = run(&verifier(&text));
    assert_eq!(
        check(&r, "late-word").reason,
        "stdout does not contain `READY` in its first 1048576 bytes (the program wrote more, which is not read)"
    );
    assert_eq!(
        check(&r, "late-error").reason,
        "exit code 1, expected 0: debug: working on item | debug: working on item | FATAL: cannot open config.yml"
    );
    assert_eq!(check(&r, "short").reason, "stdout does not contain `READY`");
}

#[test]
fn a_prometheus_answer_over_the_cap_says_to_aggregate_the_query() {
    let s = TestServer::start();
    // A valid answer of ~30 000 series is this large; any byte past the cap is never read.
    s.set("/api/v1/query", Behaviour::HugeBody { bytes: 5 * 1024 * 1024, content_length: true });
    let text = format!(
        "[[checks]]\nname = \"errors\"\nkind = \"prometheus\"\nurl = \"{}\"\nquery = 'rate(x[1m])'\nmax = 0.05\n",
        s.url("")
    );
    let c = run(&verifier(&text)).checks.remove(0);
    assert_eq!(c.status, "error");
    assert_eq!(
        c.reason,
        format!(
            "Prometheus at {} answered more than 4 MiB (status 200): the query returns too many series; aggregate it (`sum`, `max`, `topk`)",
            s.addr()
        )
    );
}

#[test]
fn waits_and_timeouts_are_bounded_when_the_configuration_is_loaded() {
    let prom = |extra: &str| {
        format!(
            "[[checks]]\nname = \"p\"\nkind = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\nquery = \"x\"\nmax = 1\n{extra}\n"
        )
    };
    let refused = |text: &str| {
        let p = parse(text);
        config::validate(&p.checks, &p.verify, false).expect_err(text)
    };
    let (key, message) = refused(&prom("for = 2\ninterval_secs = 1e20\ntimeout_secs = 60"));
    assert_eq!(key, "checks[0].interval_secs");
    assert!(message.contains("must be between 0 and 86400 (one day; got"), "{message}");
    let (key, message) = refused(&prom("for = 2\ninterval_secs = 1\ntimeout_secs = 1e21"));
    assert_eq!(key, "checks[0].timeout_secs");
    assert!(message.starts_with("must be at most 86400 (one day; got"), "{message}");
    let (key, _) = refused(&format!("[verify]\ntimeout_secs = 100000\n{}", prom("")));
    assert_eq!(key, "verify.timeout_secs");
    // Three evaluations 50 000 s apart never fit in the longest timeout a check can have.
    let (key, message) = refused(&prom("for = 3\ninterval_secs = 50000\ntimeout_secs = 86400"));
    assert_eq!(key, "checks[0].timeout_secs");
    assert!(message.contains("is not enough for `for = 3` evaluations"), "{message}");
}

#[test]
fn an_unchecked_huge_interval_times_the_check_out_instead_of_crashing_it() {
    let s = TestServer::start();
    s.set(
        "/api/v1/query",
        Behaviour::Json(200, r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#.into()),
    );
    // Built without the load-time validation, as a library user may.
    let text = format!(
        "[[checks]]\nname = \"p\"\nkind = \"prometheus\"\nurl = \"{}\"\nquery = \"x\"\nmax = 0.5\nfor = 2\ninterval_secs = 1e20\ntimeout_secs = 1\n",
        s.url("")
    );
    let p = parse(&text);
    let c = run(&Verifier::new(p.checks, p.verify, None, std::env::temp_dir())).checks.remove(0);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("timeout", "timed out after 1.0 s"), "{c:?}");
}

/// A secret that straddles the end of the body's quoted start (512 bytes, mostly blank lines
/// on an error page) no longer matches whole: its start was shown. The last word of a body
/// cut short is left out.
#[test]
fn a_secret_cut_short_at_the_end_of_the_quoted_body_is_not_shown_in_part() {
    set_env("FR_TEST_REASONS_CUT", "Bearer cut-secret-0123456789");
    let s = TestServer::start();
    let page = format!(
        "{}refused token cut-secret-0123456789 for this request",
        " ".repeat(512 - "refused token cut-sec".len())
    );
    s.set("/cut", Behaviour::Text(401, page));
    let r = run(&verifier(&http("cut", &s.url("/cut"), "headers_env = { Authorization = \"FR_TEST_REASONS_CUT\" }")));
    assert_eq!(check(&r, "cut").reason, "status 401, expected 2xx: refused token");
}

/// A configuration's secret that holds a check's own (the database password
/// `pw-abcd-key-1234` and a header value `abcd-key`) is replaced whole: scrubbing the check's
/// own first left the rest of the longer one (`pw-***-1234`).
#[test]
fn a_longer_secret_of_the_configuration_is_replaced_whole_beside_a_checks_shorter_one() {
    set_env("FR_TEST_REASONS_DB", "postgresql://app:pw-abcd-key-1234@127.0.0.1:1/app");
    let s = TestServer::start();
    s.set("/db", Behaviour::Text(503, "password pw-abcd-key-1234 refused".to_owned()));
    let text = format!(
        "[database]\nkind = \"sql\"\nurl_env = \"FR_TEST_REASONS_DB\"\n\n{}",
        http("h", &s.url("/db"), "headers = { X-Key = \"abcd-key\" }")
    );
    let cfg = rollback_core::config::Config::parse(&text, None).unwrap();
    let v = Verifier::new(cfg.checks, cfg.verify, None, std::env::temp_dir());
    let r = run(&v);
    assert_eq!(check(&r, "h").reason, "status 503, expected 2xx: password *** refused");
}
