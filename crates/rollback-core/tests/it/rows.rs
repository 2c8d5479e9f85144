//! Rows survive a full rollback and its undo: the rows the downgrade dropped come back from the
//! run's snapshot, and the rows written while rolled back stay. For Alembic and the native
//! migrator, on SQLite and a real PostgreSQL; plus what cannot be merged faithfully (refused
//! before anything changes, then `restore_snapshot`) and the unchanged database (restored
//! exactly, as before).

use std::sync::Mutex;

use rollback_core::event::Recorder;
use rollback_core::plan::{Level, Step};
use rollback_core::prompt::{AutoConfirm, Confirmation, Prompter};
use rollback_core::rt::block_on;
use rollback_core::{BackupStore, DataLoss, ErrorKind, Rollback, RunStatus, UndoOptions};
use rollback_testkit::db::{MigratorKind as Fx, SQL_DIR};

use super::full::{Deployed, Engine, deploy, engine, full, rev, sql, state};

/// Confirms, keeping what it was shown.
#[derive(Default)]
pub(crate) struct Keep(pub(crate) Mutex<String>);

impl Prompter for Keep {
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        self.0.lock().unwrap().clone_from(&request.summary);
        Ok(true)
    }
}

pub(crate) fn scalar(rb: &Rollback, statement: &str) -> Option<String> {
    block_on(rb.db().unwrap().unwrap().database().query_scalar(statement)).unwrap()
}

pub(crate) fn steps(out: &rollback_core::RunOutcome) -> Vec<&str> {
    out.steps.iter().map(|s| s.step.as_str()).collect()
}

