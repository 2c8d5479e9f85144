//! Putting back what a downgrade dropped: rows of whole tables and values of columns, from a
//! copy of the run's snapshot into the upgraded live database, in one transaction.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::compare::{Pair, pair, pg_rows_json, pg_scalar, sqlite_attached, sqlite_conflicts};
use super::{census, q};
use crate::db::url::DbUrl;
use crate::db::{Error, Result, UrlDatabase};
use crate::model::DataLoss;

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

/// The rows of `a` that are not in `b`, as a multiset (`a EXCEPT ALL b`, which SQLite lacks):
/// a row with 4 identical copies in `a` and 1 in `b` comes out 3 times. Each copy is numbered
/// among its identical copies (`PARTITION BY` and `EXCEPT` hold NULLs equal), so `EXCEPT`
/// compares copy by copy. The columns are `p`'s, plus the copy's number.
fn sqlite_except_all(p: &Pair<'_>, a: &str, b: &str) -> String {
    let c = p.bare_cols();
    let numbered = |t: &str| format!("SELECT {c}, row_number() OVER (PARTITION BY {c}) AS {COPY} FROM {t}");
    format!("{} EXCEPT {}", numbered(a), numbered(b))
}

/// The name of the copy number [`sqlite_except_all`] adds.
const COPY: &str = "\"forge_rollback copy\"";

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
        let (conflicts, insert) = if p.pk.is_empty() {
            // Without a key rows are matched as a multiset (SQLite has no `EXCEPT ALL`: each
            // copy of a row is numbered within its identical copies, and rows are compared
            // with their number). The table must hold no row the snapshot does not (counting
            // copies); the snapshot's copies not there yet are put back.
            (
                format!(
                    "SELECT count(*) FROM ({})",
                    sqlite_except_all(p, &format!("main.{}", p.live), &format!("snap.{}", p.snap))
                ),
                format!(
                    "INSERT INTO main.{} ({c}) SELECT {c} FROM ({})",
                    p.live,
                    sqlite_except_all(p, &format!("snap.{}", p.snap), &format!("main.{}", p.live)),
                    c = p.bare_cols()
                ),
            )
        } else {
            (
                sqlite_conflicts(p),
                format!(
                    "INSERT INTO main.{} ({}) SELECT {} FROM snap.{} s WHERE NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
                    p.live,
                    p.bare_cols(),
                    p.col_list("s"),
                    p.snap,
                    p.live,
                    p.join("m", "s")
                ),
            )
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
            "UPDATE main.{l} SET {c} = (SELECT s.{c} FROM snap.{s} s WHERE {outer}) WHERE EXISTS (SELECT 1 FROM snap.{s} s WHERE {outer} AND s.{c} IS NOT main.{l}.{c})",
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
                    "SELECT coalesce(json_agg(json_build_object({})), '[]')::text FROM {} s",
                    fields.join(", "),
                    p.snap
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
                        "SELECT count(*) FROM {src} s WHERE s.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                        p.live,
                        p.join("m", "s"),
                        col = q(c)
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
        // Matched as a multiset: the table must hold no row the snapshot does not (counting
        // identical copies); the snapshot's copies not there yet are put back. An empty table
        // takes them all without comparing (no equality needed, e.g. for `json` columns).
        let now: i64 = client.query_one(&format!("SELECT count(*) FROM {}", p.live), &[]).await?.get(0);
        let other: i64 = if now == 0 {
            0
        } else {
            client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT {c} FROM {l} EXCEPT ALL SELECT {c} FROM {src} s) a",
                        c = p.bare_cols(),
                        l = p.live
                    ),
                    &[&json],
                )
                .await?
                .get(0)
        };
        if other != 0 {
            return Ok(Err(format!(
                "{}: the table holds {other} other row(s) and has no primary key to merge by",
                p.name
            )));
        }
        let insert = if now == 0 {
            format!("INSERT INTO {} ({}) SELECT {} FROM {src} s", p.live, p.bare_cols(), p.col_list("s"))
        } else {
            format!(
                "INSERT INTO {l} ({c}) SELECT {c} FROM (SELECT {c} FROM {src} s EXCEPT ALL SELECT {c} FROM {l}) b",
                c = p.bare_cols(),
                l = p.live
            )
        };
        client.execute(&insert, &[&json]).await?
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `a EXCEPT ALL b` on SQLite: copies counted, NULLs equal.
    #[test]
    fn sqlite_except_all_counts_copies_and_holds_nulls_equal() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE a (kind TEXT, n INTEGER); CREATE TABLE b (kind TEXT, n INTEGER);
             INSERT INTO a VALUES ('x', 1), ('x', 1), ('x', 1), ('x', 1), (NULL, 2), (NULL, 2), ('y', NULL);
             INSERT INTO b VALUES ('x', 1), (NULL, 2), ('z', 3);",
        )
        .unwrap();
        let p = Pair {
            name: "a",
            live: q("a"),
            snap: q("b"),
            pk: Vec::new(),
            cols: vec!["kind".to_owned(), "n".to_owned()],
        };
        let rows = |a: &str, b: &str| -> Vec<(Option<String>, Option<i64>)> {
            let sql = format!("SELECT kind, n FROM ({}) ORDER BY kind, n", sqlite_except_all(&p, a, b));
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
        };
        let x = (Some("x".to_owned()), Some(1));
        assert_eq!(rows("a", "b"), [(None, Some(2)), x.clone(), x.clone(), x, (Some("y".to_owned()), None)]);
        assert_eq!(rows("b", "a"), [(Some("z".to_owned()), Some(3))]);
    }
}
