//! Keeping the rows written while a downgrade ran, when it fails (or is cut short) and the
//! database snapshot is restored over it: from a copy of the database as it was before the
//! restore, the rows whose primary key the restored database does not hold are inserted into
//! it, in one transaction. Insert-only: a row of the restored database is never overwritten.
//!
//! Only tables that exist with the same columns and primary key on both sides take rows. The
//! rest is counted and named, never silently dropped: rows under a key the restored database
//! holds with other content (an update made meanwhile), rows of a table without a primary key,
//! of a table whose columns the downgrade changed or that it created, and of the tables the
//! caller holds back (written by the part of the downgrade that completed).

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::compare::{Pair, pair, pg_text_settings, sqlite_attached};
use super::pg_order::{in_dependency_order, within_or_rolled_back};
use super::triggers::{drop_triggers, triggers_off, triggers_on_and_commit};
use super::{census, q};
use super::{pg_batches, pg_sequences};
use crate::db::url::DbUrl;
use crate::db::{Error, Result, UrlDatabase};

/// Rows of one table the restored database does not hold that were not put back, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotKept {
    /// The table.
    pub table: String,
    /// How many rows.
    pub rows: u64,
    /// Why (`their primary key is in the restored database with other content`, ...).
    pub why: String,
}

/// What keeping the rows written meanwhile did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Rows put back, per table (tables with none left out).
    pub inserted: Vec<(String, u64)>,
    /// Rows not put back, per table and reason.
    pub not_kept: Vec<NotKept>,
}

impl Kept {
    /// Rows put back in all.
    pub fn rows_inserted(&self) -> u64 {
        self.inserted.iter().map(|(_, n)| n).sum()
    }

    /// Rows not put back in all.
    pub fn rows_not_kept(&self) -> u64 {
        self.not_kept.iter().map(|n| n.rows).sum()
    }

    /// `users (1 row)`; `nothing` when none.
    pub fn describe_inserted(&self) -> String {
        describe(self.inserted.iter().map(|(t, n)| (t.as_str(), *n, None)))
    }

    /// `users (1 row: their primary key is in the restored database with other content)`.
    pub fn describe_not_kept(&self) -> String {
        describe(self.not_kept.iter().map(|n| (n.table.as_str(), n.rows, Some(n.why.as_str()))))
    }
}

fn describe<'a>(items: impl Iterator<Item = (&'a str, u64, Option<&'a str>)>) -> String {
    let parts: Vec<String> = items
        .map(|(t, n, why)| {
            let rows = format!("{n} row{}", if n == 1 { "" } else { "s" });
            match why {
                Some(w) => format!("{t} ({rows}: {w})"),
                None => format!("{t} ({rows})"),
            }
        })
        .collect();
    if parts.is_empty() { "nothing".to_owned() } else { parts.join(", ") }
}

