//! `[[notify]]` webhooks against a real HTTP server that records what it receives.

use std::time::{Duration, Instant};

use rollback_core::event::LogLevel;
use rollback_core::notify::{self, NotifyConfig, NotifyEvent, NotifyEventKind, NotifyFormat};
use rollback_core::plan::RunKind;
use rollback_core::rt;
use rollback_core::secret::Secret;
use rollback_core::time::Timestamp;
use rollback_testkit::server::{Behaviour, TestServer, refused_addr};

const KEY: &str = "T000-B000-hooksecret";

fn event(kind: NotifyEventKind) -> NotifyEvent {
    NotifyEvent {
        kind,
        run_kind: RunKind::Rollback,
        run_id: "20251210-173900-ab12".into(),
        level: LogLevel::Error,
        from: Some("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432".into()),
        to: Some("1a2b3c4d5e6f708192a3b4c5d6e7f80912345678".into()),
        repository: "shop".into(),
        message: "check `fastapi`: status 502, expected 200".into(),
        time: Timestamp::parse("2025-12-10T17:39:00Z").unwrap(),
    }
}

fn hook(server: &TestServer, path: &str, format: NotifyFormat) -> NotifyConfig {
    NotifyConfig { format, ..NotifyConfig::new(Secret::new(server.url(path))) }
}

#[test]
fn both_formats_are_delivered() {
    let server = TestServer::start();
    server.set(&format!("/slack/{KEY}"), Behaviour::Text(200, "ok".into()));
    server.set(&format!("/json/{KEY}"), Behaviour::Status(204));
    let configs = [
        hook(&server, &format!("/slack/{KEY}"), NotifyFormat::Slack),
        NotifyConfig { name: Some("ops".into()), ..hook(&server, &format!("/json/{KEY}"), NotifyFormat::Json) },
    ];
    let results = rt::block_on(notify::send_all(&configs, &event(NotifyEventKind::VerificationFailed)));
    assert_eq!(results.len(), 2);
    assert_eq!((results[0].name.as_str(), results[0].ok, results[0].status), ("webhook 1", true, Some(200)));
    assert_eq!((results[1].name.as_str(), results[1].ok, results[1].status), ("ops", true, Some(204)));
    assert_eq!((results[0].attempts, results[0].detail.as_str()), (1, "status 200"));
    let slack = &server.requests_to(&format!("/slack/{KEY}"))[0];
    assert_eq!(slack.method, "POST");
    assert_eq!(slack.header("content-type"), Some("application/json"));
    assert_eq!(
        slack.body_json(),
        serde_json::json!({"text": "[forge-rollback] rollback done but verification FAILED in shop (run 20251210-173900-ab12, 9f8e7d6 → 1a2b3c4): check `fastapi`: status 502, expected 200"})
    );
    let json = server.requests_to(&format!("/json/{KEY}"))[0].body_json();
    assert_eq!(json["kind"], "verification_failed");
    assert_eq!(json["run_id"], "20251210-173900-ab12");
    assert_eq!(json["level"], "error");
    assert_eq!(json["repository"], "shop");
    assert_eq!(json["to"], "1a2b3c4d5e6f708192a3b4c5d6e7f80912345678");
    assert_eq!(json["time"], "2025-12-10T17:39:00Z");
    let shown = format!("{results:?} {configs:?} {}", serde_json::to_string(&configs).unwrap());
    assert!(!shown.contains(KEY), "{shown}");
}

#[test]
fn only_subscribed_events_are_sent() {
    let server = TestServer::start();
    let mut failures_only = hook(&server, "/failures", NotifyFormat::Json);
    failures_only.events = vec![NotifyEventKind::Failed, NotifyEventKind::VerificationFailed];
    server.set("/failures", Behaviour::Status(200));
    let configs = [failures_only];
    assert!(rt::block_on(notify::send_all(&configs, &event(NotifyEventKind::Started))).is_empty());
    assert!(rt::block_on(notify::send_all(&configs, &event(NotifyEventKind::Succeeded))).is_empty());
    assert_eq!(rt::block_on(notify::send_all(&configs, &event(NotifyEventKind::Failed))).len(), 1);
    let got = server.requests_to("/failures");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_json()["kind"], "failed");
}

