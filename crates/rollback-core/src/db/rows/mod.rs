//! Rows and values: counting them per table and column (the census the data-loss forecast
//! compares before and after a downgrade), and putting back, from a copy of a snapshot, the
//! tables and column values a downgrade dropped (the row-preserving undo).
//!
//! Tables are named as people read them: `payments` (SQLite, or PostgreSQL's `public`
//! schema), `billing.payments` (another PostgreSQL schema). Rows are matched by primary key;
//! between two PostgreSQL databases they travel in batches (`pg_batches`), as JSON holding each
//! value's text form, read back by its type's input function (`json_populate_record`) as a
//! dump would be, so every type comes back as it was; `json`/`jsonb` values travel as their text too, so that JSON
//! `null` stays apart from SQL `NULL`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use tokio_postgres::Client;

use super::url::DbUrl;
use super::{Result, UrlDatabase, postgres, sqlite};
use crate::model::{DataLoss, LossKind};

mod changed;
mod compare;
mod fk;
mod keep;
mod pg_batches;
mod pg_cycles;
mod pg_order;
mod pg_sequences;
mod put_back;
mod removed;
mod sqlite_sequence;
mod sqlite_virtual;
mod triggers;

pub use compare::obstacles;
pub use keep::{Kept, NotKept, keep_written};
pub use put_back::{PutBackStats, put_back};
pub use sqlite_sequence::counters_behind;

/// One table: its rows, the non-null values of each column, its primary key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCensus {
    /// Rows.
    pub rows: u64,
    /// Non-null values per column.
    pub columns: BTreeMap<String, u64>,
    /// The primary key's columns, in key order (empty: none).
    pub primary_key: Vec<String>,
    /// The table as SQL (quoted, schema-qualified on PostgreSQL).
    pub(super) sql: String,
    /// Columns the database computes (PostgreSQL `GENERATED ALWAYS AS (…) STORED`): never
    /// written, the database recomputes them. (SQLite's generated columns are not listed at
    /// all: `PRAGMA table_info` hides them.)
    pub(super) generated: BTreeSet<String>,
    /// `GENERATED ALWAYS AS IDENTITY` columns (PostgreSQL): written with `OVERRIDING SYSTEM
    /// VALUE`.
    pub(super) identity: BTreeSet<String>,
    /// Columns of type `json` or `jsonb` (or a domain over them), with their type as SQL: their
    /// values travel as text, so that JSON `null` stays distinct from SQL `NULL`.
    pub(super) json: BTreeMap<String, String>,
    /// Each column's type as SQL (PostgreSQL; `format_type`): a column whose type differs
    /// between two databases is staged in its text form when its values do not read back as the
    /// other's type (see `changed`).
    pub(super) types: BTreeMap<String, String>,
    /// A plain table with inheritance children (PostgreSQL): counted, read and matched `ONLY`
    /// itself (a partitioned table is read through its partitions, which hold its rows).
    pub(super) only: bool,
}

/// Every table of a database, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// The tables.
    pub tables: BTreeMap<String, TableCensus>,
}

/// What dropped between `before` and `after`: whole tables (their rows), and columns of tables
/// that stay (their non-null values; not the columns the database computes, which are no data:
/// the upgrade that adds one back computes it again). Tables named in `skip` (the migrator's
/// own bookkeeping) are left out. Sorted by table, the whole table before its columns.
pub fn dropped(before: &Census, after: &Census, skip: &[String]) -> Vec<DataLoss> {
    let mut out = Vec::new();
    for (name, t) in &before.tables {
        if skipped(name, skip, before) {
            continue;
        }
        match after.tables.get(name) {
            None => out.push(DataLoss::table(name, t.rows)),
            Some(now) => {
                for (col, values) in &t.columns {
                    if !now.columns.contains_key(col) && !t.generated.contains(col) {
                        out.push(DataLoss::column(name, col, *values));
                    }
                }
            }
        }
    }
    out
}

