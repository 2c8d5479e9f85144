//! `forge-rollback watch` end to end: the binary watching a real HTTP server over a real
//! repository, with short intervals. Every decision is read back from `watch.jsonl`, the
//! registry, `runs list` and the repository itself.

use std::time::{Duration, Instant};

use rollback_testkit::TestRepo;
use rollback_testkit::server::{Behaviour, TestServer};
use serde_json::Value;

use crate::common::{Background, Out, command, fr, picture, state_dir, toml_str, wait_until};

/// A repository with three releases (v2 marked known-good, HEAD at v3), a server, and a
/// configuration (outside the work tree) with one check on the server's `/health`.
struct Watched {
    repo: TestRepo,
    ids: [String; 3],
    server: TestServer,
    _cfg_dir: tempfile::TempDir,
    cfg: String,
}

impl Watched {
    /// `extra_toml` adds to the configuration, given the server.
    fn new(extra_toml: impl FnOnce(&TestServer) -> String) -> Self {
        let repo = TestRepo::new();
        let ids = repo.three_releases();
        fr(&repo, &["known-good", "mark", "v2"]).ok();
        let server = TestServer::start();
        let cfg_dir = tempfile::tempdir().unwrap();
        let cfg = cfg_dir.path().join("rollback.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[checks]]\nname = \"api\"\nkind = \"http\"\nurl = {}\ntimeout_secs = 2\n{}",
                toml_str(&server.url("/health")),
                extra_toml(&server)
            ),
        )
        .unwrap();
        let cfg = cfg.display().to_string();
        Self { repo, ids, server, _cfg_dir: cfg_dir, cfg }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        all
    }

    fn fr(&self, args: &[&str]) -> Out {
        fr(&self.repo, &self.args(args))
    }

    fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(self.repo.path(), &self.args(args), &[])
    }

    /// The records of `watch.jsonl`.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(state_dir(&self.repo).join("watch.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad watch.jsonl line ({e}): {l}")))
            .collect()
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["event"] == kind).collect()
    }

    /// The registry entry of `commit`, if any.
    fn entry(&self, commit: &str) -> Option<Value> {
        let out = self.fr(&["known-good", "list", "--json"]);
        out.ok();
        out.json()["commits"].as_array().unwrap().iter().find(|e| e["hash"] == commit).cloned()
    }

    fn runs(&self) -> Vec<Value> {
        let out = self.fr(&["runs", "list", "--json"]);
        out.ok();
        out.json().as_array().unwrap().clone()
    }
}

fn short(id: &str) -> &str {
    &id[..7]
}

#[test]
fn a_healthy_head_is_promoted_after_the_window_once_and_sigterm_stops_the_watch() {
    let w = Watched::new(|_| String::new());
    // 0.0003 h ≈ 1.1 s of passing rounds.
    let watch = w.spawn(&["watch", "--interval", "0.2", "--failures", "2", "--promote-after", "0.0003"]);
    wait_until("a promote record", Duration::from_secs(60), || !w.events("promote").is_empty());
    // More rounds pass after the promotion: they must not promote again.
    let rounds_then = w.events("round").len();
    wait_until("two more rounds", Duration::from_secs(60), || w.events("round").len() >= rounds_then + 2);
    watch.terminate();
    let sent = Instant::now();
    let out = watch.wait(Duration::from_secs(30));
    out.ok();
    assert!(sent.elapsed() < Duration::from_secs(10), "SIGTERM took {:?} to stop the watch", sent.elapsed());

    let records = w.records();
    let started = &records[0];
    assert_eq!(started["event"], "started", "{records:?}");
    assert_eq!(started["head"], w.ids[2].as_str());
    let window = started["promote_after_secs"].as_f64().unwrap();
    assert!((1.0..1.2).contains(&window), "{started}");
    let promotes = w.events("promote");
    assert_eq!(promotes.len(), 1, "promoted once: {promotes:?}");
    assert_eq!(promotes[0]["commit"], w.ids[2].as_str());
    assert_eq!(promotes[0]["done"], true);
    assert!(promotes[0]["passed_for_secs"].as_f64().unwrap() >= window, "{}", promotes[0]);
    let rounds = w.events("round");
    assert!(rounds.iter().all(|r| r["passed"] == true && r["failed"] == serde_json::json!([])), "{rounds:?}");
    let last = records.last().unwrap();
    assert_eq!((last["event"].as_str(), last["reason"].as_str()), (Some("stopped"), Some("signal")), "{last}");

    // The registry now lists HEAD as verified known-good; nothing was rolled back.
    let entry = w.entry(&w.ids[2]).expect("HEAD is in the registry");
    assert!(entry["verified"] == true && entry["known_bad"] != true, "{entry}");
    assert!(entry["notes"].as_str().unwrap().starts_with("watch: passed every round for"), "{entry}");
    assert!(w.runs().is_empty());
    assert_eq!(w.repo.head(), w.ids[2]);
    assert!(
        out.stdout.contains(&format!("rollbacks: none; promoted: {}; stopped by signal", short(&w.ids[2]))),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains(&format!("Marked {} known-good", short(&w.ids[2]))), "{}", out.stderr);
}