#[test]
fn a_failing_webhook_is_retried_then_reported_without_its_url() {
    let server = TestServer::start();
    let path = format!("/fail/{KEY}");
    server.set(&path, Behaviour::Status(500));
    let mut c = hook(&server, &path, NotifyFormat::Slack);
    c.retries = 2;
    let results = rt::block_on(notify::send_all(&[c], &event(NotifyEventKind::Failed)));
    let r = &results[0];
    assert_eq!((r.ok, r.attempts, r.status), (false, 3, Some(500)));
    assert_eq!(r.detail, "status 500 (3 attempts)");
    assert_eq!(server.requests_to(&path).len(), 3);
    // Unreachable: the reason says so, and names neither host, port nor key.
    let down = refused_addr();
    let c = NotifyConfig { retries: 0, ..NotifyConfig::new(Secret::new(format!("http://{down}/hook/{KEY}"))) };
    let r = &rt::block_on(notify::send_all(std::slice::from_ref(&c), &event(NotifyEventKind::Failed)))[0];
    assert_eq!((r.ok, r.detail.as_str()), (false, "connection refused"));
    // An unset variable.
    let c = NotifyConfig { url: None, url_env: Some("FORGE_ROLLBACK_TEST_UNSET_WEBHOOK".into()), ..c };
    let r = &rt::block_on(notify::send_all(&[c], &event(NotifyEventKind::Failed)))[0];
    assert_eq!((r.ok, r.attempts), (false, 0));
    assert_eq!(r.detail, "the environment variable `FORGE_ROLLBACK_TEST_UNSET_WEBHOOK` is not set");
}

#[test]
fn a_hanging_webhook_delays_the_caller_by_at_most_its_timeout_times_attempts() {
    let server = TestServer::start();
    server.set("/hang", Behaviour::Hang);
    server.set("/ok", Behaviour::Status(200));
    let mut hanging = hook(&server, "/hang", NotifyFormat::Json);
    hanging.timeout_secs = 1.0;
    hanging.retries = 1;
    let configs = [hanging, hook(&server, "/ok", NotifyFormat::Slack)];
    let start = Instant::now();
    let results = rt::block_on(notify::send_all(&configs, &event(NotifyEventKind::Started)));
    let elapsed = start.elapsed();
    // Two attempts of 1 s: about 2 s.
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(!results[0].ok, "{results:?}");
    assert!(results[0].detail.starts_with("timed out after 1.0 s"), "{results:?}");
    assert!(results[1].ok, "the other webhook is delivered meanwhile: {results:?}");
    assert_eq!(server.requests_to("/hang").len(), 2);
}

#[test]
fn the_url_can_come_from_the_environment() {
    const VAR: &str = "FORGE_ROLLBACK_TEST_WEBHOOK_URL";
    let server = TestServer::start();
    server.set(&format!("/env/{KEY}"), Behaviour::Status(200));
    // SAFETY: nextest runs each test in its own process; no other thread reads this variable.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(VAR, server.url(&format!("/env/{KEY}")));
    }
    let c: NotifyConfig = toml::from_str(&format!("url_env = \"{VAR}\"\nformat = \"slack\"\n")).unwrap();
    c.validate().unwrap();
    let r = &rt::block_on(notify::send_all(&[c], &event(NotifyEventKind::Succeeded)))[0];
    assert!(r.ok, "{r:?}");
    let text = server.requests_to(&format!("/env/{KEY}"))[0].body_json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("[forge-rollback] rollback succeeded in shop"), "{text}");
}