/// Whether the table `name` of `census` is one of the migrator's own, `skip`. An unqualified
/// entry (`alembic_version`) names the table the migrator finds through the search path: the
/// one in PostgreSQL's `public`, or, when `public` has none (an app kept in a schema of its own
/// and found through a database-level `search_path`), that name in another schema.
fn skipped(name: &str, skip: &[String], census: &Census) -> bool {
    skip.iter().any(|s| {
        s == name
            || (!s.contains('.')
                && !census.tables.contains_key(s)
                && name.rsplit_once('.').is_some_and(|(_, table)| table == s))
    })
}

/// What a downgrade did to the tables that stay: the rows it deleted (one `Removed` loss per
/// table) and the values it changed in columns that stay (one `Changed` loss per column), every
/// `Removed` loss first. `before` is the census of the database before the downgrade (of
/// `live`, or of a copy made of it), `after` that of `down`, the copy it ran on.
///
/// In a table with a primary key (the same on both sides) rows are matched by key, and a
/// deleted row is one of `before`'s rows whose key `down` no longer holds: a downgrade that
/// deletes rows and inserts as many others is seen. Its rows are counted in `before` and
/// matched between `live` and `down`, so a row the app deletes from `live` meanwhile counts as
/// deleted (one it inserts does not). A table without a primary key (or whose key the downgrade
/// changed) is compared by its row count only: the rows it has fewer. Values are compared by
/// key only (see the `changed` module). Tables named in `skip` are left out. The live database
/// is only read, each table once.
pub async fn removed_and_changed(
    live: &UrlDatabase,
    down: &UrlDatabase,
    before: &Census,
    after: &Census,
    skip: &[String],
) -> Result<Vec<DataLoss>> {
    let (mut removed, mut values) = (Vec::new(), Vec::new());
    for (name, t) in before.tables.iter().filter(|(name, _)| !skipped(name, skip, before)) {
        let Some(now) = after.tables.get(name) else { continue };
        let gone = match changed::compare_table(live, down, name, before, after).await? {
            Some(diff) => {
                values.extend(
                    diff.changed.iter().filter(|(_, n)| *n > 0).map(|(col, n)| DataLoss::changed(name, col, *n)),
                );
                t.rows.saturating_sub(diff.matched)
            }
            None => t.rows.saturating_sub(now.rows),
        };
        if gone > 0 {
            removed.push(DataLoss::removed(name, gone));
        }
    }
    removed.append(&mut values);
    Ok(removed)
}

/// Writes into the snapshot copy `snap` what tells, row by row, the rows the run's downgrade
/// deleted from tables that stay (`Removed` entries of `losses`), by comparing it with
/// `downgraded`, another copy of the same snapshot taken down as the run did. `put_back` reads
/// them; nothing to do without such entries.
pub async fn mark_downgraded(snap: &UrlDatabase, downgraded: &UrlDatabase, losses: &[DataLoss]) -> Result<()> {
    if !losses.iter().any(|l| l.kind == LossKind::Removed) {
        return Ok(());
    }
    let (sc, dc) = (census(snap).await?, census(downgraded).await?);
    removed::mark_removed(snap, downgraded, (&sc, &dc), losses).await
}

/// Writes into the snapshot copy `snap` what tells, row by row, the values the run's downgrade
/// changed in columns that stay (`Changed` entries of `losses`), by comparing it with
/// `round_trip`, another copy of the same snapshot taken down as the run did and up again as
/// the undo does: the undo's upgrade runs before the put-back, so the value a row the app left
/// alone holds then is the upgrade's of the downgrade's, not the downgrade's (the two are not
/// always inverses: a rounding, a normalisation). `put_back` reads them; nothing to do without
/// such entries.
pub async fn mark_round_trip(snap: &UrlDatabase, round_trip: &UrlDatabase, losses: &[DataLoss]) -> Result<()> {
    if !losses.iter().any(|l| l.kind == LossKind::Changed) {
        return Ok(());
    }
    let (sc, dc) = (census(snap).await?, census(round_trip).await?);
    changed::mark_changed(snap, round_trip, (&sc, &dc), losses).await
}

/// Whether putting `losses` back needs [`mark_downgraded`] or [`mark_round_trip`] (and so the
/// run's downgrade run again on a copy).
pub fn needs_marks(losses: &[DataLoss]) -> bool {
    losses.iter().any(|l| matches!(l.kind, LossKind::Removed | LossKind::Changed))
}

