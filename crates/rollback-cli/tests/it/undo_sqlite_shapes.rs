//! The row-keeping undo on SQLite, for table shapes the row census once got wrong: a table
//! whose name only looks like one of SQLite's own (`SQLiteCache`), an `AUTOINCREMENT` table
//! (its `sqlite_sequence` counter), and a full-text (FTS5) virtual table with its shadow
//! tables. Each: v4 creates the table, a full run to v1 drops it, the app writes a row while
//! rolled back, and the undo puts the table back as it was. And an `AUTOINCREMENT` table the
//! migrations rebuild rather than drop: its counter comes back with no row to put back.

use rollback_testkit::TestRepo;
use rollback_testkit::db::SQL_DIR;

use crate::common::{fr, fr_env, migrate_sqlite};
use crate::crash_full::{deployed, env};
use crate::full::sqlite;

/// The deployed app with a v4 migration (`up`, `down`), migrated.
fn with_v4(up: &str, down: &str) -> TestRepo {
    let r = deployed();
    let (u, d) = (format!("{SQL_DIR}/0004_shape.up.sql"), format!("{SQL_DIR}/0004_shape.down.sql"));
    r.write(&u, up).write(&d, down);
    r.git(&["add", &u, &d]);
    r.git(&["commit", "-qm", "v4: shape"]);
    migrate_sqlite(&r);
    r
}

/// `plan --full --target v1 --json`'s data-loss forecast.
fn forecast(r: &TestRepo) -> serde_json::Value {
    let plan = fr_env(r, &["plan", "--full", "--target", "v1", "--json"], &env());
    plan.ok();
    plan.json()["data_loss"].clone()
}

