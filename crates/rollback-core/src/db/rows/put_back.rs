//! Putting back what a downgrade dropped: rows of whole tables and values of columns, from a
//! copy of the run's snapshot into the upgraded live database, in one transaction.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::compare::{Pair, pair, pg_text_settings, sqlite_attached, sqlite_conflicts};
use super::pg_order::{in_dependency_order, within_or_rolled_back};
use super::triggers::{drop_triggers, triggers_off, triggers_on_and_commit};
use super::{census, fk, pg_batches, pg_cycles, pg_sequences, q, removed};
use crate::db::url::DbUrl;
use crate::db::{Error, Result, UrlDatabase};
use crate::model::{DataLoss, LossKind};

/// What a put-back did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBackStats {
    /// Rows inserted into dropped tables (and tables the downgrade deleted rows from).
    pub rows_inserted: u64,
    /// Of those, rows that were there already, identical (re-created by the upgrade, or a
    /// resumed put-back).
    pub rows_present: u64,
    /// Column values written back.
    pub values_set: u64,
    /// Values the downgrade changed that were not written back, per column (`Changed`, with
    /// their count): the value there was no longer the one the downgrade and the upgrade leave
    /// (the app changed it since, or deleted its row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_left: Vec<DataLoss>,
    /// SQLite: the `AUTOINCREMENT` tables whose counter was moved up to the snapshot's (it was
    /// below: the downgrade or the upgrade dropped or rebuilt the table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters_raised: Vec<String>,
}