fn rows_survive_rollback_and_undo(kind: Fx, db: Engine) {
    let d = deploy(kind, db);
    let rb = engine(&d);
    let before = state(&d, &rb);

    // The forecast, exact.
    let t0 = std::time::Instant::now();
    let plan = serde_json::to_value(rb.plan(Some(Level::Full), Some("v1")).unwrap()).unwrap();
    let plan_ms = t0.elapsed().as_millis();
    assert_eq!(
        plan["data_loss"],
        serde_json::json!([
            { "table": "payments", "column": null, "rows": 4, "kind": "dropped" },
            { "table": "users", "column": "email", "rows": 1, "kind": "dropped" },
        ])
    );

    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let run_id = out.run_id.clone().unwrap();

    // The app runs on v1 and a user registers: a row in a table the target has, with a value
    // in v1's `legacy` column, which v3's schema does not have.
    sql(&rb, "INSERT INTO users (id, name, legacy) VALUES (3, 'linus', 'L-3')");

    let keep = Keep::default();
    let t0 = std::time::Instant::now();
    let undo = rb.undo(&run_id, &keep, &Recorder::default()).unwrap();
    let undo_ms = t0.elapsed().as_millis();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    let summary = keep.0.lock().unwrap().clone();
    assert!(
        summary.contains(&format!(
            "changed since the run: upgrade to {} and put back 4 row(s) of payments, 1 value(s) of users.email",
            rev(&d, 2)
        )),
        "{summary}"
    );
    // Rehearsed on a copy first: the upgrade drops what v1 wrote into `legacy`, and says so.
    assert!(
        summary.contains(
            "The upgrade removes, of the rolled-back schema: users.legacy (1 value) (renamed by it, or dropped"
        ),
        "{summary}"
    );
    let names = steps(&undo);
    assert!(names.contains(&"upgrade_database") && names.contains(&"put_back_rows"), "{names:?}");
    figures(&rb, kind, db, (plan_ms, undo_ms), &undo);
    assert!(!names.contains(&"restore_database"), "{names:?}");

    // Every row: the dropped table's, the column's value by key, the one written since.
    assert_eq!(block_on(rb.db().unwrap().unwrap().current()).unwrap(), [rev(&d, 2)], "the schema is HEAD's");
    assert_eq!(scalar(&rb, "SELECT count(*) FROM payments").as_deref(), Some("4"));
    assert_eq!(scalar(&rb, "SELECT amount_cents FROM payments WHERE id = 10").as_deref(), Some("4200"));
    assert_eq!(scalar(&rb, "SELECT note FROM payments WHERE id = 10").as_deref(), Some("after v3"));
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 2").as_deref(), Some("grace@example.com"));
    assert_eq!(scalar(&rb, "SELECT name FROM users WHERE id = 3").as_deref(), Some("linus"));
    assert_eq!(scalar(&rb, "SELECT count(*) FROM users").as_deref(), Some("3"));
    // Apart from the row written since, the database is what it was before the rollback.
    let now = state(&d, &rb);
    assert_eq!((&now.tree, &now.head, &now.branch), (&before.tree, &before.head, &before.branch));
    sql(&rb, "DELETE FROM users WHERE id = 3");
    let without_linus = state(&d, &rb).dump;
    if kind == Fx::Alembic && db == Engine::Postgres {
        // The key sequence moved past the keys put back: they are never handed out again.
        assert_eq!(scalar(&rb, "SELECT last_value FROM payments_id_seq").as_deref(), Some("10"));
        let strip = |s: &str| {
            s.lines().filter(|l| !l.starts_with("sequence public.payments_id_seq")).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(strip(&without_linus), strip(&before.dump), "schema and rows as before the rollback");
    } else if kind == Fx::Alembic {
        assert_eq!(without_linus, before.dump, "schema and rows as before the rollback");
    } else {
        // The native tracking table records when each migration was applied again.
        let strip = |s: &str| s.lines().filter(|l| !l.contains("add_")).collect::<Vec<_>>().join("\n");
        assert_eq!(strip(&without_linus), strip(&before.dump), "schema and rows as before the rollback");
    }
}

/// Prints how long the forecast (a whole `plan --full`) and the undo's database steps took,
/// for docs/RELIABILITY.md (`--nocapture`); nothing is asserted on times.
#[allow(clippy::print_stderr)]
fn figures(rb: &Rollback, kind: Fx, db: Engine, (plan_ms, undo_ms): (u128, u128), undo: &rollback_core::RunOutcome) {
    use rollback_core::journal::{Record, RunState};
    let dir = rb.state_dir().run_dir(undo.run_id.as_deref().unwrap());
    let state = RunState::load(&dir.join("journal.jsonl")).unwrap();
    let ms = |step: &str| {
        let at = |end: bool| {
            state.records.iter().find_map(|r| match r {
                Record::StepBegin { at, step: s, .. } if !end && s == step => Some(*at),
                Record::StepEnd { at, step: s, .. } if end && s == step => Some(*at),
                _ => None,
            })
        };
        at(false).zip(at(true)).map_or(0, |(b, e)| e.millis_since(b))
    };
    eprintln!(
        "figures {kind:?}/{db:?}: plan --full with forecast {plan_ms} ms; undo call {undo_ms} ms (checks and rehearsal twice, then the run: {} ms, of which upgrade_database {} ms, put_back_rows {} ms)",
        undo.duration_ms,
        ms("upgrade_database"),
        ms("put_back_rows")
    );
}

macro_rules! cases {
    ($($name:ident: $kind:expr, $db:expr;)*) => {$(
        #[test]
        fn $name() {
            rows_survive_rollback_and_undo($kind, $db);
        }
    )*};
}

cases! {
    alembic_sqlite: Fx::Alembic, Engine::Sqlite;
    alembic_postgres: Fx::Alembic, Engine::Postgres;
    sql_sqlite: Fx::Sql, Engine::Sqlite;
    sql_postgres: Fx::Sql, Engine::Postgres;
}

/// Nothing written since the run: the snapshot goes back exactly, as before.
#[test]
fn an_unchanged_database_is_restored_exactly() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    let keep = Keep::default();
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &keep, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(keep.0.lock().unwrap().contains("unchanged since the run: restore snapshot"));
    let names = steps(&undo);
    assert!(names.contains(&"restore_database") && !names.contains(&"upgrade_database"), "{names:?}");
    assert_eq!(state(&d, &rb), before);
    // Byte for byte: the database file is the snapshot's, but for the three header counters
    // SQLite bumps on every commit (the change counter, the schema cookie and the
    // version-valid-for number, bytes 24..28, 40..44 and 92..96): the restore is a commit
    // into the live database, so that connections the app has open see it.
    let db_backup = out
        .steps
        .iter()
        .find_map(|s| s.detail.as_ref().filter(|_| s.step == "db_snapshot").and_then(|d| d.snapshot()))
        .unwrap()
        .clone();
    let store = rollback_core::backup::store::FsBackupStore::open(&rb.state_dir().backups_dir()).unwrap();
    let manifest = store.manifest(&db_backup).unwrap();
    let blob = store.get_blob(&manifest.database.unwrap().blob).unwrap();
    let masked = |mut bytes: Vec<u8>| {
        for range in [24..28, 40..44, 92..96] {
            bytes[range].fill(0);
        }
        bytes
    };
    assert_eq!(masked(std::fs::read(d.repo.path().join("app.db")).unwrap()), masked(blob));
}

