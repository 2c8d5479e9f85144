//! Rows a downgrade deletes from a table that stays (a data migration's downgrade: "the old
//! release cannot show refunds, delete them") and values it changes in a column that stays
//! ("the old release cannot match mixed-case emails, lower them") are named by the forecast and
//! put back by the undo when rows were written since, told apart from what the app deleted or
//! changed while rolled back: the downgrade runs again on a copy of the snapshot, and only the
//! rows it deletes there, and the values it changes there, come back (a value the app changed
//! since stays). For Alembic and the native migrator, on SQLite and a real PostgreSQL.

use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::AutoConfirm;
use rollback_core::rt::block_on;
use rollback_core::{DataLoss, ErrorKind, LossKind, RunOutcome, RunStatus};
use rollback_testkit::db::{MigratorKind as Fx, SQL_DIR};

use super::full::{Deployed, Engine, deploy, engine, full, sql, state};
use super::rows::{Keep, scalar, steps};

const REV4: &str = r#""""refunds: a payment can refund another; the old release cannot show refunds

Revision ID: d00d4e5f6a04
Revises: b84e1d2c3f03
"""
from alembic import op
import sqlalchemy as sa

revision = "d00d4e5f6a04"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payments", sa.Column("refund_of", sa.Integer()))


def downgrade():
    op.execute("UPDATE users SET email = lower(email)")
    op.execute("DELETE FROM payments WHERE amount_cents < 0")
    with op.batch_alter_table("payments") as b:
        b.drop_column("refund_of")
"#;

/// Migration 4 of a test: Alembic's file (`migrations/versions/<name>.py`) and the native
/// migrator's two (`<name>.up.sql`, `<name>.down.sql`).
struct Migration4 {
    alembic_name: &'static str,
    alembic: &'static str,
    sql_name: &'static str,
    up: &'static str,
    down: &'static str,
}

/// Releases v4 (migration `m`) on top of the deployed v3 and runs it.
fn release_v4(kind: Fx, db: Engine, m: &Migration4) -> Deployed {
    let d = deploy(kind, db);
    let path = match kind {
        Fx::Alembic => {
            let p = format!("migrations/versions/{}.py", m.alembic_name);
            d.repo.write(&p, m.alembic);
            vec![p]
        }
        Fx::Sql => {
            let (up, down) = (format!("{SQL_DIR}/{}.up.sql", m.sql_name), format!("{SQL_DIR}/{}.down.sql", m.sql_name));
            d.repo.write(&up, m.up);
            d.repo.write(&down, m.down);
            vec![up, down]
        }
    };
    let mut add = vec!["add"];
    add.extend(path.iter().map(String::as_str));
    d.repo.git(&add);
    d.repo.git(&["commit", "-q", "-m", "release v4"]);
    d.repo.git(&["tag", "v4"]);
    block_on(engine(&d).db().unwrap().unwrap().upgrade(&[])).unwrap();
    d
}

/// Releases v4 on top of the deployed v3 (migration 4 deletes refunds on its way down), runs
/// it, and records two refunds.
fn deploy_v4(kind: Fx, db: Engine) -> Deployed {
    let d = release_v4(
        kind,
        db,
        &Migration4 {
            alembic_name: "d00d4e5f6a04_refunds",
            alembic: REV4,
            sql_name: "0004_refunds",
            up: "ALTER TABLE payments ADD COLUMN refund_of INTEGER;\n",
            down: "UPDATE users SET email = lower(email);\nDELETE FROM payments WHERE amount_cents < 0;\nALTER TABLE payments DROP COLUMN refund_of;\n",
        },
    );
    let rb = engine(&d);
    sql(&rb, "INSERT INTO payments (id, amount_cents, note, refund_of) VALUES (11, -500, 'refund of 10', 10)");
    sql(&rb, "INSERT INTO payments (id, amount_cents, note, refund_of) VALUES (12, -90, 'refund: it''s late', 2)");
    sql(&rb, "UPDATE users SET email = 'Grace@Example.COM' WHERE id = 2");
    sql(&rb, "INSERT INTO users (id, name, email) VALUES (3, 'linus', 'Linus@Kernel.ORG')");
    d
}

/// The ids of `payments`, in order: `1,2,3`.
fn ids(rb: &rollback_core::Rollback, db: Engine) -> String {
    match db {
        Engine::Postgres => scalar(rb, "SELECT string_agg(id::text, ',' ORDER BY id) FROM payments"),
        Engine::Sqlite => scalar(rb, "SELECT group_concat(id, ',') FROM (SELECT id FROM payments ORDER BY id)"),
    }
    .unwrap_or_default()
}

/// `run --full --target v3`, confirmed: the outcome (it must succeed) and what the
/// confirmation showed.
fn run_to_v3(rb: &rollback_core::Rollback) -> (RunOutcome, String) {
    let keep = Keep::default();
    let out = rb.run(&full("v3"), &keep, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let summary = keep.0.lock().unwrap().clone();
    (out, summary)
}

/// The undo of `done`, confirmed: the outcome (it must succeed) and what the confirmation
/// showed.
fn undo_of(rb: &rollback_core::Rollback, done: &RunOutcome) -> (RunOutcome, String) {
    let keep = Keep::default();
    let out = rb.undo(done.run_id.as_deref().unwrap(), &keep, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let summary = keep.0.lock().unwrap().clone();
    (out, summary)
}

fn downgraded_rows_come_back_and_what_changed_since_stays(kind: Fx, db: Engine) {
    let d = deploy_v4(kind, db);
    let rb = engine(&d);

    let plan = rb.plan(Some(Level::Full), Some("v3")).unwrap();
    assert_eq!(
        plan.data_loss,
        [
            DataLoss::column("payments", "refund_of", 2),
            DataLoss::removed("payments", 2),
            DataLoss::changed("users", "email", 2)
        ],
        "the forecast counts the deleted rows and the changed values"
    );
    let forecast =
        "payments.refund_of (2 values), payments (2 rows deleted, the table stays), users.email (2 values changed)";
    assert!(plan.render().contains(forecast), "{}", plan.render());

    let (run, summary) = run_to_v3(&rb);
    assert!(summary.contains(&format!("The downgrade destroys: {forecast}")), "{summary}");
    assert_eq!(ids(&rb, db), "1,2,3,10");
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 2").as_deref(), Some("grace@example.com"));

    // Rolled back: a payment comes in, payment 10 is deleted and linus changes his address.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (13, 300, 'while rolled back')");
    sql(&rb, "DELETE FROM payments WHERE id = 10");
    sql(&rb, "UPDATE users SET email = 'linus@new.example' WHERE id = 3");

    let (undo, summary) = undo_of(&rb, &run);
    assert!(
        summary.contains(
            "put back 2 row(s) the downgrade deleted from payments, 2 value(s) of payments.refund_of, 2 value(s) of users.email the downgrade changed"
        ),
        "{summary}"
    );
    let names = steps(&undo);
    assert!(names.contains(&"upgrade_database") && names.contains(&"put_back_rows"), "{names:?}");
    // The refunds are back as they were; 13 stays; 10, deleted while rolled back, stays gone.
    assert_eq!(ids(&rb, db), "1,2,3,11,12,13");
    assert_eq!(scalar(&rb, "SELECT note FROM payments WHERE id = 12").as_deref(), Some("refund: it's late"));
    assert_eq!(scalar(&rb, "SELECT amount_cents FROM payments WHERE id = 11").as_deref(), Some("-500"));
    assert_eq!(scalar(&rb, "SELECT refund_of FROM payments WHERE id = 11").as_deref(), Some("10"));
    assert_eq!(scalar(&rb, "SELECT count(refund_of) FROM payments").as_deref(), Some("2"));
    // Grace's address as it was; linus's, changed while rolled back, as he wrote it.
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 2").as_deref(), Some("Grace@Example.COM"));
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 3").as_deref(), Some("linus@new.example"));

    // v4 breaks again: the undo of that undo goes back down, deleting the refunds again (named
    // and kept in its snapshot), and keeps what was written since.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (14, 40, 'after the undo')");
    let (again, summary) = undo_of(&rb, &undo);
    let drops =
        "payments.refund_of (2 values), payments (2 rows deleted, the table stays), users.email (1 value changed)";
    assert!(summary.contains(&format!("The downgrade drops: {drops}")), "{summary}");
    assert_eq!(ids(&rb, db), "1,2,3,13,14");

    // Rolled back again: a payment comes in; the undo of this goes forward with the refunds.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (15, 60, 'rolled back again')");
    let third = rb.undo(again.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.error);
    assert!(steps(&third).contains(&"put_back_rows"), "{:?}", steps(&third));
    assert_eq!(ids(&rb, db), "1,2,3,11,12,13,14,15");
    assert_eq!(scalar(&rb, "SELECT refund_of FROM payments WHERE id = 12").as_deref(), Some("2"));
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 2").as_deref(), Some("Grace@Example.COM"));
    assert_eq!(scalar(&rb, "SELECT email FROM users WHERE id = 3").as_deref(), Some("linus@new.example"));
}

/// A row the app wrote while rolled back under a deleted row's key, with other content: the
/// undo is refused before anything changes, naming it.
fn a_key_taken_since_is_refused_before_anything_changes(kind: Fx, db: Engine) {
    let d = deploy_v4(kind, db);
    let rb = engine(&d);
    let run = rb.run(&full("v3"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (12, 77, 'someone else')");
    let before = state(&d, &rb);
    let err = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let text = err.to_string();
    assert!(text.contains("payments: 1 row(s) exist under the same primary key with other content"), "{text}");
    assert_eq!(state(&d, &rb), before, "nothing changed");
}

/// Migration 4 books refunds differently; the older release cannot show them: its downgrade
/// books a placeholder payment per refund (under the next id), then deletes the refunds. The
/// table keeps its number of rows.
const REV4_PLACEHOLDERS: &str = r#""""refunds are booked; the old release books placeholders instead

