//! SQLite `AUTOINCREMENT` counters in a put-back.
//!
//! An `AUTOINCREMENT` table never hands out a rowid twice: `sqlite_sequence` keeps the largest
//! one it ever gave, even after that row was deleted. A downgrade that drops such a table drops
//! its counter too; the undo's upgrade creates the table again and the put-back inserts the
//! snapshot's rows, which sets the counter to the largest rowid put back only. A downgrade (or
//! upgrade) that rebuilds the table the way SQLite documents (create the new one, copy the
//! rows, drop the old one, rename) lowers it the same way, with no row to put back at all. A
//! row deleted before the run above it (job 4 of jobs 1..4) would then see its id handed out
//! again. So the counters come back from the snapshot too, never lower than they are now; an
//! undo that has no row to put back still has its put-back step when a counter is behind (see
//! [`counters_behind`]).

use super::compare::sqlite_attached;
use crate::db::url::DbUrl;
use crate::db::{Result, UrlDatabase};

/// The `AUTOINCREMENT` tables of `main` whose counter is below the snapshot's (`snap`, attached)
/// for the table of the same name, or that have none where the snapshot has one: what
/// [`advance`] moves, by their names in `main`. Table names match whatever their letter case,
/// as SQLite's do. A table is told to be an `AUTOINCREMENT` one by its SQL (SQLite has no
/// other record of it until its first row).
const BEHIND: &str = "SELECT t.name FROM main.sqlite_master t
      JOIN snap.sqlite_sequence s ON s.name = t.name COLLATE NOCASE
     WHERE t.type = 'table' AND t.sql LIKE '%AUTOINCREMENT%'
     GROUP BY t.name
    HAVING max(s.seq) > coalesce((SELECT max(m.seq) FROM main.sqlite_sequence m WHERE m.name = t.name COLLATE NOCASE), 0)
     ORDER BY t.name";

/// Whether both sides have a `sqlite_sequence`: without an `AUTOINCREMENT` table on either
/// side (SQLite creates it with the first one) there is no counter to carry.
fn both_count(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    let has = |schema: &str| {
        conn.query_row(
            &format!("SELECT count(*) FROM {schema}.sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    Ok(has("snap")? && has("main")?)
}

fn behind_attached(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    if !both_count(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(BEHIND)?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

/// The `AUTOINCREMENT` tables of `live` whose counter is below the one the snapshot copy `snap`
/// has for them: those a put-back moves up, even with no row to put back. Empty on PostgreSQL,
/// whose sequences move with the rows put back.
pub async fn counters_behind(live: &UrlDatabase, snap: &UrlDatabase) -> Result<Vec<String>> {
    match (live.url(), snap.url()) {
        (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) => sqlite_attached(live, path, false, behind_attached).await,
        _ => Ok(Vec::new()),
    }
}

/// In the put-back's transaction, with the snapshot attached as `snap`: each counter of
/// `main.sqlite_sequence` set to the snapshot's where that is higher, and the snapshot's added
/// for an `AUTOINCREMENT` table of `main` that has none yet (created again, nothing inserted).
/// Returns the tables whose counter it moved up.
pub(super) fn advance(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let moved = behind_attached(conn)?;
    if moved.is_empty() {
        return Ok(moved);
    }
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
    )?;
    Ok(moved)
}
