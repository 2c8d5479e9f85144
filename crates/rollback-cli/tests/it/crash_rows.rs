//! An undo that keeps the rows written since its run, killed (`SIGKILL`) at every boundary of
//! its database steps (`upgrade_database`, `put_back_rows`): `resume` finishes it with every
//! row present, and `undo` of the interrupted undo gives back the rolled-back state, rows
//! written meanwhile included — every time.

use crate::common::{fr, fr_env};
use crate::crash_full::{deployed, env, state};
use crate::full::sqlite;

const POINTS: &[&str] = &[
    "before:upgrade_database",
    "after:upgrade_database",
    "end:upgrade_database",
    "before:put_back_rows",
    "after:put_back_rows",
    "end:put_back_rows",
];

#[test]
fn an_undo_keeping_rows_killed_anywhere_resumes_or_undoes_to_a_consistent_state() {
    for point in POINTS {
        for then in ["resume", "undo"] {
            let r = deployed();
            sqlite(&r, "INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
            sqlite(&r, "INSERT INTO payments (id, amount_cents, note) VALUES (10, 4200, 'after v3')");
            let payments = sqlite(&r, "SELECT * FROM payments");
            let users = sqlite(&r, "SELECT id, name, email FROM users");
            assert!(users.contains("grace@example.com") && payments.contains("after v3"), "{users}{payments}");
            let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
            run.ok();
            let id = run.json()["run_id"].as_str().unwrap().to_owned();
            // Written while rolled back, into a table the target has.
            sqlite(&r, "INSERT INTO users (id, name) VALUES (3, 'linus')");
            let rolled = state(&r);

            let mut killed = env().to_vec();
            killed.push(("FORGE_ROLLBACK_FAILPOINT", point));
            let out = fr_env(&r, &["undo", &id, "--yes"], &killed);
            assert_eq!(out.code, None, "{point}: killed\n{}", out.stderr);
            let list = fr(&r, &["runs", "list", "--json"]).json();
            let undo_id = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["undo_of"] == id.as_str())
                .and_then(|r| r["run_id"].as_str())
                .unwrap_or_else(|| panic!("{point}: the undo run is listed: {list:#}"))
                .to_owned();

            let out = fr_env(&r, &[then, &undo_id, "--yes", "--json"], &env());
            assert_eq!(out.code, Some(0), "{point} then {then}:\n{}\n{}", out.stdout, out.stderr);
            assert_eq!(out.json()["status"], "succeeded", "{point} then {then}");
            if then == "resume" {
                assert_eq!(sqlite(&r, "SELECT * FROM payments"), payments, "{point}: the dropped table's rows");
                assert_eq!(
                    sqlite(&r, "SELECT id, name, email FROM users WHERE id < 3"),
                    users,
                    "{point}: the dropped column's values"
                );
                assert_eq!(sqlite(&r, "SELECT name FROM users WHERE id = 3"), "[('linus',)]\n", "{point}");
                assert_eq!(sqlite(&r, "SELECT max(version) FROM forge_rollback_migrations"), "[(3,)]\n", "{point}");
            } else {
                assert_eq!(state(&r), rolled, "{point} then undo: the rolled-back state, its new row included");
            }
        }
    }
}

/// A full run whose downgrade failed leaves the database as it was, and the app goes on
/// writing to it; the operator fixes the migration and resumes. The rows written between the
/// failure and the resume were in no snapshot, so the downgrade dropped them for good and the
/// undo put back only what the first snapshot held. A resume now takes both snapshots again
/// when nothing has changed yet, and `undo` gives every row back.
#[test]
fn rows_written_after_a_failed_downgrade_survive_its_resume_and_undo() {
    let r = deployed();
    let failing =
        [env()[0], ("FORGE_ROLLBACK_FAILPOINT", "inside:downgrade"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &failing);
    run.code(1);
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    // Still on v3's schema: the app writes into the table and the column the downgrade drops.
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (7, 'ada', 'ada@example.com')");
    sqlite(&r, "INSERT INTO payments (id, amount_cents, note) VALUES (70, 990, 'after the failure')");
    let before = state(&r);

    let resumed = fr_env(&r, &["resume", &id, "--yes", "--json"], &env());
    resumed.ok();
    assert_eq!(resumed.json()["status"], "succeeded", "{}", resumed.stdout);
    assert_eq!(sqlite(&r, "SELECT count(*) FROM sqlite_master WHERE name = 'payments'"), "[(0,)]\n", "rolled back");
    let undone = fr_env(&r, &["undo", &id, "--yes", "--json"], &env());
    undone.ok();
    assert_eq!(state(&r), before, "the rows written after the failure are back with everything else");
    assert_eq!(sqlite(&r, "SELECT note FROM payments WHERE id = 70"), "[('after the failure',)]\n");
    assert_eq!(sqlite(&r, "SELECT email FROM users WHERE id = 7"), "[('ada@example.com',)]\n");
}
