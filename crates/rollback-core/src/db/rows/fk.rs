//! SQLite foreign keys in a put-back: which of the references its rows break are its own.
//!
//! An app that runs SQLite with foreign keys off (SQLite's own default, and Python's
//! `sqlite3`'s) can hold rows whose parent row is not there. A put-back writes such a row back
//! as it was: its reference was broken before the run, and that is no reason to refuse the
//! undo and drop the rows written since. A broken reference is the put-back's to answer for
//! only when the parent row was there in the run's snapshot and is gone now: the app deleted
//! it while rolled back.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value;

use super::q;

/// A row that references a parent row that is not there (a row of `PRAGMA foreign_key_check`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Broken {
    table: String,
    /// `None` for a `WITHOUT ROWID` table.
    rowid: Option<i64>,
    parent: String,
    /// Which of the table's foreign keys (`PRAGMA foreign_key_list`'s `id`).
    fkid: i64,
}

/// The broken references of the rows of `tables` in `main`.
pub(super) fn broken(conn: &rusqlite::Connection, tables: &[String]) -> rusqlite::Result<BTreeSet<Broken>> {
    let mut out = BTreeSet::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("PRAGMA main.foreign_key_check({})", q(t)))?;
        let rows = stmt
            .query_map([], |r| Ok(Broken { table: r.get(0)?, rowid: r.get(1)?, parent: r.get(2)?, fkid: r.get(3)? }))?;
        for b in rows {
            out.insert(b?);
        }
    }
    Ok(out)
}

/// Of `broken`, the references whose parent row the snapshot (attached as `snap`) holds: the
/// parent was deleted since the run. A row that cannot be read again (`WITHOUT ROWID`) counts
/// among them: it cannot be told from one.
pub(super) fn deleted_since<'a>(
    conn: &rusqlite::Connection,
    broken: impl IntoIterator<Item = &'a Broken>,
) -> rusqlite::Result<Vec<Broken>> {
    // Each foreign key's columns are read once, however many of its rows are broken.
    let mut keys: BTreeMap<(&str, i64), Option<Reference>> = BTreeMap::new();
    let mut out = Vec::new();
    for b in broken {
        let Some(rowid) = b.rowid else {
            out.push(b.clone());
            continue;
        };
        let key = match keys.entry((&b.table, b.fkid)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(columns(conn, b)?),
        };
        // The parent is not in the snapshot (no key read), or its key does not match the
        // reference: no row of it to have been deleted.
        let Some(Reference { from, to }) = key else { continue };
        let select = from.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
        let values: Vec<Value> = conn
            .prepare_cached(&format!("SELECT {select} FROM main.{} WHERE rowid = ?1", q(&b.table)))?
            .query_row([rowid], |r| (0..from.len()).map(|i| r.get::<_, Value>(i)).collect())?;
        let matches =
            to.iter().enumerate().map(|(i, c)| format!("{} = ?{}", q(c), i + 1)).collect::<Vec<_>>().join(" AND ");
        let there = conn
            .prepare_cached(&format!("SELECT 1 FROM snap.{} WHERE {matches} LIMIT 1", q(&b.parent)))?
            .exists(rusqlite::params_from_iter(values))?;
        if there {
            out.push(b.clone());
        }
    }
    Ok(out)
}

/// A foreign key's columns, in key order.
struct Reference {
    /// The child's columns.
    from: Vec<String>,
    /// The parent's columns they reference.
    to: Vec<String>,
}

/// The columns of `b`'s foreign key; `None` when the two sides do not pair up (the parent is
/// not in the snapshot, or its key does not match the reference).
fn columns(conn: &rusqlite::Connection, b: &Broken) -> rusqlite::Result<Option<Reference>> {
    let mut from = Vec::new();
    let mut to = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA main.foreign_key_list({})", q(&b.table)))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if r.get::<_, i64>(0)? == b.fkid {
            from.push((r.get::<_, i64>(1)?, r.get::<_, String>(3)?));
            to.push((r.get::<_, i64>(1)?, r.get::<_, Option<String>>(4)?));
        }
    }
    from.sort_unstable();
    to.sort_unstable();
    let from: Vec<String> = from.into_iter().map(|(_, c)| c).collect();
    // A reference to the parent's primary key names no column (`REFERENCES users`).
    let to: Vec<String> = if to.iter().all(|(_, c)| c.is_some()) {
        to.into_iter().filter_map(|(_, c)| c).collect()
    } else {
        parent_key(conn, &b.parent)?
    };
    Ok((!from.is_empty() && to.len() == from.len()).then_some(Reference { from, to }))
}

/// The primary key of `parent` in the snapshot, in key order (empty: no such table there).
fn parent_key(conn: &rusqlite::Connection, parent: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA snap.table_info({})", q(parent)))?;
    let mut key: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get::<_, i64>(5)?, r.get::<_, String>(1)?)))?.collect::<rusqlite::Result<_>>()?;
    key.retain(|(pk, _)| *pk > 0);
    key.sort_unstable();
    Ok(key.into_iter().map(|(_, c)| c).collect())
}

/// `deleted`, per table and parent, as a refusal says it (`payments: 1 row(s) reference rows
/// of users that are not there (deleted since the run): rowid 9`).
pub(super) fn describe(deleted: &[Broken]) -> String {
    let mut by: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for b in deleted {
        by.entry((&b.table, &b.parent)).or_default().push(b.rowid.map_or_else(|| "?".to_owned(), |r| r.to_string()));
    }
    by.into_iter()
        .map(|((table, parent), ids)| {
            let shown = ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = if ids.len() > 5 { ", ..." } else { "" };
            format!(
                "{table}: {} row(s) reference rows of {parent} that are not there (deleted since the run): rowid {shown}{more}",
                ids.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
