//! Rows and values: counting them per table and column (the census the data-loss forecast
//! compares before and after a downgrade), and putting back, from a copy of a snapshot, the
//! tables and column values a downgrade dropped (the row-preserving undo).
//!
//! Tables are named as people read them: `payments` (SQLite, or PostgreSQL's `public`
//! schema), `billing.payments` (another PostgreSQL schema). Rows are matched by primary key;
//! between two PostgreSQL databases they travel as JSON (`json_agg` out,
//! `json_populate_recordset` in), so every type with a JSON form comes back as it was.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::url::DbUrl;
use super::{Error, Result, UrlDatabase, postgres, sqlite};
use crate::model::DataLoss;

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
    sql: String,
}

/// Every table of a database, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// The tables.
    pub tables: BTreeMap<String, TableCensus>,
}

/// What dropped between `before` and `after`: whole tables (their rows), and columns of tables
/// that stay (their non-null values). Tables named in `skip` (the migrator's own bookkeeping)
/// are left out. Sorted by table, the whole table before its columns.
pub fn dropped(before: &Census, after: &Census, skip: &[String]) -> Vec<DataLoss> {
    let mut out = Vec::new();
    for (name, t) in &before.tables {
        if skip.iter().any(|s| s == name) {
            continue;
        }
        match after.tables.get(name) {
            None => out.push(DataLoss { table: name.clone(), column: None, rows: t.rows }),
            Some(now) => {
                for (col, values) in &t.columns {
                    if !now.columns.contains_key(col) {
                        out.push(DataLoss { table: name.clone(), column: Some(col.clone()), rows: *values });
                    }
                }
            }
        }
    }
    out
}

/// `payments (12 rows), users.nickname (3 values)`; `nothing` when empty.
pub fn describe(losses: &[DataLoss]) -> String {
    if losses.is_empty() {
        return "nothing".to_owned();
    }
    losses
        .iter()
        .map(|l| match &l.column {
            None => format!("{} ({} row{})", l.table, l.rows, if l.rows == 1 { "" } else { "s" }),
            Some(c) => format!("{}.{c} ({} value{})", l.table, l.rows, if l.rows == 1 { "" } else { "s" }),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn q(s: &str) -> String {
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
    let names: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    let mut census = Census::default();
    for name in names {
        let mut cols: Vec<(String, i64)> = {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", q(&name)))?;
            stmt.query_map([], |r| Ok((r.get(1)?, r.get(5)?)))?.collect::<rusqlite::Result<_>>()?
        };
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
        };
        census.tables.insert(name, t);
    }
    Ok(census)
}

fn pg_name(schema: &str, table: &str) -> String {
    if schema == "public" { table.to_owned() } else { format!("{schema}.{table}") }
}

async fn pg_census(ctx: &postgres::Ctx<'_>, client: &Client) -> Result<Census> {
    let rows = |sql: String| async move { postgres::rows(client, &sql).await.map_err(|e| ctx.query_err(&e)) };
    let user = postgres::USER_SCHEMA.replace("nspname", "n.nspname");
    let mut census = Census::default();
    let tables = rows(format!(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {user}"
    ))
    .await?;
    let columns = rows(format!(
        "SELECT n.nspname, c.relname, a.attname FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {user}
          ORDER BY a.attnum"
    ))
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
        let cols: Vec<&String> = columns.iter().filter(|c| c[0] == t[0] && c[1] == t[1]).map(|c| &c[2]).collect();
        let sql = format!("{}.{}", q(&t[0]), q(&t[1]));
        let mut select = "SELECT count(*)".to_owned();
        for c in &cols {
            let _ = write!(select, ", count({})", q(c));
        }
        let _ = write!(select, " FROM {sql}");
        let counts = rows(select).await?.into_iter().next().unwrap_or_default();
        let n = |i: usize| counts.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        census.tables.insert(
            pg_name(&t[0], &t[1]),
            TableCensus {
                rows: n(0),
                columns: cols.iter().enumerate().map(|(i, c)| ((*c).clone(), n(i + 1))).collect(),
                primary_key: keys.iter().filter(|k| k[0] == t[0] && k[1] == t[1]).map(|k| k[2].clone()).collect(),
                sql,
            },
        );
    }
    Ok(census)
}

/// What a put-back did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBackStats {
    /// Rows inserted into dropped tables.
    pub rows_inserted: u64,
    /// Rows of dropped tables that were there already, identical (re-created by the upgrade,
    /// or a resumed put-back).
    pub rows_present: u64,
    /// Column values written back.
    pub values_set: u64,
}

