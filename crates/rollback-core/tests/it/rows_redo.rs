//! Rows survive the undo of an undo: when rows were written since an undo that brought the
//! schema forward, undoing it takes the schema back down by migration (as the run did) instead
//! of restoring that undo's snapshot over them, and puts back what that undo's upgrade dropped;
//! the undo of that goes forward again, keeping what was written in between. Nothing written
//! since: the snapshot goes back exactly, as before. For Alembic and the native migrator, on
//! SQLite and a real PostgreSQL.

use rollback_core::RunStatus;
use rollback_core::event::Recorder;
use rollback_core::prompt::AutoConfirm;
use rollback_core::rt::block_on;
use rollback_testkit::db::MigratorKind as Fx;

use super::full::{Engine, deploy, engine, full, rev, sql, state};
use super::rows::{Keep, scalar, steps};

fn rows_survive_undo_of_undo(kind: Fx, db: Engine) {
    let d = deploy(kind, db);
    let rb = engine(&d);
    let run = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    // Rolled back: linus registers, with a value in v1's `legacy`, which v3 has no room for.
    sql(&rb, "INSERT INTO users (id, name, legacy) VALUES (3, 'linus', 'L-3')");
    let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(steps(&undo).contains(&"upgrade_database"), "{:?}", steps(&undo));
    let undo_id = undo.run_id.clone().unwrap();

    // Back on v3: barbara registers and pays.
    sql(&rb, "INSERT INTO users (id, name, email) VALUES (4, 'barbara', 'barbara@example.com')");
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (20, 700, 'after the undo')");

    // v3 breaks again: the undo of the undo goes back down, keeping barbara.
    let keep = Keep::default();
    let again = rb.undo(&undo_id, &keep, &Recorder::default()).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    let summary = keep.0.lock().unwrap().clone();
    assert!(
        summary.contains(&format!("changed since that undo: downgrade to {} (2 migration(s)", rev(&d, 0))),
        "{summary}"
    );
    assert!(
        summary.contains("The downgrade drops: payments (5 rows), users.email (2 values)"),
        "what goes into this undo's snapshot is named:\n{summary}"
    );
    assert!(summary.contains("Then put back 1 value(s) of users.legacy"), "{summary}");
    let names = steps(&again);
    assert!(names.contains(&"downgrade") && names.contains(&"put_back_rows"), "{names:?}");
    assert!(!names.contains(&"restore_database"), "{names:?}");
    assert_eq!(block_on(rb.db().unwrap().unwrap().current()).unwrap(), [rev(&d, 0)]);
    assert_eq!(scalar(&rb, "SELECT name FROM users WHERE id = 4").as_deref(), Some("barbara"));
    assert_eq!(scalar(&rb, "SELECT legacy FROM users WHERE id = 3").as_deref(), Some("L-3"), "put back");
    assert_eq!(scalar(&rb, "SELECT count(*) FROM users").as_deref(), Some("4"));

    // Rolled back again: bob registers. Its undo goes forward and keeps everyone.
    sql(&rb, "INSERT INTO users (id, name) VALUES (5, 'bob')");
    let third = rb.undo(again.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.error);
    assert!(steps(&third).contains(&"upgrade_database"), "{:?}", steps(&third));
    assert_eq!(block_on(rb.db().unwrap().unwrap().current()).unwrap(), [rev(&d, 2)]);
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 4").as_deref(), Some("barbara@example.com"));
    assert_eq!(scalar(&rb, "SELECT note FROM payments WHERE id = 20").as_deref(), Some("after the undo"));
    assert_eq!(scalar(&rb, "SELECT count(*) FROM payments").as_deref(), Some("5"));
    assert_eq!(scalar(&rb, "SELECT count(*) FROM users").as_deref(), Some("5"));
    assert_eq!(scalar(&rb, "SELECT name FROM users WHERE id = 5").as_deref(), Some("bob"));
}

macro_rules! cases {
    ($($name:ident: $kind:expr, $db:expr;)*) => {$(
        #[test]
        fn $name() {
            rows_survive_undo_of_undo($kind, $db);
        }
    )*};
}

cases! {
    undo_of_undo_alembic_sqlite: Fx::Alembic, Engine::Sqlite;
    undo_of_undo_alembic_postgres: Fx::Alembic, Engine::Postgres;
    undo_of_undo_sql_sqlite: Fx::Sql, Engine::Sqlite;
    undo_of_undo_sql_postgres: Fx::Sql, Engine::Postgres;
}

/// Nothing written since the undo: its undo restores its snapshot exactly, as before.
#[test]
fn undo_of_an_undo_with_nothing_written_since_restores_exactly() {
    let d = deploy(Fx::Alembic, Engine::Sqlite);
    let rb = engine(&d);
    let run = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    let rolled_back = state(&d, &rb);
    let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert!(steps(&undo).contains(&"restore_database"), "{:?}", steps(&undo));
    let again = rb.undo(undo.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    assert!(steps(&again).contains(&"restore_database"), "{:?}", steps(&again));
    assert!(!steps(&again).contains(&"downgrade"), "{:?}", steps(&again));
    assert_eq!(state(&d, &rb), rolled_back, "the state the undo undid, exactly");
}
