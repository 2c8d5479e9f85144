//! `prometheus` checks against a real Prometheus server (one per test) scraping a real app's
//! `/metrics` every second; the test switches the app's error rate and polls Prometheus until
//! the switch shows, so nothing depends on timing.

use rollback_core::time::Timestamp;
use rollback_testkit::prometheus::Prometheus;
use rollback_testkit::server::{Behaviour, TestServer};

use crate::verify::{check, parse_err, run, verifier};

/// The error ratio over the last 5 s.
const ERROR_RATE: &str = r#"sum(rate(http_requests_total{status="500"}[5s])) / sum(rate(http_requests_total[5s]))"#;

fn app(error_permille: u64) -> (TestServer, Prometheus) {
    let app = TestServer::start();
    app.set("/metrics", Behaviour::Metrics { error_permille });
    let prom = Prometheus::start(&[app.addr()]);
    (app, prom)
}

fn near(v: Option<f64>, want: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() < 1e-9)
}

fn prom_check(name: &str, url: &str, extra: &str) -> String {
    format!("[[checks]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{url}\"\nquery = '{ERROR_RATE}'\n{extra}\n")
}

#[test]
fn verify_fails_over_the_threshold_and_passes_under_it() {
    let (app, prom) = app(10);
    prom.wait_for(ERROR_RATE, "1%", |v| (v - 0.01).abs() < 1e-9);
    let v = verifier(&prom_check("errors", &prom.url(), "max = 0.05"));
    let r = run(&v);
    let c = check(&r, "errors");
    assert!(c.passed, "{c:?}");
    assert_eq!(c.reason, "value 0.01");
    let m = c.metric.as_ref().expect("the metric is reported");
    assert_eq!(m.query, ERROR_RATE);
    assert!(near(m.value, 0.01), "{m:?}");

    app.set("/metrics", Behaviour::Metrics { error_permille: 200 });
    prom.wait_for(ERROR_RATE, "20%", |v| (v - 0.2).abs() < 1e-9);
    let r = run(&v);
    let c = check(&r, "errors");
    assert_eq!((c.passed, c.status.as_str()), (false, "failed"), "{c:?}");
    assert_eq!(c.reason, "value 0.2: above the maximum 0.05");
    assert!(near(c.metric.as_ref().and_then(|m| m.value), 0.2), "{c:?}");
    // The JSON carries the query and the value beside the reason.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["checks"][0]["metric"]["query"], ERROR_RATE);
    assert!(near(json["checks"][0]["metric"]["value"].as_f64(), 0.2), "{json}");

    // `min` is inclusive too, and `for` asks for that many failing evaluations in a row. (The
    // bound is met by a constant the query returns exactly: the error rate's ratio of two rates
    // comes back as 0.2 or 0.19999999999999998 from one evaluation to the next.)
    let exact = format!(
        "[[checks]]\nname = \"in-range\"\nkind = \"prometheus\"\nurl = \"{}\"\nquery = 'vector(0.25)'\nmin = 0.25\nmax = 0.25\n",
        prom.url()
    );
    let r = run(&verifier(&exact));
    assert!(check(&r, "in-range").passed, "{r:?}");
    assert_eq!(check(&r, "in-range").reason, "value 0.25");
    let r = run(&verifier(&prom_check("for", &prom.url(), "max = 0.05\nfor = 3\ninterval_secs = 0.2")));
    let c = check(&r, "for");
    assert_eq!(c.reason, "value 0.2: above the maximum 0.05 (3 evaluations in a row)");
}