/// `payments (12 rows), users.nickname (3 values)`; `nothing` when empty.
pub fn describe(losses: &[DataLoss]) -> String {
    if losses.is_empty() {
        return "nothing".to_owned();
    }
    losses.iter().map(DataLoss::describe).collect::<Vec<_>>().join(", ")
}

/// What a put-back brings back, as people read it: `what` (its rows and values, worded by the
/// caller; `None`: none) and the `AUTOINCREMENT` counters of the tables `counters` (SQLite:
/// moved up to the snapshot's, see [`counters_behind`]).
pub fn with_counters(what: Option<String>, counters: &[String]) -> String {
    let counters = (!counters.is_empty()).then(|| format!("the {} (up to the snapshot's)", counters_of(counters)));
    match (what, counters) {
        (Some(what), Some(counters)) => format!("{what}, and {counters}"),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => "nothing".to_owned(),
    }
}

/// `, AUTOINCREMENT counter(s) of `jobs` moved up to the snapshot's`: what a put-back did to
/// the counters of `tables`; empty when none.
pub fn counters_moved(tables: &[String]) -> String {
    if tables.is_empty() {
        return String::new();
    }
    format!(", {} moved up to the snapshot's", counters_of(tables))
}

fn counters_of(tables: &[String]) -> String {
    let tables: Vec<String> = tables.iter().map(|t| format!("`{t}`")).collect();
    format!("AUTOINCREMENT counter(s) of {}", tables.join(", "))
}

pub(super) fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Counts rows and non-null values of every table.
pub async fn census(db: &UrlDatabase) -> Result<Census> {
    match db.url() {
        DbUrl::Sqlite { .. } => {
            db.with_sqlite(sqlite::Mode::ReadOnly, |c, name| sqlite_census(&c.conn).map_err(sqlite::query_err(name)))
                .await
        }
        DbUrl::Postgres { .. } => {
            let pg = db.pg();
            let client = pg.connect().await?;
            pg.within("counting rows", pg_census(&pg, &client)).await
        }
    }
}