/// The SQL pieces for one table both sides have.
struct Pair<'a> {
    name: &'a str,
    live: String,
    snap: String,
    pk: Vec<String>,
    /// Columns of the snapshot's table the live one has too.
    cols: Vec<String>,
}

impl Pair<'_> {
    fn join(&self, a: &str, b: &str) -> String {
        self.pk.iter().map(|k| format!("{a}.{k} = {b}.{k}", k = q(k))).collect::<Vec<_>>().join(" AND ")
    }
    fn col_list(&self, alias: &str) -> String {
        self.cols.iter().map(|c| format!("{alias}.{}", q(c))).collect::<Vec<_>>().join(", ")
    }
    fn bare_cols(&self) -> String {
        self.cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
    }
}

fn pair<'a>(name: &'a str, live: &Census, snap: &Census) -> Option<Pair<'a>> {
    let (l, s) = (live.tables.get(name)?, snap.tables.get(name)?);
    Some(Pair {
        name,
        live: l.sql.clone(),
        snap: s.sql.clone(),
        pk: s.primary_key.clone(),
        cols: s.columns.keys().filter(|c| l.columns.contains_key(*c)).cloned().collect(),
    })
}

/// Why putting `losses` back from the snapshot copy `snap` into `live` (not upgraded yet: the
/// dropped tables and columns are missing there) cannot be done faithfully: a dropped column
/// of a table without a primary key, rows holding a dropped value that were deleted since, a
/// dropped table that exists again with other rows under the same keys. Empty: it can.
pub async fn obstacles(live: &UrlDatabase, snap: &UrlDatabase, losses: &[DataLoss]) -> Result<Vec<String>> {
    let (live_census, snap_census) = (census(live).await?, census(snap).await?);
    let mut out = Vec::new();
    for l in losses {
        let Some(s) = snap_census.tables.get(&l.table) else { continue };
        if let Some(col) = &l.column {
            {
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
                if p.pk.iter().any(|k| !p.cols.contains(k)) {
                    out.push(format!("{}.{col}: the primary key of `{}` changed since the run", l.table, l.table));
                    continue;
                }
                let gone = deleted_since(live, snap, &p, col).await?;
                if gone > 0 {
                    out.push(format!(
                        "{}.{col}: {gone} value(s) belong to rows deleted since the run (no row to put them in)",
                        l.table
                    ));
                }
            }
        } else {
            {
                let Some(now) = live_census.tables.get(&l.table) else { continue };
                if now.rows == 0 {
                    continue;
                }
                let Some(p) = pair(&l.table, &live_census, &snap_census).filter(|p| !p.pk.is_empty()) else {
                    out.push(format!(
                        "{}: the table exists again with {} row(s) and has no primary key to merge its {} row(s) by",
                        l.table, now.rows, l.rows
                    ));
                    continue;
                };
                let conflicts = conflicts(live, snap, &p).await?;
                if conflicts > 0 {
                    out.push(format!(
                        "{}: {conflicts} row(s) exist again under the same primary key with other content",
                        l.table
                    ));
                }
            }
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
                p.join("m", "s")
            );
            sqlite_attached(live, path, false, move |c| c.query_row(&sql, [], |r| r.get::<_, i64>(0))).await
        }
    } else {
        {
            let keys = p.pk.iter().map(|k| format!("'{}', s.{}", k.replace('\'', "''"), q(k))).collect::<Vec<_>>();
            let out = format!(
                "SELECT coalesce(json_agg(json_build_object({})), '[]')::text FROM {} s WHERE {where_}",
                keys.join(", "),
                p.snap
            );
            let json = pg_scalar(snap, &out).await?;
            let count = format!(
                "SELECT count(*) FROM json_populate_recordset(NULL::{}, $1::text::json) s WHERE NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                p.live,
                p.live,
                p.join("m", "s")
            );
            pg_count_with(live, &count, &json).await
        }
    }
    .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Rows under the same key in both tables with different content.