/// Puts back into `live` (upgraded: the dropped tables and columns exist again) what the
/// snapshot copy `snap` holds of `losses`: the rows of whole tables that are not there yet, the
/// values of dropped columns, matched by primary key, and the rows the downgrade deleted from
/// tables that stay (from their markers: see `mark_removed`, which must have run on `snap`). One transaction: on any conflict
/// (a row under the same key with other content, a value whose row is gone) nothing changes.
/// Running it again after it committed changes nothing more.
pub async fn put_back(live: &UrlDatabase, snap: &UrlDatabase, losses: &[DataLoss]) -> Result<PutBackStats> {
    let (live_census, snap_census) = (census(live).await?, census(snap).await?);
    let mut tables = Vec::new();
    let mut columns = Vec::new();
    let mut changed = Vec::new();
    let untold = |what: &str| conflict(live, &format!("{what} were not told apart"));
    for (i, l) in losses.iter().enumerate() {
        if l.kind == LossKind::Changed {
            // From the markers `mark_downgraded` made: the values the downgrade changed.
            let col = l.column.clone().unwrap_or_default();
            let p = pair(&l.table, &live_census, &snap_census)
                .filter(|p| !p.pk.is_empty() && p.cols.contains(&col) && !p.identity.contains(&col))
                .filter(|_| snap_census.tables.contains_key(&removed::marker_name(i)))
                .ok_or_else(|| untold(&format!("the values of `{}.{col}` the downgrade changed", l.table)))?;
            let marked = snap_census.tables.get(&removed::marker_name(i)).map_or(0, |t| t.rows);
            changed.push(Changed {
                loss: DataLoss::changed(p.name, &col, marked),
                pair: p,
                before: removed::marker(snap, i),
                down: removed::marker_down(snap, i),
                column: col,
            });
            continue;
        }
        if l.kind == LossKind::Removed {
            // From the marker `mark_removed` made: only the rows the downgrade deleted.
            let mut p = pair(&l.table, &live_census, &snap_census)
                .filter(|_| snap_census.tables.contains_key(&removed::marker_name(i)))
                .ok_or_else(|| untold(&format!("the rows the downgrade deleted from `{}`", l.table)))?;
            p.snap = removed::marker(snap, i);
            tables.push(p);
            continue;
        }
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
                if live_census.tables[&l.table].generated.contains(c) {
                    // Computed by the database: the upgrade computed it again.
                    continue;
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
            let mut written: Vec<String> = tables
                .iter()
                .map(|p| p.name)
                .chain(columns.iter().map(|(p, _)| p.name))
                .chain(changed.iter().map(|c| c.pair.name))
                .map(str::to_owned)
                .collect();
            written.sort_unstable();
            written.dedup();
            let plan = SqlitePlan {
                tables: tables.iter().map(SqlitePlan::table).collect(),
                columns: columns.iter().map(|(p, c)| SqlitePlan::column(p, c)).collect(),
                changed: changed
                    .iter()
                    .map(|c| SqliteChanged {
                        loss: c.loss.clone(),
                        update: super::changed::sqlite_update(&c.pair, &c.column, &c.before, &c.down),
                        back: super::changed::sqlite_back(&c.pair, &c.column, &c.before),
                    })
                    .collect(),
                written,
            };
            sqlite_attached(live, path, true, move |c| plan.run(c))
                .await?
                .map_err(|detail| Error::Query { database, detail })
        }
        _ => pg_put_back(live, snap, &tables, &columns, &changed).await,
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
    /// Per column whose values the downgrade changed.
    changed: Vec<SqliteChanged>,
    /// The tables written to, whose triggers must not fire.
    written: Vec<String>,
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
                    p.sqlite_join("m", "s")
                ),
            )
        };
        (p.name.to_owned(), conflicts, insert, format!("SELECT count(*) FROM snap.{}", p.snap), !p.pk.is_empty())
    }

    fn column(p: &Pair<'_>, col: &str) -> (String, String, String) {
        let c = q(col);
        let outer = p.sqlite_join("s", &format!("main.{}", p.live));
        let gone = format!(
            "SELECT count(*) FROM snap.{} s WHERE s.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM main.{} m WHERE {})",
            p.snap,
            p.live,
            p.sqlite_join("m", "s")
        );
        let update = format!(
            "UPDATE main.{l} SET {c} = (SELECT s.{c} FROM snap.{s} s WHERE {outer}) WHERE EXISTS (SELECT 1 FROM snap.{s} s WHERE {outer} AND s.{c} IS NOT main.{l}.{c} COLLATE BINARY)",
            l = p.live,
            s = p.snap
        );
        (format!("{}.{col}", p.name), gone, update)
    }

    /// `Ok(Err(why))`: a conflict, rolled back.
    fn run(self, conn: &rusqlite::Connection) -> rusqlite::Result<std::result::Result<PutBackStats, String>> {
        if let Some(why) = super::sqlite_virtual::unsound(conn, &self.written)? {
            return Ok(Err(why));
        }
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        if let Some(done) = self.attempt(conn, true)? {
            return Ok(done);
        }
        // Every reference the put-back broke was broken before the run (an app that runs with
        // foreign keys off): written again with them off, and checked by hand before the
        // commit. The setting cannot change inside a transaction.
        conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        let done = self.attempt(conn, false);
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        Ok(done?.unwrap_or_else(|| Err("foreign keys broken by the put-back could not be told apart".to_owned())))
    }

    /// One transaction of the put-back, foreign keys `enforced` by SQLite or checked here.
    /// `None`: enforced, the commit broke references, each of them broken before the run too.
    fn attempt(
        &self,
        conn: &rusqlite::Connection,
        enforced: bool,
    ) -> rusqlite::Result<Option<std::result::Result<PutBackStats, String>>> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // Enforced, foreign keys are checked at the commit, not per statement: a row put back
        // whose parent was deleted since is then named (`foreign_key_check`), where the
        // statement would fail as a bare "FOREIGN KEY constraint failed". Reset by the commit.
        // The savepoint gives back the references broken before, should the commit fail.
        let before = if enforced {
            conn.execute_batch("PRAGMA defer_foreign_keys = ON; SAVEPOINT put_back")?;
            None
        } else {
            Some(fk::broken(conn, &self.written)?)
        };
        let result = (|| -> rusqlite::Result<std::result::Result<PutBackStats, String>> {
            // A put-back restores state, it is no new event: the triggers of the tables it
            // writes must not fire. SQLite cannot turn a trigger off, so they are dropped and
            // created again from their exact SQL, in this transaction (the schema's content is
            // as before; the triggers' rows move to the end of `sqlite_schema`).
            let triggers = drop_triggers(conn, &self.written)?;
            let stats = self.write(conn)?;
            for sql in &triggers {
                conn.execute_batch(sql)?;
            }
            if let (Ok(_), Some(before)) = (&stats, &before) {
                let after = fk::broken(conn, &self.written)?;
                let deleted = fk::deleted_since(conn, after.difference(before))?;
                if !deleted.is_empty() {
                    return Ok(Err(fk::describe(&deleted)));
                }
            }
            Ok(stats)
        })();
        if !matches!(result, Ok(Ok(_))) {
            let _ = conn.execute_batch("ROLLBACK");
            return result.map(Some);
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => result.map(Some),
            Err(e)
                if enforced && e.sqlite_extended_error_code() == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) =>
            {
                // The transaction is still open: what breaks a key is read, then dropped.
                let why = self.broken_since(conn);
                let _ = conn.execute_batch("ROLLBACK");
                Ok(why?.map(Err))
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// In an enforced attempt whose commit failed, writes still in place: the references the
    /// put-back broke whose parent was deleted since the run, described; `None` when each was
    /// broken before the run (the parent was not in the snapshot either) or before the
    /// put-back began.
    fn broken_since(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Option<String>> {
        let after = fk::broken(conn, &self.written)?;
        let deleted = fk::deleted_since(conn, &after)?;
        conn.execute_batch("ROLLBACK TO put_back")?;
        let before = fk::broken(conn, &self.written)?;
        let deleted: Vec<_> = deleted.into_iter().filter(|b| !before.contains(b)).collect();
        Ok((!deleted.is_empty()).then(|| fk::describe(&deleted)))
    }

    /// The inserts and updates; `Ok(Err(why))`: a conflict.
    fn write(&self, conn: &rusqlite::Connection) -> rusqlite::Result<std::result::Result<PutBackStats, String>> {
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
        for c in &self.changed {
            stats.values_set += u64::try_from(conn.execute(&c.update, [])?).unwrap_or(0);
            let there: i64 = conn.query_row(&c.back, [], |r| r.get(0))?;
            left_behind(&mut stats, &c.loss, u64::try_from(there).unwrap_or(0));
        }
        stats.counters_raised = super::sqlite_sequence::advance(conn)?;
        Ok(Ok(stats))
    }
}

/// A column whose values the downgrade changed.
struct Changed<'a> {
    pair: Pair<'a>,
    column: String,
    /// The marker tables (`mark_downgraded`, `mark_round_trip`): the snapshot's values, and those
    /// the downgrade and the undo's upgrade leave.
    before: String,
    down: String,
    /// The column, with how many values the downgrade changed.
    loss: DataLoss,
}