#[test]
fn sigterm_during_a_long_interval_stops_the_watch_promptly() {
    let w = Watched::new(|_| String::new());
    let watch = w.spawn(&["watch", "--interval", "120", "--promote-after", "1"]);
    wait_until("the first round", Duration::from_secs(60), || !w.events("round").is_empty());
    watch.terminate();
    let sent = Instant::now();
    let out = watch.wait(Duration::from_secs(60));
    out.ok();
    // The next round was two minutes away: the watch woke up for the signal.
    assert!(sent.elapsed() < Duration::from_secs(30), "SIGTERM took {:?}", sent.elapsed());
    let records = w.records();
    assert_eq!(records.len(), 3, "started, one round, stopped: {records:?}");
    assert_eq!(records[2]["event"], "stopped");
    assert_eq!(records[2]["reason"], "signal");
    assert!(out.stdout.starts_with("watched 1 round(s) (0 failed)"), "{}", out.stdout);
    assert!(out.stderr.contains("Watch stopped (signal)"), "{}", out.stderr);
}

#[test]
fn failed_rounds_roll_back_to_the_known_good_release_and_mark_the_bad_one() {
    // The broken release answers 503; the deploy hook the rollback calls heals the service.
    let w = Watched::new(|s| format!("[deploy]\nhook_url = {}\n", toml_str(&s.url("/deploy/hook"))));
    w.server.set("/health", Behaviour::Status(503));
    w.server.set("/deploy/hook", Behaviour::switch("/health", Behaviour::Healthy));

    let out = w.fr(&["watch", "--interval", "0.2", "--failures", "2", "--rounds", "4", "--promote-after", "1"]);
    out.ok();

    // Rounds 1 and 2 failed with the check's values; the rollback came after the second.
    let rounds = w.events("round");
    assert_eq!(rounds.len(), 4, "{rounds:?}");
    for (i, r) in rounds[..2].iter().enumerate() {
        assert_eq!(r["passed"], false, "{r}");
        assert_eq!(r["consecutive_failures"], i + 1, "{r}");
        assert_eq!(r["head"], w.ids[2].as_str());
        let failed = r["failed"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{r}");
        assert!(failed[0].as_str().unwrap().starts_with("api: status 503"), "{r}");
    }
    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 1, "one rollback, not one per failed round: {rollbacks:?}");
    let rb = &rollbacks[0];
    assert_eq!(rb["from"], w.ids[2].as_str());
    assert_eq!(rb["outcome"], "succeeded", "{rb}");
    assert!(rb["because"][0].as_str().unwrap().starts_with("api: status 503"), "{rb}");
    let run_id = rb["run_id"].as_str().expect("the run is named").to_owned();
    let marked = w.events("mark_bad");
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["commit"], w.ids[2].as_str());
    // After the rollback, the healed service passes on the known-good release.
    for r in &rounds[2..] {
        assert_eq!((r["passed"].as_bool(), r["head"].as_str()), (Some(true), Some(w.ids[1].as_str())), "{r}");
    }
    assert_eq!(w.records().last().unwrap()["reason"], "rounds");

    // The repository is at the known-good release; the run is listed with the watch's reason.
    assert_eq!(w.repo.head(), w.ids[1]);
    assert_eq!(w.repo.branch().as_deref(), Some("main"));
    let runs = w.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!((runs[0]["from"].as_str(), runs[0]["to"].as_str()), (Some(w.ids[2].as_str()), Some(w.ids[1].as_str())));
    let reason = runs[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("watch: 2 failed verification rounds in a row: api: status 503"), "{reason}");
    assert_eq!(w.server.requests_to("/deploy/hook").len(), 1, "the rollback's deploy hook ran once");
    // The bad release is marked and will never be a target; the good one is untouched.
    let bad = w.entry(&w.ids[2]).expect("v3 is in the registry");
    assert_eq!(bad["known_bad"], true, "{bad}");
    let good = w.entry(&w.ids[1]).unwrap();
    assert!(good["verified"] == true && good["known_bad"] != true, "{good}");
    // Logged with the values that led to each decision.
    assert!(out.stderr.contains("round 2: 1 of 1 check(s) failed (2/2 in a row): api: status 503"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("rolling back from {}", short(&w.ids[2]))), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("Marked {} known bad", short(&w.ids[2]))), "{}", out.stderr);
    // The mark is local: the gates in CI and on the git server read the default branch's.
    assert!(
        out.stderr.contains("known bad in `rollback/config/known-good-commits.json` on this host")
            && out.stderr.contains("once that file is committed on the default branch (`git add "),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains(&format!("rollbacks: {run_id}")), "{}", out.stdout);
}