async fn conflicts(live: &UrlDatabase, snap: &UrlDatabase, p: &Pair<'_>) -> Result<u64> {
    if let (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) = (live.url(), snap.url()) {
        let sql = sqlite_conflicts(p);
        sqlite_attached(live, path, false, move |c| c.query_row(&sql, [], |r| r.get::<_, i64>(0))).await
    } else {
        {
            let json = pg_scalar(snap, &pg_rows_json(p)).await?;
            let sql = format!(
                "SELECT count(*) FROM json_populate_recordset(NULL::{}, $1::text::json) s JOIN {} m ON {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                p.live,
                p.live,
                p.join("m", "s"),
                p.col_list("m"),
                p.col_list("s")
            );
            pg_count_with(live, &sql, &json).await
        }
    }
    .map(|n| u64::try_from(n).unwrap_or(0))
}

fn sqlite_conflicts(p: &Pair<'_>) -> String {
    let same = p.cols.iter().map(|c| format!("m.{c} IS s.{c}", c = q(c))).collect::<Vec<_>>().join(" AND ");
    format!(
        "SELECT count(*) FROM snap.{} s JOIN main.{} m ON {} WHERE NOT ({})",
        p.snap,
        p.live,
        p.join("m", "s"),
        if same.is_empty() { "1".to_owned() } else { same }
    )
}

fn pg_rows_json(p: &Pair<'_>) -> String {
    format!("SELECT coalesce(json_agg(s), '[]')::text FROM {} s", p.snap)
}

/// Runs `f` on a connection to `live` with the SQLite file `snap` attached as `snap`.
async fn sqlite_attached<T, F>(live: &UrlDatabase, snap: &std::path::Path, write: bool, f: F) -> Result<T>
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

async fn pg_scalar(db: &UrlDatabase, sql: &str) -> Result<String> {
    let pg = db.pg();
    let client = pg.connect().await?;
    pg.within("reading rows", async {
        postgres::scalar(&client, sql).await.map_err(|e| pg.query_err(&e)).map(Option::unwrap_or_default)
    })
    .await
}

async fn pg_count_with(db: &UrlDatabase, sql: &str, json: &str) -> Result<i64> {
    let pg = db.pg();
    let client = pg.connect().await?;
    pg.within("comparing rows", async {
        client.query_one(sql, &[&json]).await.map(|r| r.get::<_, i64>(0)).map_err(|e| pg.query_err(&e))
    })
    .await
}

/// Puts back into `live` (upgraded: the dropped tables and columns exist again) what the
/// snapshot copy `snap` holds of `losses`: the rows of whole tables that are not there yet, and
/// the values of dropped columns, matched by primary key. One transaction: on any conflict
/// (a row under the same key with other content, a value whose row is gone) nothing changes.
/// Running it again after it committed changes nothing more.
pub async fn put_back(live: &UrlDatabase, snap: &UrlDatabase, losses: &[DataLoss]) -> Result<PutBackStats> {
    let (live_census, snap_census) = (census(live).await?, census(snap).await?);
    let mut tables = Vec::new();
    let mut columns = Vec::new();
    for l in losses {
        let Some(p) = pair(&l.table, &live_census, &snap_census) else {
            if snap_census.tables.contains_key(&l.table) {
                return Err(conflict(live, &format!("`{}` does not exist after the upgrade", l.table)));
            }
            continue;
        };
        match &l.column {
            None => tables.push(p),
            Some(c) => {
                if !live_census.tables[&l.table].columns.contains_key(c) {
                    return Err(conflict(live, &format!("`{}.{c}` does not exist after the upgrade", l.table)));
                }
                if p.pk.is_empty() {
                    return Err(conflict(live, &format!("`{}` has no primary key to match `{c}` by", l.table)));
                }
                columns.push((p, c.clone()));
            }
        }
    }
    match (live.url(), snap.url()) {
        (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) => {
            let database = live.describe();
            let plan = SqlitePlan {
                tables: tables.iter().map(SqlitePlan::table).collect(),
                columns: columns.iter().map(|(p, c)| SqlitePlan::column(p, c)).collect(),
            };
            sqlite_attached(live, path, true, move |c| plan.run(c))
                .await?
                .map_err(|detail| Error::Query { database, detail })
        }
        _ => pg_put_back(live, snap, &tables, &columns).await,
    }
}