/// A value whose row was deleted since: refused before anything changes, naming it; then
/// `restore_snapshot` keeps the database as it is in a file and restores the snapshot.
#[test]
fn a_deleted_row_is_refused_then_restore_snapshot_keeps_a_dump() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    let run_id = out.run_id.clone().unwrap();
    sql(&rb, "DELETE FROM users WHERE id = 2");
    sql(&rb, "INSERT INTO users (id, name) VALUES (3, 'linus')");
    refused_then_restore_snapshot(&d, &rb, &run_id, "users.email: 1 value(s) belong to rows deleted since the run");
    assert_eq!(state(&d, &rb), before, "the snapshot is back exactly");
}

fn refused_then_restore_snapshot(d: &Deployed, rb: &Rollback, run_id: &str, reason: &str) {
    let rolled = state(d, rb);
    let runs = rb.runs().unwrap().len();
    let err = rb.undo(run_id, &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains(reason), "{err}");
    assert!(err.to_string().starts_with("the database changed since run"), "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("--restore-snapshot"), "{err:?}");
    assert_eq!(state(d, rb), rolled, "refused: nothing changed");
    assert_eq!(rb.runs().unwrap().len(), runs, "no undo run was started");

    let opts = UndoOptions { restore_snapshot: true, ..UndoOptions::default() };
    let undo = rb.undo_with(run_id, &opts, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    let kept = undo
        .steps
        .iter()
        .find_map(|s| match &s.detail {
            Some(rollback_core::StepDetail::RestoreDatabase { kept, .. }) => kept.clone(),
            _ => None,
        })
        .expect("the dump's path");
    assert!(kept.starts_with(rb.state_dir().root()), "{}", kept.display());
    assert!(undo.warnings.iter().any(|w| w.contains(&kept.display().to_string())), "{:?}", undo.warnings);
    // The dump holds the database as it was before the restore, writes since included.
    let text =
        format!("[database]\nkind = \"sql\"\nurl = \"sqlite:///{}\"\nmigrations_dir = \"{SQL_DIR}\"\n", kept.display());
    let config = rollback_core::config::Config::parse(&text, None).unwrap();
    let kept_db = rollback_core::db::open(config.database.as_ref().unwrap(), d.repo.path()).unwrap();
    assert_eq!(block_on(kept_db.database().canonical_dump()).unwrap(), rolled.dump);
}

/// A dropped column of a table without a primary key cannot be matched to rows.
#[test]
fn a_dropped_column_without_primary_key_is_refused() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    d.repo
        .write(format!("{SQL_DIR}/0004_audit.up.sql"), "CREATE TABLE audit (msg TEXT);\n")
        .write(format!("{SQL_DIR}/0004_audit.down.sql"), "DROP TABLE audit;\n");
    d.repo.commit_all("v4: audit");
    d.repo.git(&["tag", "v4"]);
    d.repo
        .write(format!("{SQL_DIR}/0005_audit_level.up.sql"), "ALTER TABLE audit ADD COLUMN level TEXT;\n")
        .write(format!("{SQL_DIR}/0005_audit_level.down.sql"), "ALTER TABLE audit DROP COLUMN level;\n");
    d.repo.commit_all("v5: audit level");
    let rb = engine(&d);
    block_on(rb.db().unwrap().unwrap().upgrade(&[])).unwrap();
    sql(&rb, "INSERT INTO audit (msg, level) VALUES ('boot', 'info')");
    let before = state(&d, &rb);
    let plan = rb.plan(Some(Level::Full), Some("v4")).unwrap();
    assert_eq!(plan.data_loss, [DataLoss::column("audit", "level", 1)]);
    assert!(plan.steps.iter().any(|s| matches!(s, Step::Downgrade { .. })));
    let out = rb.run(&full("v4"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    sql(&rb, "INSERT INTO audit (msg) VALUES ('written while rolled back')");
    refused_then_restore_snapshot(
        &d,
        &rb,
        out.run_id.as_deref().unwrap(),
        "audit.level: 1 value(s) cannot be matched to rows, `audit` has no primary key",
    );
    assert_eq!(state(&d, &rb), before);
}

/// A conflict only the upgrade creates: it seeds `payments` 1 as `first` again, while the
/// snapshot holds it as `refunded`. The undo's database steps are rehearsed on a copy first,
/// so it is refused before anything changes; `restore_snapshot` is the way on.
#[test]
fn a_conflict_made_by_the_upgrade_is_refused_before_anything_changes() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    sql(&rb, "UPDATE payments SET note = 'refunded' WHERE id = 1");
    let before = state(&d, &rb);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    sql(&rb, "INSERT INTO users (id, name) VALUES (3, 'linus')");
    refused_then_restore_snapshot(
        &d,
        &rb,
        out.run_id.as_deref().unwrap(),
        "payments: 1 row(s) exist under the same primary key with other content",
    );
    assert_eq!(state(&d, &rb), before);
}

/// The fingerprint a run records sees every change of a row, and only changes.
fn fingerprint_sees_every_change(db: Engine) {
    let d = deploy(Fx::Sql, db);
    let rb = engine(&d);
    let fp = || block_on(rb.db().unwrap().unwrap().database().fingerprint()).unwrap();
    let first = fp();
    assert_eq!(fp(), first, "stable");
    sql(&rb, "UPDATE payments SET note = 'firsT' WHERE id = 1");
    let changed = fp();
    assert_ne!(changed, first, "one changed value");
    sql(&rb, "UPDATE payments SET note = 'first' WHERE id = 1");
    assert_eq!(fp(), first, "changed back");
    sql(&rb, "DELETE FROM payments WHERE id = 3");
    assert_ne!(fp(), first, "one row fewer");
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (3, 5, NULL)");
    assert_eq!(fp(), first, "the same row again, wherever it is stored");
    sql(&rb, "CREATE TABLE extra (x INTEGER)");
    assert_ne!(fp(), first, "the schema");
}

#[test]
fn fingerprint_sqlite() {
    fingerprint_sees_every_change(Engine::Sqlite);
}

#[test]
fn fingerprint_postgres() {
    fingerprint_sees_every_change(Engine::Postgres);
}

/// A dropped table created again while rolled back: the upgrade could not create it, its rows
/// could not be merged: refused before anything changes.
#[test]
fn a_table_created_again_since_the_run_is_refused() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    sql(&rb, "CREATE TABLE payments (id INTEGER PRIMARY KEY, amount_cents INTEGER NOT NULL, note TEXT)");
    sql(&rb, "INSERT INTO payments (id, amount_cents) VALUES (1, 77)");
    refused_then_restore_snapshot(
        &d,
        &rb,
        out.run_id.as_deref().unwrap(),
        "payments: the table exists again since the run (1 row(s))",
    );
    assert_eq!(state(&d, &rb), before);
}

/// The app restarted by the run writes at once, before the run ends: that row is a write
/// since the run (the fingerprint is taken right after the downgrade, before the code moves),
/// so the undo keeps it instead of restoring the snapshot over it.
#[test]
fn a_row_written_by_the_restarted_app_before_the_run_ends_is_kept() {
    let mut d = deploy(Fx::Sql, Engine::Sqlite);
    let app_db = d.repo.path().join("app.db");
    let write = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute(\"INSERT OR IGNORE INTO users (id, name) VALUES (3, 'linus')\"); c.commit()",
        app_db.display().to_string()
    );
    let text = format!(
        "[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n\n[[restart]]\nname = \"app\"\nargv = [{:?}, \"-c\", {:?}]\n",
        rollback_testkit::db::python(),
        write
    );
    d.config = rollback_core::config::Config::parse(&text, Some(std::path::Path::new("/outside/forge-rollback.toml")))
        .unwrap();
    let rb = engine(&d);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(scalar(&rb, "SELECT name FROM users WHERE id = 3").as_deref(), Some("linus"), "the app wrote");

    let rb = engine(&d);
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(steps(&undo).contains(&"put_back_rows"), "{:?}", steps(&undo));
    assert_eq!(scalar(&rb, "SELECT name FROM users WHERE id = 3").as_deref(), Some("linus"), "kept");
    assert_eq!(scalar(&rb, "SELECT count(*) FROM payments").as_deref(), Some("4"));
}