#[test]
fn no_rollback_is_started_while_another_run_holds_the_lock() {
    let w = Watched::new(|_| String::new());
    w.server.set("/health", Behaviour::Status(500));
    let release = w.repo.path().join(".git/release-first-run");
    // A manual rollback to v1 (default configuration: no checks), paused under the lock.
    let mut first = command(w.repo.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    first
        .env("FORGE_ROLLBACK_FAILPOINT", "after:lock")
        .env("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
        .env("FORGE_ROLLBACK_FAILPOINT_RELEASE", &release)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let first = first.spawn().unwrap();
    let lock = state_dir(&w.repo).join("lock");
    wait_until("the first run to hold the lock", Duration::from_secs(60), || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid"))
    });

    let out =
        w.fr(&["watch", "--interval", "0.2", "--failures", "1", "--rounds", "2", "--promote-after", "1", "--json"]);
    std::fs::write(&release, "").unwrap();
    let first = first.wait_with_output().unwrap();
    // The service was left failing, the rollback to another run: exit 3, as that `run`.
    out.code(3);
    let report = out.json();
    assert_eq!(report["not_started"]["kind"], "locked", "{report}");
    assert_eq!(report["not_started"]["from"], w.ids[2].as_str(), "{report}");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));

    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 2, "one decision per failed round: {rollbacks:?}");
    for rb in &rollbacks {
        assert_eq!(rb["run_id"], Value::Null, "{rb}");
        let outcome = rb["outcome"].as_str().unwrap();
        assert!(outcome.starts_with("not started: the lock is held by pid"), "{rb}");
        assert!(rb["because"][0].as_str().unwrap().starts_with("api: status 500"), "{rb}");
    }
    assert!(w.events("mark_bad").is_empty());
    assert!(out.stderr.contains("a run is in progress"), "{}", out.stderr);
    assert!(out.stderr.contains("not starting another"), "{}", out.stderr);
    // Only the other run ran.
    let runs = w.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["to"], w.ids[0].as_str());
    assert_eq!(w.repo.head(), w.ids[0]);
    assert!(w.entry(&w.ids[2]).is_none(), "v3 was not marked");
}