fn conflict(db: &UrlDatabase, detail: &str) -> Error {
    Error::Query { database: db.describe(), detail: format!("cannot put the dropped rows back: {detail}") }
}

/// The statements of a SQLite put-back, made before moving to the blocking pool.
struct SqlitePlan {
    /// Per table: name, conflicts query, insert, count of the snapshot's rows, whether it has a
    /// primary key.
    tables: Vec<(String, String, String, String, bool)>,
    /// Per column: name, rows-gone query, update.
    columns: Vec<(String, String, String)>,
}

impl SqlitePlan {
    fn table(p: &Pair<'_>) -> (String, String, String, String, bool) {
        let insert = if p.pk.is_empty() {
            format!("INSERT INTO main.{} ({}) SELECT {} FROM snap.{} s", p.live, p.bare_cols(), p.col_list("s"), p.snap)
        } else {
            format!(
                "INSERT INTO main.{} ({}) SELECT {} FROM snap.{} s WHERE NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
                p.live,
                p.bare_cols(),
                p.col_list("s"),
                p.snap,
                p.live,
                p.join("m", "s")
            )
        };
        let conflicts = if p.pk.is_empty() {
            // Without a key the table must be empty, or hold exactly the snapshot's rows.
            format!(
                "SELECT CASE WHEN (SELECT count(*) FROM main.{l}) = 0 THEN 0 WHEN (SELECT count(*) FROM (SELECT {c} FROM main.{l} EXCEPT SELECT {c} FROM snap.{s})) + (SELECT count(*) FROM (SELECT {c} FROM snap.{s} EXCEPT SELECT {c} FROM main.{l})) = 0 THEN -1 ELSE (SELECT count(*) FROM main.{l}) END",
                l = p.live,
                s = p.snap,
                c = p.bare_cols()
            )
        } else {
            sqlite_conflicts(p)
        };
        (p.name.to_owned(), conflicts, insert, format!("SELECT count(*) FROM snap.{}", p.snap), !p.pk.is_empty())
    }

    fn column(p: &Pair<'_>, col: &str) -> (String, String, String) {
        let c = q(col);
        let outer =
            p.pk.iter().map(|k| format!("s.{k} = main.{}.{k}", p.live, k = q(k))).collect::<Vec<_>>().join(" AND ");
        let gone = format!(
            "SELECT count(*) FROM snap.{} s WHERE s.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
            p.snap,
            p.live,
            p.join("m", "s")
        );
        let update = format!(
            "UPDATE main.{l} SET {c} = (SELECT s.{c} FROM snap.{s} s WHERE {outer}) WHERE EXISTS (SELECT 1 FROM snap.{s} s WHERE {outer} AND s.{c} IS NOT NULL AND s.{c} IS NOT main.{l}.{c})",
            l = p.live,
            s = p.snap
        );
        (format!("{}.{col}", p.name), gone, update)
    }

