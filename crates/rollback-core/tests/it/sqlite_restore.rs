//! Restoring a SQLite snapshot into a database the app is using: through SQLite's own locks
//! and journal, so an open write transaction is waited for (then reported as locked, nothing
//! changed), connections opened before the restore read the restored rows and write on, and a
//! WAL-mode database comes back exact and stays in WAL mode. Real files, real connections, no
//! timed assertions: only outcomes are checked.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rollback_core::db::url::DbUrl;
use rollback_core::db::{DbDump, Error, UrlDatabase};
use rollback_core::rt::block_on;
use rollback_core::secret::Secret;

/// `app.db` in `dir`, through the public database type, with `timeout_secs`.
fn database(dir: &Path, timeout_secs: u64) -> UrlDatabase {
    let url = DbUrl::parse(&Secret::new("sqlite:///app.db"), dir).unwrap();
    UrlDatabase::new(url, timeout_secs, "pg_dump".into(), "pg_restore".into())
}

/// A database with two users and header pragmas set; `wal` puts it in WAL mode.
fn seed(dir: &Path, wal: bool) -> PathBuf {
    let path = dir.join("app.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    if wal {
        let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }
    c.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE INDEX users_name ON users (name);
         INSERT INTO users VALUES (1, 'ada'), (2, 'grace');
         PRAGMA user_version = 7;
         PRAGMA application_id = 4242;",
    )
    .unwrap();
    path
}

/// What the app does after the snapshot: rows change, a table appears, the header changes.
fn change(c: &rusqlite::Connection) {
    c.execute_batch(
        "UPDATE users SET name = 'changed' WHERE id = 1;
         DELETE FROM users WHERE id = 2;
         INSERT INTO users VALUES (3, 'new');
         CREATE TABLE scratch (x INTEGER);
         PRAGMA user_version = 8;
         PRAGMA application_id = 99;",
    )
    .unwrap();
}

fn names(c: &rusqlite::Connection) -> Vec<(i64, String)> {
    let mut stmt = c.prepare("SELECT id, name FROM users ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

fn header(c: &rusqlite::Connection) -> (i64, i64) {
    let uv = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let app = c.query_row("PRAGMA application_id", [], |r| r.get(0)).unwrap();
    (uv, app)
}

/// A seeded database (`wal`: in WAL mode), opened with `timeout_secs`, and its snapshot.
pub(crate) struct Snapshotted {
    pub dir: tempfile::TempDir,
    /// `app.db`.
    pub path: PathBuf,
    pub d: UrlDatabase,
    /// The snapshot file.
    pub snap: PathBuf,
    pub info: DbDump,
    /// The canonical dump when the snapshot was taken.
    pub before: String,
}

/// The app, on a thread: holds the write lock with `insert` not yet committed when this
/// returns, and commits 300 ms later; joining gives its connection and the commit's result.
pub(crate) fn commits_in_a_moment(
    path: &Path,
    insert: &'static str,
) -> std::thread::JoinHandle<(rusqlite::Connection, rusqlite::Result<()>)> {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let path = path.to_owned();
    let app = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(&format!("BEGIN IMMEDIATE; {insert};")).unwrap();
        held_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let committed = c.execute_batch("COMMIT");
        (c, committed)
    });
    held_rx.recv().unwrap();
    app
}

pub(crate) fn snapshotted(wal: bool, timeout_secs: u64) -> Snapshotted {
    let dir = tempfile::tempdir().unwrap();
    let path = seed(dir.path(), wal);
    let d = database(dir.path(), timeout_secs);
    let snap = dir.path().join("db.snapshot");
    let info = block_on(d.snapshot(&snap)).unwrap();
    let before = block_on(d.canonical_dump()).unwrap();
    Snapshotted { dir, path, d, snap, info, before }
}

fn seeded_rows() -> Vec<(i64, String)> {
    vec![(1, "ada".into()), (2, "grace".into())]
}

