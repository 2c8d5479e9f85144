//! Rows the app commits while an undo runs: the undo chose to restore the run's database
//! snapshot exactly (nothing had been written since the run), and a row lands before its
//! `restore_database`. The restore checks, under the lock it writes under, that the database
//! is still as the undo found it: the row is never overwritten. The undo fails having changed
//! nothing, and undoing the run again keeps the row (schema brought forward, dropped data put
//! back). While the restore holds its lock, the app's writers wait. Native SQL migrator on a
//! real SQLite file in rollback-journal and in WAL mode, through the binary.

use std::time::Duration;

use crate::common::{Background, fr_env, journal};
use crate::crash_full::{deployed, env, state};
use crate::full::sqlite;
use crate::lock::paused_at;
use rollback_testkit::TestRepo;

/// `undo RUN --yes [extra]` in the background, paused at failpoint `point` once its journal has
/// begun step `step`; returns it and the file that releases it.
fn undo_paused(
    r: &TestRepo,
    run_id: &str,
    extra: &[&str],
    point: &str,
    step: &str,
) -> (Background, std::path::PathBuf) {
    paused_at(r, &[&["undo", run_id, "--yes"][..], extra].concat(), &env(), point, step)
}

/// The ids of the runs in the state folder but `known`.
fn other_runs(r: &TestRepo, known: &[&str]) -> Vec<String> {
    std::fs::read_dir(r.path().join(".git/forge-rollback/runs"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|run| !known.contains(&run.as_str()))
        .collect()
}

/// The deployed app's database in WAL mode (it stays so through snapshots and restores).
fn in_wal_mode(r: &TestRepo) {
    let c = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

/// A full rollback of the deployed v3 to v1; returns its run id.
fn rolled_back(r: &TestRepo) -> String {
    let run = fr_env(r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    run.json()["run_id"].as_str().unwrap().to_owned()
}

fn a_row_written_while_an_undo_runs_is_never_overwritten_and_undoing_again_keeps_it(wal: bool) {
    let r = deployed();
    if wal {
        in_wal_mode(&r);
    }
    let payments = sqlite(&r, "SELECT id, amount_cents FROM payments");
    let id = rolled_back(&r);
    let v1 = r.head();

    // The undo found nothing written since the run and chose the exact restore; it has taken
    // its snapshots. The app writes now.
    let (undo, release) = undo_paused(&r, &id, &[], "before:restore_database", "restore_database");
    sqlite(&r, "INSERT INTO users (id, name) VALUES (7, 'signed up during the undo')");
    let written = state(&r);
    std::fs::write(&release, "").unwrap();
    let out = undo.wait(Duration::from_secs(120));
    out.code(1);
    assert!(
        out.stderr.contains("was written to since this undo of run")
            && out.stderr.contains("restoring the snapshot now would overwrite those writes; nothing was restored"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("forge-rollback undo {id}")), "the way on is named:\n{}", out.stderr);
    assert_eq!(state(&r), written, "the failed undo changed nothing: files, HEAD and every row");
    assert_eq!(r.head(), v1);

    // Undoing the run again takes the failed undo's place, sees the row and keeps it.
    let again = fr_env(&r, &["undo", &id, "--yes", "--json"], &env());
    again.ok();
    assert!(again.stderr.contains("failed having changed nothing; this undo takes its place"), "{}", again.stderr);
    let steps: Vec<String> = again.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(steps.contains(&"upgrade_database".to_owned()) && steps.contains(&"put_back_rows".to_owned()), "{steps:?}");
    assert_eq!(
        sqlite(&r, "SELECT id, name FROM users WHERE id = 7"),
        "[(7, 'signed up during the undo')]\n",
        "the row written during the first undo is kept"
    );
    assert_eq!(sqlite(&r, "SELECT id, amount_cents FROM payments"), payments, "the dropped table is back");
    let [failed] = other_runs(&r, &[&id, again.json()["run_id"].as_str().unwrap()]).try_into().unwrap();
    let records = journal(&r, &failed);
    assert!(records.iter().any(|rec| rec["record"] == "step_failed"), "{records:?}");
    assert_eq!(records.last().unwrap()["by"], "nothing-changed", "the failed undo is closed");
}

#[test]
fn a_row_written_while_an_undo_runs_is_never_overwritten_and_undoing_again_keeps_it_journal() {
    a_row_written_while_an_undo_runs_is_never_overwritten_and_undoing_again_keeps_it(false);
}

#[test]
fn a_row_written_while_an_undo_runs_is_never_overwritten_and_undoing_again_keeps_it_wal() {
    a_row_written_while_an_undo_runs_is_never_overwritten_and_undoing_again_keeps_it(true);
}

fn the_exact_restore_holds_the_write_lock_from_its_check_to_its_commit(wal: bool) {
    let r = deployed();
    if wal {
        in_wal_mode(&r);
    }
    let before = state(&r);
    let id = rolled_back(&r);

    // Paused inside the restore, after its check: the app reads, its writes wait.
    let (undo, release) = undo_paused(&r, &id, &[], "inside:restore_database", "restore_database");
    // A writer that takes the write lock and lets it go, changing nothing (a write that got
    // in before the restore's check would make the undo refuse instead).
    let app_write_lock = || {
        let c = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
        c.busy_timeout(Duration::ZERO).unwrap();
        c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
    };
    crate::common::wait_until(
        "the restore to hold the write lock",
        Duration::from_secs(60),
        || matches!(app_write_lock(), Err(e) if e.to_string().contains("locked")),
    );
    let c = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
    c.busy_timeout(Duration::ZERO).unwrap();
    let read: rusqlite::Result<i64> = c.query_row("SELECT count(*) FROM users", [], |row| row.get(0));
    assert!(read.is_ok(), "readers go on reading: {read:?}");
    drop(c);
    std::fs::write(&release, "").unwrap();
    undo.wait(Duration::from_secs(120)).ok();
    assert_eq!(state(&r), before, "the snapshot is back exactly");
    app_write_lock().expect("once the restore is committed, the app writes again");
}

#[test]
fn the_exact_restore_holds_the_write_lock_from_its_check_to_its_commit_journal() {
    the_exact_restore_holds_the_write_lock_from_its_check_to_its_commit(false);
}

#[test]
fn the_exact_restore_holds_the_write_lock_from_its_check_to_its_commit_wal() {
    the_exact_restore_holds_the_write_lock_from_its_check_to_its_commit(true);
}

/// The app holds the write lock (a long transaction) for all of the restore's wait: the undo
/// fails as locked having changed nothing, and once the app lets go, undoing the run again
/// takes the failed undo's place and restores the snapshot.
#[test]
fn an_undo_whose_restore_waited_out_the_apps_lock_changed_nothing_and_undoing_again_takes_its_place() {
    let r = deployed();
    let config = r.path().join("forge-rollback.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("timeout_secs = 2\n");
    std::fs::write(&config, toml).unwrap();
    let before = state(&r);
    let id = rolled_back(&r);
    let rolled = state(&r);

    let (undo, release) = undo_paused(&r, &id, &[], "before:restore_database", "restore_database");
    let app = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
    app.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(&release, "").unwrap();
    let out = undo.wait(Duration::from_secs(120));
    out.code(1);
    assert!(
        out.stderr.contains("is locked by another connection") && out.stderr.contains("this undo changed nothing"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("forge-rollback undo {id}` again")), "the way on is named:\n{}", out.stderr);
    app.execute_batch("ROLLBACK").unwrap();
    drop(app);
    assert_eq!(state(&r), rolled, "the failed undo changed nothing");

    let again = fr_env(&r, &["undo", &id, "--yes", "--json"], &env());
    again.ok();
    assert!(again.stderr.contains("failed having changed nothing; this undo takes its place"), "{}", again.stderr);
    assert_eq!(state(&r), before, "the snapshot is back exactly");
}

/// `--restore-snapshot` restores the run's snapshot although rows were written since, after
/// keeping the database in a file: a row written after that file was made is in no backup, so
/// the restore refuses it the same way; `resume` dumps again (the row with it) and restores.
#[test]
fn restore_snapshot_refuses_a_row_written_after_its_own_dump_and_resume_keeps_it_in_the_dump() {
    let r = deployed();
    let before = state(&r);
    let id = rolled_back(&r);
    sqlite(&r, "INSERT INTO users (id, name) VALUES (5, 'written while rolled back')");

    let (undo, release) = undo_paused(&r, &id, &["--restore-snapshot"], "before:restore_database", "restore_database");
    sqlite(&r, "INSERT INTO users (id, name) VALUES (6, 'written during the undo')");
    let written = state(&r);
    std::fs::write(&release, "").unwrap();
    let out = undo.wait(Duration::from_secs(120));
    out.code(1);
    assert!(out.stderr.contains("was written to since this undo dumped it (backup"), "{}", out.stderr);
    assert!(out.stderr.contains("forge-rollback resume"), "the way on is named:\n{}", out.stderr);
    assert_eq!(state(&r), written, "nothing changed");

    let [undo_id] = other_runs(&r, &[&id]).try_into().unwrap();
    fr_env(&r, &["resume", &undo_id, "--yes"], &env()).ok();
    assert_eq!(state(&r), before, "the snapshot is back exactly");
    let kept = std::fs::read_dir(r.path().join(".git/forge-rollback/dumps"))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| p.to_string_lossy().contains(&undo_id))
        .expect("the kept database");
    let c = rusqlite::Connection::open(&kept).unwrap();
    let names: Vec<String> = c
        .prepare("SELECT name FROM users WHERE id IN (5, 6) ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(names, ["written while rolled back", "written during the undo"], "both rows are in the kept file");
}
