//! The incident-tool formats of `[[notify]]` (`PagerDuty` change events, incident.io alert
//! events) and signed JSON webhooks, each against a real HTTP server that checks the shape of
//! what it received; the signature is checked with `openssl`, an independent HMAC.

use std::io::Write as _;
use std::process::{Command, Stdio};

use rollback_core::event::LogLevel;
use rollback_core::notify::{self, NotifyConfig, NotifyEvent, NotifyEventKind, NotifyFormat};
use rollback_core::plan::RunKind;
use rollback_core::rt;
use rollback_core::secret::Secret;
use rollback_core::time::Timestamp;
use rollback_testkit::server::{Behaviour, TestServer};

const ROUTING_KEY: &str = "R0UTING-KEY-8d1f";
const TOKEN: &str = "inc-token-77aa";
const SIGNING: &str = "whsec-3c9e-signing";

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

fn send(c: &NotifyConfig, kind: NotifyEventKind) -> notify::NotifyResult {
    notify::validate(std::slice::from_ref(c)).unwrap();
    let mut r = rt::block_on(notify::send_all(std::slice::from_ref(c), &event(kind)));
    assert_eq!(r.len(), 1);
    let r = r.remove(0);
    assert!(r.ok, "{r:?}");
    assert!(![ROUTING_KEY, TOKEN, SIGNING].iter().any(|s| format!("{r:?} {c:?}").contains(s)), "{r:?} {c:?}");
    r
}