#[test]
fn a_dry_run_watch_decides_and_logs_but_changes_nothing() {
    let w = Watched::new(|_| String::new());
    let registry = w.repo.read("rollback/config/known-good-commits.json");
    let before = picture(&w.repo);
    w.server.set("/health", Behaviour::Status(502));
    let out =
        w.fr(&["watch", "--dry-run", "--interval", "0.2", "--failures", "1", "--rounds", "2", "--promote-after", "1"]);
    out.ok();
    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 2, "{rollbacks:?}");
    let would = format!("dry run: would roll back to {}", short(&w.ids[1]));
    assert!(rollbacks.iter().all(|r| r["outcome"] == would.as_str() && r["run_id"].is_null()), "{rollbacks:?}");
    assert!(w.events("mark_bad").is_empty());
    assert!(out.stderr.contains("dry run: would be rolling back"), "{}", out.stderr);

    // Healthy now: a dry run promotes nothing either.
    w.server.set("/health", Behaviour::Healthy);
    let out = w.fr(&["watch", "--dry-run", "--interval", "0.2", "--rounds", "1", "--promote-after", "0"]);
    out.ok();
    let promotes = w.events("promote");
    assert_eq!(promotes.len(), 1, "{promotes:?}");
    assert_eq!((promotes[0]["commit"].as_str(), promotes[0]["done"].as_bool()), (Some(w.ids[2].as_str()), Some(false)));
    assert!(out.stdout.contains("rollbacks: none; promoted: none"), "{}", out.stdout);

    assert_eq!(picture(&w.repo), before);
    assert_eq!(w.repo.read("rollback/config/known-good-commits.json"), registry, "the registry is untouched");
    assert!(w.runs().is_empty());
    assert!(!state_dir(&w.repo).join("runs").read_dir().is_ok_and(|mut d| d.next().is_some()), "no run folder");
    assert_eq!(w.repo.git(&["for-each-ref", "refs/forge-rollback"]), "", "no pinned refs");
}

#[test]
fn sigterm_during_a_rollback_lets_the_rollback_finish_then_stops() {
    let w = Watched::new(|_| String::new());
    w.server.set("/health", Behaviour::Status(503));
    let release = w.repo.path().join(".git/release-rollback");
    let release_s = release.display().to_string();
    // The watch's own rollback pauses before its reset.
    let watch = Background::spawn(
        w.repo.path(),
        &w.args(&["watch", "--interval", "0.2", "--failures", "1", "--promote-after", "1"]),
        &[
            ("FORGE_ROLLBACK_FAILPOINT", "before:reset"),
            ("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause"),
            ("FORGE_ROLLBACK_FAILPOINT_RELEASE", &release_s),
        ],
    );
    let runs_dir = state_dir(&w.repo).join("runs");
    wait_until("the rollback to begin its reset", Duration::from_secs(60), || {
        std::fs::read_dir(&runs_dir).into_iter().flatten().flatten().any(|run| {
            std::fs::read_to_string(run.path().join("journal.jsonl")).is_ok_and(|j| j.contains("\"step\":\"reset\""))
        })
    });
    watch.interrupt("TERM");
    let mut watch = watch;
    assert!(watch.child.try_wait().unwrap().is_none(), "SIGTERM killed the watch in the middle of a rollback");
    std::fs::write(&release, "").unwrap();
    let out = watch.wait(Duration::from_secs(60));
    // Stopped by the signal, but its rollback's checks failed: exit 6, as that run's.
    out.code(6);
    // The rollback completed, was recorded, and the watch stopped before another round.
    let runs = w.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "verification_failed", "the service still fails after the rollback");
    assert_eq!(w.repo.head(), w.ids[1]);
    let records = w.records();
    let kinds: Vec<&str> = records.iter().map(|r| r["event"].as_str().unwrap()).collect();
    // The known-good release failed the checks too: no evidence against v3, so no bad mark.
    assert_eq!(kinds, ["started", "round", "rollback", "stopped"], "{records:?}");
    assert_eq!(records[2]["outcome"], "verification_failed");
    assert_eq!(records[3]["reason"], "signal");
    assert!(w.entry(&w.ids[2]).is_none_or(|e| e["known_bad"] != true), "v3 was not marked bad");
}

