//! `forge-rollback watch` deciding on a metric: a real Prometheus server scrapes a real app's
//! `/metrics` every second; the app's error rate is switched by the test (and healed by the
//! rollback's deploy hook). Every wait polls Prometheus until the switch shows.

use rollback_testkit::TestRepo;
use rollback_testkit::prometheus::Prometheus;
use rollback_testkit::server::{Behaviour, TestServer};
use serde_json::Value;

use crate::common::{fr, state_dir, toml_str};

const ERROR_RATE: &str = r#"sum(rate(http_requests_total{status="500"}[3s])) / sum(rate(http_requests_total[3s]))"#;

struct Watched {
    repo: TestRepo,
    ids: [String; 3],
    app: TestServer,
    prom: Prometheus,
    _cfg_dir: tempfile::TempDir,
    cfg: String,
}

impl Watched {
    /// Three releases (v2 known-good, HEAD at v3), the app failing `error_permille` of its
    /// requests, Prometheus scraping it, and a `prometheus` check with `max = 0.05`. The deploy
    /// hook heals the app (0 errors).
    fn new(error_permille: u64) -> Self {
        Self::with_query(error_permille, ERROR_RATE, "")
    }

    /// [`Watched::new`] with the check's `query` and extra keys.
    fn with_query(error_permille: u64, query: &str, extra: &str) -> Self {
        let repo = TestRepo::new();
        let ids = repo.three_releases();
        fr(&repo, &["known-good", "mark", "v2"]).ok();
        let app = TestServer::start();
        app.set("/metrics", Behaviour::Metrics { error_permille });
        app.set("/deploy/hook", Behaviour::switch("/metrics", Behaviour::Metrics { error_permille: 0 }));
        let prom = Prometheus::start(&[app.addr()]);
        let want = f64::from(u32::try_from(error_permille).unwrap()) / 1000.0;
        prom.wait_for(ERROR_RATE, "the app's error rate", |v| (v - want).abs() < 1e-9);
        let cfg_dir = tempfile::tempdir().unwrap();
        let cfg = cfg_dir.path().join("rollback.toml");
        // `for = 20`: a check fails after 20 failing evaluations a second apart, and passes as
        // soon as one passes, so the verification after the rollback waits for Prometheus to
        // see the healed app (within 20 s) instead of racing its next scrape.
        std::fs::write(
            &cfg,
            format!(
                "[[checks]]\nname = \"errors\"\nkind = \"prometheus\"\nurl = {}\nquery = '{query}'\nmax = 0.05\nfor = 20\ninterval_secs = 1\ntimeout_secs = 60\n{extra}\n\
                 [deploy]\nhook_url = {}\n",
                toml_str(&prom.url()),
                toml_str(&app.url("/deploy/hook")),
            ),
        )
        .unwrap();
        Self { repo, ids, app, prom, _cfg_dir: cfg_dir, cfg: cfg.display().to_string() }
    }

    fn watch(&self, rounds: &str) -> crate::common::Out {
        self.watch_promoting_after(rounds, "1")
    }

    fn watch_promoting_after(&self, rounds: &str, hours: &str) -> crate::common::Out {
        let out = fr(
            &self.repo,
            &[
                "--config",
                &self.cfg,
                "watch",
                "--interval",
                "0.2",
                "--failures",
                "1",
                "--rounds",
                rounds,
                "--promote-after",
                hours,
            ],
        );
        out.ok();
        out
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(state_dir(&self.repo).join("watch.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["event"] == kind)
            .collect()
    }
}

#[test]
fn watch_rolls_back_a_release_whose_error_rate_crosses_the_threshold() {
    let w = Watched::new(200);
    let out = w.watch("2");

    let rounds = w.events("round");
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert_eq!((rounds[0]["passed"].as_bool(), rounds[0]["head"].as_str()), (Some(false), Some(w.ids[2].as_str())));
    let failed = rounds[0]["failed"][0].as_str().unwrap();
    assert_eq!(failed, "errors: value 0.2: above the maximum 0.05 (20 evaluations in a row)");
    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert_eq!(rollbacks[0]["outcome"], "succeeded", "{}", rollbacks[0]);
    assert_eq!(rollbacks[0]["because"][0].as_str(), Some(failed));
    // The verification after the rollback saw the healed app; the release is marked bad.
    assert_eq!(w.events("mark_bad")[0]["commit"], w.ids[2].as_str());
    assert_eq!(w.repo.head(), w.ids[1]);
    assert_eq!(w.app.requests_to("/deploy/hook").len(), 1);
    assert_eq!((rounds[1]["passed"].as_bool(), rounds[1]["head"].as_str()), (Some(true), Some(w.ids[1].as_str())));
    assert!(out.stderr.contains("errors: value 0.2: above the maximum 0.05"), "{}", out.stderr);
    assert_eq!(w.prom.query(ERROR_RATE), Some(0.0));

    // The run's incident report shows the query and the value its verification saw.
    let run_id = rollbacks[0]["run_id"].as_str().unwrap();
    let report = fr(&w.repo, &["--config", &w.cfg, "report", run_id, "--format", "json"]);
    report.ok();
    let checks = &report.json()["verification"]["service_checks"];
    assert_eq!(checks[0]["metric"]["query"], ERROR_RATE, "{checks}");
    assert_eq!(checks[0]["metric"]["value"], 0.0, "{checks}");
    let md = fr(&w.repo, &["--config", &w.cfg, "report", run_id]);
    md.ok();
    assert!(md.stdout.contains("value 0 (query `sum(rate(http_requests_total"), "{}", md.stdout);
}

#[test]
fn watch_leaves_a_healthy_release_alone() {
    let w = Watched::new(10);
    let out = w.watch("3");
    let rounds = w.events("round");
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert!(rounds.iter().all(|r| r["passed"] == true && r["head"] == w.ids[2].as_str()), "{rounds:?}");
    assert!(w.events("rollback").is_empty());
    assert_eq!(w.repo.head(), w.ids[2]);
    assert!(w.app.requests_to("/deploy/hook").is_empty());
    assert!(out.stderr.contains("round 3: all 1 check(s) passed"), "{}", out.stderr);
}

#[test]
fn inconclusive_rounds_neither_roll_back_nor_promote() {
    // A query with no data, and `no_data = "inconclusive"`.
    let w = Watched::with_query(0, "no_such_metric_total", "no_data = \"inconclusive\"");
    // 0.0001 h = 0.36 s: passing rounds would promote HEAD within the watch.
    let out = w.watch_promoting_after("4", "0.0001");
    let rounds = w.events("round");
    assert_eq!(rounds.len(), 4, "{rounds:?}");
    for r in &rounds {
        assert_eq!((r["passed"].as_bool(), r["consecutive_failures"].as_u64()), (Some(false), Some(0)), "{r}");
        assert_eq!(r["failed"], serde_json::json!([]), "{r}");
        let why = r["inconclusive"][0].as_str().unwrap();
        assert_eq!(why, "errors: the query returned no data (no_data = \"inconclusive\")");
    }
    assert!(w.events("rollback").is_empty() && w.events("promote").is_empty());
    assert_eq!(w.repo.head(), w.ids[2]);
    assert!(out.stderr.contains("round 4: inconclusive (0/1 failed in a row, unchanged)"), "{}", out.stderr);
}
