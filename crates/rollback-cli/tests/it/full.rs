//! `--full` through the binary on a real SQLite database with the native SQL migrator: what
//! `assess` and `plan` show (snapshots, including the irreversible-downgrade risk), a full run,
//! its undo, and the refusals.

use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};
use rollback_testkit::{TestRepo, redact};

use crate::common::{fr, fr_env};

const CONFIG: &str = "forge-rollback.toml";

/// A sample app over v0..v3 at v3, with an untracked config file (a rollback keeps it) whose
/// database URL comes from the environment.
fn deployed() -> (TestRepo, MigrationFixture) {
    let r = TestRepo::new();
    let fx = MigrationFixture::new(&r, MigratorKind::Sql);
    r.write(
        CONFIG,
        format!("[database]\nkind = \"sql\"\nurl_env = \"APP_DATABASE_URL\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    );
    r.write(".env", "API_TOKEN=tok-v3-5581\n");
    (r, fx)
}

fn env() -> [(&'static str, &'static str); 1] {
    [("APP_DATABASE_URL", "sqlite:///app.db")]
}

pub(crate) fn sqlite(r: &TestRepo, sql: &str) -> String {
    let out = std::process::Command::new(rollback_testkit::db::python())
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]) if sys.argv[3]=='w' else print(sorted(c.execute(sys.argv[2]).fetchall())); c.commit()"])
        .arg(r.path().join("app.db"))
        .arg(sql)
        .arg(if sql.trim_start().to_uppercase().starts_with("SELECT") { "r" } else { "w" })
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn upgrade(r: &TestRepo) {
    crate::common::migrate_sqlite(r);
}

fn clean(text: &str, r: &TestRepo, fx: &MigrationFixture) -> String {
    let c = &fx.commits;
    let named = [(c[0].as_str(), "v0"), (c[1].as_str(), "v1"), (c[2].as_str(), "v2"), (c[3].as_str(), "v3")];
    redact(text, r.path(), &named)
}

#[test]
fn assess_shows_the_database_the_path_and_the_irreversible_downgrade() {
    let (r, fx) = deployed();
    upgrade(&r);
    let out = fr_env(&r, &["assess", "--target", "v0"], &env());
    out.ok();
    insta::assert_snapshot!("assess_full_irreversible", clean(&out.stdout, &r, &fx));
    let j = fr_env(&r, &["assess", "--target", "v0", "--json"], &env()).json();
    let risks: Vec<&str> = j["risks"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert!(risks.contains(&"irreversible_downgrade"), "{risks:?}");
    assert_eq!(j["recommended_level"], "full");
    assert_eq!(j["database"]["path"].as_array().unwrap().len(), 3);
    // And a run refuses it (exit 4) unless allowed, changing nothing.
    let tree = r.tree();
    let refused = fr_env(&r, &["run", "--full", "--yes", "--target", "v0"], &env());
    refused.code(4);
    assert!(refused.stderr.contains("cannot restore data"), "{}", refused.stderr);
    assert!(refused.stderr.contains("hint: pass `--allow-irreversible`"), "{}", refused.stderr);
    assert_eq!(r.tree(), tree);
}

#[test]
fn plan_full_shows_the_downgrade_sql() {
    let (r, fx) = deployed();
    upgrade(&r);
    let out = fr_env(&r, &["plan", "--full", "--target", "v1"], &env());
    out.ok();
    insta::assert_snapshot!("plan_full", clean(&out.stdout, &r, &fx));
}

#[test]
fn full_run_and_undo_through_the_binary() {
    let (r, fx) = deployed();
    upgrade(&r);
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (7, 'ada', 'ada@example.com');");
    let rows_before = sqlite(&r, "SELECT * FROM users");
    let payments_before = sqlite(&r, "SELECT * FROM payments");
    let head = r.head();

    // Without `--fast`/`--full`, the recommendation (full: the schema must move) is used.
    let out = fr_env(&r, &["run", "--yes", "--json", "--target", "v2"], &env());
    out.ok();
    let j = out.json();
    assert_eq!(j["level"], "full");
    assert_eq!(j["status"], "succeeded");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(&steps[..4], ["snapshot", "db_snapshot", "downgrade", "reset"]);
    assert_eq!(j["steps"][2]["detail"]["to"], serde_json::json!([fx.revisions[1]]));
    assert!(out.stderr.contains("[INFO] Downgrading database sqlite:///"), "{}", out.stderr);
    assert!(out.stderr.contains("from 0003 to 0002"), "{}", out.stderr);
    assert_eq!(r.head(), fx.commits[2]);
    let tables = sqlite(&r, "SELECT name FROM sqlite_master WHERE type = 'table'");
    assert!(!tables.contains("payments"), "{tables}");
    assert_eq!(sqlite(&r, "SELECT * FROM users"), rows_before, "rows of kept tables stay");

    let id = j["run_id"].as_str().unwrap();
    let undo = fr_env(&r, &["undo", id, "--yes", "--json"], &env());
    undo.ok();
    assert_eq!(undo.json()["steps"][2]["step"], "restore_database");
    assert_eq!(r.head(), head);
    assert_eq!(sqlite(&r, "SELECT * FROM payments"), payments_before);
    assert_eq!(sqlite(&r, "SELECT * FROM users"), rows_before);

    // The report says where the database went and that it was backed up.
    let md = fr_env(&r, &["report", id], &env());
    md.ok();
    // Its downgrade dropped `payments` with its rows: the report names them and the undo that
    // put them back, and offers no undo of its own (it was undone).
    let undo_id = undo.json()["run_id"].as_str().unwrap().to_owned();
    assert!(md.stdout.contains("Yes, from the live database"), "{}", md.stdout);
    assert!(md.stdout.contains("table `payments`: 3 row(s) dropped"), "{}", md.stdout);
    assert!(
        md.stdout.contains(&format!("undo {undo_id} put them back from verified database backup")),
        "{}",
        md.stdout
    );
    assert!(!md.stdout.contains("brings them back"), "{}", md.stdout);
    assert!(md.stdout.contains("database moved from 0003 to 0002"), "{}", md.stdout);
}

/// `backups prune` removed a full run's backups: its report, rebuilt on request, no longer
/// says the dropped rows are kept and that `undo` brings them back (the undo is refused).
#[test]
fn the_report_of_a_pruned_run_offers_neither_the_rows_nor_the_undo() {
    let (r, _) = deployed();
    upgrade(&r);
    let out = fr_env(&r, &["run", "--full", "--yes", "--json", "--target", "v2"], &env());
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    let md = fr_env(&r, &["report", &id], &env());
    assert!(md.stdout.contains(&format!("`forge-rollback undo {id}` brings them back")), "{}", md.stdout);
    fr(&r, &["backups", "prune", "--keep", "0"]).ok();
    fr_env(&r, &["undo", &id, "--yes"], &env()).code(4);

    let md = fr_env(&r, &["report", &id], &env());
    md.ok();
    assert!(md.stdout.contains("table `payments`: 3 row(s) dropped"), "{}", md.stdout);
    assert!(md.stdout.contains("forge-rollback can no longer bring them back"), "{}", md.stdout);
    assert!(!md.stdout.contains("brings them back"), "{}", md.stdout);
    assert!(md.stdout.contains("- **Undo**: not available: its backups "), "{}", md.stdout);
    let j = fr_env(&r, &["report", &id, "--format", "json"], &env()).json();
    assert!(j["data_loss"]["kept_in"].is_null() && j["data_loss"]["restore_command"].is_null(), "{j}");
    assert!(j["commands"]["undo"].is_null(), "{j}");
    assert!(j["commands"]["undo_unavailable"].as_str().unwrap().contains("gone from the store"), "{j}");
}

#[test]
fn fast_rollback_over_a_schema_change_warns() {
    let (r, _) = deployed();
    upgrade(&r);
    let out = fr_env(&r, &["run", "--fast", "--yes", "--target", "v2"], &env());
    out.ok();
    assert!(
        out.stderr.contains("[WARN] the database sqlite:///") && out.stderr.contains("will run on a newer schema"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_database_url_variable_blocks_full_rollbacks_only() {
    let (r, _) = deployed();
    // assess shows it as a risk and still says everything else.
    let out = fr(&r, &["assess", "--target", "v1", "--json"]);
    out.ok();
    let risk = out.json()["risks"].as_array().unwrap().iter().find(|r| r["code"] == "db_not_assessed").cloned();
    assert!(risk.unwrap()["message"].as_str().unwrap().contains("APP_DATABASE_URL"), "{}", out.stdout);
    // A full plan or run is a config error naming the variable; nothing changes.
    let tree = r.tree();
    for args in [&["plan", "--full", "--target", "v1"][..], &["run", "--full", "--yes", "--target", "v1"]] {
        let out = fr(&r, args);
        out.code(2);
        assert!(out.stderr.contains("APP_DATABASE_URL"), "{}", out.stderr);
    }
    assert_eq!(r.tree(), tree);
    // A code-only rollback is not blocked by the database.
    fr(&r, &["run", "--fast", "--yes", "--target", "v1"]).ok();
}