#[test]
fn a_release_marked_bad_is_not_promoted_by_passing_rounds() {
    let w = Watched::new(|_| String::new());
    w.fr(&["known-good", "bad", "v3", "--note", "corrupts payments"]).ok();
    let out = w.fr(&["watch", "--interval", "0.2", "--rounds", "2", "--promote-after", "0"]);
    out.ok();
    let bad = w.entry(&w.ids[2]).unwrap();
    assert_eq!((bad["known_bad"].as_bool(), bad["verified"].as_bool()), (Some(true), Some(false)), "{bad}");
    assert_eq!(bad["notes"], "corrupts payments");
    let promotes = w.events("promote");
    assert_eq!(promotes.len(), 1, "decided once: {promotes:?}");
    assert_eq!(promotes[0]["done"], false);
    assert!(
        out.stderr.contains(&format!("not marking {} known-good: it is marked known bad", short(&w.ids[2]))),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("promoted: none"), "{}", out.stdout);
}

#[test]
fn failures_that_outlive_a_rollback_do_not_cascade_down_the_registry() {
    // v1 and v2 are both known-good; the service keeps failing whatever the code (an outage).
    let w = Watched::new(|_| String::new());
    w.fr(&["known-good", "mark", "v1"]).ok();
    w.server.set("/health", Behaviour::Status(503));
    let out = w.fr(&["watch", "--interval", "0.2", "--failures", "2", "--rounds", "6", "--promote-after", "1"]);
    // The rollback it made failed its checks: exit 6, as that `run` would have (a `--rounds`
    // watch in a CI job must not read success).
    out.code(6);
    // Six rounds, a decision every two failed rounds: one rollback, then two refusals.
    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 3, "{rollbacks:?}");
    assert_eq!(rollbacks[0]["outcome"], "verification_failed", "the rollback's own checks failed too");
    assert_eq!(rollbacks[0]["from"], w.ids[2].as_str());
    // Afterwards HEAD is the release this watch rolled back to: no second rollback, to v1.
    for r in &rollbacks[1..] {
        assert_eq!(r["from"], w.ids[1].as_str());
        assert!(r["run_id"].is_null(), "{r}");
        assert!(r["outcome"].as_str().unwrap().contains("the failures are not in the code"), "{r}");
    }
    assert_eq!(w.runs().len(), 1);
    assert_eq!(w.repo.head(), w.ids[1], "still on v2");
    let v2 = w.entry(&w.ids[1]).unwrap();
    assert!(v2["verified"] == true && v2["known_bad"] != true, "v2 was not marked bad: {v2}");
    assert!(out.stderr.contains("not rolling back again"), "{}", out.stderr);
}

#[test]
fn an_absurd_promotion_window_in_the_registry_is_a_usage_error_not_a_panic() {
    let w = Watched::new(|_| String::new());
    let path = w.repo.path().join("rollback/config/known-good-commits.json");
    let mut reg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    reg["verification_criteria"]["minimum_uptime_hours"] = serde_json::json!(1e300);
    std::fs::write(&path, serde_json::to_vec_pretty(&reg).unwrap()).unwrap();
    let out = w.fr(&["watch", "--interval", "0.2", "--rounds", "1"]);
    out.code(2);
    assert!(out.stderr.contains("minimum_uptime_hours"), "{}", out.stderr);
    // The flag overrides it.
    w.fr(&["watch", "--interval", "0.2", "--rounds", "1", "--promote-after", "1"]).ok();
}

/// A watcher cannot ask before every step: `--manual` (or `[watch] level = "manual"`) is
/// refused before the first round, not found out when a rollback is due.
#[test]
fn a_manual_watch_is_refused_before_it_watches() {
    let w = Watched::new(|_| String::new());
    w.server.set("/health", Behaviour::Status(503));
    let out = w.fr(&["watch", "--manual", "--interval", "0.2", "--failures", "1", "--rounds", "1"]);
    out.code(2);
    assert!(out.stderr.contains("a watcher rolls back unattended"), "{}", out.stderr);
    assert!(w.server.requests().is_empty(), "no round was run");
    assert!(w.records().is_empty() && w.runs().is_empty());
}