#[test]
fn config_parsing_and_validation() {
    let c: NotifyConfig = toml::from_str("url = \"https://hooks.example.com/x\"\n").unwrap();
    assert_eq!(c.format, NotifyFormat::Json);
    assert_eq!(c.events, NotifyEventKind::ALL);
    assert_eq!((c.timeout_secs, c.retries), (5.0, 1));
    c.validate().unwrap();
    let c: NotifyConfig = toml::from_str(
        "url_env = \"X\"\nformat = \"slack\"\nevents = [\"failed\", \"verification_failed\", \"cancelled\"]\n",
    )
    .unwrap();
    assert_eq!(c.events.len(), 3);
    let e = toml::from_str::<NotifyConfig>("url = \"https://h/\"\nchannel = \"#ops\"\n").unwrap_err().to_string();
    assert!(e.contains("unknown field `channel`"), "{e}");
    let e = toml::from_str::<NotifyConfig>("url = \"https://h/\"\nevents = [\"exploded\"]\n").unwrap_err().to_string();
    assert!(e.contains("unknown variant `exploded`"), "{e}");
    let e = toml::from_str::<NotifyConfig>("url = \"https://h/\"\nformat = \"teams\"\n").unwrap_err().to_string();
    assert!(e.contains("unknown variant `teams`"), "{e}");
    let bad = [
        (NotifyConfig { url: None, ..NotifyConfig::new(Secret::new("x")) }, "notify[0].url", "set `url` or `url_env`"),
        (NotifyConfig::new(Secret::new(format!("ftp://h/{KEY}"))), "notify[0].url", "must start with http"),
        (NotifyConfig::new(Secret::new(format!("{KEY} not a url"))), "notify[0].url", "not valid"),
        (
            NotifyConfig { timeout_secs: 0.0, ..NotifyConfig::new(Secret::new("https://h/")) },
            "notify[0].timeout_secs",
            "more than 0",
        ),
        (
            NotifyConfig { retries: 50, ..NotifyConfig::new(Secret::new("https://h/")) },
            "notify[0].retries",
            "at most 10",
        ),
    ];
    for (c, key, msg) in bad {
        let (k, m) = notify::validate(&[c]).unwrap_err();
        assert_eq!(k, key);
        assert!(m.contains(msg) && !m.contains(KEY), "{m}");
    }
}

#[test]
fn empty_events_and_empty_inline_secrets_are_refused() {
    let bad = |text: &str| {
        let c: NotifyConfig = toml::from_str(&format!("url = \"https://h/{KEY}\"\n{text}")).unwrap();
        notify::validate(&[c]).unwrap_err()
    };
    let (key, message) = bad("events = []\n");
    assert_eq!(key, "notify[0].events");
    assert!(message.contains("empty list") && message.contains("leave `events` out"), "{message}");
    for (text, key) in [
        ("secret = \"\"\n", "notify[0].secret"),
        ("secret = \"  \"\n", "notify[0].secret"),
        ("format = \"incident-io\"\ntoken = \"\"\n", "notify[0].token"),
        ("format = \"pagerduty\"\nrouting_key = \"\"\n", "notify[0].routing_key"),
    ] {
        let (k, m) = bad(text);
        assert_eq!(k, key, "{text}");
        assert!(m.starts_with("is empty"), "{m}");
    }
    // A real secret with spaces in it is fine.
    let c: NotifyConfig = toml::from_str("url = \"https://h/\"\nsecret = \" s p \"\n").unwrap();
    notify::validate(&[c]).unwrap();
}