/// What to do with one table of the database as it was before the restore.
enum Plan<'a> {
    /// Same columns and primary key on both sides: insert the rows whose key is missing.
    Insert(Pair<'a>),
    /// Only count the rows the restored database does not hold, giving this reason.
    Count(Pair<'a>, String),
}

/// Puts back into `restored` (the snapshot just restored) the rows of `before` (a copy of the
/// database as it was just before the restore) whose primary key it does not hold, table by
/// table, as the module says. Tables named in `skip` (the migrator's bookkeeping) are left
/// alone; tables in `held` only counted, with `held_why`. One transaction: on an error
/// nothing is put back.
pub async fn keep_written(
    restored: &UrlDatabase,
    before: &UrlDatabase,
    skip: &[String],
    held: &BTreeSet<String>,
    held_why: &str,
) -> Result<Kept> {
    let (live, old) = (census(restored).await?, census(before).await?);
    let mut kept = Kept::default();
    let mut plans = Vec::new();
    for (name, b) in &old.tables {
        if super::skipped(name, skip, &old) || b.rows == 0 {
            continue;
        }
        let Some(r) = live.tables.get(name) else {
            kept.not_kept.push(NotKept {
                table: name.clone(),
                rows: b.rows,
                why: "the table is not in the restored database".to_owned(),
            });
            continue;
        };
        let Some(p) = pair(name, &live, &old) else { continue };
        let same_shape = b.columns.keys().eq(r.columns.keys()) && b.primary_key == r.primary_key;
        let why = if held.contains(name) {
            Some(held_why.to_owned())
        } else if b.primary_key.is_empty() {
            Some("the table has no primary key to match rows by".to_owned())
        } else if !same_shape {
            Some("its columns differ from the restored database's".to_owned())
        } else {
            None
        };
        plans.push(match why {
            None => Plan::Insert(p),
            Some(w) => Plan::Count(p, w),
        });
    }
    let found = match (restored.url(), before.url()) {
        (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) => sqlite_keep(restored, path, &plans).await?,
        _ => pg_keep(restored, before, &plans).await?,
    };
    for (name, inserted, missing, why) in found {
        if inserted > 0 {
            kept.inserted.push((name.clone(), inserted));
        }
        if missing > 0 {
            kept.not_kept.push(NotKept { table: name, rows: missing, why });
        }
    }
    kept.not_kept.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(kept)
}

/// Per table: name, rows inserted, rows not put back, why.
type Found = Vec<(String, u64, u64, String)>;

const OTHER_CONTENT: &str = "their primary key is in the restored database with other content";

/// `s.c IS m.c AND …` over the columns of `p` (NULL-safe, byte for byte: `COLLATE BINARY`, so
/// the letter case of a `NOCASE` column counts; `1` when there are none).
fn sqlite_same(p: &Pair<'_>) -> String {
    let same =
        p.cols.iter().map(|c| format!("m.{c} IS s.{c} COLLATE BINARY", c = q(c))).collect::<Vec<_>>().join(" AND ");
    if same.is_empty() { "1".to_owned() } else { same }
}

async fn sqlite_keep(restored: &UrlDatabase, before: &std::path::Path, plans: &[Plan<'_>]) -> Result<Found> {
    // (name, count of the rows not put back, the insert (none: count only), why)
    let mut work: Vec<(String, String, Option<String>, String)> = Vec::new();
    for plan in plans {
        match plan {
            Plan::Insert(p) => work.push((
                p.name.to_owned(),
                format!(
                    "SELECT count(*) FROM snap.{} s JOIN main.{} m ON {} WHERE NOT ({})",
                    p.snap,
                    p.live,
                    p.sqlite_join("m", "s"),
                    sqlite_same(p)
                ),
                Some(format!(
                    "INSERT INTO main.{} ({}) SELECT {} FROM snap.{} s WHERE NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
                    p.live,
                    p.bare_cols(),
                    p.col_list("s"),
                    p.snap,
                    p.live,
                    p.sqlite_join("m", "s")
                )),
                OTHER_CONTENT.to_owned(),
            )),
            Plan::Count(p, why) => work.push((
                p.name.to_owned(),
                format!(
                    "SELECT count(*) FROM snap.{} s WHERE NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
                    p.snap,
                    p.live,
                    sqlite_same(p)
                ),
                None,
                why.clone(),
            )),
        }
    }
    let written: Vec<String> = work.iter().filter(|w| w.2.is_some()).map(|w| w.0.clone()).collect();
    sqlite_attached(restored, before, true, move |conn| {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| -> rusqlite::Result<Found> {
            // Putting rows back is no new event: the triggers of the tables written must not
            // fire (dropped and created again from their SQL, in this transaction).
            let triggers = drop_triggers(conn, &written)?;
            let mut found = Vec::new();
            for (name, count, insert, why) in &work {
                let missing: i64 = conn.query_row(count, [], |r| r.get(0))?;
                let inserted = match insert {
                    Some(sql) => conn.execute(sql, [])?,
                    None => 0,
                };
                found.push((
                    name.clone(),
                    u64::try_from(inserted).unwrap_or(0),
                    u64::try_from(missing).unwrap_or(0),
                    why.clone(),
                ));
            }
            for sql in &triggers {
                conn.execute_batch(sql)?;
            }
            Ok(found)
        })();
        match &result {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(_) => {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        result
    })
    .await
}

async fn pg_keep(restored: &UrlDatabase, before: &UrlDatabase, plans: &[Plan<'_>]) -> Result<Found> {
    // Everything from the copy first, into temporary tables of this session, in batches (no
    // table is one value, which PostgreSQL caps at 1 GB in text form): the transaction on the
    // live database stays short.
    let pg = restored.pg();
    let client = pg.connect().await?;
    let mut rows = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let (Plan::Insert(p) | Plan::Count(p, _)) = plan;
        let name = format!("forge_rollback_rows_{i}");
        rows.push(pg_batches::stage(before, p, &p.cols, None, &client, restored, &name).await?);
    }
    // Where the app's writes had moved the sequences before the restore (see the end).
    let sequences = pg_sequences::read(before).await?;
    let err = |e: &tokio_postgres::Error| pg.query_err(e);
    let work = async {
        client.batch_execute("BEGIN").await.map_err(|e| err(&e))?;
        client.batch_execute(&pg_text_settings(true)).await.map_err(|e| err(&e))?;
        let mut triggers = Vec::new();
        for plan in plans {
            if let Plan::Insert(p) = plan {
                triggers.extend(triggers_off(&client, &p.live).await.map_err(|e| err(&e))?);
            }
        }
        // Tables in dependency order (a foreign key to rows not back yet: tried again later).
        let done = in_dependency_order(&client, "forge_rollback_keep", plans.len(), |i| {
            pg_keep_table(&client, &plans[i], &rows[i])
        })
        .await
        .map_err(|(_, e)| err(&e))?;
        // No id handed out while the downgrade ran is handed out again: every sequence goes
        // where it was before the restore, or past the keys put back (owned by the column or
        // not), never back. (Before, only the sequences the tables own moved, to their largest
        // key: one a `DEFAULT nextval(...)` named stayed where the snapshot had it, and the
        // app's next insert failed on the key of a row kept.)
        let kept: Vec<(&str, Option<&str>)> = done
            .iter()
            .filter_map(|(i, (_, inserted, _, _))| match &plans[*i] {
                Plan::Insert(p) if *inserted > 0 => Some((p.live.as_str(), None)),
                _ => None,
            })
            .collect();
        pg_sequences::put_back(&client, &sequences, &kept).await.map_err(|e| err(&e))?;
        triggers_on_and_commit(&client, &triggers).await.map_err(|e| err(&e))?;
        Ok(done.into_iter().map(|(_, f)| f).collect())
    };
    within_or_rolled_back(&client, pg.timeout, work, || Error::Query {
        database: restored.describe(),
        detail: format!("putting rows back not done within {}s (database.timeout_secs)", pg.timeout.as_secs()),
    })
    .await
}

async fn pg_keep_table(
    client: &Client,
    plan: &Plan<'_>,
    src: &str,
) -> std::result::Result<(String, u64, u64, String), tokio_postgres::Error> {
    let (Plan::Insert(p) | Plan::Count(p, _)) = plan;
    let same = format!("ROW({}) IS NOT DISTINCT FROM ROW({})", p.cmp_list("m"), p.cmp_list("s"));
    let count = |sql: String| async move {
        client.query_one(&sql, &[]).await.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
    };
    match plan {
        Plan::Insert(p) => {
            let missing = count(format!(
                "SELECT count(*) FROM {src} s JOIN {} m ON {} WHERE NOT ({same})",
                p.live_rows(),
                p.join("m", "s")
            ))
            .await?;
            let overriding = if p.identity.is_empty() { "" } else { " OVERRIDING SYSTEM VALUE" };
            let inserted = client
                .execute(
                    &format!(
                        "INSERT INTO {l} ({}){overriding} SELECT {} FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM {r} m WHERE {})",
                        p.bare_cols(),
                        p.col_list("s"),
                        p.join("m", "s"),
                        l = p.live,
                        r = p.live_rows()
                    ),
                    &[],
                )
                .await?;
            Ok((p.name.to_owned(), inserted, missing, OTHER_CONTENT.to_owned()))
        }
        Plan::Count(p, why) => {
            let missing = count(format!(
                "SELECT count(*) FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM {} m WHERE {same})",
                p.live_rows()
            ))
            .await?;
            Ok((p.name.to_owned(), 0, missing, why.clone()))
        }
    }
}