#[test]
fn with_on_failure_undo_a_watch_does_not_flap_between_rollback_and_undo() {
    let w = Watched::new(|_| "[verify]\non_failure = \"undo\"\n".to_owned());
    w.server.set("/health", Behaviour::Status(503));
    let out =
        w.fr(&["watch", "--interval", "0.2", "--failures", "2", "--rounds", "6", "--promote-after", "1", "--json"]);
    // Undone for its failed checks: exit 6, as that `run` would have.
    out.code(6);
    let report = out.json();
    assert_eq!(report["rollback_outcomes"][0]["status"], "verification_failed", "{report}");
    assert_eq!(report["rollback_outcomes"][0]["verification_failed"], true, "{report}");
    assert_eq!(report["not_started"]["kind"], "outage", "{report}");
    assert!(report["rollback_outcomes"][0]["undone_by"].is_string(), "back on v3: {report}");
    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 3, "{rollbacks:?}");
    // The one rollback failed its checks and was undone at once: back on v3 ...
    assert!(rollbacks[0]["run_id"].is_string(), "{rollbacks:?}");
    assert_eq!(w.repo.head(), w.ids[2]);
    // ... and the watch does not roll back from v3 again, nor marks it bad.
    for r in &rollbacks[1..] {
        assert_eq!(r["from"], w.ids[2].as_str());
        assert!(r["run_id"].is_null(), "{r}");
    }
    assert!(w.events("mark_bad").is_empty());
    let runs = w.runs();
    assert_eq!(runs.len(), 2, "one rollback and its undo: {runs:?}");
}

