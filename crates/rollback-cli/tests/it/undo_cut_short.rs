//! The undo of a full run whose downgrade never completed (killed before or between its
//! migrations), after the app wrote rows: the database is the snapshot's, or between it and
//! the target, and the run recorded no state of it to compare with. The undo keeps the rows
//! written since (an upgrade from where the downgrade stopped, then the put-back) instead of
//! restoring the snapshot exactly, which would delete them.

use crate::common::{fr, fr_env};
use crate::crash_full::{deployed, env};
use crate::full::sqlite;

/// Runs `run --full --target v1` killed at `point`; returns the run's id.
fn killed_run(r: &rollback_testkit::TestRepo, point: &str) -> String {
    let mut killed = env().to_vec();
    killed.push(("FORGE_ROLLBACK_FAILPOINT", point));
    let out = fr_env(r, &["run", "--full", "--yes", "--target", "v1"], &killed);
    assert_eq!(out.code, None, "{point}: killed\n{}", out.stderr);
    let list = fr(r, &["runs", "list", "--json"]).json();
    list.as_array().unwrap()[0]["run_id"].as_str().unwrap().to_owned()
}

#[test]
fn undo_of_a_run_killed_before_its_downgrade_changed_anything_keeps_the_rows_written_since() {
    let r = deployed();
    sqlite(&r, "INSERT INTO payments (id, amount_cents, note) VALUES (10, 4200, 'before the run')");
    let id = killed_run(&r, "inside:downgrade");
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(3,)]\n");
    // The app goes on writing: the database is the snapshot's plus these rows.
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (80, 'after', 'after@example.com')");
    sqlite(&r, "INSERT INTO payments (id, amount_cents, note) VALUES (81, 7, 'after the kill')");

    let out = fr_env(&r, &["undo", &id, "--yes"], &env());
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("Restoring database"), "no exact restore:\n{}", out.stderr);
    assert_eq!(sqlite(&r, "SELECT id, name, email FROM users WHERE id = 80"), "[(80, 'after', 'after@example.com')]\n");
    assert_eq!(
        sqlite(&r, "SELECT id, note FROM payments WHERE id >= 10"),
        "[(10, 'before the run'), (81, 'after the kill')]\n"
    );
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(3,)]\n");
}

#[test]
fn undo_of_a_run_killed_between_two_downgrades_brings_the_schema_forward_and_keeps_the_rows() {
    let r = deployed();
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    sqlite(&r, "INSERT INTO payments (id, amount_cents, note) VALUES (10, 4200, 'before the run')");
    let payments = sqlite(&r, "SELECT * FROM payments");
    let id = killed_run(&r, "between:downgrades");
    // 0003's downgrade committed (payments dropped), 0002's never ran.
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(2,)]\n");
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (80, 'after', 'after@example.com')");

    let out = fr_env(&r, &["undo", &id, "--yes"], &env());
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(3,)]\n");
    assert_eq!(sqlite(&r, "SELECT * FROM payments"), payments, "the dropped table's rows are back");
    assert_eq!(
        sqlite(&r, "SELECT id, name, email FROM users WHERE id IN (2, 80)"),
        "[(2, 'grace', 'grace@example.com'), (80, 'after', 'after@example.com')]\n"
    );
}

/// Killed between two downgrades; the app writes a row with a value in a column the rest of
/// the downgrade drops; `resume` restores the snapshot, puts the row back and downgrades again.
/// That row was in no snapshot of the run: the resume takes the database snapshot again after
/// the put-back, so `undo` gives the value back, and the report counts it.
#[test]
fn a_row_put_back_by_resume_is_in_the_snapshot_its_undo_puts_back_from() {
    let r = deployed();
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    let emails: usize = sqlite(&r, "SELECT email FROM users WHERE email IS NOT NULL").matches('@').count();
    let id = killed_run(&r, "between:downgrades");
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(2,)]\n");
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (20, 'during', 'd@example.org')");

    let resumed = fr_env(&r, &["resume", &id, "--yes"], &env());
    assert_eq!(resumed.code, Some(0), "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stderr.contains("1 row(s) written while the downgrade ran put back"), "{}", resumed.stderr);
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(1,)]\n");
    // Written while rolled back: the undo keeps it and puts back what the downgrade dropped.
    sqlite(&r, "INSERT INTO users (id, name) VALUES (21, 'after')");

    let undo = fr_env(&r, &["undo", &id, "--yes"], &env());
    assert_eq!(undo.code, Some(0), "{}\n{}", undo.stdout, undo.stderr);
    assert_eq!(
        sqlite(&r, "SELECT id, email FROM users WHERE id IN (2, 20, 21)"),
        "[(2, 'grace@example.com'), (20, 'd@example.org'), (21, None)]\n",
        "{}",
        undo.stderr
    );
    let report = fr(&r, &["report", &id]);
    assert!(
        report.stdout.contains(&format!("users.email ({} values)", emails + 1)),
        "the report counts the value of the row put back:\n{}",
        report.stdout
    );
}

/// Killed inside its first downgrade (atomic here: the database stays as the snapshot holds
/// it); the app writes a row with a value in a column the downgrade drops; `resume` downgrades
/// from there. That row was in no backup of the run: the resume backs the database up again
/// first, so `undo` gives the value back.
#[test]
fn a_row_written_after_a_downgrade_killed_whole_is_backed_up_by_the_resume() {
    let r = deployed();
    let id = killed_run(&r, "inside:downgrade");
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(3,)]\n");
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (80, 'after', 'after@example.com')");

    let resumed = fr_env(&r, &["resume", &id, "--yes"], &env());
    assert_eq!(resumed.code, Some(0), "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stderr.contains("(with the rows written since backup"), "{}", resumed.stderr);
    assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(1,)]\n");
    // The report's times: the snapshot's are its first dump's (not spanning the kill up to the
    // dump taken again), and the downgrade's begin is the resume's first, before its restore.
    let journal = fr(&r, &["runs", "show", &id, "--json"]).json()["journal"].as_array().unwrap().clone();
    let at = |record: &str, step: &str, nth: usize| {
        journal.iter().filter(|x| x["record"] == record && x["step"] == step).nth(nth).unwrap()["at"].clone()
    };
    assert_eq!(at("step_end", "db_snapshot", 1), at("step_begin", "downgrade", 2), "the dump taken again");
    let report = fr(&r, &["report", &id, "--json"]).json();
    let step = |name: &str| report["steps"].as_array().unwrap().iter().find(|x| x["step"] == name).unwrap().clone();
    assert_eq!(step("db_snapshot")["ended_at"], at("step_end", "db_snapshot", 0), "{report}");
    assert_eq!(step("downgrade")["started_at"], at("step_begin", "downgrade", 1), "{report}");

    let undo = fr_env(&r, &["undo", &id, "--yes"], &env());
    assert_eq!(undo.code, Some(0), "{}\n{}", undo.stdout, undo.stderr);
    assert_eq!(
        sqlite(&r, "SELECT id, email FROM users WHERE id = 80"),
        "[(80, 'after@example.com')]\n",
        "{}",
        undo.stderr
    );
}
