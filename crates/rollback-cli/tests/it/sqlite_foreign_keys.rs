//! Native migrations on SQLite run with foreign keys off, as SQLite, its shell, Python's
//! `sqlite3` and Alembic run them (`database.sqlite_foreign_keys = true` turns them on). Before,
//! the SQLite built into forge-rollback enforced them: a down migration rebuilding `users` the
//! way SQLite documents (new table, copy, drop, rename) cascade-deleted every post while rolled
//! back, and the undo's upgrade, the same rebuild, deleted the post the app wrote meanwhile for
//! good; without `ON DELETE CASCADE` the rollback failed instead (`FOREIGN KEY constraint
//! failed`). A migration that leaves references broken is not failed, but said.

use rollback_testkit::TestRepo;
use rollback_testkit::db::SQL_DIR;

use crate::common::{Out, fr, migrate_sqlite};
use crate::full::sqlite;

/// `users` rebuilt with a CHECK on the name (v2), and back without it (its down migration).
const REBUILD_UP: &str = "CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) > 0));
INSERT INTO users_new SELECT id, name FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
";
const REBUILD_DOWN: &str = "CREATE TABLE users_old (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO users_old SELECT id, name FROM users;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
";

/// An app on the native migrator: v1 has `users` and `posts` (`posts_fk`: how posts reference
/// users), two users and three posts, and is marked known-good; v2 (`up`, `down`) is deployed
/// and migrated. `database` is added to the `[database]` section.
fn app(posts_fk: &str, up: &str, down: &str, database: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "forge-rollback.toml",
        format!(
            "[env]\nfiles = []\n[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n{database}"
        ),
    )
    .write(".gitignore", "app.db*\n")
    .write("app.py", "print('app')\n")
    .write(
        format!("{SQL_DIR}/0001_init.up.sql"),
        format!(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL {posts_fk}, body TEXT);\n"
        ),
    )
    .write(format!("{SQL_DIR}/0001_init.down.sql"), "DROP TABLE posts;\nDROP TABLE users;\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    migrate_sqlite(&r);
    sqlite(
        &r,
        "INSERT INTO users VALUES (1, 'ann'), (2, 'bob'); INSERT INTO posts VALUES (1, 1, 'p1'), (2, 1, 'p2'), (3, 2, 'p3')",
    );
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.write(format!("{SQL_DIR}/0002_v2.up.sql"), up).write(format!("{SQL_DIR}/0002_v2.down.sql"), down);
    r.commit_all("v2");
    migrate_sqlite(&r);
    r
}

fn posts(r: &TestRepo) -> String {
    sqlite(r, "SELECT id FROM posts")
}

/// A full run to v1; its id.
fn run_to_v1(r: &TestRepo) -> (String, Out) {
    let run = fr(r, &["run", "--full", "--yes", "--target", "v1", "--json"]);
    run.ok();
    (run.json()["run_id"].as_str().unwrap().to_owned(), run)
}

/// The rebuild of `users` in the down migration deletes no post, and the post the app writes
/// while rolled back is still there after the undo (whose upgrade rebuilds `users` again).
#[test]
fn a_table_rebuild_cascades_into_no_child_table_and_the_undo_keeps_the_apps_rows() {
    let r = app("REFERENCES users (id) ON DELETE CASCADE", REBUILD_UP, REBUILD_DOWN, "");
    let (id, _) = run_to_v1(&r);
    assert_eq!(posts(&r), "[(1,), (2,), (3,)]\n", "no post deleted while rolled back");
    sqlite(&r, "INSERT INTO posts VALUES (10, 2, 'written while rolled back')");

    let undo = fr(&r, &["undo", &id, "--yes"]);
    undo.ok();
    assert_eq!(posts(&r), "[(1,), (2,), (3,), (10,)]\n", "{}", undo.stderr);
    assert!(sqlite(&r, "SELECT sql FROM sqlite_master WHERE name = 'users'").contains("CHECK"), "v2's schema is back");
}

/// Without `ON DELETE CASCADE` the same rebuild is no failed rollback.
#[test]
fn a_table_rebuild_referenced_without_cascade_downgrades() {
    let r = app("REFERENCES users (id)", REBUILD_UP, REBUILD_DOWN, "");
    let (id, _) = run_to_v1(&r);
    assert_eq!(posts(&r), "[(1,), (2,), (3,)]\n");
    sqlite(&r, "INSERT INTO posts VALUES (10, 2, 'written while rolled back')");
    fr(&r, &["undo", &id, "--yes"]).ok();
    assert_eq!(posts(&r), "[(1,), (2,), (3,), (10,)]\n");
}

/// An app that relies on SQLite enforcing its foreign keys asks for them: the migrations then
/// run with them on, as before (the rebuild cascades).
#[test]
fn sqlite_foreign_keys_true_runs_migrations_with_them_enforced() {
    let r = app("REFERENCES users (id) ON DELETE CASCADE", REBUILD_UP, REBUILD_DOWN, "sqlite_foreign_keys = true\n");
    run_to_v1(&r);
    assert_eq!(posts(&r), "[]\n", "enforced: DROP TABLE users cascades into posts");
}

