//! SQLite `AUTOINCREMENT` counters in a put-back.
//!
//! An `AUTOINCREMENT` table never hands out a rowid twice: `sqlite_sequence` keeps the largest
//! one it ever gave, even after that row was deleted. A downgrade that drops such a table drops
//! its counter too; the undo's upgrade creates the table again and the put-back inserts the
//! snapshot's rows, which sets the counter to the largest rowid put back only. A row deleted
//! before the run above it (job 4 of jobs 1..4) would then see its id handed out again. So the
//! counters come back from the snapshot too, never lower than they are now.

use rusqlite::Connection;

/// In the put-back's transaction, with the snapshot attached as `snap`: each counter of
/// `main.sqlite_sequence` set to the snapshot's where that is higher, and the snapshot's added
/// for an `AUTOINCREMENT` table of `main` that has none yet (created again, nothing inserted).
pub(super) fn advance(conn: &Connection) -> rusqlite::Result<()> {
    let has = |schema: &str| {
        conn.query_row(
            &format!("SELECT count(*) FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    // Without an `AUTOINCREMENT` table on either side there is no counter to carry.
    if !has("snap")? || !has("main")? {
        return Ok(());
    }
    // Table names match whatever their letter case, as SQLite's do. A table is told to be an
    // `AUTOINCREMENT` one by its SQL (SQLite has no other record of it until its first row).
    conn.execute_batch(
        "UPDATE main.sqlite_sequence
            SET seq = (SELECT max(s.seq) FROM snap.sqlite_sequence s WHERE s.name = sqlite_sequence.name COLLATE NOCASE)
          WHERE seq < (SELECT max(s.seq) FROM snap.sqlite_sequence s WHERE s.name = sqlite_sequence.name COLLATE NOCASE);
         INSERT INTO main.sqlite_sequence (name, seq)
         SELECT t.name, max(s.seq) FROM snap.sqlite_sequence s
           JOIN main.sqlite_master t ON t.type = 'table' AND t.name = s.name COLLATE NOCASE
          WHERE t.sql LIKE '%AUTOINCREMENT%'
            AND NOT EXISTS (SELECT 1 FROM main.sqlite_sequence m WHERE m.name = s.name COLLATE NOCASE)
          GROUP BY t.name;",
    )
}
