//! Matching rows between a live database and a copy of a snapshot by primary key, and what
//! stands in the way of putting a downgrade's losses back faithfully.

use std::fmt::Write as _;

use super::{Census, census, pg_batches, q};
use crate::db::url::DbUrl;
use crate::db::{Result, UrlDatabase, postgres, sqlite};
use crate::model::{DataLoss, LossKind};

/// The SQL pieces for one table both sides have.
#[derive(Clone)]
pub(super) struct Pair<'a> {
    pub(super) name: &'a str,
    pub(super) live: String,
    pub(super) snap: String,
    pub(super) pk: Vec<String>,
    /// Columns of the snapshot's table the live one has too (and writes: not the ones the
    /// live database computes).
    pub(super) cols: Vec<String>,
    /// Of `cols`, the live table's `GENERATED ALWAYS AS IDENTITY` ones.
    pub(super) identity: Vec<String>,
    /// Of `cols`, the live table's `json`/`jsonb` ones, with their type as SQL.
    pub(super) json: Vec<(String, String)>,
    /// Of `cols`, those whose type differs between the two tables (PostgreSQL: a migration
    /// changed it, `text` to `text[]`).
    pub(super) retyped: Vec<String>,
    /// Of `cols`, those staged in their text form, not read back as the live column's type (see
    /// `pg_batches::stage`): some of the other side's values do not read back as it (`a,b` is
    /// no `text[]`).
    pub(super) as_text: Vec<String>,
    /// The live and the snapshot's tables are plain tables with inheritance children
    /// (PostgreSQL): read `ONLY` them, a child's rows are the child's.
    pub(super) live_only: bool,
    pub(super) snap_only: bool,
}

impl Pair<'_> {
    /// `a` and `b` under the same primary key, on PostgreSQL (whose key columns are `NOT
    /// NULL`): `=`, which its indexes and hash joins serve.
    pub(super) fn join(&self, a: &str, b: &str) -> String {
        self.join_with(a, b, "=")
    }
    /// [`Pair::join`] on SQLite, NULL-safe (`IS`, which its indexes serve as well): SQLite lets
    /// a key column of an ordinary table hold NULL (unless it is `INTEGER PRIMARY KEY` or the
    /// table `WITHOUT ROWID`), and a row under such a key is matched like any other. (Its
    /// uniqueness is not enforced: rows under the same key with a NULL in it are not told
    /// apart.)
    pub(super) fn sqlite_join(&self, a: &str, b: &str) -> String {
        self.join_with(a, b, "IS")
    }
    fn join_with(&self, a: &str, b: &str, op: &str) -> String {
        self.pk.iter().map(|k| format!("{a}.{k} {op} {b}.{k}", k = q(k))).collect::<Vec<_>>().join(" AND ")
    }
    pub(super) fn col_list(&self, alias: &str) -> String {
        self.cols.iter().map(|c| format!("{alias}.{}", q(c))).collect::<Vec<_>>().join(", ")
    }
    /// The live table as read (PostgreSQL): `ONLY` it when it has inheritance children.
    pub(super) fn live_rows(&self) -> String {
        only(self.live_only, &self.live)
    }
    /// The snapshot's table as read (PostgreSQL), like [`Pair::live_rows`].
    pub(super) fn snap_rows(&self) -> String {
        only(self.snap_only, &self.snap)
    }
    /// `alias.col` as compared (PostgreSQL): by its text form, byte for byte, in one session
    /// (both sides read with the same settings). A type's `=` does not tell sameness: it is
    /// missing (`json`, `xml`, `point`), compares areas (`box`), ignores letter case (`citext`,
    /// a nondeterministic collation), or the scale of a number (`1.50 = 1.5`), or the way an
    /// interval is written (`36:00:00 = 1 day 12:00:00`). A value stored differently is a
    /// different value, which the undo must put back.
    pub(super) fn cmp(&self, alias: &str, col: &str) -> String {
        format!("({alias}.{}::text COLLATE \"C\")", q(col))
    }
    /// The columns of `alias` as compared (see [`Pair::cmp`]).
    pub(super) fn cmp_list(&self, alias: &str) -> String {
        self.cols.iter().map(|c| self.cmp(alias, c)).collect::<Vec<_>>().join(", ")
    }
    fn is_json(&self, col: &str) -> bool {
        self.json.iter().any(|(j, _)| j == col)
    }
    pub(super) fn bare_cols(&self) -> String {
        self.cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
    }
}

