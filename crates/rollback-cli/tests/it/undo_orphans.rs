//! The row-keeping undo refused because a row it would put back references a row the app
//! deleted while rolled back (a foreign key): the refusal names the table, the parent and the
//! row, not a bare "FOREIGN KEY constraint failed" on a scratch copy that is gone.

use rollback_testkit::db::SQL_DIR;

use crate::common::{fr_env, migrate_sqlite};
use crate::crash_full::{deployed, env, state};
use crate::full::sqlite;

/// The deployed app with a v4 that adds `orders` (a foreign key to `users`), migrated: a full
/// run to v1 drops the table and keeps its rows for the undo.
fn with_orders() -> rollback_testkit::TestRepo {
    let r = deployed();
    let (up, down) = (format!("{SQL_DIR}/0004_orders.up.sql"), format!("{SQL_DIR}/0004_orders.down.sql"));
    r.write(&up, "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id));\n")
        .write(&down, "DROP TABLE orders;\n");
    r.git(&["add", &up, &down]);
    r.git(&["commit", "-qm", "v4: orders"]);
    migrate_sqlite(&r);
    r
}

fn full_run_to_v1(r: &rollback_testkit::TestRepo) -> String {
    let run = fr_env(r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    run.json()["run_id"].as_str().unwrap().to_owned()
}

/// While rolled back (no `orders` table then) the app deletes user 6, whom order 9 references:
/// the undo of run `id` is refused naming that order, and changes nothing.
fn undo_refused_once_user_6_is_deleted(r: &rollback_testkit::TestRepo, id: &str) -> crate::common::Out {
    sqlite(r, "DELETE FROM users WHERE id = 6");
    let rolled_back = state(r);
    let refused = fr_env(r, &["undo", id, "--yes"], &env());
    refused.code(4);
    assert!(
        refused
            .stderr
            .contains("orders: 1 row(s) reference rows of users that are not there (deleted since the run): rowid 9"),
        "{}",
        refused.stderr
    );
    assert_eq!(state(r), rolled_back, "nothing changed");
    refused
}

#[test]
fn undo_refused_on_a_foreign_key_names_the_table_the_parent_and_the_row() {
    let r = with_orders();
    sqlite(&r, "INSERT INTO users (id, name) VALUES (6, 'gone soon'); INSERT INTO orders (id, user_id) VALUES (9, 6)");

    let id = full_run_to_v1(&r);
    let refused = undo_refused_once_user_6_is_deleted(&r, &id);
    assert!(!refused.stderr.contains("forge_rollback_scratch"), "no scratch copy named:\n{}", refused.stderr);
    assert!(refused.stderr.contains("--restore-snapshot"), "{}", refused.stderr);
}

/// An app that runs SQLite with foreign keys off (SQLite's default, and Python's `sqlite3`'s)
/// can hold rows whose parent was gone before any rollback. The undo puts such a row back as it
/// was, and the rows around it: a table the downgrade dropped comes back whole.
#[test]
fn undo_puts_back_a_row_that_was_an_orphan_before_the_run() {
    let r = with_orders();
    // Order 8's user 99 never existed: written with foreign keys off, as the app runs.
    sqlite(
        &r,
        "INSERT INTO users (id, name) VALUES (6, 'stays'); INSERT INTO orders (id, user_id) VALUES (8, 99), (9, 6)",
    );
    let before = sqlite(&r, "SELECT id, user_id FROM orders");

    let id = full_run_to_v1(&r);
    // A user signs up while rolled back: the undo keeps that row and puts the orders back.
    sqlite(&r, "INSERT INTO users (id, name) VALUES (7, 'while rolled back')");
    let undo = fr_env(&r, &["undo", &id, "--yes"], &env());
    undo.ok();
    assert_eq!(sqlite(&r, "SELECT id, user_id FROM orders"), before, "{}", undo.stderr);
    assert_eq!(sqlite(&r, "SELECT name FROM users WHERE id = 7"), "[('while rolled back',)]\n");
}

/// The refusal names only the rows whose parent went while rolled back, not a row whose parent
/// was missing before the run.
#[test]
fn undo_refused_on_a_foreign_key_does_not_blame_an_older_orphan() {
    let r = with_orders();
    sqlite(
        &r,
        "INSERT INTO users (id, name) VALUES (6, 'gone soon'); INSERT INTO orders (id, user_id) VALUES (8, 99), (9, 6)",
    );

    let id = full_run_to_v1(&r);
    let refused = undo_refused_once_user_6_is_deleted(&r, &id);
    assert!(!refused.stderr.contains("rowid 8"), "{}", refused.stderr);
}