/// The app's connection `app`, open across the restore, reads the snapshot's rows and header
/// and writes on; a connection opened now at `path` sees its row.
fn reads_the_snapshot_and_writes_on(app: &rusqlite::Connection, path: &Path) {
    assert_eq!(names(app), seeded_rows(), "the app's connection reads the restored database");
    assert_eq!(header(app), (7, 4242));
    app.execute("INSERT INTO users VALUES (4, 'after')", []).unwrap();
    let fresh = rusqlite::Connection::open(path).unwrap();
    assert_eq!(names(&fresh), [seeded_rows(), vec![(4, "after".into())]].concat());
}

#[test]
fn a_connection_opened_before_the_restore_reads_the_restored_rows_and_writes_on() {
    let Snapshotted { dir: _dir, path, d, snap, info, before } = snapshotted(false, 10);
    block_on(async {
        // The app's connection, open across the restore.
        let app = rusqlite::Connection::open(&path).unwrap();
        change(&app);
        assert_ne!(d.canonical_dump().await.unwrap(), before);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let ino = std::fs::metadata(&path).unwrap().ino();

        d.restore(&snap, &info).await.unwrap();
        assert_eq!(d.canonical_dump().await.unwrap(), before, "the restore is exact");

        // The app's connection sees the restored database, not the file it opened, and
        // writes into it, where every other connection sees the row.
        reads_the_snapshot_and_writes_on(&app, &path);
        assert!(app.prepare("SELECT * FROM scratch").is_err(), "a table made after the snapshot is gone");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.ino(), meta.mode() & 0o7777), (ino, 0o640), "the same file, with its mode");
        assert!(d.canonical_dump().await.unwrap().contains("(4, 'after')"));
    });
}

#[test]
fn an_open_write_transaction_is_waited_for_and_reported_as_locked_changing_nothing() {
    // One second: the whole wait, then the lock is reported.
    let Snapshotted { dir: _dir, path, d, snap, info, .. } = snapshotted(false, 1);
    block_on(async {
        let app = rusqlite::Connection::open(&path).unwrap();
        change(&app);
        let changed = d.canonical_dump().await.unwrap();

        // The app is mid-transaction: the write lock is held, an insert not yet committed.
        app.execute_batch("BEGIN IMMEDIATE; INSERT INTO users VALUES (9, 'pending');").unwrap();
        let err = d.restore(&snap, &info).await.unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("is locked by another connection: still locked after 1s"), "{err}");
        assert!(err.hint().unwrap().contains("fuser"), "{:?}", err.hint());

        // The database is as the app left it, and its transaction commits.
        assert_eq!(d.canonical_dump().await.unwrap(), changed, "a restore that met the lock wrote nothing");
        app.execute_batch("COMMIT").unwrap();
        assert_eq!(names(&app), vec![(1, "changed".into()), (3, "new".into()), (9, "pending".into())]);
        assert_eq!(header(&app), (8, 99));
        let journal = PathBuf::from(format!("{}-journal", path.display()));
        assert!(!journal.exists(), "the app's commit finished its journal");
    });
}

#[test]
fn a_restore_waits_for_the_write_transaction_then_puts_the_snapshot_back() {
    let Snapshotted { dir: _dir, path, d, snap, info, before } = snapshotted(false, 60);
    block_on(async {
        change(&rusqlite::Connection::open(&path).unwrap());

        let app = commits_in_a_moment(&path, "INSERT INTO users VALUES (9, 'pending')");
        let restored = d.restore(&snap, &info).await;
        let (app, committed) = app.join().unwrap();
        committed.expect("the app's transaction commits: its journal was not taken from it");
        restored.expect("the restore waits for the lock, then goes through");
        // The restore came after the commit, in the same file: the snapshot is back, whole, for
        // every connection, the app's included (its row was committed, then restored over).
        assert_eq!(d.canonical_dump().await.unwrap(), before);
        reads_the_snapshot_and_writes_on(&app, &path);
        assert_eq!(header(&rusqlite::Connection::open(&path).unwrap()), (7, 4242));
    });
}