/// `table`, or `ONLY table` (PostgreSQL) when `only`.
pub(super) fn only(only: bool, table: &str) -> String {
    if only { format!("ONLY {table}") } else { table.to_owned() }
}

pub(super) fn pair<'a>(name: &'a str, live: &Census, snap: &Census) -> Option<Pair<'a>> {
    let (l, s) = (live.tables.get(name)?, snap.tables.get(name)?);
    let cols: Vec<String> =
        s.columns.keys().filter(|c| l.columns.contains_key(*c) && !l.generated.contains(*c)).cloned().collect();
    Some(Pair {
        name,
        live: l.sql.clone(),
        snap: s.sql.clone(),
        pk: s.primary_key.clone(),
        identity: cols.iter().filter(|c| l.identity.contains(*c)).cloned().collect(),
        json: l.json.iter().filter(|(c, _)| cols.contains(c)).map(|(c, t)| (c.clone(), t.clone())).collect(),
        retyped: cols.iter().filter(|c| l.types.get(*c) != s.types.get(*c)).cloned().collect(),
        as_text: Vec::new(),
        live_only: l.only,
        snap_only: s.only,
        cols,
    })
}

pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The session settings both ends of a PostgreSQL put-back use, so that every value's text
/// form reads back as the same value (dates in ISO form, floats with all their digits).
const PG_TEXT_SETTINGS: [(&str, &str); 3] =
    [("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"), ("extra_float_digits", "3")];

/// Each row (those `filter` holds for, when given) of the values of `cols` of the snapshot's
/// table (aliased `s`), as one JSON text
/// `[{column: text}, {json column: text}]`: every value in its text form, JSON `null` only for
/// SQL `NULL`. (`json_agg` of the rows would make a `json` value that is JSON `null` the same
/// as SQL `NULL`: `json_populate_recordset` reads both as SQL `NULL`.) A batch of them joined
/// into a JSON array (see `pg_batches`) is what [`pg_rows_in`] turns back into rows.
pub(super) fn pg_row_out(p: &Pair<'_>, cols: &[String], filter: Option<&str>) -> String {
    let object = |json: bool| {
        let cols: Vec<&String> = cols.iter().filter(|c| p.json.iter().any(|(j, _)| j == *c) == json).collect();
        format!(
            "json_object(ARRAY[{}]::text[], ARRAY[{}]::text[])",
            cols.iter().map(|c| lit(c)).collect::<Vec<_>>().join(", "),
            cols.iter().map(|c| format!("s.{}::text", q(c))).collect::<Vec<_>>().join(", ")
        )
    };
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    format!("SELECT json_build_array({}, {})::text FROM {} s{filter}", object(false), object(true), p.snap_rows())
}

/// A batch of the rows [`pg_row_out`] wrote, as a JSON array (the statement's `$1`), as a
/// relation with the columns `cols` of the live table, typed as there: each value is read by
/// its type's input function (`json_populate_record` of its text form); a `json`/`jsonb` value
/// is cast from its text; a column of [`Pair::as_text`] stays text, never read as its type.
pub(super) fn pg_rows_in(p: &Pair<'_>, cols: &[String]) -> String {
    let select = cols
        .iter()
        .map(|c| match p.json.iter().find(|(j, _)| j == c) {
            _ if p.as_text.contains(c) => format!("(e.value -> {} ->> {}) AS {}", u8::from(p.is_json(c)), lit(c), q(c)),
            Some((_, ty)) => format!("(e.value -> 1 ->> {})::{ty} AS {}", lit(c), q(c)),
            None => format!("r.{c}", c = q(c)),
        })
        .collect::<Vec<_>>()
        .join(", ");
    // The columns staged as text are left out of the record read as the live table's row:
    // their values need not read back as its types.
    let record = if p.as_text.is_empty() {
        format!("json_populate_record(NULL::{}, e.value -> 0)", p.live)
    } else {
        let skip = p.as_text.iter().map(|c| lit(c)).collect::<Vec<_>>().join(", ");
        format!("jsonb_populate_record(NULL::{}, (e.value -> 0)::jsonb - ARRAY[{skip}]::text[])", p.live)
    };
    format!("(SELECT {select} FROM json_array_elements($1::text::json) e, LATERAL {record} r)")
}

