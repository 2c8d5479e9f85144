//! A SQLite database whose writer was killed inside a write transaction: a hot journal
//! (`-journal`) SQLite must roll back before anything reads the file, which a read-only
//! connection cannot do. The ping, the dump, the fingerprint and the snapshot forge-rollback
//! takes read-only roll it back as any client's first connection does, instead of failing as
//! "unreachable". And a WAL left by a killed writer, which a read-only connection reads.

use std::path::Path;

use rollback_core::db::{Database as _, Error, UrlDatabase};
use rollback_core::rt::block_on;

use crate::db::database;

const ROWS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
                    INSERT INTO users VALUES (1, 'ada'), (2, 'linus');";

/// `name` in `dir`: `users` committed, then a transaction that changed it and wrote enough to
/// spill pages into the file, left as a killed writer leaves it: the database file and its
/// `-journal` (or `-wal` and `-shm`) copied while the transaction is open, nobody holding it.
fn killed_mid_transaction(dir: &Path, name: &str, journal_mode: &str) {
    let live = dir.join(format!("live-{name}"));
    let conn = rusqlite::Connection::open(&live).unwrap();
    conn.query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |_| Ok(())).unwrap();
    conn.execute_batch(ROWS).unwrap();
    conn.execute_batch(
        "PRAGMA cache_size = 2;
         BEGIN;
         UPDATE users SET name = name || ' (half-way)';
         CREATE TABLE junk AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
           SELECT x, randomblob(500) AS b FROM c;",
    )
    .unwrap();
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let from = dir.join(format!("live-{name}{suffix}"));
        if from.exists() {
            std::fs::copy(&from, dir.join(format!("{name}{suffix}"))).unwrap();
        }
    }
    conn.execute_batch("ROLLBACK").unwrap();
}

fn reference(dir: &Path) -> String {
    let path = dir.join("reference.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch(ROWS).unwrap();
    block_on(database("sqlite:///reference.db", dir, "pg_dump").canonical_dump()).unwrap()
}

fn read_only_open_fails(path: &Path) -> bool {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
        Ok(()) => false,
        Err(rusqlite::Error::SqliteFailure(e, _)) => {
            assert_eq!(e.extended_code, rusqlite::ffi::SQLITE_READONLY_ROLLBACK, "{e}");
            true
        }
        Err(e) => panic!("{e}"),
    }
}

fn reads_back(d: &UrlDatabase, dir: &Path, expected: &str) {
    block_on(async {
        d.ping().await.unwrap();
        assert_eq!(d.canonical_dump().await.unwrap(), expected, "the last committed state");
        assert!(!d.fingerprint().await.unwrap().is_empty());
        let snap = dir.join("snapshot.db");
        let _ = std::fs::remove_file(&snap);
        d.snapshot(&snap).await.unwrap();
    });
}

#[test]
fn sqlite_hot_journal_is_rolled_back_by_the_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path());
    killed_mid_transaction(dir.path(), "app.db", "DELETE");
    let journal = dir.path().join("app.db-journal");
    assert!(journal.exists());
    assert!(read_only_open_fails(&dir.path().join("app.db")), "a hot journal");

    let d = database("sqlite:///app.db", dir.path(), "pg_dump");
    reads_back(&d, dir.path(), &expected);
    assert!(!journal.exists(), "rolled back");

    // Each read on its own meets the journal first: the dump, and the snapshot.
    for dump_first in [true, false] {
        for suffix in ["", "-journal"] {
            let _ = std::fs::remove_file(dir.path().join(format!("app.db{suffix}")));
            let _ = std::fs::remove_file(dir.path().join(format!("live-app.db{suffix}")));
        }
        killed_mid_transaction(dir.path(), "app.db", "DELETE");
        block_on(async {
            if dump_first {
                assert_eq!(d.canonical_dump().await.unwrap(), expected);
            } else {
                let snap = dir.path().join("first.db");
                let _ = std::fs::remove_file(&snap);
                d.snapshot(&snap).await.unwrap();
                let copy = database("sqlite:///first.db", dir.path(), "pg_dump");
                assert_eq!(copy.canonical_dump().await.unwrap(), expected);
            }
        });
    }
}

#[test]
fn sqlite_wal_of_a_killed_writer_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path());
    killed_mid_transaction(dir.path(), "app.db", "WAL");
    assert!(dir.path().join("app.db-wal").exists());
    let d = database("sqlite:///app.db", dir.path(), "pg_dump");
    reads_back(&d, dir.path(), &expected);
    // Without its `-shm`, as after a reboot that emptied a tmpfs.
    drop(d);
    killed_mid_transaction(dir.path(), "again.db", "WAL");
    let _ = std::fs::remove_file(dir.path().join("again.db-shm"));
    let d = database("sqlite:///again.db", dir.path(), "pg_dump");
    reads_back(&d, dir.path(), &expected);
}

#[test]
fn sqlite_hot_journal_error_names_the_journal() {
    let e = Error::HotJournal {
        database: "sqlite:////srv/app.db".into(),
        journal: "/srv/app.db-journal".into(),
        detail: "attempt to write a readonly database".into(),
    };
    assert!(
        e.to_string().contains("hot journal `/srv/app.db-journal` left by a process killed mid-transaction"),
        "{e}"
    );
    let hint = e.hint().unwrap();
    assert!(hint.contains("sqlite3 '/srv/app.db'") && !hint.contains("credentials"), "{hint}");
}