    /// `Ok(Err(why))`: a conflict, rolled back.
    fn run(self, conn: &rusqlite::Connection) -> rusqlite::Result<std::result::Result<PutBackStats, String>> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| -> rusqlite::Result<std::result::Result<PutBackStats, String>> {
            let mut stats = PutBackStats::default();
            for (name, conflicts, insert, total, keyed) in &self.tables {
                let n: i64 = conn.query_row(conflicts, [], |r| r.get(0))?;
                let total: i64 = conn.query_row(total, [], |r| r.get(0))?;
                if !*keyed && n == -1 {
                    stats.rows_present += u64::try_from(total).unwrap_or(0);
                    continue;
                }
                if n != 0 {
                    return Ok(Err(if *keyed {
                        format!("{name}: {n} row(s) exist under the same primary key with other content")
                    } else {
                        format!("{name}: the table holds {n} other row(s) and has no primary key to merge by")
                    }));
                }
                let inserted = u64::try_from(conn.execute(insert, [])?).unwrap_or(0);
                stats.rows_inserted += inserted;
                stats.rows_present += u64::try_from(total).unwrap_or(0).saturating_sub(inserted);
            }
            for (name, gone, update) in &self.columns {
                let n: i64 = conn.query_row(gone, [], |r| r.get(0))?;
                if n != 0 {
                    return Ok(Err(format!("{name}: {n} value(s) belong to rows deleted since the run")));
                }
                stats.values_set += u64::try_from(conn.execute(update, [])?).unwrap_or(0);
            }
            Ok(Ok(stats))
        })();
        match &result {
            Ok(Ok(_)) => conn.execute_batch("COMMIT")?,
            _ => {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        result
    }
}

