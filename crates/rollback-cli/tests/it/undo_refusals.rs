//! Undos that must be refused before anything changes (exit 4, nothing journaled): the
//! database locked or unreachable, a pruned backup, HEAD moved by another undo or rollback
//! since the run, a split index.

use std::time::{Duration, Instant};

use crate::common::{fr, fr_env};
use crate::crash_full::{deployed, env};

/// The run ids `runs list --json` shows.
fn run_ids(r: &rollback_testkit::TestRepo) -> Vec<String> {
    let out = fr(r, &["runs", "list", "--json"]);
    out.ok();
    let j = out.json();
    let list = j.as_array().cloned().or_else(|| j["runs"].as_array().cloned()).unwrap_or_default();
    list.iter().filter_map(|x| x["run_id"].as_str().map(str::to_owned)).collect()
}

/// A full rollback of `deployed()` to v1, with `database.timeout_secs = 3`; its run id.
fn full_run() -> (rollback_testkit::TestRepo, String) {
    let r = deployed();
    let toml = std::fs::read_to_string(r.path().join("forge-rollback.toml")).unwrap();
    r.write("forge-rollback.toml", format!("{toml}timeout_secs = 3\n"));
    let out = fr_env(&r, &["run", "--full", "--yes", "--json", "--target", "v1"], &env());
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    (r, id)
}