Revision ID: d00d4e5f6a05
Revises: b84e1d2c3f03
"""
from alembic import op

revision = "d00d4e5f6a05"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("payments_by_amount", "payments", ["amount_cents"])


def downgrade():
    for _ in range(2):
        op.execute("INSERT INTO payments (id, amount_cents, note) SELECT max(id) + 1, 0, 'placeholder' FROM payments")
    op.execute("DELETE FROM payments WHERE amount_cents < 0")
    op.drop_index("payments_by_amount", table_name="payments")
"#;

const PLACEHOLDERS: Migration4 = Migration4 {
    alembic_name: "d00d4e5f6a05_placeholders",
    alembic: REV4_PLACEHOLDERS,
    sql_name: "0004_placeholders",
    up: "CREATE INDEX payments_by_amount ON payments (amount_cents);\n",
    down: "INSERT INTO payments (id, amount_cents, note) SELECT max(id) + 1, 0, 'placeholder' FROM payments;\n\
           INSERT INTO payments (id, amount_cents, note) SELECT max(id) + 1, 0, 'placeholder' FROM payments;\n\
           DELETE FROM payments WHERE amount_cents < 0;\nDROP INDEX payments_by_amount;\n",
};

/// A downgrade that deletes 2 rows and inserts 2 others leaves the row count as it was: the
/// deleted rows are still named (matched by primary key) and come back with the undo. The
/// rows it inserted stay: the undo does not take out what a downgrade inserted.
fn deleted_rows_replaced_by_as_many_are_seen(kind: Fx, db: Engine) {
    let d = release_v4(kind, db, &PLACEHOLDERS);
    let rb = engine(&d);
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (11, -500, 'refund of 10')");
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (12, -90, 'refund: it''s late')");

    let plan = rb.plan(Some(Level::Full), Some("v3")).unwrap();
    assert_eq!(plan.data_loss, [DataLoss::removed("payments", 2)], "the deleted rows, by key");
    assert_eq!(plan.data_loss[0].kind, LossKind::Removed);
    let forecast = "payments (2 rows deleted, the table stays)";
    assert!(plan.render().contains(forecast), "{}", plan.render());

    let (run, summary) = run_to_v3(&rb);
    assert!(summary.contains(&format!("The downgrade destroys: {forecast}")), "{summary}");
    assert_eq!(ids(&rb, db), "1,2,3,10,13,14", "placeholders 13 and 14 in place of the refunds");

    // Rolled back: a payment comes in, payment 10 is deleted.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (15, 300, 'while rolled back')");
    sql(&rb, "DELETE FROM payments WHERE id = 10");

    let (undo, summary) = undo_of(&rb, &run);
    assert!(summary.contains("put back 2 row(s) the downgrade deleted from payments"), "{summary}");
    assert!(steps(&undo).contains(&"put_back_rows"), "{:?}", steps(&undo));
    // The refunds are back as they were; 15 stays; 10 stays gone; the placeholders stay.
    assert_eq!(ids(&rb, db), "1,2,3,11,12,13,14,15");
    assert_eq!(scalar(&rb, "SELECT note FROM payments WHERE id = 12").as_deref(), Some("refund: it's late"));
    assert_eq!(scalar(&rb, "SELECT amount_cents FROM payments WHERE id = 11").as_deref(), Some("-500"));
    assert_eq!(scalar(&rb, "SELECT count(*) FROM payments WHERE note = 'placeholder'").as_deref(), Some("2"));

    // v4 breaks again, after a write: the undo of that undo goes back down, which deletes the
    // refunds again (named by key, kept in its snapshot) and books two more placeholders.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (16, 40, 'after the undo')");
    let (again, summary) = undo_of(&rb, &undo);
    assert!(summary.contains(&format!("The downgrade drops: {forecast}")), "{summary}");
    assert_eq!(ids(&rb, db), "1,2,3,13,14,15,16,17,18");

    // Rolled back again, a write; the undo of this puts the refunds back once more.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (19, 60, 'rolled back again')");
    let third = rb.undo(again.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.error);
    assert!(steps(&third).contains(&"put_back_rows"), "{:?}", steps(&third));
    assert_eq!(ids(&rb, db), "1,2,3,11,12,13,14,15,16,17,18,19");
    assert_eq!(scalar(&rb, "SELECT note FROM payments WHERE id = 11").as_deref(), Some("refund of 10"));
}

/// PostgreSQL: a stored generated column the downgrade drops is computed, not data: the
/// forecast does not count it (the plain column dropped with it is counted), and the undo's
/// upgrade computes it again, for the rows written while rolled back too.
#[test]
fn a_dropped_generated_column_is_no_loss_postgres() {
    let m = Migration4 {
        alembic_name: "",
        alembic: "",
        sql_name: "0004_euros",
        up: "ALTER TABLE payments ADD COLUMN currency TEXT;\n\
             ALTER TABLE payments ADD COLUMN amount_eur NUMERIC GENERATED ALWAYS AS (amount_cents / 100.0) STORED;\n",
        down: "ALTER TABLE payments DROP COLUMN amount_eur;\nALTER TABLE payments DROP COLUMN currency;\n",
    };
    let d = release_v4(Fx::Sql, Engine::Postgres, &m);
    let rb = engine(&d);
    sql(&rb, "UPDATE payments SET currency = 'EUR' WHERE id IN (1, 10)");
    assert_eq!(scalar(&rb, "SELECT count(amount_eur) FROM payments").as_deref(), Some("4"));

    let plan = rb.plan(Some(Level::Full), Some("v3")).unwrap();
    assert_eq!(plan.data_loss, [DataLoss::column("payments", "currency", 2)], "not payments.amount_eur");

    let run = rb.run(&full("v3"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (13, 300, 'while rolled back')");
    let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(steps(&undo).contains(&"put_back_rows"), "{:?}", steps(&undo));
    let computed = "SELECT count(*) FROM payments WHERE amount_eur = amount_cents / 100.0";
    assert_eq!(scalar(&rb, computed).as_deref(), Some("5"), "computed again, row 13 too");
    assert_eq!(
        scalar(&rb, "SELECT string_agg(id::text, ',' ORDER BY id) FROM payments WHERE currency = 'EUR'").as_deref(),
        Some("1,10")
    );
}

/// SQLite lets a primary key column of an ordinary table hold NULL. A row under such a key is
/// matched like any other: a downgrade that leaves its table alone deletes nothing there (the
/// forecast names no loss for it), and the undo's put-back does not insert it a second time.
#[test]
fn a_null_in_a_primary_key_is_matched_sqlite() {
    let d = deploy_v4(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    sql(&rb, "CREATE TABLE tags (owner TEXT, label TEXT, note TEXT, PRIMARY KEY (owner, label))");
    sql(&rb, "INSERT INTO tags VALUES ('ada', 'vip', 'first')");
    sql(&rb, "INSERT INTO tags VALUES (NULL, 'shared', 'nobody''s')");

    let plan = rb.plan(Some(Level::Full), Some("v3")).unwrap();
    assert_eq!(
        plan.data_loss,
        [
            DataLoss::column("payments", "refund_of", 2),
            DataLoss::removed("payments", 2),
            DataLoss::changed("users", "email", 2)
        ],
        "nothing of tags"
    );

    let run = rb.run(&full("v3"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (13, 300, 'while rolled back')");
    let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(steps(&undo).contains(&"put_back_rows"), "{:?}", steps(&undo));
    assert_eq!(ids(&rb, Engine::Sqlite), "1,2,3,10,11,12,13");
    assert_eq!(scalar(&rb, "SELECT count(*) FROM tags WHERE owner IS NULL").as_deref(), Some("1"), "one copy");
    assert_eq!(scalar(&rb, "SELECT count(*) FROM tags").as_deref(), Some("2"));
}

/// PostgreSQL: the forecast's digest tells rows apart whose key or values would read the same
/// joined with a delimiter (`('a|b', 'c')` and `('a', 'b|c')`), and a value from NULL whatever
/// its text.
#[test]
fn keys_that_read_the_same_joined_are_told_apart_postgres() {
    let m = Migration4 {
        alembic_name: "",
        alembic: "",
        sql_name: "0004_labels",
        up: "CREATE INDEX payments_by_note ON payments (note);\n",
        down: "DELETE FROM labels WHERE a = 'a|b';\nINSERT INTO labels VALUES ('a', 'b|c', 'x');\n\
               UPDATE labels SET note = NULL WHERE a = 'k';\nDROP INDEX payments_by_note;\n",
    };
    let d = release_v4(Fx::Sql, Engine::Postgres, &m);
    let rb = engine(&d);
    sql(&rb, "CREATE TABLE labels (a TEXT, b TEXT, note TEXT, PRIMARY KEY (a, b))");
    sql(&rb, "INSERT INTO labels VALUES ('a|b', 'c', 'x'), ('k', '1', '\\N-null')");

    let plan = rb.plan(Some(Level::Full), Some("v3")).unwrap();
    assert_eq!(
        plan.data_loss,
        [DataLoss::removed("labels", 1), DataLoss::changed("labels", "note", 1)],
        "('a|b', 'c') deleted, '\\N-null' made NULL"
    );
}

macro_rules! cases {
    ($($name:ident: $f:ident, $kind:expr, $db:expr;)*) => {$(
        #[test]
        fn $name() {
            $f($kind, $db);
        }
    )*};
}

cases! {
    downgraded_rows_alembic_sqlite: downgraded_rows_come_back_and_what_changed_since_stays, Fx::Alembic, Engine::Sqlite;
    downgraded_rows_alembic_postgres: downgraded_rows_come_back_and_what_changed_since_stays, Fx::Alembic, Engine::Postgres;
    downgraded_rows_sql_sqlite: downgraded_rows_come_back_and_what_changed_since_stays, Fx::Sql, Engine::Sqlite;
    downgraded_rows_sql_postgres: downgraded_rows_come_back_and_what_changed_since_stays, Fx::Sql, Engine::Postgres;
    downgraded_rows_key_taken_sqlite: a_key_taken_since_is_refused_before_anything_changes, Fx::Alembic, Engine::Sqlite;
    downgraded_rows_key_taken_postgres: a_key_taken_since_is_refused_before_anything_changes, Fx::Sql, Engine::Postgres;
    downgraded_rows_replaced_alembic_sqlite: deleted_rows_replaced_by_as_many_are_seen, Fx::Alembic, Engine::Sqlite;
    downgraded_rows_replaced_alembic_postgres: deleted_rows_replaced_by_as_many_are_seen, Fx::Alembic, Engine::Postgres;
    downgraded_rows_replaced_sql_sqlite: deleted_rows_replaced_by_as_many_are_seen, Fx::Sql, Engine::Sqlite;
    downgraded_rows_replaced_sql_postgres: deleted_rows_replaced_by_as_many_are_seen, Fx::Sql, Engine::Postgres;
}