/// `SET` (`SET LOCAL` when `local`) of [`PG_TEXT_SETTINGS`].
pub(super) fn pg_text_settings(local: bool) -> String {
    let mut out = String::new();
    for (k, v) in PG_TEXT_SETTINGS {
        let _ = write!(out, "SET {}{k} TO {};", if local { "LOCAL " } else { "" }, lit(v));
    }
    out
}

/// Whether a server error says a value outgrew PostgreSQL's 1 GB limit.
pub(super) fn over_one_value(detail: &str) -> bool {
    ["out of memory", "Cannot enlarge string buffer", "invalid memory alloc request size"]
        .iter()
        .any(|m| detail.contains(m))
}

/// Why putting `losses` back from the snapshot copy `snap` into `live` (not upgraded yet: the
/// dropped tables and columns are missing there) cannot be done faithfully: a dropped column
/// of a table without a primary key (or whose key changed), rows holding a dropped value that
/// were deleted since, a dropped table or column that exists again (the upgrade that re-creates
/// it would fail), rows deleted from a table without a primary key. Empty: it can.
pub async fn obstacles(live: &UrlDatabase, snap: &UrlDatabase, losses: &[DataLoss]) -> Result<Vec<String>> {
    let (live_census, snap_census) = (census(live).await?, census(snap).await?);
    let mut out = Vec::new();
    for l in losses {
        let Some(s) = snap_census.tables.get(&l.table) else { continue };
        if l.kind == LossKind::Changed {
            // The column stays: values the downgrade changed go back by key where they are
            // still what it left.
            let col = l.column.as_deref().unwrap_or_default();
            let keyed = pair(&l.table, &live_census, &snap_census).is_some_and(|p| {
                !p.pk.is_empty() && p.pk.iter().all(|k| p.cols.contains(k)) && p.cols.iter().any(|c| c == col)
            });
            if s.primary_key.is_empty() {
                out.push(format!(
                    "{}.{col}: {} value(s) the downgrade changed cannot be matched to rows, `{}` has no primary key",
                    l.table, l.rows, l.table
                ));
            } else if !keyed {
                out.push(format!(
                    "{}.{col}: {} value(s) the downgrade changed cannot be put back, the table, the column or its primary key changed since the run",
                    l.table, l.rows
                ));
            }
            continue;
        }
        if l.kind == LossKind::Removed {
            // The table stays: rows the downgrade deleted go back by key (the conflicts are
            // found when the put-back is rehearsed).
            if s.primary_key.is_empty() {
                out.push(format!(
                    "{}: {} row(s) the downgrade deleted cannot be told from rows deleted since, `{}` has no primary key",
                    l.table, l.rows, l.table
                ));
            } else if !pair(&l.table, &live_census, &snap_census)
                .is_some_and(|p| p.pk.iter().all(|k| p.cols.contains(k)))
            {
                out.push(format!(
                    "{}: {} row(s) the downgrade deleted cannot be put back, the table or its primary key changed since the run",
                    l.table, l.rows
                ));
            }
            continue;
        }
        let Some(col) = &l.column else {
            if let Some(now) = live_census.tables.get(&l.table) {
                out.push(format!(
                    "{}: the table exists again since the run ({} row(s)), so the upgrade cannot create it and its {} row(s) cannot be merged",
                    l.table, now.rows, l.rows
                ));
            }
            continue;
        };
        if s.generated.contains(col) {
            // Computed by the database: the upgrade that adds it back computes it again.
            continue;
        }
        if s.primary_key.is_empty() {
            out.push(format!(
                "{}.{col}: {} value(s) cannot be matched to rows, `{}` has no primary key",
                l.table, l.rows, l.table
            ));
            continue;
        }
        let Some(p) = pair(&l.table, &live_census, &snap_census) else {
            out.push(format!("{}.{col}: {} value(s) lost, the table `{}` is gone", l.table, l.rows, l.table));
            continue;
        };
        if live_census.tables[&l.table].columns.contains_key(col) {
            out.push(format!("{}.{col}: the column exists again since the run, so the upgrade cannot add it", l.table));
            continue;
        }
        if p.pk.iter().any(|k| !p.cols.contains(k)) {
            out.push(format!("{}.{col}: the primary key of `{}` changed since the run", l.table, l.table));
            continue;
        }
        // Rows the downgrade deleted from this table are not in the live one either: whether a
        // value's row was deleted since is then seen when the put-back is rehearsed, after
        // those rows are back.
        let deleted_too = losses.iter().any(|x| x.table == l.table && x.kind == LossKind::Removed);
        let gone = if deleted_too { 0 } else { deleted_since(live, snap, &p, col).await? };
        if gone > 0 {
            out.push(format!(
                "{}.{col}: {gone} value(s) belong to rows deleted since the run (no row to put them in)",
                l.table
            ));
        }
    }
    Ok(out)
}

