//! `run --database-only` (the database part of a full rollback, which a fleet runs once before
//! any host's code moves) through the binary on a real SQLite database with the native SQL
//! migrator: the code stays, the schema goes down, `undo` brings the schema and the rows back,
//! and the refusals.

use rollback_testkit::TestRepo;
use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};

use crate::common::{fr, fr_env};
use crate::full::sqlite;

const CONFIG: &str = "forge-rollback.toml";

fn deployed() -> (TestRepo, MigrationFixture) {
    let r = TestRepo::new();
    let fx = MigrationFixture::new(&r, MigratorKind::Sql);
    r.write(
        CONFIG,
        format!("[database]\nkind = \"sql\"\nurl_env = \"APP_DATABASE_URL\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    );
    crate::common::migrate_sqlite(&r);
    (r, fx)
}

fn env() -> [(&'static str, &'static str); 1] {
    [("APP_DATABASE_URL", "sqlite:///app.db")]
}

/// The work tree without the SQLite file (the database is compared by its rows).
fn files(r: &TestRepo) -> rollback_testkit::TreeState {
    r.tree().without(|p| p.starts_with(b"app.db"))
}

fn tables(r: &TestRepo) -> String {
    sqlite(r, "SELECT name FROM sqlite_master WHERE type = 'table'")
}

#[test]
fn database_only_downgrades_the_schema_and_leaves_the_code() {
    let (r, fx) = deployed();
    // An uncommitted edit: the database-only run leaves it, and so does its undo.
    r.write("app/main.py", "def status():\n    return {\"status\": \"hotfix in progress\"}\n");
    let head = r.head();
    let payments = sqlite(&r, "SELECT * FROM payments");
    let tree = files(&r);

    // The plan has only the database steps.
    let plan = fr_env(&r, &["plan", "--database-only", "--target", "v2", "--json"], &env());
    plan.ok();
    let steps: Vec<String> =
        plan.json()["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_owned()).collect();
    assert_eq!(steps, ["snapshot", "db_snapshot", "downgrade", "record"]);

    let out = fr_env(&r, &["run", "--database-only", "--yes", "--json", "--target", "v2"], &env());
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded");
    assert_eq!(j["level"], "full");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["snapshot", "db_snapshot", "downgrade", "record"]);
    // The code did not move; the schema did.
    assert_eq!(r.head(), head);
    assert_eq!(files(&r), tree);
    assert!(!tables(&r).contains("payments"), "{}", tables(&r));
    let a = fr_env(&r, &["assess", "--target", "v2", "--json"], &env()).json();
    assert_eq!(a["database"]["needs_downgrade"], false, "{a}");
    assert_eq!(a["database"]["current"], serde_json::json!([fx.revisions[1]]));

    // A second database-only run has nothing to do: refused, exit 4.
    let again = fr_env(&r, &["run", "--database-only", "--yes", "--target", "v2"], &env());
    again.code(4);
    assert!(
        again.stderr.contains("nothing to roll back: the database is already at the revision of"),
        "{}",
        again.stderr
    );

    // Undoing the database run alone gives the schema back and keeps the edit.
    fr_env(&r, &["undo", j["run_id"].as_str().unwrap(), "--yes"], &env()).ok();
    assert_eq!(files(&r), tree);
    assert_eq!(sqlite(&r, "SELECT * FROM payments"), payments);

    // Again, then the code rolls back on its own (a fleet host after the database run).
    let out = fr_env(&r, &["run", "--database-only", "--yes", "--json", "--target", "v2"], &env());
    out.ok();
    let j = out.json();
    let code = fr_env(&r, &["run", "--fast", "--yes", "--json", "--target", "v2"], &env());
    code.ok();
    let code_id = code.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.head(), fx.commits[2]);

    // Undone in reverse order: the code, then the database, which gets its table and rows back.
    fr_env(&r, &["undo", &code_id, "--yes"], &env()).ok();
    let undo = fr_env(&r, &["undo", j["run_id"].as_str().unwrap(), "--yes", "--json"], &env());
    undo.ok();
    let undo_steps: Vec<String> =
        undo.json()["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_owned()).collect();
    assert!(undo_steps.iter().any(|s| s == "restore_database"), "{undo_steps:?}");
    assert_eq!(r.head(), head);
    assert_eq!(files(&r), tree);
    assert_eq!(sqlite(&r, "SELECT * FROM payments"), payments);
}

#[test]
fn database_only_refuses_a_fast_level_and_a_missing_database() {
    let (r, _fx) = deployed();
    let tree = files(&r);
    let out = fr_env(&r, &["run", "--database-only", "--fast", "--yes", "--target", "v2"], &env());
    out.code(2);
    assert!(out.stderr.contains("a database-only rollback is the database part of a full rollback"), "{}", out.stderr);
    assert_eq!(files(&r), tree);

    let bare = TestRepo::new();
    bare.three_releases();
    let tree = bare.tree();
    let out = fr(&bare, &["run", "--database-only", "--yes", "--target", "v2"]);
    out.code(2);
    assert!(out.stderr.contains("needs a `[database]` section"), "{}", out.stderr);
    assert_eq!(bare.tree(), tree);
}