#[test]
fn no_data_is_pass_fail_or_inconclusive_as_configured() {
    let (_app, prom) = app(0);
    prom.wait_for("up", "1", |v| (v - 1.0).abs() < 1e-9);
    let q = |name: &str, no_data: &str| {
        format!(
            "[[checks]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{}\"\nquery = 'nothing_like_this_metric'\nmax = 1\nno_data = \"{no_data}\"\n",
            prom.url()
        )
    };
    let r = run(&verifier(&[q("p", "pass"), q("f", "fail"), q("i", "inconclusive")].concat()));
    let status = |n: &str| (check(&r, n).status.clone(), check(&r, n).passed);
    assert_eq!(status("p"), ("passed".into(), true));
    assert_eq!(status("f"), ("failed".into(), false));
    assert_eq!(status("i"), ("inconclusive".into(), false));
    assert!(check(&r, "i").inconclusive());
    assert_eq!(check(&r, "i").metric.as_ref().map(|m| m.value), Some(None));

    // A query Prometheus refuses is an error, with its reason.
    let bad = format!(
        "[[checks]]\nname = \"bad\"\nkind = \"prometheus\"\nurl = \"{}\"\nquery = 'sum(('\nmax = 1\n",
        prom.url()
    );
    let r = run(&verifier(&bad));
    let c = check(&r, "bad");
    assert_eq!(c.status, "error");
    assert!(c.reason.contains("refused the query"), "{c:?}");
}

#[test]
fn baseline_compares_with_the_window_before_the_deploy() {
    let (app, prom) = app(10);
    // Six seconds of a 1% error rate before the "deploy".
    prom.wait_for(ERROR_RATE, "1%", |v| (v - 0.01).abs() < 1e-9);
    prom.wait_for(&format!("min_over_time(({ERROR_RATE})[6s:1s])"), "1% for 6 s", |v| (v - 0.01).abs() < 1e-9);
    let deployed = Timestamp::now();
    app.set("/metrics", Behaviour::Metrics { error_permille: 40 });
    prom.wait_for(ERROR_RATE, "4%", |v| (v - 0.04).abs() < 1e-9);

    let text = prom_check("vs-baseline", &prom.url(), "max = 0.5\nbaseline = \"5s\"\nmax_ratio = 2.0");
    let r = rollback_core::rt::block_on(rollback_core::verify::ServiceVerifier::verify(
        &verifier(&text).deployed_at(Some(deployed)),
        None,
    ));
    let c = check(&r, "vs-baseline");
    assert!(!c.passed, "{c:?}");
    assert!(
        c.reason.starts_with("value 0.04, baseline 0.01 over the 5s before ")
            && c.reason.ends_with(": more than max_ratio 2 × the baseline"),
        "{c:?}"
    );
    let m = c.metric.as_ref().unwrap();
    assert!(near(m.value, 0.04) && near(m.baseline, 0.01), "{m:?}");
    assert_eq!(m.baseline_window.as_deref(), Some("5s"));
    assert_eq!(m.deployed_at, Some(deployed));

    // Within the allowed increase, it passes, the baseline shown beside the value.
    let text = prom_check("ok", &prom.url(), "baseline = \"5s\"\nmax_increase = 0.05");
    let r = rollback_core::rt::block_on(rollback_core::verify::ServiceVerifier::verify(
        &verifier(&text).deployed_at(Some(deployed)),
        None,
    ));
    assert!(check(&r, "ok").passed, "{r:?}");
    assert!(check(&r, "ok").reason.starts_with("value 0.04, baseline 0.01"), "{r:?}");
}

#[test]
fn bad_prometheus_checks_are_refused() {
    let with = |extra: &str| {
        format!(
            "[[checks]]\nname = \"p\"\nkind = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\nquery = 'up'\n{extra}\n"
        )
    };
    let validate = |text: &str| {
        let p = crate::verify::parse(text);
        rollback_core::verify::config::validate(&p.checks, &p.verify, false).unwrap_err()
    };
    assert_eq!(validate(&with("")).0, "checks[0].max");
    assert_eq!(validate(&with("min = 2\nmax = 1")).0, "checks[0].min");
    assert_eq!(validate(&with("max = 1\nfor = 0")).0, "checks[0].for");
    assert_eq!(validate(&with("max_ratio = 2")).0, "checks[0].max_ratio");
    assert_eq!(validate(&with("baseline = \"10m\"\nmax = 1")).0, "checks[0].baseline");
    assert_eq!(validate(&with("baseline = \"ten\"\nmax_ratio = 2")).0, "checks[0].baseline");
    let (key, msg) = validate(&with("max = 1\nfor = 30\ninterval_secs = 1"));
    assert_eq!(key, "checks[0].timeout_secs");
    assert!(msg.contains("not enough for `for = 30`"), "{msg}");
    assert!(parse_err(&with("max = 1\nno_data = \"maybe\"")).contains("unknown variant `maybe`"));
}