#[test]
fn an_undo_is_headed_undo_and_says_so_in_the_event() {
    let server = TestServer::start();
    for path in ["/slack", "/json", "/pd", "/iio"] {
        server.set(path, Behaviour::Status(202));
    }
    let configs = [
        hook(&server, "/slack", NotifyFormat::Slack),
        hook(&server, "/json", NotifyFormat::Json),
        NotifyConfig { routing_key: Some(Secret::new("rk")), ..hook(&server, "/pd", NotifyFormat::PagerDuty) },
        hook(&server, "/iio", NotifyFormat::IncidentIo),
    ];
    let undo = NotifyEvent { run_kind: RunKind::Undo, ..event(NotifyEventKind::Succeeded) };
    let results = rt::block_on(notify::send_all(&configs, &undo));
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    let body = |path: &str| server.requests_to(path)[0].body_json();
    let text = body("/slack")["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("[forge-rollback] undo succeeded in shop (run "), "{text}");
    assert_eq!(body("/json")["run_kind"], "undo");
    let pd = body("/pd");
    let summary = pd["payload"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("forge-rollback: undo succeeded in shop (9f8e7d6 → 1a2b3c4)"), "{summary}");
    assert_eq!(pd["payload"]["custom_details"]["run_kind"], "undo");
    let iio = body("/iio");
    assert_eq!(iio["title"], "forge-rollback: undo succeeded in shop (9f8e7d6 → 1a2b3c4)");
    assert!(iio["description"].as_str().unwrap().starts_with("**undo succeeded** in **shop**"), "{iio}");
    assert_eq!(iio["metadata"]["run_kind"], "undo");
    // A rollback's say rollback.
    let results = rt::block_on(notify::send_all(&configs[1..2], &event(NotifyEventKind::Failed)));
    assert!(results[0].ok);
    assert_eq!(server.requests_to("/json")[1].body_json()["run_kind"], "rollback");
}

/// The kinds of the events a path received, in order.
fn kinds(server: &TestServer, path: &str) -> Vec<String> {
    server.requests_to(path).iter().map(|r| r.body_json()["kind"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_runs_last_event_goes_out_once_its_started_is_answered() {
    let server = TestServer::start();
    // The `started` is answered on its second attempt only, 2 s later.
    server.set("/order", Behaviour::after(1, Behaviour::Hang, Behaviour::Status(200)));
    let c = NotifyConfig { timeout_secs: 2.0, retries: 1, ..hook(&server, "/order", NotifyFormat::Json) };
    let configs = [c];
    let started = notify::Sending::start(&configs, &event(NotifyEventKind::Started));
    let (before, last) =
        rt::block_on(notify::send_after(&configs, Some(started), &event(NotifyEventKind::Succeeded), &|| false));
    assert_eq!(before.len(), 1);
    assert!(before[0].ok && before[0].attempts == 2, "{before:?}");
    assert!(last[0].ok, "within the time the `started` left: {last:?}");
    // Sent at once, `succeeded` would have reached the receiver before the `started` retry.
    assert_eq!(kinds(&server, "/order"), ["started", "started", "succeeded"]);
}

#[test]
fn a_started_that_hangs_leaves_the_last_event_no_more_than_the_bound() {
    let server = TestServer::start();
    server.set("/hang", Behaviour::Hang);
    server.set("/ok", Behaviour::Status(200));
    let hanging = NotifyConfig { timeout_secs: 1.0, retries: 0, ..hook(&server, "/hang", NotifyFormat::Json) };
    // Not subscribed to `started`: its last event has the whole bound.
    let other = NotifyConfig { events: vec![NotifyEventKind::Succeeded], ..hook(&server, "/ok", NotifyFormat::Json) };
    let configs = [hanging, other];
    let started = notify::Sending::start(&configs, &event(NotifyEventKind::Started));
    let (before, last) =
        rt::block_on(notify::send_after(&configs, Some(started), &event(NotifyEventKind::Succeeded), &|| false));
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(!before[0].ok && before[0].detail.contains("after 1.0 s"), "{before:?}");
    // The `started` took (nearly) all of the hanging webhook's 1 s: `succeeded` gets what is left,
    // not another second.
    assert_eq!(last.len(), 2, "{last:?}");
    let hung = &last[0];
    assert!(!hung.ok && hung.attempts <= 1, "{hung:?}");
    assert!(
        hung.detail.starts_with("not sent: its `started` took all the 1.0 s")
            || hung.detail.ends_with("the time its `started` left"),
        "{hung:?}"
    );
    assert!(last[1].ok && last[1].kind == NotifyEventKind::Succeeded, "{last:?}");
}

#[test]
fn a_stop_gives_up_at_once_what_is_not_answered() {
    let server = TestServer::start();
    server.set("/hang", Behaviour::Hang);
    let configs = [NotifyConfig { timeout_secs: 600.0, retries: 0, ..hook(&server, "/hang", NotifyFormat::Json) }];
    let started = notify::Sending::start(&configs, &event(NotifyEventKind::Started));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (before, last) = std::thread::scope(|s| {
        s.spawn(|| {
            server.wait_for_requests("/hang", 1, Duration::from_secs(60));
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        rt::block_on(notify::send_after(&configs, Some(started), &event(NotifyEventKind::Failed), &|| {
            stop.load(std::sync::atomic::Ordering::SeqCst)
        }))
    });
    for (r, kind) in [(&before[0], NotifyEventKind::Started), (&last[0], NotifyEventKind::Failed)] {
        assert_eq!((r.ok, r.kind, r.detail.as_str()), (false, kind, notify::INTERRUPTED), "{r:?}");
    }
    assert_eq!(kinds(&server, "/hang"), ["started"], "the last event waits for its `started`");
}