fn sqlite_census(conn: &rusqlite::Connection) -> rusqlite::Result<Census> {
    let names: Vec<(String, bool)> = {
        // SQLite reserves the names that begin with `sqlite_`, in any letter case, for its
        // own tables (`sqlite_sequence`, `sqlite_stat1`): only those are skipped. (`LIKE
        // 'sqlite_%'` skipped `SQLiteCache` too: `_` matches any character there.) The
        // shadow tables of a virtual table (`docs_content`, `docs_data` of a full-text
        // `docs`) are its storage, not data of their own: the virtual table is counted.
        let mut stmt = conn.prepare(
            "SELECT name, type = 'virtual' FROM pragma_table_list
              WHERE schema = 'main' AND type IN ('table', 'virtual') AND lower(substr(name, 1, 7)) <> 'sqlite_'
              ORDER BY name",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
    };
    let mut census = Census::default();
    for (name, is_virtual) in names {
        let mut cols: Vec<(String, i64)> = {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", q(&name)))?;
            stmt.query_map([], |r| Ok((r.get(1)?, r.get(5)?)))?.collect::<rusqlite::Result<_>>()?
        };
        // A virtual table has no primary key; its rows are told apart, and put back, by their
        // rowid (a full-text table's rowid is what the app's rows point at).
        if is_virtual && !cols.iter().any(|(c, _)| c.eq_ignore_ascii_case("rowid")) {
            cols.insert(0, ("rowid".to_owned(), 1));
        }
        let mut sql = "SELECT count(*)".to_owned();
        for (c, _) in &cols {
            let _ = write!(sql, ", count({})", q(c));
        }
        let _ = write!(sql, " FROM {}", q(&name));
        let counts: Vec<i64> = conn.query_row(&sql, [], |r| (0..=cols.len()).map(|i| r.get(i)).collect())?;
        let to_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
        let columns = cols.iter().zip(&counts[1..]).map(|((c, _), n)| (c.clone(), to_u64(*n))).collect();
        cols.retain(|(_, pk)| *pk > 0);
        cols.sort_by_key(|(_, pk)| *pk);
        let t = TableCensus {
            rows: to_u64(counts[0]),
            columns,
            primary_key: cols.into_iter().map(|(c, _)| c).collect(),
            sql: q(&name),
            ..TableCensus::default()
        };
        census.tables.insert(name, t);
    }
    Ok(census)
}

/// `payments` (schema `public`), `billing.payments`: one name per table. A part holding a dot
/// or a double quote is quoted (`"billing.payments"`, a table of `public`), so no two tables
/// share a name: the census is keyed by it, and a loss names its table by it.
fn pg_name(schema: &str, table: &str) -> String {
    let part = |s: &str| if s.contains(['.', '"']) { q(s) } else { s.to_owned() };
    if schema == "public" { part(table) } else { format!("{}.{}", part(schema), part(table)) }
}

async fn pg_census(ctx: &postgres::Ctx<'_>, client: &Client) -> Result<Census> {
    let rows = |sql: String| async move { postgres::rows(client, &sql).await.map_err(|e| ctx.query_err(&e)) };
    let user = postgres::USER_SCHEMA.replace("nspname", "n.nspname");
    let mut census = Census::default();
    // The third column: `t` for a plain table with inheritance children, read `ONLY` itself.
    let tables = rows(format!(
        "SELECT n.nspname, c.relname, CASE WHEN c.relkind = 'r' AND c.relhassubclass THEN 't' ELSE '' END
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {user}"
    ))
    .await?;
    // The fourth column: the type as SQL of a `json`/`jsonb` column (or a domain over one).
    // The fifth: every column's type as SQL.
    let columns = rows(format!(
        "SELECT n.nspname, c.relname, a.attname,
                CASE WHEN coalesce(nullif(t.typbasetype, 0), t.oid) IN ('json'::regtype, 'jsonb'::regtype)
                     THEN format_type(a.atttypid, a.atttypmod) ELSE '' END,
                format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {user}
          ORDER BY a.attnum"
    ))
    .await?;
    // Identity and generated columns, through `information_schema` (its columns exist on every
    // server version; `pg_attribute.attgenerated` only since PostgreSQL 12).
    let computed = rows(
        "SELECT table_schema, table_name, column_name, coalesce(identity_generation, ''), coalesce(is_generated, '')
           FROM information_schema.columns
          WHERE identity_generation = 'ALWAYS' OR is_generated = 'ALWAYS'"
            .to_owned(),
    )
    .await?;
    let keys = rows(format!(
        "SELECT n.nspname, c.relname, a.attname FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
          WHERE i.indisprimary AND {user}
          ORDER BY array_position(i.indkey::int2[], a.attnum)"
    ))
    .await?;
    for t in &tables {
        let of_table = |c: &&Vec<String>| c[0] == t[0] && c[1] == t[1];
        let cols: Vec<&String> = columns.iter().filter(of_table).map(|c| &c[2]).collect();
        let sql = format!("{}.{}", q(&t[0]), q(&t[1]));
        let only = t[2] == "t";
        let mut select = "SELECT count(*)".to_owned();
        for c in &cols {
            let _ = write!(select, ", count({})", q(c));
        }
        let _ = write!(select, " FROM {}", compare::only(only, &sql));
        let counts = rows(select).await?.into_iter().next().unwrap_or_default();
        let n = |i: usize| counts.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        census.tables.insert(
            pg_name(&t[0], &t[1]),
            TableCensus {
                rows: n(0),
                columns: cols.iter().enumerate().map(|(i, c)| ((*c).clone(), n(i + 1))).collect(),
                primary_key: keys.iter().filter(|k| k[0] == t[0] && k[1] == t[1]).map(|k| k[2].clone()).collect(),
                sql,
                generated: computed
                    .iter()
                    .filter(of_table)
                    .filter(|c| c[4] == "ALWAYS")
                    .map(|c| c[2].clone())
                    .collect(),
                identity: computed.iter().filter(of_table).filter(|c| c[3] == "ALWAYS").map(|c| c[2].clone()).collect(),
                json: columns
                    .iter()
                    .filter(of_table)
                    .filter(|c| !c[3].is_empty())
                    .map(|c| (c[2].clone(), c[3].clone()))
                    .collect(),
                types: columns.iter().filter(of_table).map(|c| (c[2].clone(), c[4].clone())).collect(),
                only,
            },
        );
    }
    Ok(census)
}
