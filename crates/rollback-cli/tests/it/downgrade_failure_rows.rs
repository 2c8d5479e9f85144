//! Rows the app commits while a full rollback's downgrade runs, when the downgrade fails or is
//! killed half-way on SQLite (Alembic: DDL commits at once, so the database is neither the
//! snapshot's nor the target's) and the database snapshot is restored: they are put back into
//! the restored database, and what cannot be put back without overwriting is named, with the
//! file that holds it. Real Alembic on SQLite, through the binary.

use std::time::Duration;

use rollback_testkit::db::Engine;

use crate::common::{Background, fr, state_dir, wait_until};
use crate::rows_sqlite_exact::Deployed;

/// v4 over the Alembic fixture: a table `audit` whose downgrade drops it (committed at once on
/// SQLite), writes Alembic's pid to `alembic.pid`, waits for the test to write `app.wrote`
/// (the app's writes are done), then ends with `tail`. Runs straight through when `go` exists
/// (the migration fixed) and on the plan's offline SQL and scratch copies.
fn v4(tail: &str) -> String {
    format!(
        r#"from alembic import context, op
import os, time
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("audit", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("what", sa.String(50)))


def downgrade():
    op.drop_table("audit")
    if context.is_offline_mode() or "forge_rollback_scratch" in str(op.get_bind().engine.url):
        return
    if os.path.exists("go"):
        return
    with open("alembic.pid.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("alembic.pid.tmp", "alembic.pid")
    for _ in range(6000):
        if os.path.exists("app.wrote"):
            break
        time.sleep(0.05)
{tail}
"#
    )
}

/// The downgrade fails after the app wrote.
const FAILS: &str = r#"    raise RuntimeError("boom: the downgrade failed half-way")"#;
/// The downgrade goes on until it is killed.
const HANGS: &str = "    time.sleep(300)";

const V4: &str = "e4e4e4e4e404";
const V3: &str = "b84e1d2c3f03";

/// Alembic's pid, once its downgrade has dropped `audit`.
fn alembic_pid(d: &Deployed) -> i32 {
    let file = d.repo.path().join("alembic.pid");
    wait_until("Alembic to begin the downgrade", Duration::from_secs(120), || file.exists());
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn has_audit(d: &Deployed) -> bool {
    d.sql("SELECT count(*) FROM sqlite_master WHERE name = 'audit'").as_deref() == Some("1")
}

/// v4 deployed with a user and an audit row; a full run to v3 started in the background,
/// stopped inside its downgrade after `audit` was dropped.
fn downgrading(tail: &str) -> (Deployed, Background) {
    let d = Deployed::new(Engine::Sqlite, &v4(tail));
    d.sql("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com')");
    d.sql("INSERT INTO audit (id, what) VALUES (1, 'deploy')");
    let run = Background::spawn(d.repo.path(), &["run", "--full", "--yes", "--target", "v3", "--json"], &[]);
    alembic_pid(&d);
    assert!(!has_audit(&d), "the downgrade's DDL is committed already");
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some(V4), "its version row is not");
    (d, run)
}

/// A full run killed (`kill -9`) while Alembic's downgrade hangs after dropping `audit`, and
/// Alembic gone with it: the deployment and the run's id.
fn killed_half_way() -> (Deployed, String) {
    let (d, run) = downgrading(HANGS);
    let alembic = alembic_pid(&d);
    run.kill_9();
    assert_eq!(run.wait(Duration::from_secs(30)).code, None, "killed by the signal");
    wait_until("Alembic to die with forge-rollback", Duration::from_secs(60), || !alive(alembic));
    let list = fr(&d.repo, &["runs", "list", "--json"]).json();
    let id = list[0]["run_id"].as_str().unwrap().to_owned();
    (d, id)
}

#[test]
fn a_row_committed_during_a_failed_downgrade_is_put_back_after_the_restore() {
    let (d, run) = downgrading(FAILS);
    d.sql("INSERT INTO users (id, name, email) VALUES (2, 'signup during the downgrade', 'b@example.com')");
    std::fs::write(d.repo.path().join("app.wrote"), "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    assert_eq!(out.code, Some(1), "the downgrade failed:\n{}", out.stderr);
    assert!(has_audit(&d), "the snapshot was restored");
    assert_eq!(d.sql("SELECT what FROM audit WHERE id = 1").as_deref(), Some("deploy"));
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some(V4));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 2").as_deref(), Some("signup during the downgrade"));
    assert!(out.stderr.contains("1 row(s) written while the downgrade ran put back: users (1 row)"), "{}", out.stderr);
    assert_eq!(d.sql("SELECT count(*) FROM users").as_deref(), Some("2"));

    // The failed run changed nothing: its undo leaves the row where it is.
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    fr(&d.repo, &["undo", &id, "--yes"]).ok();
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 2").as_deref(), Some("signup during the downgrade"));
    assert_eq!(d.sql("SELECT what FROM audit WHERE id = 1").as_deref(), Some("deploy"));
}

#[test]
fn a_row_updated_during_a_failed_downgrade_is_named_with_the_file_that_holds_it() {
    let (d, run) = downgrading(FAILS);
    d.sql("UPDATE users SET name = 'ada lovelace' WHERE id = 1");
    d.sql("INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    std::fs::write(d.repo.path().join("app.wrote"), "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    assert_eq!(out.code, Some(1), "the downgrade failed:\n{}", out.stderr);
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    // Insert-only: the restored row stays, the update is named and kept in a file.
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 1").as_deref(), Some("ada"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 2").as_deref(), Some("grace"));
    let file = state_dir(&d.repo).join("dumps").join(format!("{id}-before-restore.db"));
    let stderr = out.stderr.replace('\n', " ");
    assert!(
        stderr.contains(
            "1 row(s) NOT put back: users (1 row: their primary key is in the restored database with other content)"
        ),
        "{}",
        out.stderr
    );
    assert!(stderr.contains(&file.display().to_string()), "the file is named:\n{}", out.stderr);
    let kept = rusqlite::Connection::open(&file).unwrap();
    let name: String = kept.query_row("SELECT name FROM users WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "ada lovelace", "the file holds the database as it was before the restore");
}

#[test]
fn a_downgrade_killed_half_way_resumes_from_the_snapshot_keeping_rows_written_since() {
    let (d, id) = killed_half_way();
    // The app signs a user up on the half-downgraded database; the migration is fixed.
    d.sql("INSERT INTO users (id, name, email) VALUES (2, 'signup after the crash', 'new@example.com')");
    std::fs::write(d.repo.path().join("go"), "").unwrap();

    let out = fr(&d.repo, &["resume", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert!(out.stderr.contains("restoring the backup before downgrading again"), "{}", out.stderr);
    assert!(out.stderr.contains("1 row(s) written while the downgrade ran put back: users (1 row)"), "{}", out.stderr);
    assert!(!has_audit(&d), "downgraded");
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some(V3));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 2").as_deref(), Some("signup after the crash"));

    // Its undo brings the dropped table's rows back and keeps the row written since.
    let undo = fr(&d.repo, &["undo", &id, "--yes"]);
    undo.ok();
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some(V4), "{}", undo.stderr);
    assert_eq!(d.sql("SELECT what FROM audit WHERE id = 1").as_deref(), Some("deploy"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 2").as_deref(), Some("signup after the crash"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 1").as_deref(), Some("ada"));
}

/// v5 over [`v4`]: a table `notes`; its downgrade is a data migration that also writes a row
/// into `users`, then drops `notes`.
const V5: &str = r#"from alembic import op
import sqlalchemy as sa

revision = "f5f5f5f5f505"
down_revision = "e4e4e4e4e404"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("text", sa.Text()))


