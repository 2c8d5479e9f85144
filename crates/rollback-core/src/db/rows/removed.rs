//! Rows a downgrade deleted from tables that stay (`LossKind::Removed`), told apart from rows
//! deleted since: the run's downgrade runs again on a second copy of the snapshot, and the rows
//! of the snapshot that copy no longer has (by primary key) are the downgrade's. They are
//! written into a table of their own in the snapshot copy (its "marker"), from which
//! `put_back` inserts them like the rows of a dropped table: those whose key is not in the live
//! table, refusing a key there with other content. A row the app deleted while rolled back was
//! still there after the downgrade, so it is not in the marker and does not come back.

use super::compare::{Pair, pg_text_settings, sqlite_attached};
use super::{Census, pg_batches, q};
use crate::db::url::DbUrl;
use crate::db::{Error, Result, UrlDatabase};
use crate::model::{DataLoss, LossKind};

/// The marker of `losses[i]`, as SQL naming it in the snapshot copy `snap`. (A name of its own,
/// not derived from the table's: PostgreSQL cuts names at 63 bytes.)
pub(super) fn marker(snap: &UrlDatabase, i: usize) -> String {
    in_copy(snap, &marker_name(i))
}

/// The marker's table name, as the census of the copy lists it.
pub(super) fn marker_name(i: usize) -> String {
    format!("forge_rollback_deleted_{i}")
}

/// The second marker of a `Changed` entry `losses[i]`: the values the downgrade left, where
/// [`marker`] holds the snapshot's.
pub(super) fn marker_down(snap: &UrlDatabase, i: usize) -> String {
    in_copy(snap, &format!("forge_rollback_down_{i}"))
}

/// The table `name` of the copy `snap`, as SQL.
fn in_copy(snap: &UrlDatabase, name: &str) -> String {
    match snap.url() {
        DbUrl::Sqlite { .. } => q(name),
        DbUrl::Postgres { .. } => format!("\"public\".{}", q(name)),
    }
}

/// The error when what the downgrade did to `l` cannot be told row by row, and `why`.
pub(super) fn untold(snap: &UrlDatabase, l: &DataLoss, why: &str) -> Error {
    Error::Query {
        database: snap.describe(),
        detail: format!("cannot tell, row by row, what the downgrade did to {}: {why}", l.describe()),
    }
}

/// The marker table of `losses[i]` with only the primary key of its table: for rows matched by
/// key, the pair of the live and snapshot tables; `None` when the snapshot's table has no key.
fn key_pair<'a>(name: &'a str, of: &Census) -> Option<Pair<'a>> {
    let t = of.tables.get(name)?;
    (!t.primary_key.is_empty()).then(|| Pair {
        name,
        live: t.sql.clone(),
        snap: t.sql.clone(),
        pk: t.primary_key.clone(),
        cols: t.primary_key.clone(),
        identity: Vec::new(),
        json: Vec::new(),
        retyped: Vec::new(),
        as_text: Vec::new(),
        live_only: t.only,
        snap_only: t.only,
    })
}

/// Writes, into the snapshot copy `snap`, the marker of every `Removed` entry of `losses`: the
/// rows of its table that `downgraded` (another copy of the same snapshot, taken down as the run
/// did) no longer has, matched by primary key. A table without a primary key, or gone from
/// either copy, is an error: its deleted rows cannot be told.
pub(super) async fn mark_removed(
    snap: &UrlDatabase,
    downgraded: &UrlDatabase,
    (snap_census, down_census): (&Census, &Census),
    losses: &[DataLoss],
) -> Result<()> {
    let todo: Vec<(usize, &DataLoss)> =
        losses.iter().enumerate().filter(|(_, l)| l.kind == LossKind::Removed).collect();
    if todo.is_empty() {
        return Ok(());
    }
    let mut statements = Vec::new();
    for (i, l) in todo {
        let p = key_pair(&l.table, snap_census).ok_or_else(|| untold(snap, l, "it has no primary key"))?;
        if !down_census.tables.get(&l.table).is_some_and(|t| p.pk.iter().all(|k| t.columns.contains_key(k))) {
            return Err(untold(snap, l, "the downgrade changed its primary key"));
        }
        statements.push((i, p));
    }
    if let (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) = (snap.url(), downgraded.url()) {
        // The downgraded copy is attached as `snap` (the helper's name for it).
        let sql: Vec<String> = statements
                .iter()
                .map(|(i, p)| {
                    format!(
                        "CREATE TABLE main.{m} AS SELECT * FROM main.{t} s WHERE NOT EXISTS (SELECT 1 FROM snap.{t} d WHERE {j})",
                        m = marker(snap, *i),
                        t = p.live,
                        j = p.sqlite_join("d", "s")
                    )
                })
                .collect();
        sqlite_attached(snap, path, true, move |c| {
            for s in &sql {
                c.execute_batch(s)?;
            }
            Ok(())
        })
        .await
    } else {
        let pg = snap.pg();
        for (i, p) in &statements {
            // The keys the downgraded copy still has, read there (in batches, into a temporary
            // table of this session), compared here.
            let client = pg.connect().await?;
            let keys = pg_batches::stage(downgraded, p, &p.pk, None, &client, snap, "forge_rollback_keys").await?;
            // (`CREATE TABLE … AS` takes no parameters: the table first, then the rows.)
            let (m, t) = (marker(snap, *i), p.live_rows());
            let create = format!("CREATE TABLE {m} AS SELECT * FROM {t} WITH NO DATA");
            let insert = format!(
                "INSERT INTO {m} SELECT * FROM {t} s WHERE NOT EXISTS (SELECT 1 FROM {keys} d WHERE {j})",
                j = p.join("d", "s")
            );
            pg.within("marking the rows the downgrade deleted", async {
                client.batch_execute(&pg_text_settings(false)).await.map_err(|e| pg.query_err(&e))?;
                client.batch_execute(&create).await.map_err(|e| pg.query_err(&e))?;
                client.execute(&insert, &[]).await.map_err(|e| pg.query_err(&e))
            })
            .await?;
        }
        Ok(())
    }
}
