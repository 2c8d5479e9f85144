//! `watch` where the repository moves under it, or what passed is not the commit: the watcher
//! acts on the commit its rounds checked, or not at all.

use rollback_testkit::TestRepo;

use crate::common::{fr, state_dir, toml_str};

/// A repository with three releases (v2 marked known-good, HEAD at v3) and a fix `v4` on top
/// of v3 not yet deployed, with a configuration outside the tree whose one check is `check`.
fn repo_with_check(check: &str) -> (TestRepo, [String; 4], tempfile::TempDir, String) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    r.write("app/fix.txt", "the fix\n");
    let v4 = r.commit_all("v4: the fix");
    r.git(&["tag", "v4"]);
    r.git(&["reset", "-q", "--hard", "v3"]);
    fr(&r, &["known-good", "mark", "v2"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rollback.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[checks]]\nname = \"health\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 30\n",
            toml_str(check)
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    (r, [v1, v2, v3, v4], dir, cfg)
}

fn records(r: &TestRepo, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state_dir(r).join("watch.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["event"] == event)
        .collect()
}

/// The fix is deployed while the last failing round (of v3) runs: the rollback decided on v3's
/// rounds is not started from the fix, which no round checked (it used to roll the fix back to
/// v2, while the log named v3). The next rounds check the fix.
#[test]
fn a_rollback_is_not_started_from_a_head_no_failing_round_checked() {
    // Round 1 fails on v3; round 2 fails on v3 too, and the fix is deployed during it; then
    // the check passes (on the fix).
    let (r, [_, _, v3, v4], _dir, cfg) = repo_with_check(
        "n=$(cat .git/rounds 2>/dev/null || echo 0); n=$((n+1)); echo $n > .git/rounds; \
         if [ $n -eq 2 ]; then git merge -q --ff-only v4; fi; [ $n -gt 2 ]",
    );
    let out = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--failures", "2", "--rounds", "4"]);
    out.ok();
    assert_eq!(r.head(), v4, "the fix stays: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("not at {}, the commit this rollback was asked to leave", &v3[..7])),
        "{}",
        out.stderr
    );
    let runs = fr(&r, &["runs", "list", "--json"]);
    assert_eq!(runs.json().as_array().map_or(0, Vec::len), 0, "{}", runs.stdout);
    let rollbacks = records(&r, "rollback");
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert!(rollbacks[0]["outcome"].as_str().unwrap().starts_with("not started"), "{rollbacks:?}");
    fr(&r, &["gate", "v3"]).ok();
}

/// The checks pass on an uncommitted hot-patch of a tracked file: the commit is not promoted
/// known-good while it is there (a later rollback to it would reset to the committed files);
/// it used to be marked verified. Once the patch is put back (by the check script here, at its
/// third call), the next passing round promotes it. Local changes to the files a rollback
/// keeps (the committed registry, which marks edit) do not count.
#[test]
fn a_commit_is_not_promoted_while_it_passes_with_local_edits() {
    let (r, [_, _, v3, _], _dir, cfg) =
        repo_with_check(&format!("{COUNT_CALLS}[ $n -eq 3 ] && git checkout -q -- app/main.py; true"));
    // The registry committed, then changed by a mark: a local change that is no part of v3.
    let registry = "rollback/config/known-good-commits.json";
    r.git(&["add", registry]);
    r.git(&["commit", "-q", "-m", "registry"]);
    let v3 = {
        let _ = v3;
        r.head()
    };
    fr(&r, &["known-good", "mark", "v1"]).ok();
    r.write("app/main.py", "patched\n");
    let out = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--rounds", "4", "--promote-after", "0"]);
    out.ok();
    assert!(
        out.stderr.contains("not marking")
            && out.stderr.contains("the checks passed on local changes to tracked files (app/main.py)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(registry), "the registry's own change does not count: {}", out.stderr);
    let promotions = records(&r, "promote");
    assert_eq!(promotions.len(), 1, "{promotions:?}");
    assert_eq!(promotions[0]["done"], true);
    assert_eq!(promotions[0]["commit"], v3.as_str());
}

/// An interval past a year overflowed the clock after the first round (exit 101); a negative
/// promotion window in the registry promoted after one round. Both are usage errors (exit 2)
/// before the first round.
#[test]
fn absurd_intervals_and_negative_windows_are_refused_before_the_first_round() {
    let (r, _, _dir, cfg) = repo_with_check("true");
    let out = fr(&r, &["--config", &cfg, "watch", "--interval", "1e19", "--rounds", "2"]);
    out.code(2);
    assert!(out.stderr.contains("longer than a year"), "{}", out.stderr);
    let path = "rollback/config/known-good-commits.json";
    let mut reg: serde_json::Value = serde_json::from_slice(&r.read(path)).unwrap();
    reg["verification_criteria"]["minimum_uptime_hours"] = (-1.0).into();
    r.write(path, serde_json::to_vec_pretty(&reg).unwrap());
    let out = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--rounds", "2"]);
    out.code(2);
    assert!(out.stderr.contains("minimum_uptime_hours"), "{}", out.stderr);
    assert!(records(&r, "round").is_empty());
}

/// `--promote-after` is in hours: its errors quote the hours typed (they quoted the seconds
/// they became, `-3600`, or a 300-digit number for `1e300`) and say what to give.
#[test]
fn promote_after_errors_quote_the_hours_typed() {
    let (r, _, _dir, cfg) = repo_with_check("true");
    let out = fr(&r, &["--config", &cfg, "watch", "--promote-after=-1", "--rounds", "1"]);
    out.code(2);
    assert!(
        out.stderr.contains("--promote-after must be zero or a positive number of hours, not -1\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    let out = fr(&r, &["--config", &cfg, "watch", "--promote-after=1e300", "--rounds", "1"]);
    out.code(2);
    assert!(out.stderr.contains("--promote-after of 1e300 hours is too large"), "{}", out.stderr);
    assert!(out.stderr.lines().all(|l| l.len() < 200), "{}", out.stderr);
    assert!(records(&r, "round").is_empty());
}

/// `chattr -i` on drop, so that the temp folder can be removed.
struct Immutable(std::path::PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A registry the watcher cannot write (immutable here; read-only or another user's in
/// production): the rollback happens, the bad mark that failed is logged with the command to
/// run later, and the watch goes on watching the release it rolled back to. It used to exit 2
/// ("bad usage") right after the rollback, with nobody watching. Writing it by hand is an I/O
/// error (exit 1), not bad usage.
#[test]
#[allow(clippy::print_stderr)] // says why it is skipped
fn a_registry_that_cannot_be_written_does_not_end_the_watch() {
    let (r, [_, v2, _, _], _dir, cfg) = repo_with_check("test \"$(git rev-parse HEAD)\" != \"$(git rev-parse v3)\"");
    let registry = r.path().join("rollback/config/known-good-commits.json");
    let status = std::process::Command::new("chattr").arg("+i").arg(&registry).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipped: `chattr +i` is not available here");
        return;
    }
    let _guard = Immutable(registry.clone());
    let out = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--failures", "2", "--rounds", "5"]);
    out.ok();
    assert_eq!(r.head(), v2, "{}", out.stderr);
    assert!(out.stderr.contains("could not mark"), "{}", out.stderr);
    assert!(out.stderr.contains("forge-rollback known-good bad"), "{}", out.stderr);
    assert_eq!(records(&r, "round").len(), 5, "the watch went on");
    assert_eq!(records(&r, "rollback").len(), 1);
    fr(&r, &["known-good", "bad", "v3"]).code(1);
}

/// `--rounds N` ends after the N-th round; it used to wait one more interval first (an hour
/// here).
#[test]
fn rounds_end_the_watch_without_waiting_another_interval() {
    let (r, _, _dir, cfg) = repo_with_check("true");
    let watch = crate::common::Background::spawn(
        r.path(),
        &["--config", &cfg, "watch", "--interval", "3600", "--rounds", "1", "--promote-after", "48"],
        &[],
    );
    let out = watch.wait(std::time::Duration::from_secs(60));
    out.ok();
    assert!(out.stdout.contains("stopped by rounds"), "{}", out.stdout);
}

/// The check script below counts its calls (the watch's rounds and the runs' own verification)
/// in `.git/calls`.
const COUNT_CALLS: &str = "n=$(cat .git/calls 2>/dev/null || echo 0); n=$((n+1)); echo $n > .git/calls; ";

/// An outage fails the rounds of v3 and then the verification of the rollback to v2, so v3 is
/// not marked bad and not rolled back from while the outage lasts. Once a round passes, the
/// outage is over: when v3 comes back (a redeploy) and fails, it is rolled back again and
/// marked bad. It used to stay up for good ("already rolled back from").
#[test]
fn a_release_that_fails_again_after_an_outage_is_rolled_back_again() {
    // Calls 1-3: the outage (rounds 1 and 2 of v3, the rollback's verification on v2). Call 4:
    // round 3 on v2 passes. Call 5: v3 is deployed again during round 4, which then fails;
    // from there v3 fails and v2 passes.
    let (r, [_, v2, v3, _], _dir, cfg) = repo_with_check(&format!(
        "{COUNT_CALLS}[ $n -le 3 ] && exit 1; [ $n -eq 5 ] && git reset -q --hard v3; \
         test \"$(git rev-parse HEAD)\" != \"$(git rev-parse v3)\""
    ));
    let out = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--failures", "2", "--rounds", "8"]);
    out.ok();
    assert_eq!(r.head(), v2, "{}", out.stderr);
    assert_eq!(records(&r, "rollback").len(), 2, "{}", out.stderr);
    assert!(!out.stderr.contains("not rolling back again"), "{}", out.stderr);
    let gate = fr(&r, &["gate", &v3]);
    gate.code(4);
}

/// A watch restarted after it rolled back (systemd, a reboot) does not roll back from the
/// release the previous one rolled back to: failures there are not in the code. It used to
/// walk down the registry, from v2 to v1.
#[test]
fn a_restarted_watch_does_not_walk_down_the_registry() {
    let (r, [_, v2, _, _], _dir, cfg) =
        repo_with_check("test ! -f .git/outage && test \"$(git rev-parse HEAD)\" != \"$(git rev-parse v3)\"");
    fr(&r, &["known-good", "mark", "v1"]).ok();
    let first = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--failures", "2", "--rounds", "3"]);
    first.ok();
    assert_eq!(r.head(), v2, "{}", first.stderr);
    std::fs::write(r.path().join(".git/outage"), "").unwrap();
    let second = fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--failures", "2", "--rounds", "3"]);
    // The service left failing, a rollback not started for it: exit 6, as `verify` would.
    second.code(6);
    assert!(second.stderr.contains("is the release watch run"), "{}", second.stderr);
    assert_eq!(r.head(), v2, "{}", second.stderr);
    let runs = fr(&r, &["runs", "list", "--json"]);
    assert_eq!(runs.json().as_array().unwrap().len(), 1, "{}", runs.stdout);
}

/// With `on_failure = "undo"`, a watch whose rollback failed its own verification (an outage:
/// v2 fails too) is undone back onto v3 and holds off; restarted (systemd, a reboot) before
/// any round passed, it held off no longer: it rolled back from v3 again at once, and again
/// was undone. It now reads the outage from its log; a passing round still ends it.
#[test]
fn a_restarted_watch_keeps_holding_off_during_an_outage() {
    let (r, [_, _, v3, _], dir, cfg) = repo_with_check("test ! -f .git/outage");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[verify]\non_failure = \"undo\"\n");
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(r.path().join(".git/outage"), "").unwrap();
    let watch =
        |rounds: &str| fr(&r, &["--config", &cfg, "watch", "--interval", "0.1", "--failures", "2", "--rounds", rounds]);
    let first = watch("2");
    first.code(6);
    assert_eq!(r.head(), v3, "undone back onto v3: {}", first.stderr);
    let runs = || fr(&r, &["runs", "list", "--json"]).json().as_array().unwrap().len();
    assert_eq!(runs(), 2, "the rollback and its undo: {}", first.stderr);

    let second = watch("3");
    second.code(6);
    assert!(second.stderr.contains("failed its own verification (an outage)"), "{}", second.stderr);
    assert!(second.stderr.contains("not rolling back again"), "{}", second.stderr);
    assert_eq!(runs(), 2, "no second rollback: {}", second.stderr);

    // The outage ends (a round passes), then v3 fails again: rolled back, and it sticks.
    std::fs::remove_file(r.path().join(".git/outage")).unwrap();
    let third = watch("1");
    third.ok();
    std::fs::write(r.path().join(".git/outage"), "").unwrap();
    let fourth = watch("2");
    fourth.code(6);
    assert!(!fourth.stderr.contains("an outage"), "{}", fourth.stderr);
    assert_eq!(runs(), 4, "rolled back (and, failing on v2 too, undone) again: {}", fourth.stderr);
    drop(dir);
}