async fn pg_put_back(
    live: &UrlDatabase,
    snap: &UrlDatabase,
    tables: &[Pair<'_>],
    columns: &[(Pair<'_>, String)],
) -> Result<PutBackStats> {
    // Read everything from the snapshot copy first: the live transaction stays short.
    let mut table_rows = Vec::new();
    for p in tables {
        table_rows.push(pg_scalar(snap, &pg_rows_json(p)).await?);
    }
    let mut column_rows = Vec::new();
    for (p, c) in columns {
        let mut fields: Vec<String> = p.pk.iter().map(|k| format!("'{}', s.{}", k.replace('\'', "''"), q(k))).collect();
        fields.push(format!("'{}', s.{}", c.replace('\'', "''"), q(c)));
        column_rows.push(
            pg_scalar(
                snap,
                &format!(
                    "SELECT coalesce(json_agg(json_build_object({})), '[]')::text FROM {} s WHERE s.{} IS NOT NULL",
                    fields.join(", "),
                    p.snap,
                    q(c)
                ),
            )
            .await?,
        );
    }
    let pg = live.pg();
    let client = pg.connect().await?;
    let err = |e: &tokio_postgres::Error| pg.query_err(e);
    let work = async {
        client.batch_execute("BEGIN").await.map_err(|e| err(&e))?;
        let mut stats = PutBackStats::default();
        // Tables in dependency order: a table whose insert fails (a foreign key to a table not
        // back yet) is tried again after the others.
        let mut pending: Vec<usize> = (0..tables.len()).collect();
        while !pending.is_empty() {
            let mut failed = Vec::new();
            let mut last_error = None;
            for &i in &pending {
                let p = &tables[i];
                client.batch_execute("SAVEPOINT forge_rollback_put_back").await.map_err(|e| err(&e))?;
                match pg_put_back_table(&client, p, &table_rows[i]).await {
                    Ok(Ok((inserted, present))) => {
                        stats.rows_inserted += inserted;
                        stats.rows_present += present;
                        client.batch_execute("RELEASE SAVEPOINT forge_rollback_put_back").await.map_err(|e| err(&e))?;
                    }
                    Ok(Err(why)) => return Err(conflict(live, &why)),
                    Err(e) => {
                        client
                            .batch_execute("ROLLBACK TO SAVEPOINT forge_rollback_put_back")
                            .await
                            .map_err(|e| err(&e))?;
                        last_error = Some(e);
                        failed.push(i);
                    }
                }
            }
            if failed.len() == pending.len() {
                return Err(last_error.map_or_else(|| conflict(live, "no progress"), |e| err(&e)));
            }
            pending = failed;
        }
        for ((p, c), json) in columns.iter().zip(&column_rows) {
            let src = format!("json_populate_recordset(NULL::{}, $1::text::json)", p.live);
            let gone: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                        p.live,
                        p.join("m", "s")
                    ),
                    &[json],
                )
                .await
                .map_err(|e| err(&e))?
                .get(0);
            if gone != 0 {
                return Err(conflict(
                    live,
                    &format!("{}.{c}: {gone} value(s) belong to rows deleted since the run", p.name),
                ));
            }
            let n = client
                .execute(
                    &format!(
                        "UPDATE {l} m SET {col} = s.{col} FROM {src} s WHERE {} AND m.{col} IS DISTINCT FROM s.{col}",
                        p.join("m", "s"),
                        l = p.live,
                        col = q(c)
                    ),
                    &[json],
                )
                .await
                .map_err(|e| err(&e))?;
            stats.values_set += n;
        }
        client.batch_execute("COMMIT").await.map_err(|e| err(&e))?;
        Ok(stats)
    };
    match tokio::time::timeout(pg.timeout, work).await {
        Ok(Ok(stats)) => Ok(stats),
        Ok(Err(e)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
        Err(_) => Err(conflict(live, &format!("not done within {}s (database.timeout_secs)", pg.timeout.as_secs()))),
    }
}

/// One table's rows back: `Ok(Err(why))` on a conflict; `Err` on a database error (a foreign
/// key not satisfied yet: tried again later).
async fn pg_put_back_table(
    client: &Client,
    p: &Pair<'_>,
    json: &str,
) -> std::result::Result<std::result::Result<(u64, u64), String>, tokio_postgres::Error> {
    let src = format!("json_populate_recordset(NULL::{}, $1::text::json)", p.live);
    let total: i64 = client.query_one(&format!("SELECT count(*) FROM {src}"), &[&json]).await?.get(0);
    let total = u64::try_from(total).unwrap_or(0);
    let inserted = if p.pk.is_empty() {
        let now: i64 = client.query_one(&format!("SELECT count(*) FROM {}", p.live), &[]).await?.get(0);
        if now != 0 {
            let differ: i64 = client
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM (SELECT {c} FROM {l} EXCEPT ALL SELECT {c} FROM {src} s) a) + (SELECT count(*) FROM (SELECT {c} FROM {src} s EXCEPT ALL SELECT {c} FROM {l}) b)",
                        c = p.bare_cols(),
                        l = p.live
                    ),
                    &[&json],
                )
                .await?
                .get(0);
            if differ != 0 {
                return Ok(Err(format!(
                    "{}: the table holds {now} other row(s) and has no primary key to merge by",
                    p.name
                )));
            }
            return Ok(Ok((0, total)));
        }
        client
            .execute(
                &format!("INSERT INTO {} ({}) SELECT {} FROM {src} s", p.live, p.bare_cols(), p.col_list("s")),
                &[&json],
            )
            .await?
    } else {
        let conflicts: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {src} s JOIN {} m ON {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                    p.live,
                    p.join("m", "s"),
                    p.col_list("m"),
                    p.col_list("s")
                ),
                &[&json],
            )
            .await?
            .get(0);
        if conflicts != 0 {
            return Ok(Err(format!(
                "{}: {conflicts} row(s) exist under the same primary key with other content",
                p.name
            )));
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {} ({}) SELECT {} FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                    p.live,
                    p.bare_cols(),
                    p.col_list("s"),
                    p.live,
                    p.join("m", "s")
                ),
                &[&json],
            )
            .await?
    };
    // Sequences behind the keys put back must not hand out those keys again.
    let seqs = client
        .query(
            &format!(
                "SELECT a.attname, pg_get_serial_sequence('{}', a.attname) FROM pg_attribute a WHERE a.attrelid = '{}'::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                p.live.replace('\'', "''"),
                p.live.replace('\'', "''")
            ),
            &[],
        )
        .await?;
    for row in seqs {
        let (col, seq): (String, Option<String>) = (row.get(0), row.get(1));
        if let Some(seq) = seq {
            client
                .execute(
                    &format!(
                        "SELECT setval('{}', GREATEST((SELECT coalesce(max({}), 0) FROM {}), (SELECT last_value FROM {}), 1))",
                        seq.replace('\'', "''"),
                        q(&col),
                        p.live,
                        seq
                    ),
                    &[],
                )
                .await?;
        }
    }
    Ok(Ok((inserted, total.saturating_sub(inserted))))
}
