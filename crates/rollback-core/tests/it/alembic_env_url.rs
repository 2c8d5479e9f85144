//! A migration environment that would not use the configured URL (issue 12, case 8): the stock
//! `env.py` of `alembic init` reads `sqlalchemy.url` from `alembic.ini`. When the ini names
//! another database, `plan --full` and a full run refuse before anything runs, naming both
//! URLs without their passwords, and the check itself connects nowhere (no stray SQLite file).

use std::path::Path;
use std::process::Command;

use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::AutoConfirm;
use rollback_core::rt::block_on;
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{ErrorKind, Rollback, RunOptions};
use rollback_testkit::TestRepo;
use rollback_testkit::db::{PgDatabase, python};

use super::alembic_layout::{MIGRATION_1, MIGRATION_2};

/// A repository made with `alembic init` (stock `env.py`), releases v1 (a1) and v2 (b2), the
/// configured database upgraded to b2 while the ini still named it; then the ini is pointed at
/// `elsewhere` (an uncommitted edit, as an operator's local change would be).
fn repo_with_stock_env(configured: &str, elsewhere: &str) -> (TestRepo, Rollback) {
    let r = TestRepo::new();
    let init =
        Command::new(python()).args(["-m", "alembic", "init", "migrations"]).current_dir(r.path()).output().unwrap();
    assert!(init.status.success(), "alembic init: {}", String::from_utf8_lossy(&init.stderr));
    let stock = std::fs::read_to_string(r.path().join("alembic.ini")).unwrap();
    assert!(stock.contains("driver://user:pass@localhost/dbname"), "the stock ini names its URL as expected");
    r.write("alembic.ini", stock.replace("driver://user:pass@localhost/dbname", configured));
    r.write("migrations/versions/a1_users.py", MIGRATION_1);
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("migrations/versions/b2_orders.py", MIGRATION_2);
    r.commit_all("v2");
    let text = format!("[database]\nkind = \"alembic\"\nurl = \"{configured}\"\npython = \"{}\"\n", python());
    let config = Config::parse(&text, Some(Path::new("/outside/forge-rollback.toml"))).unwrap();
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, r.path()).unwrap(), config).unwrap();
    block_on(rb.db().unwrap().unwrap().upgrade(&[])).unwrap();
    r.write("alembic.ini", stock.replace("driver://user:pass@localhost/dbname", elsewhere));
    (r, rb)
}

#[test]
fn plan_full_and_run_refuse_a_stock_env_py_whose_ini_names_another_sqlite_file() {
    let (r, rb) = repo_with_stock_env("sqlite:///app.db", "sqlite:///other.db");
    let err = rb.plan(Some(Level::Full), Some("v1")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let text = err.to_string();
    let root = std::fs::canonicalize(r.path()).unwrap();
    assert!(text.contains("the migration environment would not use the configured database"), "{text}");
    assert!(text.contains(&format!("connects to `sqlite:///{}/other.db`", root.display())), "{text}");
    assert!(text.contains(&format!("configured for `sqlite:///{}/app.db`", r.path().display())), "{text}");
    assert!(err.hint().unwrap().to_string().contains("$DATABASE_URL"), "{:?}", err.hint());
    assert!(!r.exists("other.db"), "the check connected nowhere");

    // A full run refuses the same way, before anything is written.
    let tree = r.tree();
    let full = RunOptions { level: Some(Level::Full), target: Some("v1".into()), ..RunOptions::default() };
    let err = rb.run(&full, &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert_eq!(r.tree(), tree);
    let revs: Vec<String> = block_on(rb.db().unwrap().unwrap().current()).unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(revs, ["b2"]);

    // Pointed back at the configured database, the plan goes through.
    let stock = std::fs::read_to_string(r.path().join("alembic.ini")).unwrap();
    r.write("alembic.ini", stock.replace("sqlite:///other.db", "sqlite:///app.db"));
    assert_eq!(rb.plan(Some(Level::Full), Some("v1")).unwrap().level, Some(Level::Full));
}

#[test]
fn a_postgres_url_elsewhere_is_named_without_its_password() {
    let pg = PgDatabase::new();
    let (_r, rb) = repo_with_stock_env(&pg.url(), "postgresql://app:hunter2@127.0.0.1:1/elsewhere");
    let err = rb.plan(Some(Level::Full), Some("v1")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let text = err.to_string();
    assert!(text.contains("connects to `postgresql://app:***@127.0.0.1:1/elsewhere`"), "{text}");
    assert!(text.contains(&format!("/{}`", pg.name())), "{text}");
    assert!(!text.contains("hunter2") && !text.contains(&pg.server().password), "{text}");
}

/// The stock `env.py` with an ini naming the configured database: the forecast and the undo's
/// rehearsal run on copies with it (the driver points the ini's URL at the copy), so the plan
/// counts what the downgrade destroys and the undo keeps the rows written while rolled back.
#[test]
fn a_stock_env_py_naming_the_configured_sqlite_file_works_on_copies_too() {
    stock_env_py_on_copies("sqlite:///app.db");
}

#[test]
fn a_stock_env_py_naming_the_configured_postgres_database_works_on_copies_too() {
    let pg = PgDatabase::new();
    stock_env_py_on_copies(&pg.url());
}

fn stock_env_py_on_copies(url: &str) {
    let (r, rb) = repo_with_stock_env(url, url);
    let db = rb.db().unwrap().unwrap();
    let sql = |s: &str| block_on(db.database().query_scalar(s)).unwrap();
    sql("INSERT INTO orders (id) VALUES (1), (2), (3)");
    let plan = rb.plan(Some(Level::Full), Some("v1")).unwrap();
    assert!(plan.risks.iter().all(|r| r.code != rollback_core::RiskCode::DataLossUnknown), "{:?}", plan.risks);
    assert_eq!(
        serde_json::to_value(&plan.data_loss).unwrap(),
        serde_json::json!([{ "table": "orders", "column": null, "rows": 3, "kind": "dropped" }])
    );
    let full = RunOptions { level: Some(Level::Full), target: Some("v1".into()), ..RunOptions::default() };
    let run = rb.run(&full, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, rollback_core::RunStatus::Succeeded, "{:?}", run.error);

    // Rolled back, a user signs up; the undo keeps them and puts the orders back.
    sql("INSERT INTO users (id) VALUES (7)");
    let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, rollback_core::RunStatus::Succeeded, "{:?}", undo.error);
    let steps: Vec<&str> = undo.steps.iter().map(|s| s.step.as_str()).collect();
    assert!(steps.contains(&"upgrade_database") && steps.contains(&"put_back_rows"), "{steps:?}");
    assert_eq!(sql("SELECT count(*) FROM orders").as_deref(), Some("3"));
    assert_eq!(sql("SELECT count(*) FROM users WHERE id = 7").as_deref(), Some("1"));
    assert!(!r.exists("migrations/app.db"), "no stray database");
}