#[test]
fn a_wal_database_is_restored_exactly_and_stays_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = seed(dir.path(), true);
    let d = database(dir.path(), 10);
    block_on(async {
        // The app's connection stays open throughout, so its changes sit in the `-wal` file.
        let app = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(names(&app), seeded_rows());
        let snap = dir.path().join("db.snapshot");
        let info = d.snapshot(&snap).await.unwrap();
        let before = d.canonical_dump().await.unwrap();
        change(&app);
        assert_ne!(d.canonical_dump().await.unwrap(), before);

        // A reader mid-transaction does not stop a restore in WAL mode.
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM users;").unwrap();
        d.restore(&snap, &info).await.unwrap();
        reader.execute_batch("COMMIT").unwrap();

        assert_eq!(d.canonical_dump().await.unwrap(), before, "the restore is exact");
        let fresh = rusqlite::Connection::open(&path).unwrap();
        let mode: String = fresh.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(names(&reader), seeded_rows());
        reads_the_snapshot_and_writes_on(&app, &path);
        assert_eq!(names(&fresh).last(), Some(&(4, "after".to_owned())));
        let ok: String = fresh.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        drop((app, reader, fresh));
        // Checkpointed into the file once the last connection closes.
        let after = d.canonical_dump().await.unwrap();
        assert!(after.contains("(4, 'after')") && after.contains("(2, 'grace')"), "{after}");
    });
}

#[test]
fn a_missing_or_clobbered_database_file_is_replaced_by_the_snapshot() {
    let Snapshotted { dir, path, d, snap, info, before } = snapshotted(false, 10);
    block_on(async {
        // No file to lock: the checked copy is put in place.
        std::fs::remove_file(&path).unwrap();
        d.restore(&snap, &info).await.unwrap();
        assert_eq!(d.canonical_dump().await.unwrap(), before);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);

        // Not a database any more (a bad deploy wrote over it): replaced too.
        std::fs::write(&path, b"definitely not sqlite, and long enough to have a header").unwrap();
        d.restore(&snap, &info).await.unwrap();
        assert_eq!(d.canonical_dump().await.unwrap(), before);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "app.db" && n != "db.snapshot")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    });
}

#[test]
fn stale_wal_files_next_to_a_rollback_journal_database_leave_it_in_that_mode() {
    let Snapshotted { dir: _dir, path, d, snap, info, before } = snapshotted(false, 10);
    block_on(async {
        change(&rusqlite::Connection::open(&path).unwrap());
        let sides = ["-wal", "-shm"].map(|s| PathBuf::from(format!("{}{s}", path.display())));
        for f in &sides {
            std::fs::write(f, b"stale").unwrap();
        }

        d.restore(&snap, &info).await.unwrap();
        assert_eq!(d.canonical_dump().await.unwrap(), before, "the restore is exact");
        assert!(sides.iter().all(|f| !f.exists()), "stale {sides:?} left next to the restored file");
        let head = std::fs::read(&path).unwrap();
        assert_eq!((head[18], head[19]), (1, 1), "still a rollback-journal database");
    });
}

#[test]
fn a_wal_database_with_another_page_size_is_refused_by_name_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = seed(dir.path(), true);
    let d = database(dir.path(), 10);
    // A snapshot of a database with bigger pages.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let c = rusqlite::Connection::open(other.join("app.db")).unwrap();
    c.execute_batch("PRAGMA page_size = 8192; CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
        .unwrap();
    drop(c);
    block_on(async {
        let snap = dir.path().join("db.snapshot");
        let info = database(&other, 10).snapshot(&snap).await.unwrap();
        let before = d.canonical_dump().await.unwrap();
        let err = d.restore(&snap, &info).await.unwrap_err();
        assert!(matches!(err, Error::Snapshot { .. }), "{err:?}");
        assert!(err.to_string().contains("8192-byte pages") && err.to_string().contains("WAL mode"), "{err}");
        assert_eq!(d.canonical_dump().await.unwrap(), before);
        assert_eq!(names(&rusqlite::Connection::open(&path).unwrap()), seeded_rows());
    });
}