/// A full run to v1, a user written while rolled back, and the undo, which must succeed.
fn run_write_undo(r: &TestRepo) -> crate::common::Out {
    let run = fr_env(r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    sqlite(r, "INSERT INTO users (id, name) VALUES (7, 'while rolled back')");
    let undo = fr_env(r, &["undo", &id, "--yes"], &env());
    undo.ok();
    assert_eq!(sqlite(r, "SELECT name FROM users WHERE id = 7"), "[('while rolled back',)]\n", "{}", undo.stderr);
    undo
}

/// `SQLiteCache` is no name SQLite reserves (only `sqlite_…` is): its rows are forecast and put
/// back. Before, the census skipped it (`LIKE 'sqlite_%'`, where `_` is any character): the
/// forecast said nothing is destroyed and the undo left the table empty.
#[test]
fn undo_puts_back_a_table_whose_name_starts_with_sqlite() {
    let r = with_v4("CREATE TABLE SQLiteCache (k TEXT PRIMARY KEY, v TEXT);\n", "DROP TABLE SQLiteCache;\n");
    sqlite(&r, "INSERT INTO SQLiteCache VALUES ('a', '1'), ('b', '2')");
    let loss = forecast(&r);
    assert!(loss.as_array().unwrap().iter().any(|l| l["table"] == "SQLiteCache" && l["rows"] == 2), "forecast: {loss}");

    run_write_undo(&r);
    assert_eq!(sqlite(&r, "SELECT k, v FROM SQLiteCache"), "[('a', '1'), ('b', '2')]\n");
}

/// An `AUTOINCREMENT` table never hands out an id twice: job 4 was deleted before the run, so
/// the next job after the undo is job 5. Before, the put-back left `sqlite_sequence` at 3 (the
/// largest id put back), and the next job got id 4 again.
#[test]
fn undo_puts_back_an_autoincrement_tables_counter() {
    let r = with_v4("CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);\n", "DROP TABLE jobs;\n");
    sqlite(&r, "INSERT INTO jobs (name) VALUES ('j1'), ('j2'), ('j3'), ('j4'); DELETE FROM jobs WHERE id = 4");
    assert_eq!(sqlite(&r, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), "[(4,)]\n");

    run_write_undo(&r);
    assert_eq!(sqlite(&r, "SELECT id FROM jobs"), "[(1,), (2,), (3,)]\n");
    assert_eq!(sqlite(&r, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), "[(4,)]\n");
    sqlite(&r, "INSERT INTO jobs (name) VALUES ('after the undo')");
    assert_eq!(
        sqlite(&r, "SELECT id FROM jobs WHERE name = 'after the undo'"),
        "[(5,)]\n",
        "id 4 is never handed out again"
    );
}

/// `jobs` rebuilt the way SQLite documents (create the new table, copy, drop the old one,
/// rename), in v2's up migration (adding a CHECK) and in its down migration (without it):
/// each rebuild leaves the counter at the largest id copied.
const JOBS_V1: &str = "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
";
const JOBS_REBUILD_UP: &str =
    "CREATE TABLE jobs_new (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL CHECK (length(name) > 0));
INSERT INTO jobs_new SELECT id, name FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
";
const JOBS_REBUILD_DOWN: &str = "CREATE TABLE jobs_old (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
INSERT INTO jobs_old SELECT id, name FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_old RENAME TO jobs;
";

/// An app whose v1 (known-good) has `jobs` and `notes`, and whose v2, deployed and migrated,
/// rebuilds `jobs`; jobs 1..4 written on v2, job 4 deleted: the counter is at 4.
fn rebuilt_jobs_app() -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "forge-rollback.toml",
        format!("[env]\nfiles = []\n[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    )
    .write(".gitignore", "app.db*\n")
    .write(format!("{SQL_DIR}/0001_init.up.sql"), JOBS_V1)
    .write(format!("{SQL_DIR}/0001_init.down.sql"), "DROP TABLE notes;\nDROP TABLE jobs;\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    migrate_sqlite(&r);
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.write(format!("{SQL_DIR}/0002_v2.up.sql"), JOBS_REBUILD_UP)
        .write(format!("{SQL_DIR}/0002_v2.down.sql"), JOBS_REBUILD_DOWN);
    r.commit_all("v2");
    migrate_sqlite(&r);
    sqlite(&r, "INSERT INTO jobs (name) VALUES ('j1'), ('j2'), ('j3'), ('j4'); DELETE FROM jobs WHERE id = 4");
    assert_eq!(sqlite(&r, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), "[(4,)]\n");
    r
}

/// The downgrade rebuilds `jobs` (counter 3), a note is written while rolled back, and the
/// undo's upgrade rebuilds it again (counter 3): no row goes back, yet the counter is the
/// snapshot's again (4), so the next job is job 5. Before, an undo with no row to put back had
/// no put-back step at all: the next job got id 4, the id of a job deleted before the run.
#[test]
fn undo_puts_back_the_counter_of_a_rebuilt_autoincrement_table_with_no_row_to_put_back() {
    let r = rebuilt_jobs_app();
    let run = fr(&r, &["run", "--full", "--yes", "--target", "v1", "--json"]);
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(sqlite(&r, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), "[(3,)]\n", "the app's downgrade");
    sqlite(&r, "INSERT INTO notes (body) VALUES ('written while rolled back')");

    let undo = fr(&r, &["undo", &id, "--yes", "--json"]);
    undo.ok();
    let steps = undo.json()["steps"].to_string();
    assert!(steps.contains("put_back_rows"), "{steps}");
    assert!(undo.stderr.contains("AUTOINCREMENT counter(s) of `jobs` moved up to the snapshot's"), "{}", undo.stderr);
    assert_eq!(sqlite(&r, "SELECT body FROM notes"), "[('written while rolled back',)]\n");
    assert!(sqlite(&r, "SELECT sql FROM sqlite_master WHERE name = 'jobs'").contains("CHECK"), "v2's schema");
    assert_eq!(sqlite(&r, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), "[(4,)]\n", "{}", undo.stderr);
    sqlite(&r, "INSERT INTO jobs (name) VALUES ('after the undo')");
    assert_eq!(sqlite(&r, "SELECT id FROM jobs WHERE name = 'after the undo'"), "[(5,)]\n");
    let report = fr(&r, &["report", undo.json()["run_id"].as_str().unwrap()]);
    report.ok();
    assert!(report.stdout.contains("AUTOINCREMENT counter(s) of `jobs` moved up"), "{}", report.stdout);
}

/// A counter past the snapshot's after the upgrade (a job the app wrote while rolled back, id
/// 10) is never lowered to it: nothing to move, so no put-back step.
#[test]
fn undo_never_lowers_an_autoincrement_counter() {
    let r = rebuilt_jobs_app();
    let run = fr(&r, &["run", "--full", "--yes", "--target", "v1", "--json"]);
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    sqlite(&r, "INSERT INTO jobs (id, name) VALUES (10, 'while rolled back')");

    let undo = fr(&r, &["undo", &id, "--yes", "--json"]);
    undo.ok();
    let steps = undo.json()["steps"].to_string();
    assert!(!steps.contains("put_back_rows"), "{steps}");
    assert_eq!(sqlite(&r, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), "[(10,)]\n", "{}", undo.stderr);
}

/// A full-text (FTS5) table is counted by its documents, not its shadow tables, and put back
/// through the virtual table, rowids included, so that it finds them again. Before, the
/// forecast counted 11 "rows" for 2 documents (`docs_content`, `docs_data`, …) and the undo was
/// refused: `docs_content: 2 row(s) exist under the same primary key with other content`.
#[test]
fn undo_puts_back_a_full_text_table_through_it() {
    let r = with_v4("CREATE VIRTUAL TABLE docs USING fts5(title, body);\n", "DROP TABLE docs;\n");
    sqlite(&r, "INSERT INTO docs (rowid, title, body) VALUES (5, 'hello', 'world one'), (9, 'second', 'body two')");
    let loss = forecast(&r);
    let tables: Vec<&str> = loss.as_array().unwrap().iter().filter_map(|l| l["table"].as_str()).collect();
    assert!(tables.contains(&"docs") && !tables.iter().any(|t| t.starts_with("docs_")), "forecast: {loss}");
    assert!(loss.as_array().unwrap().iter().any(|l| l["table"] == "docs" && l["rows"] == 2), "forecast: {loss}");

    run_write_undo(&r);
    assert_eq!(
        sqlite(&r, "SELECT rowid, title, body FROM docs"),
        "[(5, 'hello', 'world one'), (9, 'second', 'body two')]\n"
    );
    assert_eq!(sqlite(&r, "SELECT rowid FROM docs WHERE docs MATCH 'world'"), "[(5,)]\n", "indexed again");
    sqlite(&r, "INSERT INTO docs (docs) VALUES ('integrity-check')");
}

/// A full-text table whose text lives in another table (`content=`) reads back values that are
/// not its own: the undo is refused by name, changing nothing, with the way out.
#[test]
fn undo_refuses_an_external_content_full_text_table_by_name() {
    let r = with_v4(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nCREATE VIRTUAL TABLE notes_fts USING fts5(body, content = notes, content_rowid = id);\n",
        "DROP TABLE notes_fts;\nDROP TABLE notes;\n",
    );
    sqlite(&r, "INSERT INTO notes VALUES (1, 'hello'); INSERT INTO notes_fts (rowid, body) VALUES (1, 'hello')");
    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    sqlite(&r, "INSERT INTO users (id, name) VALUES (7, 'while rolled back')");
    let undo = fr_env(&r, &["undo", &id, "--yes"], &env());
    undo.code(4);
    assert!(
        undo.stderr.contains(
            "virtual table notes_fts (fts5) cannot be put back row by row: its text is kept in another table"
        ),
        "{}",
        undo.stderr
    );
    assert!(undo.stderr.contains("--restore-snapshot"), "{}", undo.stderr);
}