/// SQLite: a [`Changed`] column's statements.
struct SqliteChanged {
    loss: DataLoss,
    /// Writes the values back.
    update: String,
    /// Counts the values there after it.
    back: String,
}

/// Counts in `stats` the values of `marked` (a `Changed` column with how many values the
/// downgrade changed) that are not back: all but the `there` the live table now holds.
fn left_behind(stats: &mut PutBackStats, marked: &DataLoss, there: u64) {
    let left = marked.rows.saturating_sub(there);
    if left > 0 {
        stats.values_left.push(DataLoss { rows: left, ..marked.clone() });
    }
}

async fn pg_put_back(
    live: &UrlDatabase,
    snap: &UrlDatabase,
    tables: &[Pair<'_>],
    columns: &[(Pair<'_>, String)],
    changed: &[Changed<'_>],
) -> Result<PutBackStats> {
    // Everything from the snapshot copy first, into temporary tables of this session, in
    // batches (no table is one value, which PostgreSQL caps at 1 GB in text form): the live
    // transaction stays short.
    let pg = live.pg();
    let client = pg.connect().await?;
    let stage = pg_batches::stage;
    let mut table_rows = Vec::new();
    for (i, p) in tables.iter().enumerate() {
        table_rows.push(stage(snap, p, &p.cols, None, &client, live, &format!("forge_rollback_rows_{i}")).await?);
    }
    let mut column_rows = Vec::new();
    for (i, (p, c)) in columns.iter().enumerate() {
        let name = format!("forge_rollback_values_{i}");
        column_rows.push(stage(snap, p, &key_and(p, c), None, &client, live, &name).await?);
    }
    let mut changed_rows = Vec::new();
    for (i, c) in changed.iter().enumerate() {
        let cols = key_and(&c.pair, &c.column);
        let marker = |snap: &str| Pair { snap: snap.to_owned(), ..c.pair.clone() };
        let (b, d) = (format!("forge_rollback_before_{i}"), format!("forge_rollback_down_{i}"));
        let before = stage(snap, &marker(&c.before), &cols, None, &client, live, &b).await?;
        changed_rows.push((before, stage(snap, &marker(&c.down), &cols, None, &client, live, &d).await?));
    }
    let sequences = pg_sequences::read(snap).await?;
    let err = |e: &tokio_postgres::Error| pg.query_err(e);
    // A failed write names what it was writing.
    let at = |what: &str, e: &tokio_postgres::Error| match pg.query_err(e) {
        Error::Query { database, detail } => {
            Error::Query { database, detail: format!("putting back {what}: {detail}") }
        }
        other => other,
    };
    let work = async {
        client.batch_execute("BEGIN").await.map_err(|e| err(&e))?;
        client.batch_execute(&pg_text_settings(true)).await.map_err(|e| err(&e))?;
        // Foreign keys declared DEFERRABLE are checked at the commit: tables that reference
        // each other through them go back in any order.
        client.batch_execute("SET CONSTRAINTS ALL DEFERRED").await.map_err(|e| err(&e))?;
        // A put-back restores state, it is no new event: the user triggers of the tables it
        // writes are turned off for this transaction (foreign-key checks stay on).
        let mut written: Vec<&str> = tables
            .iter()
            .chain(columns.iter().map(|(p, _)| p))
            .chain(changed.iter().map(|c| &c.pair))
            .map(|p| p.live.as_str())
            .collect();
        written.sort_unstable();
        written.dedup();
        let mut triggers = Vec::new();
        for table in written {
            triggers
                .extend(triggers_off(&client, table).await.map_err(|e| denied(live, &e).unwrap_or_else(|| err(&e)))?);
        }
        let mut stats = PutBackStats::default();
        // Tables in dependency order: a table whose insert fails (a foreign key to a table not
        // back yet) is tried again after the others. A conflict stops the put-back (after the
        // round: the transaction is rolled back whole).
        client.batch_execute("SAVEPOINT forge_rollback_tables").await.map_err(|e| err(&e))?;
        let none: Vec<Vec<String>> = vec![Vec::new(); tables.len()];
        let inserted = match in_dependency_order(&client, "forge_rollback_put_back", tables.len(), |i| {
            pg_put_back_table(&client, &tables[i], &table_rows[i], &none[i])
        })
        .await
        {
            Ok(done) => done,
            Err((stuck, e)) => {
                let Some(refused) = stuck_tables(live, tables, &stuck, &e) else {
                    return Err(match stuck.last() {
                        Some(&i) => at(&format!("the rows of `{}`", tables[i].name), &e),
                        None => err(&e),
                    });
                };
                // A cycle of foreign keys checked at once: again, from the start, with the
                // referencing columns of those keys NULL, then written back.
                let nulled = pg_cycles::nulled(&client, tables, &stuck).await.map_err(|e| err(&e))?;
                if nulled.iter().all(Vec::is_empty) {
                    return Err(refused);
                }
                client.batch_execute("ROLLBACK TO SAVEPOINT forge_rollback_tables").await.map_err(|e| err(&e))?;
                let done = in_dependency_order(&client, "forge_rollback_put_back", tables.len(), |i| {
                    pg_put_back_table(&client, &tables[i], &table_rows[i], &nulled[i])
                })
                .await
                .map_err(|_| refused)?;
                for (i, cols) in nulled.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
                    client
                        .execute(&pg_cycles::set_back(&tables[i], cols, &table_rows[i]), &[])
                        .await
                        .map_err(|e| at(&format!("the rows of `{}`", tables[i].name), &e))?;
                }
                done
            }
        };
        for (_, result) in inserted {
            let (inserted, present) = result.map_err(|why| conflict(live, &why))?;
            stats.rows_inserted += inserted;
            stats.rows_present += present;
        }
        for ((p, c), src) in columns.iter().zip(&column_rows) {
            let gone: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {src} s WHERE s.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                        p.live_rows(),
                        p.join("m", "s"),
                        col = q(c)
                    ),
                    &[],
                )
                .await
                .map_err(|e| at(&format!("the values of `{}.{c}`", p.name), &e))?
                .get(0);
            if gone != 0 {
                return Err(conflict(
                    live,
                    &format!("{}.{c}: {gone} value(s) belong to rows deleted since the run", p.name),
                ));
            }
            // An identity column that is `GENERATED ALWAYS` can only be updated to DEFAULT:
            // `BY DEFAULT` for this transaction.
            let always = p.identity.contains(c);
            let identity = |how: &str| format!("ALTER TABLE {} ALTER COLUMN {} SET GENERATED {how}", p.live, q(c));
            if always {
                client
                    .batch_execute(&identity("BY DEFAULT"))
                    .await
                    .map_err(|e| denied(live, &e).unwrap_or_else(|| err(&e)))?;
            }
            let n = client
                .execute(
                    &format!(
                        "UPDATE {l} m SET {col} = s.{col} FROM {src} s WHERE {} AND {} IS DISTINCT FROM {}",
                        p.join("m", "s"),
                        p.cmp("m", c),
                        p.cmp("s", c),
                        l = p.live_rows(),
                        col = q(c)
                    ),
                    &[],
                )
                .await
                .map_err(|e| at(&format!("the values of `{}.{c}`", p.name), &e))?;
            if always {
                client.batch_execute(&identity("ALWAYS")).await.map_err(|e| err(&e))?;
            }
            stats.values_set += n;
        }
        for (c, (before, down)) in changed.iter().zip(&changed_rows) {
            let what = format!("the values of `{}.{}` the downgrade changed", c.pair.name, c.column);
            let sql = super::changed::pg_update(&c.pair, &c.column, before, down);
            stats.values_set += client.execute(&sql, &[]).await.map_err(|e| at(&what, &e))?;
            let back = super::changed::pg_back(&c.pair, &c.column, before);
            let there: i64 = client.query_one(&back, &[]).await.map_err(|e| at(&what, &e))?.get(0);
            left_behind(&mut stats, &c.loss, u64::try_from(there).unwrap_or(0));
        }
        // Sequences where the snapshot had them, and past every value put back.
        let put: Vec<(&str, Option<&str>)> = tables
            .iter()
            .map(|p| (p.live.as_str(), None))
            .chain(columns.iter().map(|(p, c)| (p.live.as_str(), Some(c.as_str()))))
            .chain(changed.iter().map(|c| (c.pair.live.as_str(), Some(c.column.as_str()))))
            .collect();
        pg_sequences::put_back(&client, &sequences, &put).await.map_err(|e| at("the sequences", &e))?;
        triggers_on_and_commit(&client, &triggers).await.map_err(|e| err(&e))?;
        Ok(stats)
    };
    within_or_rolled_back(&client, pg.timeout, work, || {
        conflict(live, &format!("not done within {}s (database.timeout_secs)", pg.timeout.as_secs()))
    })
    .await
}

/// The refusal when the tables `stuck` (indexes into `tables`, two or more) could not be put
/// back in any order because of a foreign key (`e`): they reference each other, through keys
/// checked at once that `pg_cycles` cannot break (a cycle: neither can go first), or reference
/// rows deleted since.
fn stuck_tables(db: &UrlDatabase, tables: &[Pair<'_>], stuck: &[usize], e: &tokio_postgres::Error) -> Option<Error> {
    if stuck.len() < 2 || e.code() != Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
        return None;
    }
    let names: Vec<String> = stuck.iter().map(|&i| format!("`{}`", tables[i].name)).collect();
    let detail = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
    Some(conflict(
        db,
        &format!(
            "the rows of {} cannot be put back in any order ({detail}): these tables reference each other through foreign keys checked at once whose columns are NOT NULL (a reference cycle: none can go first), or reference rows deleted since the run; declaring those foreign keys DEFERRABLE lets them go back together. Nothing was changed",
            names.join(", ")
        ),
    ))
}

/// The primary key's columns and `col`.
fn key_and(p: &Pair<'_>, col: &str) -> Vec<String> {
    p.pk.iter().cloned().chain(std::iter::once(col.to_owned())).collect()
}

/// A clear error when the put-back lacks a right it needs (turning a table's triggers off, or
/// an identity column's `GENERATED ALWAYS` for the transaction, takes owning the table).
fn denied(db: &UrlDatabase, e: &tokio_postgres::Error) -> Option<Error> {
    if e.code() != Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        return None;
    }
    let detail = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
    Some(conflict(
        db,
        &format!(
            "turning off a table's triggers (or an identity column's GENERATED ALWAYS) while its rows are put back takes owning the table, and this role does not ({detail}); run the undo as the table's owner (the role the migrations run as). Nothing was changed"
        ),
    ))
}