/// Rows of the snapshot with a value in `col` whose key is not in the live table.
async fn deleted_since(live: &UrlDatabase, snap: &UrlDatabase, p: &Pair<'_>, col: &str) -> Result<u64> {
    let where_ = format!("s.{} IS NOT NULL", q(col));
    if let (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) = (live.url(), snap.url()) {
        {
            let sql = format!(
                "SELECT count(*) FROM snap.{} s WHERE {where_} AND NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
                p.snap,
                p.live,
                p.sqlite_join("m", "s")
            );
            sqlite_attached(live, path, false, move |c| c.query_row(&sql, [], |r| r.get::<_, i64>(0))).await
        }
    } else {
        {
            // The snapshot's keys (of rows with a value) go into a temporary table of a session on the live database
            // (in batches: see `pg_batches`), typed as the live table's, where they are
            // compared; the app's tables are only read.
            let pg = live.pg();
            let client = pg.connect().await?;
            let keys = pg_batches::stage(snap, p, &p.pk, Some(&where_), &client, live, "forge_rollback_keys").await?;
            let count = format!(
                "SELECT count(*) FROM {keys} s WHERE NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                p.live_rows(),
                p.join("m", "s")
            );
            pg.within("comparing rows", async {
                client.query_one(&count, &[]).await.map(|r| r.get::<_, i64>(0)).map_err(|e| pg.query_err(&e))
            })
            .await
        }
    }
    .map(|n| u64::try_from(n).unwrap_or(0))
}

pub(super) fn sqlite_conflicts(p: &Pair<'_>) -> String {
    let same =
        p.cols.iter().map(|c| format!("m.{c} IS s.{c} COLLATE BINARY", c = q(c))).collect::<Vec<_>>().join(" AND ");
    format!(
        "SELECT count(*) FROM snap.{} s JOIN main.{} m ON {} WHERE NOT ({})",
        p.snap,
        p.live,
        p.sqlite_join("m", "s"),
        if same.is_empty() { "1".to_owned() } else { same }
    )
}

/// Runs `f` on a connection to `live` with the SQLite file `snap` attached as `snap`.
pub(super) async fn sqlite_attached<T, F>(live: &UrlDatabase, snap: &std::path::Path, write: bool, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let snap = snap.to_string_lossy().into_owned();
    let mode = if write { sqlite::Mode::ReadWrite } else { sqlite::Mode::ReadOnly };
    live.with_sqlite(mode, move |c, name| {
        let err = sqlite::query_err(name);
        c.conn.execute("ATTACH DATABASE ?1 AS snap", [&snap]).map_err(&err)?;
        let out = f(&c.conn).map_err(&err);
        let _ = c.conn.execute("DETACH DATABASE snap", []);
        out
    })
    .await
}

pub(super) async fn pg_scalar(db: &UrlDatabase, sql: &str) -> Result<String> {
    let pg = db.pg();
    let client = pg.connect().await?;
    pg.within("reading rows", async {
        postgres::scalar(&client, sql).await.map_err(|e| pg.query_err(&e)).map(Option::unwrap_or_default)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's errors for a value over 1 GB are told from others.
    #[test]
    fn over_one_value_tells_the_size_limit_errors() {
        for e in [
            "ERROR: out of memory (Cannot enlarge string buffer containing 600000037 bytes by 600000034 more bytes.)",
            "ERROR: invalid memory alloc request size 1073741824",
        ] {
            assert!(over_one_value(e), "{e}");
        }
        assert!(!over_one_value("ERROR: operator does not exist: xml = xml"));
    }
}