#[test]
fn pagerduty_gets_a_change_event_naming_the_commits() {
    let server = TestServer::start();
    server.set("/v2/change/enqueue", Behaviour::Json(202, r#"{"status":"success"}"#.into()));
    let c = NotifyConfig {
        format: NotifyFormat::PagerDuty,
        routing_key: Some(Secret::new(ROUTING_KEY)),
        ..NotifyConfig::new(Secret::new(server.url("/v2/change/enqueue")))
    };
    send(&c, NotifyEventKind::VerificationFailed);
    let req = &server.requests_to("/v2/change/enqueue")[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.body_json();
    // The change-event shape: a routing key and a payload, no event_action (that is for alerts).
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["payload", "routing_key"]);
    assert_eq!(body["routing_key"], ROUTING_KEY);
    let p = &body["payload"];
    assert_eq!(
        p["summary"],
        "forge-rollback: rollback done but verification FAILED in shop (9f8e7d6 → 1a2b3c4): check `fastapi`: status 502, expected 200"
    );
    assert_eq!((p["source"].as_str(), p["timestamp"].as_str()), (Some("forge-rollback"), Some("2025-12-10T17:39:00Z")));
    let d = &p["custom_details"];
    assert_eq!((d["run_id"].as_str(), d["level"].as_str()), (Some("20251210-173900-ab12"), Some("error")));
    assert_eq!(d["status"], "verification_failed");
    assert_eq!(d["from"], "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432");
    assert_eq!(d["to"], "1a2b3c4d5e6f708192a3b4c5d6e7f80912345678");
    // Without a URL it goes to PagerDuty's own endpoint.
    let default: NotifyConfig =
        toml::from_str("format = \"pagerduty\"\nrouting_key_env = \"PD_ROUTING_KEY\"\n").unwrap();
    notify::validate(&[default]).unwrap();
    assert_eq!(notify::PAGERDUTY_CHANGE_URL, "https://events.pagerduty.com/v2/change/enqueue");
}

#[test]
fn incident_io_gets_an_alert_event_firing_then_resolved_under_the_run_id() {
    let server = TestServer::start();
    server.set("/v2/alert_events/http/01SRC", Behaviour::Json(202, r#"{"status":"success"}"#.into()));
    let c = NotifyConfig {
        format: NotifyFormat::IncidentIo,
        token: Some(Secret::new(TOKEN)),
        ..NotifyConfig::new(Secret::new(server.url("/v2/alert_events/http/01SRC")))
    };
    send(&c, NotifyEventKind::Failed);
    send(&c, NotifyEventKind::Succeeded);
    let reqs = server.requests_to("/v2/alert_events/http/01SRC");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    let (firing, resolved) = (reqs[0].body_json(), reqs[1].body_json());
    assert_eq!(firing["title"], "forge-rollback: rollback FAILED in shop (9f8e7d6 → 1a2b3c4)");
    assert_eq!(firing["status"], "firing");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(firing["deduplication_key"], "20251210-173900-ab12");
    assert_eq!(resolved["deduplication_key"], firing["deduplication_key"]);
    let md = firing["description"].as_str().unwrap();
    assert!(md.starts_with("**rollback FAILED** in **shop**\n\n- run: `20251210-173900-ab12`\n"), "{md}");
    assert!(
        md.contains(
            "- from: `9f8e7d6c5b4a39281706f5e4d3c2b1a098765432`\n- to: `1a2b3c4d5e6f708192a3b4c5d6e7f80912345678`"
        ),
        "{md}"
    );
    assert!(md.ends_with("\ncheck `fastapi`: status 502, expected 200\n"), "{md}");
    assert_eq!(firing["metadata"]["run_id"], "20251210-173900-ab12");
}

/// `sha256=<hex>` of HMAC-SHA256(key, data) by `openssl`, not by our code.
fn openssl_hmac(key: &str, data: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256={}", text.split_whitespace().next().unwrap())
}

#[test]
fn json_webhooks_are_signed_with_hmac_sha256() {
    let server = TestServer::start();
    server.set("/signed", Behaviour::Status(204));
    let c =
        NotifyConfig { secret: Some(Secret::new(SIGNING)), ..NotifyConfig::new(Secret::new(server.url("/signed"))) };
    let before = Timestamp::now().as_unix();
    send(&c, NotifyEventKind::Started);
    let req = &server.requests_to("/signed")[0];
    let ts = req.header("x-forge-timestamp").expect("timestamp header");
    let t: i64 = ts.parse().unwrap();
    assert!(t >= before && t <= Timestamp::now().as_unix(), "{ts}");
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&req.body);
    let sig = req.header("x-forge-signature-256").expect("signature header");
    assert_eq!(sig, openssl_hmac(SIGNING, &signed));
    assert_eq!(sig, notify::sign(SIGNING.as_bytes(), t, &req.body));
    // Another secret, or another body, gives another signature.
    assert_ne!(sig, openssl_hmac("other", &signed));
    assert_eq!(req.body_json()["kind"], "started");
    // Unsigned webhooks carry no signature.
    let plain = NotifyConfig::new(Secret::new(server.url("/plain")));
    server.set("/plain", Behaviour::Status(204));
    send(&plain, NotifyEventKind::Started);
    assert_eq!(server.requests_to("/plain")[0].header("x-forge-signature-256"), None);
}

#[test]
fn format_keys_are_checked() {
    let bad = |text: &str| {
        let c: NotifyConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        notify::validate(&[c]).unwrap_err()
    };
    assert_eq!(bad("format = \"pagerduty\"\n").0, "notify[0].routing_key");
    assert_eq!(bad("url = \"https://h/\"\nrouting_key_env = \"K\"\n").0, "notify[0].routing_key");
    assert_eq!(bad("url = \"https://h/\"\nformat = \"slack\"\ntoken_env = \"T\"\n").0, "notify[0].token");
    assert_eq!(bad("url = \"https://h/\"\nsecret = \"s\"\nsecret_env = \"S\"\n").0, "notify[0].secret");
    assert_eq!(bad("url = \"https://h/\"\nsecret_env = \"\"\n").0, "notify[0].secret_env");
    assert_eq!(bad("format = \"incident-io\"\n").0, "notify[0].url");
    // An unset variable is a failed delivery that names it, never a failed run.
    let c: NotifyConfig =
        toml::from_str("url = \"http://127.0.0.1:9/\"\nsecret_env = \"FORGE_TEST_SURELY_UNSET_SECRET\"\nretries = 0\n")
            .unwrap();
    let r = rt::block_on(notify::send_all(&[c], &event(NotifyEventKind::Started)));
    assert!(!r[0].ok && r[0].detail.contains("FORGE_TEST_SURELY_UNSET_SECRET"), "{r:?}");
}
