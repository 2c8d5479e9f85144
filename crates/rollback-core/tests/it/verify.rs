//! Service verification against a real HTTP/WebSocket server on 127.0.0.1, real programs and
//! a real SQLite file: here, the `[[checks]]` configuration and how a set of checks runs
//! (concurrently, under their timeouts, only those named); the checks of each kind are in
//! `verify_http` and `verify_kinds`, which share the helpers below.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollback_core::rt;
use rollback_core::verify::config::{self, CheckSpec};
use rollback_core::verify::{
    CheckConfig, CheckResult, DbProbe, ServiceVerifier, VerificationReport, Verifier, VerifySettings,
};
use rollback_testkit::server::{Behaviour, TestServer};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct Parsed {
    #[serde(default)]
    pub(crate) checks: Vec<CheckConfig>,
    #[serde(default)]
    pub(crate) verify: VerifySettings,
}

pub(crate) fn parse(text: &str) -> Parsed {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub(crate) fn parse_err(text: &str) -> String {
    match toml::from_str::<Parsed>(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

pub(crate) fn verifier_with(text: &str, db: Option<Arc<dyn DbProbe>>, workdir: PathBuf) -> Verifier {
    let p = parse(text);
    config::validate(&p.checks, &p.verify, db.is_some()).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    Verifier::new(p.checks, p.verify, db, workdir)
}

pub(crate) fn verifier(text: &str) -> Verifier {
    verifier_with(text, None, std::env::temp_dir())
}

pub(crate) fn run(v: &Verifier) -> VerificationReport {
    rt::block_on(v.verify(None))
}

pub(crate) fn check<'a>(r: &'a VerificationReport, name: &str) -> &'a CheckResult {
    r.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no result for {name}: {r:#?}"))
}

pub(crate) fn http(name: &str, url: &str, extra: &str) -> String {
    format!("[[checks]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n")
}

pub(crate) fn command(name: &str, argv: &[&str], extra: &str) -> String {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[[checks]]\nname = \"{name}\"\nkind = \"command\"\nargv = [{}]\n{extra}\n", argv.join(", "))
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
fn an_error_in_a_later_check_points_at_that_check_and_its_key() {
    let first =
        "[verify]\ntimeout_secs = 5\n\n[[checks]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1:5432\"\n\n";
    let at = |second: &str| match rollback_core::config::Config::parse(&format!("{first}{second}"), None) {
        Err(rollback_core::config::Error::Parse { line, column, message, .. }) => (line, column, message),
        other => panic!("{other:?}"),
    };
    // The second check starts on line 9.
    let (line, column, message) =
        at("[[checks]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://h/\"\nexpect_stauts = 200\n");
    assert_eq!((line, column), (13, 1), "{message}");
    assert!(message.starts_with("check `api`: unknown field `expect_stauts`"), "{message}");
    let (line, _, message) = at("[[checks]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"h:1\"\nretries = \"x\"\n");
    assert_eq!(line, 13, "{message}");
    // A message that names no key of the entry: the entry's own `[[checks]]` line.
    let (line, _, message) =
        at("[[checks]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://h/\"\nexpect_status = 999\n");
    assert_eq!(line, 9, "{message}");
}

#[test]
fn an_error_points_at_the_entry_that_has_it_whatever_the_names() {
    let at = |text: &str| match rollback_core::config::Config::parse(text, None) {
        Err(rollback_core::config::Error::Parse { line, message, .. }) => (line, message),
        other => panic!("{other:?}"),
    };
    let tcp = |name: &str| format!("[[checks]]\nname = {name:?}\nkind = \"tcp\"\naddress = \"h:1\"\n\n");
    // Two entries named `api`: the second is wrong (its `retries`, line 10), not the first.
    let (line, message) =
        at(&format!("{}[[checks]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"h:1\"\nretries = \"x\"\n", tcp("api")));
    assert_eq!(line, 10, "{message}");
    // A name holding `` `: ``: the entry that has it, not the first one.
    let (line, message) =
        at(&format!("{}[[checks]]\nname = \"a`: b\"\nkind = \"tcp\"\naddress = \"h:1\"\nport = 2\n", tcp("a")));
    assert!(message.starts_with("check `a`: b`: unknown field `port`"), "{message}");
    assert_eq!(line, 10, "{message}");
    // The unknown key is in a step, not in the entry: the entry's header, not its `name =` line,
    // the first of the expected keys the message lists that the entry holds.
    let (line, message) = at(&format!(
        "{}[[checks]]\nname = \"f\"\nkind = \"flow\"\nbase_url = \"http://h/\"\n[[checks.steps]]\nurl = \"/\"\nnope = 1\n",
        tcp("db")
    ));
    assert!(message.contains("unknown field `nope`") && message.contains("`name`"), "{message}");
    assert_eq!(line, 6, "{message}");
}

#[test]
fn a_password_in_a_check_url_never_reaches_the_error() {
    for (kind, url) in [
        ("http", "http://admin:hunter2-pw@127.0.0.1:99999/health"),
        ("http", "ftp://admin:hunter2-pw@h/"),
        ("websocket", "wss://admin:hunter2-pw@h/ws"),
    ] {
        let text = format!("[[checks]]\nname = \"a\"\nkind = \"{kind}\"\nurl = \"{url}\"\n");
        let p = parse(&text);
        let (key, msg) = config::validate(&p.checks, &p.verify, false).unwrap_err();
        assert_eq!(key, "checks[0].url");
        assert!(!msg.contains("hunter2-pw"), "{msg}");
        assert!(msg.contains("***@"), "the URL is still recognisable: {msg}");
    }
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

#[test]
fn an_empty_or_all_passing_set_passes() {
    let r = run(&verifier(""));
    assert!(r.passed && r.checks.is_empty());
    let s = TestServer::start();
    let r = run(&verifier(&http("ok", &s.url("/health"), "")));
    assert!(r.passed, "{r:?}");
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

/// Two command checks, one failing: the `ServiceVerifier` suite's minimum.
const SUITE_CHECKS: &str = r#"
[[checks]]
name = "up"
kind = "command"
argv = ["true"]

[[checks]]
name = "down"
kind = "command"
argv = ["false"]
"#;

#[test]
fn the_configured_verifier_passes_the_service_verifier_suite() {
    rollback_core::testing::verify::run_all(&|| Arc::new(verifier(SUITE_CHECKS)) as Arc<dyn ServiceVerifier>);
}

/// Says every check passed whatever happened, and reports checks nobody asked for.
struct Liar;

#[async_trait::async_trait]
impl ServiceVerifier for Liar {
    async fn verify(&self, _only: Option<&[String]>) -> VerificationReport {
        let mut r = run(&verifier(SUITE_CHECKS));
        r.passed = true;
        r
    }

    fn check_names(&self) -> Vec<String> {
        vec!["up".into(), "down".into()]
    }
}

#[test]
fn the_service_verifier_suite_fails_a_verifier_that_lies() {
    let err = std::panic::catch_unwind(|| {
        rollback_core::testing::verify::run_all(&|| Arc::new(Liar) as Arc<dyn ServiceVerifier>);
    })
    .expect_err("a verifier that ignores `only` and says passed on a failure must not conform");
    let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("only_runs_the_checks_named"), "{text}");
    assert!(text.contains("passed_means_every_check_passed"), "{text}");
}