/// One table's rows back, from `src` (its rows staged from the snapshot copy: see
/// `pg_batches`): `Ok(Err(why))` on a conflict; `Err` on a database error (a foreign key not
/// satisfied yet: tried again later).
/// The columns in `nulled` go in as NULL (see `pg_cycles`; a table with a primary key only).
async fn pg_put_back_table(
    client: &Client,
    p: &Pair<'_>,
    src: &str,
    nulled: &[String],
) -> std::result::Result<std::result::Result<(u64, u64), String>, tokio_postgres::Error> {
    // Identity values are put back as they were.
    let overriding = if p.identity.is_empty() { "" } else { " OVERRIDING SYSTEM VALUE" };
    let total: i64 = client.query_one(&format!("SELECT count(*) FROM {src} s"), &[]).await?.get(0);
    let total = u64::try_from(total).unwrap_or(0);
    let inserted = if p.pk.is_empty() {
        // Matched as a multiset: the table must hold no row the snapshot does not (counting
        // identical copies); the snapshot's copies not there yet are put back. An empty table
        // takes them all without comparing (no equality needed, e.g. for `json` columns).
        let now: i64 = client.query_one(&format!("SELECT count(*) FROM {}", p.live_rows()), &[]).await?.get(0);
        let other: i64 = if now == 0 {
            0
        } else {
            client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT {c} FROM {l} EXCEPT ALL SELECT {c} FROM {src} s) a",
                        c = p.bare_cols(),
                        l = p.live_rows()
                    ),
                    &[],
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
            format!("INSERT INTO {} ({}){overriding} SELECT {} FROM {src} s", p.live, p.bare_cols(), p.col_list("s"))
        } else {
            format!(
                "INSERT INTO {l} ({c}){overriding} SELECT {c} FROM (SELECT {c} FROM {src} s EXCEPT ALL SELECT {c} FROM {r}) b",
                c = p.bare_cols(),
                l = p.live,
                r = p.live_rows()
            )
        };
        client.execute(&insert, &[]).await?
    } else {
        let conflicts: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {src} s JOIN {} m ON {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                    p.live_rows(),
                    p.join("m", "s"),
                    p.cmp_list("m"),
                    p.cmp_list("s")
                ),
                &[],
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
                    "INSERT INTO {} ({}){overriding} SELECT {} FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM {} m WHERE {})",
                    p.live,
                    p.bare_cols(),
                    p.cols
                        .iter()
                        .map(|c| if nulled.contains(c) { "NULL".to_owned() } else { format!("s.{}", q(c)) })
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.live_rows(),
                    p.join("m", "s")
                ),
                &[],
            )
            .await?
    };
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
            identity: Vec::new(),
            json: Vec::new(),
            retyped: Vec::new(),
            as_text: Vec::new(),
            live_only: false,
            snap_only: false,
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