/// v2 adds `tags`, which two posts reference; its down migration drops `tags` and leaves the
/// posts' `tag_id` as it is.
fn app_whose_downgrade_breaks_references() -> TestRepo {
    app(
        "REFERENCES users (id)",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\nINSERT INTO tags VALUES (1);\nALTER TABLE posts ADD COLUMN tag_id INTEGER REFERENCES tags (id);\nUPDATE posts SET tag_id = 1 WHERE id < 3;\n",
        "DROP TABLE tags;\n",
        "",
    )
}

/// What the downgrade of [`app_whose_downgrade_breaks_references`] is said to leave.
fn broken_tags() -> String {
    format!(
        "migration 0002's downgrade (`{SQL_DIR}/0002_v2.down.sql`) left 2 row(s) of `posts` referencing rows of `tags` that are not there"
    )
}

/// A down migration that drops a table other rows still reference is not failed (SQLite's own
/// tools would not fail it), but the run says which rows it left referencing nothing: in its
/// output, its warnings and its report.
#[test]
fn a_migration_leaving_broken_references_is_said_not_failed() {
    let r = app_whose_downgrade_breaks_references();
    let (id, run) = run_to_v1(&r);
    assert!(run.stderr.contains(&broken_tags()), "{}", run.stderr);
    let warnings = run.json()["warnings"].to_string();
    assert!(warnings.contains("2 row(s) of `posts` referencing rows of `tags`"), "{warnings}");
    let report = fr(&r, &["report", &id]);
    report.ok();
    assert!(report.stdout.contains("2 row(s) of `posts` referencing rows of `tags`"), "{}", report.stdout);
}

/// The data-loss forecast runs the downgrade on a copy: what it leaves broken there is said
/// before the run, by `plan` (text and `--json`), `assess` and the run's confirmation, as the
/// risk `downgrade_warning`. Before, it was said only once the real downgrade had run.
#[test]
fn the_forecast_says_the_references_the_downgrade_will_leave_broken() {
    let r = app_whose_downgrade_breaks_references();
    let said = broken_tags();

    let plan = fr(&r, &["plan", "--full", "--target", "v1"]);
    plan.ok();
    assert!(
        plan.stdout.contains(&format!(
            "risk downgrade_warning: run on a copy of the database by the data-loss forecast, {said}"
        )),
        "{}",
        plan.stdout
    );
    let json = fr(&r, &["plan", "--full", "--target", "v1", "--json"]);
    json.ok();
    let risks = json.json()["risks"].clone();
    let warned: Vec<&serde_json::Value> =
        risks.as_array().unwrap().iter().filter(|r| r["code"] == "downgrade_warning").collect();
    assert_eq!(warned.len(), 1, "{risks:#}");
    assert_eq!(warned[0]["severity"], "medium");
    assert!(warned[0]["message"].as_str().unwrap().contains(&said), "{risks:#}");

    let assess = fr(&r, &["assess", "--target", "v1", "--json"]);
    assess.ok();
    let risks = assess.json()["risks"].to_string();
    assert!(risks.contains("downgrade_warning") && risks.contains(&said), "{risks}");

    // The confirmation says it with what the downgrade destroys; declined, nothing changes.
    let mut p = crate::manual::spawn(&r, &["run", "--full", "--target", "v1"], &[]);
    p.exp_string("The downgrade destroys").unwrap();
    p.exp_string(&said).unwrap();
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("no").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(sqlite(&r, "SELECT count(*) FROM tags"), "[(1,)]\n", "the live database is as it was");
}

/// The undo of an undo that brought the schema forward goes down again, rehearsed on a copy:
/// what that downgrade leaves broken there is in its confirmation before it runs. Here a table
/// of the app's own (no migration made it) references `tags`, which v2's down migration drops.
#[test]
fn the_undo_of_an_undo_says_the_references_its_downgrade_will_leave_broken() {
    let r = app(
        "REFERENCES users (id)",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\nINSERT INTO tags VALUES (1);\n",
        "DROP TABLE tags;\n",
        "",
    );
    sqlite(
        &r,
        "CREATE TABLE tag_uses (id INTEGER PRIMARY KEY, tag_id INTEGER REFERENCES tags (id)); INSERT INTO tag_uses VALUES (1, 1), (2, 1)",
    );
    let (id, _) = run_to_v1(&r);
    sqlite(&r, "INSERT INTO posts VALUES (10, 2, 'written while rolled back')");
    let undo = fr(&r, &["undo", &id, "--yes", "--json"]);
    undo.ok();
    let undo_id = undo.json()["run_id"].as_str().unwrap().to_owned();
    sqlite(&r, "INSERT INTO posts VALUES (11, 2, 'written after the undo')");

    let mut p = crate::manual::spawn(&r, &["undo", &undo_id], &[]);
    p.exp_string("changed since that undo: downgrade to 0001").unwrap();
    p.exp_string(&format!(
        "Warning: rehearsed on a copy of the database, migration 0002's downgrade (`{SQL_DIR}/0002_v2.down.sql`) left 2 row(s) of `tag_uses` referencing rows of `tags` that are not there"
    ))
    .unwrap();
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("no").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(sqlite(&r, "SELECT count(*) FROM tags"), "[(1,)]\n", "the live database is as it was");
}
