//! HTTP checks against a real server on 127.0.0.1: statuses, bodies, reasons, timeouts,
//! redirects, capped bodies, retries and secret headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rollback_testkit::server::{Behaviour, TestServer, refused_addr};

use crate::verify::{check, http, run, verifier};

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
    const EMPTY: &str = "FORGE_ROLLBACK_TEST_VERIFY_EMPTY";
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
    // A variable set to nothing is said to be empty, and no request goes out with an empty header.
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(EMPTY, "");
    }
    let before = s.requests_to("/").len();
    let text = http("empty", &s.url("/"), &format!("headers_env = {{ Authorization = \"{EMPTY}\" }}"));
    let c = run(&verifier(&text)).checks.remove(0);
    assert_eq!(c.status, "error");
    assert_eq!(c.reason, format!("header `Authorization`: the environment variable `{EMPTY}` is empty"));
    assert_eq!(s.requests_to("/").len(), before);
}
