//! The guarded restore an undo uses when it found nothing written since its run
//! (`Database::restore_unchanged`): it puts the snapshot back only over a database whose
//! fingerprint is still the one it was given, checked under the lock it then writes under. A
//! write the app commits while the restore waits for that lock is seen, and the restore changes
//! nothing. SQLite in rollback-journal and WAL mode, and PostgreSQL; real connections, real
//! `pg_dump`/`pg_restore`, no timed assertions.

use std::path::Path;
use std::process::{Command, Stdio};

use rollback_core::db::{Database, Error, Unchanged, UrlDatabase};
use rollback_core::rt::block_on;
use rollback_testkit::db::PgDatabase;

use crate::sqlite_restore::{Snapshotted, commits_in_a_moment, snapshotted};

fn guard(expect: String) -> Unchanged {
    Unchanged { expect, since: "the test's undo began".into() }
}

/// "The downgrade" (a table dropped and made again, one row fewer) through `sql`; returns the
/// fingerprint the undo then sees.
fn downgrade(d: &UrlDatabase, sql: impl Fn(&str)) -> String {
    sql(
        "DROP TABLE users; CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO users VALUES (1, 'ada');",
    );
    block_on(d.fingerprint()).unwrap()
}

/// The seeded SQLite database of `sqlite_restore`, snapshotted, then downgraded; with the
/// fingerprint the undo saw.
fn sqlite_downgraded(wal: bool) -> (Snapshotted, String) {
    let s = snapshotted(wal, 60);
    let seen = downgrade(&s.d, sqlite_exec(&s.path));
    (s, seen)
}

fn sqlite_exec(path: &Path) -> impl Fn(&str) + '_ {
    move |sql| rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap()
}

fn assert_changed_since(err: &Error, d: &UrlDatabase) {
    assert!(matches!(err, Error::ChangedSince { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "database `{}` was written to since the test's undo began: restoring the snapshot now would overwrite those writes; nothing was restored",
            d.describe()
        )
    );
}

fn sqlite_restores_over_an_unchanged_database_and_refuses_a_changed_one(wal: bool) {
    let (Snapshotted { dir: _dir, path, d, snap, info, before }, seen) = sqlite_downgraded(wal);

    // Written since: refused, the row stays.
    sqlite_exec(&path)("INSERT INTO users VALUES (7, 'written while rolled back')");
    let written = block_on(d.canonical_dump()).unwrap();
    let err = block_on(d.restore_unchanged(&snap, &info, &guard(seen.clone()))).unwrap_err();
    assert_changed_since(&err, &d);
    assert_eq!(block_on(d.canonical_dump()).unwrap(), written, "nothing was restored");

    // Unchanged since: the snapshot goes back exactly.
    let now = block_on(d.fingerprint()).unwrap();
    block_on(d.restore_unchanged(&snap, &info, &guard(now))).unwrap();
    assert_eq!(block_on(d.canonical_dump()).unwrap(), before);
}

#[test]
fn sqlite_restores_over_an_unchanged_database_and_refuses_a_changed_one_journal() {
    sqlite_restores_over_an_unchanged_database_and_refuses_a_changed_one(false);
}

#[test]
fn sqlite_restores_over_an_unchanged_database_and_refuses_a_changed_one_wal() {
    sqlite_restores_over_an_unchanged_database_and_refuses_a_changed_one(true);
}

/// The app holds the write lock with an uncommitted insert when the restore starts, and
/// commits a moment later. A check made before taking the lock would see the old rows, pass,
/// and the restore would then overwrite the committed row; made under the lock, it sees it.
fn sqlite_a_write_committed_while_the_restore_waits_is_kept(wal: bool) {
    let (Snapshotted { dir: _dir, path, d, snap, info, .. }, seen) = sqlite_downgraded(wal);
    let app = commits_in_a_moment(&path, "INSERT INTO users VALUES (9, 'paid')");
    let restored = block_on(d.restore_unchanged(&snap, &info, &guard(seen)));
    app.join().unwrap().1.expect("the app's transaction commits");
    assert_changed_since(&restored.unwrap_err(), &d);
    let c = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(i64, String)> = c
        .prepare("SELECT id, name FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows, vec![(1, "ada".to_owned()), (9, "paid".to_owned())], "the app's row is kept");
}

#[test]
fn sqlite_a_write_committed_while_the_restore_waits_is_kept_journal() {
    sqlite_a_write_committed_while_the_restore_waits_is_kept(false);
}

#[test]
fn sqlite_a_write_committed_while_the_restore_waits_is_kept_wal() {
    sqlite_a_write_committed_while_the_restore_waits_is_kept(true);
}

#[test]
fn sqlite_a_deleted_database_file_counts_as_changed() {
    let (Snapshotted { dir: _dir, path, d, snap, info, .. }, seen) = sqlite_downgraded(false);
    std::fs::remove_file(&path).unwrap();
    let err = block_on(d.restore_unchanged(&snap, &info, &guard(seen))).unwrap_err();
    assert_changed_since(&err, &d);
    assert!(!path.exists(), "nothing was written");
}

/// `psql` on `pg`'s database with `script` on stdin, in the background.
fn psql_in_background(pg: &PgDatabase, script: &str) -> std::process::Child {
    let s = pg.server();
    let mut child = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .env("PGHOST", &s.host)
        .env("PGPORT", s.port.to_string())
        .env("PGUSER", &s.user)
        .env("PGPASSWORD", &s.password)
        .env("PGDATABASE", pg.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    child
}

#[test]
fn postgres_a_write_committed_while_the_restore_waits_is_kept_and_an_unchanged_database_is_restored() {
    let pg = PgDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    pg.psql(
        "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);
         INSERT INTO users VALUES (1, 'ada'), (2, 'grace');",
    );
    let d = crate::db::database(&pg.url(), dir.path(), &crate::db::real_pg_dump());
    let before = block_on(d.canonical_dump()).unwrap();
    let snap = dir.path().join("db.snapshot");
    let info = block_on(d.snapshot(&snap)).unwrap();
    let seen = downgrade(&d, |sql| {
        pg.psql(sql);
    });

    // The app's transaction has inserted (it holds a row lock on the table) and commits half a
    // second later; the restore starts in between.
    let inserted = dir.path().join("inserted");
    let app = psql_in_background(
        &pg,
        &format!(
            "BEGIN;\nINSERT INTO users VALUES (9, 'paid');\n\\! touch {}\nSELECT pg_sleep(0.5);\nCOMMIT;\n",
            inserted.display()
        ),
    );
    let start = std::time::Instant::now();
    while !inserted.exists() {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the app's insert never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let restored = block_on(d.restore_unchanged(&snap, &info, &guard(seen)));
    let out = app.wait_with_output().unwrap();
    assert!(out.status.success(), "the app's transaction commits: {}", String::from_utf8_lossy(&out.stderr));
    assert_changed_since(&restored.unwrap_err(), &d);
    assert_eq!(pg.psql("SELECT id, name FROM users ORDER BY id"), "1|ada\n9|paid", "the app's row is kept");

    // Unchanged since: the snapshot goes back exactly.
    let now = block_on(d.fingerprint()).unwrap();
    block_on(d.restore_unchanged(&snap, &info, &guard(now))).unwrap();
    assert_eq!(block_on(d.canonical_dump()).unwrap(), before);
}