def downgrade():
    op.execute("INSERT INTO users (id, name) VALUES (99, 'moved back by the v5 downgrade')")
    op.drop_table("notes")
"#;

/// A downgrade of two migrations: the first completes (a data migration writing `users`), the
/// second fails after the app wrote to `users` and `payments`. The completed part is run
/// again on a copy of the snapshot: `users` is one of the tables it writes, so its new rows
/// are not put back (they may be the migration's) but named with the file; the app's payment
/// is put back.
fn rows_of_tables_a_completed_migration_writes_are_held_back(engine: Engine) {
    let d = Deployed::new(engine, &v4(FAILS));
    d.repo.write("migrations/versions/f5f5f5f5f505_v5.py", V5);
    d.repo.commit_all("release v5");
    let config = std::fs::read_to_string(d.repo.path().join("forge-rollback.toml")).unwrap();
    let url = config.lines().find_map(|l| l.strip_prefix("url = \"")).unwrap().trim_end_matches('"');
    let url = url.replace("sqlite:///app.db", &format!("sqlite:///{}", d.repo.path().join("app.db").display()));
    let up = std::process::Command::new(rollback_testkit::db::python())
        .args(["-m", "alembic", "upgrade", "heads"])
        .env("DATABASE_URL", url)
        .current_dir(d.repo.path())
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    d.sql("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com')");
    let run = Background::spawn(d.repo.path(), &["run", "--full", "--yes", "--target", "v3", "--json"], &[]);
    alembic_pid(&d);
    d.sql("INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    d.sql("INSERT INTO payments (id, amount_cents, note) VALUES (10, 4200, 'paid during the downgrade')");
    std::fs::write(d.repo.path().join("app.wrote"), "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    assert_eq!(out.code, Some(1), "the downgrade failed:\n{}", out.stderr);
    let id = out.json()["run_id"].as_str().unwrap().to_owned();

    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some("f5f5f5f5f505"), "restored");
    assert_eq!(d.sql("SELECT note FROM payments WHERE id = 10").as_deref(), Some("paid during the downgrade"));
    assert_eq!(d.sql("SELECT count(*) FROM users WHERE id IN (2, 99)").as_deref(), Some("0"), "held back");
    let stderr = out.stderr.replace('\n', " ");
    assert!(stderr.contains("put back: payments (1 row)"), "{}", out.stderr);
    assert!(
        stderr.contains(
            "2 row(s) NOT put back: users (2 rows: the part of the downgrade that completed writes rows to it)"
        ),
        "{}",
        out.stderr
    );
    let ext = if engine == Engine::Sqlite { "db" } else { "dump" };
    let file = state_dir(&d.repo).join("dumps").join(format!("{id}-before-restore.{ext}"));
    assert!(stderr.contains(&file.display().to_string()), "the file is named:\n{}", out.stderr);
    assert!(file.is_file(), "{}", file.display());
    if engine == Engine::Sqlite {
        let kept = rusqlite::Connection::open(&file).unwrap();
        let name: String = kept.query_row("SELECT name FROM users WHERE id = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(name, "grace");
    }
}

#[test]
fn sqlite_rows_of_tables_a_completed_migration_writes_are_named_not_put_back() {
    rows_of_tables_a_completed_migration_writes_are_held_back(Engine::Sqlite);
}

#[test]
fn postgres_rows_of_tables_a_completed_migration_writes_are_named_not_put_back() {
    rows_of_tables_a_completed_migration_writes_are_held_back(Engine::Postgres);
}

/// Killed half-way through a migration that is not atomic on SQLite (Alembic: the table is
/// dropped, the version row not moved yet), then undone straight away after the app wrote: what
/// the migration under way had changed cannot be told, so the undo restores the snapshot
/// exactly (the dropped table's rows come back) and the app's row stays only in the undo's own
/// database snapshot. `resume` is the way that keeps both.
#[test]
fn the_undo_of_a_non_atomic_downgrade_killed_half_way_restores_the_snapshot_exactly() {
    let (d, id) = killed_half_way();
    d.sql("INSERT INTO users (id, name, email) VALUES (2, 'signup after the crash', 'new@example.com')");
    let undo = fr(&d.repo, &["undo", &id, "--yes"]);
    undo.ok();
    assert!(undo.stderr.contains("Restoring database"), "{}", undo.stderr);
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some(V4), "{}", undo.stderr);
    assert_eq!(d.sql("SELECT what FROM audit WHERE id = 1").as_deref(), Some("deploy"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 2"), None, "kept only in the undo's snapshot");
}