#[test]
fn undo_refuses_while_the_database_is_locked_waiting_once() {
    let (r, id) = full_run();
    let before = crate::crash_full::state(&r);
    let runs = run_ids(&r);
    let holder = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let out = fr_env(&r, &["undo", &id, "--yes"], &env());
    let took = started.elapsed();
    out.code(4);
    assert!(out.stderr.contains("cannot be reached: the undo of run"), "{}", out.stderr);
    assert!(out.stderr.contains("is locked by another connection: still locked after 3s"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("still waiting for it").count(), 1, "one wait for the lock: {}", out.stderr);
    assert!(took < Duration::from_millis(5500), "waited {took:?} for a 3 s timeout");
    drop(holder);
    assert_eq!(run_ids(&r), runs, "no undo run journaled");
    assert_eq!(crate::crash_full::state(&r), before);
    // Once the lock is gone, the undo goes ahead.
    fr_env(&r, &["undo", &id, "--yes"], &env()).ok();
}

#[test]
fn undo_refuses_when_the_database_is_unreachable() {
    let (r, id) = full_run();
    let before = crate::crash_full::state(&r);
    let runs = run_ids(&r);
    let down = [("APP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/app")];
    let out = fr_env(&r, &["undo", &id, "--yes"], &down);
    out.code(4);
    assert!(out.stderr.contains("cannot be reached: the undo of run"), "{}", out.stderr);
    assert!(out.stderr.contains("is unreachable"), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert_eq!(run_ids(&r), runs, "no undo run journaled");
    assert_eq!(crate::crash_full::state(&r), before);
}

#[test]
fn prune_names_the_runs_it_leaves_undoable_no_more_and_their_undo_is_refused() {
    let r = rollback_testkit::TestRepo::new();
    r.three_releases();
    r.write("notes.txt", "uncommitted work\n");
    let first = crate::common::rollback(&r, "v2");
    let second = crate::common::rollback(&r, "v1");
    // The dry run says which runs could no longer be undone, in text and in JSON.
    let dry = fr(&r, &["backups", "prune", "--keep", "1", "--dry-run"]);
    dry.ok();
    assert!(
        dry.stdout.contains(&format!("1 run(s) could no longer be undone (their backups would be removed): {first}")),
        "{}",
        dry.stdout
    );
    let j = fr(&r, &["backups", "prune", "--keep", "1", "--dry-run", "--json"]);
    j.ok();
    let j = j.json();
    assert_eq!(j["runs_no_longer_undoable"], serde_json::json!([first]), "{j}");
    assert!(j["removed_snapshots"].is_array() && j["kept_snapshots"].is_number(), "old fields stay: {j}");
    let out = fr(&r, &["backups", "prune", "--keep", "1"]);
    out.ok();
    assert!(
        out.stdout.contains(&format!("can no longer be undone (their backups were removed): {first}")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&second), "{}", out.stdout);
    // Its undo is refused, naming the cause, and changes nothing.
    let before = crate::common::picture(&r);
    let runs = run_ids(&r);
    let out = fr(&r, &["undo", &first, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains(&format!("run {first} can no longer be undone: its backup")), "{}", out.stderr);
    assert!(out.stderr.contains("pruned by `backups prune`"), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert_eq!(crate::common::picture(&r), before);
    assert_eq!(run_ids(&r), runs, "no undo run journaled");
    // With a confirmation too (no terminal: the refusal comes before the question).
    fr(&r, &["undo", &first]).code(4);
}

/// repro-6: A (v3 → v2), B (v2 → v1). Undoing A while B is in force would move the branch from
/// where B left it; undoing B after that would move it back off v3, leaving v3 on no branch.
/// Refused, naming B; undone newest first, both go through.
#[test]
fn undo_of_a_run_another_rollback_moved_head_since_is_refused() {
    let r = rollback_testkit::TestRepo::new();
    let [_, _, v3] = r.three_releases();
    let a = crate::common::rollback(&r, "v2");
    let b = crate::common::rollback(&r, "v1");
    let before = crate::common::picture(&r);
    let runs = run_ids(&r);
    for args in [&["undo", a.as_str(), "--yes"][..], &["undo", a.as_str()][..]] {
        let out = fr(&r, args);
        out.code(4);
        assert!(out.stderr.contains(&format!("not where run {a} left it")), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("another rollback or undo (run {b}) moved it since")), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("forge-rollback undo {b}")), "{}", out.stderr);
        assert_eq!(crate::common::picture(&r), before);
        assert_eq!(run_ids(&r), runs, "no undo run journaled");
    }
    crate::common::undo(&r, &b);
    crate::common::undo(&r, &a);
    assert_eq!(r.head().trim(), v3.trim());
    assert_eq!(r.branch().as_deref(), Some("main"));
}

/// A year's worth of seconds: a clock set back by this much puts a later run "before" any
/// earlier one by its timestamps (its run id, journal and backup ids included).
const A_YEAR_BACK: &str = "-31536000";

/// A (v3 → v2), then B (v2 → v1) with the clock a year back; their ids, B's the "older".
fn rolled_back_twice_with_the_clock_set_back(r: &rollback_testkit::TestRepo) -> (String, String) {
    let a = crate::common::rollback(r, "v2");
    let out = crate::common::fr_env(
        r,
        &["run", "--fast", "--yes", "--json", "--target", "v1"],
        &[("FORGE_ROLLBACK_CLOCK_SKEW_SECS", A_YEAR_BACK)],
    );
    out.ok();
    let b = out.json()["run_id"].as_str().unwrap().to_owned();
    assert!(b < a, "B's id says it began first: {b} {a}");
    (a, b)
}

/// repro-6 after the clock was set back between A and B (NTP stepping it, a VM restored from
/// a snapshot): B began "a year before" A by its clock. It is still the later run: the undo of
/// A is refused naming B (not blaming git), `runs list` keeps the order they ran in, and
/// undone newest first both go through.
#[test]
fn a_later_run_whose_clock_was_set_back_is_still_named_as_the_later_one() {
    let r = rollback_testkit::TestRepo::new();
    let [_, _, v3] = r.three_releases();
    let (a, b) = rolled_back_twice_with_the_clock_set_back(&r);
    assert_eq!(run_ids(&r), [a.clone(), b.clone()], "in the order they ran");
    let before = crate::common::picture(&r);
    let out = fr(&r, &["undo", &a, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains(&format!("another rollback or undo (run {b}) moved it since")), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("forge-rollback undo {b}")), "{}", out.stderr);
    assert_eq!(crate::common::picture(&r), before);
    crate::common::undo(&r, &b);
    crate::common::undo(&r, &a);
    assert_eq!(r.head().trim(), v3.trim());
    assert_eq!(r.branch().as_deref(), Some("main"));
}

/// `backups prune --keep 1` after the clock was set back between A and B: the backup kept
/// is B's, the later run's (its timestamps say it is the older), so B can still be undone,
/// and A is the run named as no longer undoable.
#[test]
fn prune_keeps_the_later_runs_backup_when_the_clock_was_set_back() {
    let r = rollback_testkit::TestRepo::new();
    r.three_releases();
    let (a, b) = rolled_back_twice_with_the_clock_set_back(&r);
    let out = fr(&r, &["backups", "prune", "--keep", "1", "--json"]);
    out.ok();
    assert_eq!(out.json()["runs_no_longer_undoable"], serde_json::json!([a]), "{}", out.stdout);
    crate::common::undo(&r, &b);
}

/// HEAD moved by git since the run (back to where it started): the undo would move it
/// nowhere new but restore the run's files over it; refused, saying where the run left HEAD.
#[test]
fn undo_after_git_moved_head_away_from_the_run_is_refused() {
    let r = rollback_testkit::TestRepo::new();
    r.three_releases();
    let a = crate::common::rollback(&r, "v1");
    r.git(&["reset", "-q", "--hard", "v2"]);
    let before = crate::common::picture(&r);
    let out = fr(&r, &["undo", &a, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains("something other than forge-rollback (git) moved it since"), "{}", out.stderr);
    assert!(out.stderr.contains("git reset --keep"), "{}", out.stderr);
    assert_eq!(crate::common::picture(&r), before);
}

/// repro-7: a split index (`core.splitIndex`, `git update-index --split-index`). The default
/// `git-cli` back-end reads it through `git`: run and undo go through. libgit2 (`git2`)
/// cannot read it: refused before anything changes, naming the cause and the way out.
#[test]
fn a_split_index_is_read_through_git_or_refused_by_the_git2_backend() {
    let r = rollback_testkit::TestRepo::new();
    r.three_releases();
    r.git(&["config", "core.splitIndex", "true"]);
    r.git(&["update-index", "--split-index"]);
    let (_cli, cli) = crate::shapes::config("git-cli");
    let (_g2, git2) = crate::shapes::config("git2");
    let before = crate::common::picture(&r);

    let refused = crate::shapes::fr(&r, &git2, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains("index is a split index"), "{}", refused.stderr);
    assert!(refused.stderr.contains("git update-index --no-split-index"), "{}", refused.stderr);
    assert!(refused.stderr.contains("git config core.splitIndex false"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("libgit2:"), "{}", refused.stderr);
    assert_eq!(crate::common::picture(&r), before);

    let out = crate::shapes::fr(&r, &cli, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    r.git(&["update-index", "--split-index"]);
    let rolled_back = crate::common::picture(&r);
    let refused = crate::shapes::fr(&r, &git2, &["undo", &id, "--yes"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains("index is a split index"), "{}", refused.stderr);
    assert_eq!(crate::common::picture(&r), rolled_back);
    crate::shapes::fr(&r, &cli, &["undo", &id, "--yes"], &[]).ok();
    assert_eq!(crate::common::picture(&r), before);
}
