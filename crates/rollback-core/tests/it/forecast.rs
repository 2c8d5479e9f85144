//! The data-loss forecast: the planned downgrade run on a throwaway copy of the real database
//! says exactly which tables and columns go, with their rows, in `plan`, `assess`, the
//! confirmation and the report; the live database is only read, and the copy never stays.

use std::sync::Mutex;

use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::{AutoConfirm, Confirmation, Prompter};
use rollback_core::{DataLoss, ErrorKind, RiskCode, RunStatus};
use rollback_testkit::db::{MigratorKind as Fx, PgParts, pg_url};

use super::full::{Engine, deploy, engine, full, state};

/// What the fixture's v3 → v1 downgrade destroys: migration 3 drops `payments` (three rows
/// it seeded, one written after), migration 2 drops `users.email` (grace's address).
fn expected() -> Vec<DataLoss> {
    vec![DataLoss::table("payments", 4), DataLoss::column("users", "email", 1)]
}

/// Declines, keeping what it was shown.
#[derive(Default)]
struct Decline(Mutex<String>);

impl Prompter for Decline {
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        self.0.lock().unwrap().clone_from(&request.summary);
        Ok(false)
    }
}

/// Scratch copies of the database `source` on the test server (their names end with it).
fn scratch_databases(source: &str) -> String {
    PgParts::parse(&pg_url()).psql(
        "postgres",
        &format!("SELECT datname FROM pg_database WHERE datname LIKE 'forge\\_rollback\\_scratch\\_%\\_{source}'"),
    )
}

fn forecast_counts_exactly_and_changes_nothing(kind: Fx, db: Engine) {
    let d = deploy(kind, db);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let source = d.pg_name().map(str::to_owned);
    let scratch_before = source.as_deref().map(scratch_databases);

    let plan = rb.plan(Some(Level::Full), Some("v1")).unwrap();
    assert_eq!(plan.data_loss, expected());
    assert!(plan.risks.is_empty(), "{:?}", plan.risks);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["data_loss"],
        serde_json::json!([
            { "table": "payments", "column": null, "rows": 4, "kind": "dropped" },
            { "table": "users", "column": "email", "rows": 1, "kind": "dropped" },
        ])
    );
    assert!(
        plan.render().contains("the downgrade destroys: payments (4 rows), users.email (1 value)"),
        "{}",
        plan.render()
    );

    let a = rb.assess(Some("v1")).unwrap();
    assert_eq!(a.data_loss, expected());
    let risk = a.risks.iter().find(|r| r.code == RiskCode::DowngradeDropsData).expect("a data-loss risk");
    assert!(risk.message.contains("payments (4 rows), users.email (1 value)"), "{}", risk.message);

    // The confirmation says it before anything happens; declining changes nothing.
    let decline = Decline::default();
    let err = rb.run(&full("v1"), &decline, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    let summary = decline.0.lock().unwrap().clone();
    assert!(summary.contains("The downgrade destroys: payments (4 rows), users.email (1 value)"), "{summary}");

    assert_eq!(state(&d, &rb), before, "the forecast only read the live database");
    if let (Some(scratch), Some(source)) = (scratch_before, &source) {
        assert_eq!(scratch_databases(source), scratch, "every scratch database was dropped");
    }

    // The run journals the forecast with its plan, and its report names every loss, the
    // backup that keeps it and the command that brings it back.
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let run_id = out.run_id.clone().unwrap();
    let report = rb.report(&run_id).unwrap();
    assert_eq!(report.data_loss.lost, Some(true));
    assert_eq!(report.data_loss.dropped, expected());
    let db_backup = out
        .steps
        .iter()
        .find_map(|s| s.detail.as_ref().filter(|_| s.step == "db_snapshot").and_then(|d| d.snapshot()))
        .unwrap()
        .to_string();
    assert_eq!(report.data_loss.kept_in.as_deref(), Some(db_backup.as_str()));
    let md = report.to_markdown();
    for needle in [
        "table `payments`: 4 row(s) dropped".to_owned(),
        "column `users.email`: 1 value(s) dropped".to_owned(),
        format!("verified database backup {db_backup}"),
        format!("`forge-rollback undo {run_id}`"),
    ] {
        assert!(md.contains(&needle), "{needle} in:\n{md}");
    }
}

