//! A migration process killed inside its transaction on SQLite (the OOM killer, an operator's
//! `kill -9` of the python) leaves a hot journal, `app.db-journal`, which SQLite rolls back on
//! the next connection that can write. forge-rollback reads the database read-only first (the
//! ping, the dump); a read-only connection cannot roll it back and read nothing, so the run's
//! own restore, then every `resume` and `undo`, failed as "unreachable ... check the URL and
//! credentials". Real Alembic on a real SQLite file, through the binary.

use std::path::Path;

use rollback_testkit::db::Engine;

use crate::common::fr;
use crate::rows_sqlite_exact::Deployed;

/// v4 over the Alembic fixture: a table, dropped again by its downgrade. While `die` exists
/// in `switches`, the downgrade on the live database (not the forecast's copy, not the SQL
/// preview) writes enough to spill pages into the database file, then kills its own process
/// inside the transaction, and forge-rollback's too when `die-with-parent` exists.
fn killed_downgrade(switches: &Path) -> String {
    let dir = switches.display();
    format!(
        r#"from alembic import context, op
import os, signal
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("audit", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("audit")
    live = not context.is_offline_mode() and "forge_rollback_scratch" not in str(op.get_bind().engine.url)
    if live and os.path.exists("{dir}/die"):
        op.execute("PRAGMA cache_size = 2")
        op.execute("UPDATE users SET name = name || ' (half-way)'")
        op.execute(
            "CREATE TABLE junk AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) "
            "SELECT x, randomblob(500) AS b FROM c"
        )
        if os.path.exists("{dir}/die-with-parent"):
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
"#
    )
}

fn deployed(switches: &Path) -> Deployed {
    let d = Deployed::new(Engine::Sqlite, &killed_downgrade(switches));
    d.sql("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'linus')");
    d
}

fn run_id(out: &crate::common::Out) -> String {
    out.json()["run_id"].as_str().unwrap_or_else(|| panic!("no run id: {}\n{}", out.stdout, out.stderr)).to_owned()
}

/// The run restores the database from its snapshot itself; its undo gives back every row.
#[test]
fn sqlite_hot_journal_of_a_killed_migration_is_rolled_back_by_the_run() {
    let switches = tempfile::tempdir().unwrap();
    let d = deployed(switches.path());
    let before = d.dump();
    std::fs::write(switches.path().join("die"), "").unwrap();

    let run = fr(&d.repo, &["run", "--full", "--yes", "--target", "v3", "--json"]);
    run.code(1);
    assert!(run.stderr.contains("killed by a signal"), "the migration was killed:\n{}", run.stderr);
    assert!(run.stderr.contains("the database was restored from backup"), "the run restored it:\n{}", run.stderr);
    assert!(!run.stderr.contains("unreachable"), "{}", run.stderr);
    std::fs::remove_file(switches.path().join("die")).unwrap();
    assert_eq!(d.dump(), before, "restored: nothing of the killed transaction, the snapshot's state");

    fr(&d.repo, &["undo", &run_id(&run), "--yes"]).ok();
    assert_eq!(d.dump(), before);
}

/// forge-rollback killed with its migration: `resume` rolls the journal back, restores the
/// snapshot and downgrades again; `undo` then gives back every row.
#[test]
fn sqlite_hot_journal_of_a_killed_run_is_rolled_back_by_resume() {
    let switches = tempfile::tempdir().unwrap();
    let d = deployed(switches.path());
    let before = d.dump();
    std::fs::write(switches.path().join("die"), "").unwrap();
    std::fs::write(switches.path().join("die-with-parent"), "").unwrap();

    let run = fr(&d.repo, &["run", "--full", "--yes", "--target", "v3", "--json"]);
    assert_eq!(run.code, None, "killed with its migration:\n{}", run.stderr);
    std::fs::remove_file(switches.path().join("die")).unwrap();
    let runs = fr(&d.repo, &["runs", "list", "--json"]);
    let id = runs.json()[0]["run_id"].as_str().unwrap().to_owned();

    let resume = fr(&d.repo, &["resume", &id, "--yes", "--json"]);
    resume.ok();
    assert_eq!(resume.json()["status"], "succeeded", "{}", resume.stderr);
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some("b84e1d2c3f03"));
    assert_eq!(d.sql("SELECT count(*) FROM sqlite_master WHERE name = 'junk'").as_deref(), Some("0"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 1").as_deref(), Some("ada"));

    fr(&d.repo, &["undo", &id, "--yes"]).ok();
    assert_eq!(d.dump(), before);
}