#[test]
fn a_rollback_refused_after_the_last_failed_rounds_is_the_watch_exit_status() {
    // HEAD detached at v3: the rollback the failed rounds call for is refused (a safety check).
    let w = Watched::new(|_| String::new());
    w.repo.git(&["checkout", "-q", "--detach", "HEAD"]);
    w.server.set("/health", Behaviour::Status(500));
    let out =
        w.fr(&["watch", "--interval", "0.2", "--failures", "1", "--rounds", "2", "--promote-after", "1", "--json"]);
    // Exit 0 here read success in a CI job while the service was down and nothing was done.
    out.code(4);
    let report = out.json();
    assert_eq!(report["not_started"]["kind"], "refused", "{report}");
    assert!(report["not_started"]["reason"].as_str().unwrap().contains("detached"), "{report}");
    assert!(report["rollbacks"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(w.repo.head(), w.ids[2]);
    assert!(w.runs().is_empty());

    // A round that passes after the refusal: the watch left a healthy service, exit 0.
    w.server.set("/health", Behaviour::Status(500));
    let watch = w.spawn(&[
        "watch",
        "--interval",
        "0.3",
        "--failures",
        "1",
        "--rounds",
        "8",
        "--promote-after",
        "1000",
        "--json",
    ]);
    let refused_before = w.events("rollback").len();
    wait_until("a refused rollback", Duration::from_secs(60), || w.events("rollback").len() > refused_before);
    w.server.set("/health", Behaviour::Healthy);
    let out = watch.wait(Duration::from_secs(120));
    out.ok();
    let report = out.json();
    assert!(report["not_started"].is_null(), "{report}");
    let last_round = w.events("round").pop().unwrap();
    assert_eq!(last_round["passed"], true, "{last_round}");
}

#[test]
fn a_stop_asked_for_during_a_failing_round_starts_no_rollback() {
    // The round takes two seconds (a slow failing check): SIGTERM comes in the middle of it.
    let w = Watched::new(|_| String::new());
    w.server.set("/health", Behaviour::Slow(Duration::from_secs(2), Box::new(Behaviour::Status(500))));
    let watch = w.spawn(&["watch", "--interval", "0.2", "--failures", "1", "--promote-after", "1", "--json"]);
    wait_until("the first round's request", Duration::from_secs(60), || !w.server.requests().is_empty());
    watch.terminate();
    let out = watch.wait(Duration::from_secs(60));
    // Interrupted: exit 5; the rollback the failed round called for was not started.
    out.code(5);
    assert_eq!(out.json()["not_started"]["kind"], "cancelled", "{}", out.stdout);
    assert!(w.runs().is_empty(), "no rollback after the operator asked the watch to stop");
    assert_eq!(w.repo.head(), w.ids[2]);
    let rollbacks = w.events("rollback");
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert_eq!(rollbacks[0]["outcome"], "not started: the watch was asked to stop (a signal)");
    assert!(out.stderr.contains("asked to stop during the round: not starting a rollback"), "{}", out.stderr);

    // A passing round with a stop asked for during it promotes nothing either.
    w.server.set("/health", Behaviour::Slow(Duration::from_secs(2), Box::new(Behaviour::Healthy)));
    let before = w.server.requests().len();
    let watch = w.spawn(&["watch", "--interval", "0.2", "--promote-after", "0"]);
    wait_until("the round's request", Duration::from_secs(60), || w.server.requests().len() > before);
    watch.terminate();
    watch.wait(Duration::from_secs(60)).ok();
    assert!(w.entry(&w.ids[2]).is_none(), "v3 was not promoted after the stop");
}

#[test]
fn failures_on_local_edits_roll_back_but_do_not_mark_the_commit_bad() {
    // v3 is fine; a hot edit on the host broke it. The rollback sets the edit aside (in its
    // backup), and the commit alone was never checked: no bad mark.
    let w = Watched::new(|s| format!("[deploy]\nhook_url = {}\n", toml_str(&s.url("/deploy/hook"))));
    w.repo.write("app/main.py", "HOTFIX = 'broken'\n");
    w.server.set("/health", Behaviour::Status(503));
    w.server.set("/deploy/hook", Behaviour::switch("/health", Behaviour::Healthy));
    let out = w.fr(&["watch", "--interval", "0.2", "--failures", "1", "--rounds", "2", "--promote-after", "1"]);
    out.ok();
    assert_eq!(w.runs().len(), 1);
    assert_eq!(w.repo.head(), w.ids[1]);
    assert!(w.events("mark_bad").is_empty(), "{:?}", w.records());
    assert!(w.entry(&w.ids[2]).is_none_or(|e| e["known_bad"] != true), "v3 was not marked bad");
    assert!(
        out.stderr.contains("not marking") && out.stderr.contains("local changes to tracked files (app/main.py)"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreadable_registry_does_not_keep_the_watch_from_starting() {
    let w = Watched::new(|_| String::new());
    std::fs::write(w.repo.path().join("rollback/config/known-good-commits.json"), "{\"commits\": [").unwrap();
    let out = w.fr(&["watch", "--interval", "0.2", "--rounds", "1"]);
    out.ok();
    assert_eq!(w.events("round").len(), 1);
    assert!(
        out.stderr.contains("could not read the registry, so the promotion window is the default 24 h"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_negative_interval_or_window_after_a_space_is_refused_quoting_it() {
    let w = Watched::new(|_| String::new());
    let out = w.fr(&["watch", "--promote-after", "-1", "--rounds", "1"]);
    out.code(2);
    assert!(
        out.stderr.contains("--promote-after must be zero or a positive number of hours, not -1"),
        "{}",
        out.stderr
    );
    let out = w.fr(&["watch", "--interval", "-1", "--rounds", "1"]);
    out.code(2);
    assert!(out.stderr.contains("--interval must be a positive number, not -1"), "{}", out.stderr);
    assert!(w.records().is_empty());
}

#[test]
fn a_run_left_half_way_is_said_when_the_watch_starts() {
    let w = Watched::new(|_| String::new());
    // A rollback killed after its reset (the host rebooted under it).
    let out = crate::common::fr_env(
        &w.repo,
        &["run", "--fast", "--yes", "--target", "v1"],
        &[("FORGE_ROLLBACK_FAILPOINT", "end:reset")],
    );
    assert_eq!(out.code, None, "killed: {}", out.stderr);
    let out = w.fr(&["watch", "--interval", "0.2", "--rounds", "1", "--promote-after", "1"]);
    out.ok();
    assert!(out.stderr.contains("was interrupted half-way"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("until it is finished or undone, a rollback this watch decides on is refused; finish it with"),
        "{}",
        out.stderr
    );
}