macro_rules! cases {
    ($($name:ident: $kind:expr, $db:expr;)*) => {$(
        #[test]
        fn $name() {
            forecast_counts_exactly_and_changes_nothing($kind, $db);
        }
    )*};
}

cases! {
    alembic_sqlite: Fx::Alembic, Engine::Sqlite;
    alembic_postgres: Fx::Alembic, Engine::Postgres;
    sql_sqlite: Fx::Sql, Engine::Sqlite;
    sql_postgres: Fx::Sql, Engine::Postgres;
}

/// A downgrade that fails on the copy: the plan says the forecast is unknown (a typed risk),
/// never "no loss", and the live database is untouched.
#[test]
fn a_downgrade_failing_on_the_copy_is_a_risk_not_silence() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    d.fx.break_second_downgrade(&d.repo);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let plan = rb.plan(Some(Level::Full), Some("v1")).unwrap();
    assert!(plan.data_loss.is_empty());
    let risk = plan.risks.iter().find(|r| r.code == RiskCode::DataLossUnknown).expect("data_loss_unknown");
    assert!(risk.message.contains("boom_this_downgrade_fails_half_way"), "{}", risk.message);
    assert!(plan.render().contains("risk data_loss_unknown"), "{}", plan.render());
    let a = rb.assess(Some("v1")).unwrap();
    assert!(a.risks.iter().any(|r| r.code == RiskCode::DataLossUnknown), "{:?}", a.risks);
    assert_eq!(state(&d, &rb), before);
}

/// No downgrade, no copy: a fast plan has no forecast and nothing to report.
#[test]
fn no_downgrade_no_forecast() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    assert!(plan.data_loss.is_empty() && plan.risks.is_empty());
    assert!(!plan.render().contains("destroys"), "{}", plan.render());
}

/// An `env.py` that ignores `$DATABASE_URL` and connects to the live database (as the stock
/// one does through `alembic.ini`): the forecast must not downgrade the live database. It
/// proves Alembic sees the copy before migrating anything, and says why it could not.
#[test]
fn an_env_py_that_ignores_the_copy_never_touches_the_live_database() {
    let d = deploy(Fx::Alembic, Engine::Sqlite);
    let live = format!("sqlite:///{}", d.repo.path().join("app.db").display());
    let env_py = String::from_utf8(d.repo.read("migrations/env.py")).unwrap();
    assert!(env_py.contains("os.environ.get(\"DATABASE_URL\")"), "{env_py}");
    d.repo.write("migrations/env.py", env_py.replace("os.environ.get(\"DATABASE_URL\")", &format!("{live:?}")));
    let rb = engine(&d);
    let before = state(&d, &rb);
    let plan = rb.plan(Some(Level::Full), Some("v1")).unwrap();
    assert!(plan.data_loss.is_empty(), "{:?}", plan.data_loss);
    let risk = plan.risks.iter().find(|r| r.code == RiskCode::DataLossUnknown).expect("data_loss_unknown");
    assert!(risk.message.contains("env.py does not connect to the database in $DATABASE_URL"), "{}", risk.message);
    assert_eq!(state(&d, &rb), before, "the live database was not downgraded");
}

/// An `env.py` that sets up no logging (not every project keeps `alembic init`'s
/// `fileConfig`): Alembic then prints its failures on standard output only, and the proof that
/// it sees the copy read nothing there, so the forecast was "unknown" with an empty reason and
/// a row-keeping undo refused. The proof reads both streams now.
#[test]
fn an_env_py_without_logging_still_gets_its_forecast() {
    let d = deploy(Fx::Alembic, Engine::Sqlite);
    let env_py = String::from_utf8(d.repo.read("migrations/env.py")).unwrap();
    assert!(env_py.contains("    fileConfig(config.config_file_name)\n"), "{env_py}");
    d.repo.write("migrations/env.py", env_py.replace("    fileConfig(config.config_file_name)\n", "    pass\n"));
    let rb = engine(&d);
    let before = state(&d, &rb);
    let plan = rb.plan(Some(Level::Full), Some("v1")).unwrap();
    assert!(plan.risks.iter().all(|r| r.code != RiskCode::DataLossUnknown), "{:?}", plan.risks);
    assert!(plan.data_loss.iter().any(|l| l.table == "payments" && l.column.is_none()), "{:?}", plan.data_loss);
    assert_eq!(state(&d, &rb), before, "the live database is untouched");
}
