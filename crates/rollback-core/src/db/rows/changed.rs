//! Values a downgrade changes in columns that stay (`LossKind::Changed`): an `UPDATE` that maps
//! a value the older release does not know, a column type it narrows. The forecast compares,
//! row by row (matched by primary key), the live database with its downgraded copy; the same
//! reading counts the rows both hold, which tells how many rows the downgrade deleted
//! (`LossKind::Removed`, see `removed_and_changed`). The undo writes the snapshot's value back
//! where the value now is still the one the downgrade left (a value the app changed while
//! rolled back stays): the run's downgrade runs again on a second copy of the snapshot (see
//! `mark_downgraded`), and the rows whose value differs there are written, with both values,
//! into a marker table of the snapshot copy.

use std::fmt::Write as _;

use super::compare::{Pair, pair, pg_text_settings, sqlite_attached};
use super::removed::{marker, marker_down, untold};
use super::{Census, pg_batches, q};
use crate::db::url::DbUrl;
use crate::db::{Result, UrlDatabase, postgres};
use crate::model::{DataLoss, LossKind};

/// The columns both `live` and `down` have in table `name`, keyed the same way: the pair (live
/// as `live`, the downgraded copy as `snap`) and the columns to compare (not the key's; none
/// when the table holds only its key).
fn compared<'a>(name: &'a str, live: &Census, down: &Census) -> Option<(Pair<'a>, Vec<String>)> {
    let p = pair(name, live, down)?;
    let live_pk = &live.tables.get(name)?.primary_key;
    if p.pk.is_empty() || &p.pk != live_pk || p.pk.iter().any(|k| !p.cols.contains(k)) {
        return None;
    }
    let cols: Vec<String> = p.cols.iter().filter(|c| !p.pk.contains(c)).cloned().collect();
    Some((p, cols))
}

/// One table that stays, compared row by row between the live database and its downgraded
/// copy (see [`compare_table`]).
pub(super) struct TableDiff {
    /// Rows both hold, matched by primary key.
    pub(super) matched: u64,
    /// Per column both have (not the key's, not computed ones): the matched rows whose value
    /// differs.
    pub(super) changed: Vec<(String, u64)>,
}

/// Compares table `name` of `live` with the downgraded copy `down`, row by row, matched by
/// primary key. `lc` and `dc` are the tables of each (their census; `live`'s may be taken of a
/// copy made of it before the downgrade: the names and keys are the same). `None` when the
/// table is not on both sides, has no primary key, or the downgrade changed it. The live
/// database is only read; each side is read once.
pub(super) async fn compare_table(
    live: &UrlDatabase,
    down: &UrlDatabase,
    name: &str,
    lc: &Census,
    dc: &Census,
) -> Result<Option<TableDiff>> {
    let Some((p, cols)) = compared(name, lc, dc) else { return Ok(None) };
    let (matched, counts) = count_rows(live, down, &p, &cols).await?;
    Ok(Some(TableDiff { matched, changed: cols.into_iter().zip(counts).collect() }))
}

/// The rows of `p`'s table both `live` (as `p.live`) and `down` (as `p.snap`) hold, matched
/// by key, and per column of `cols`, those of them whose value differs.
async fn count_rows(live: &UrlDatabase, down: &UrlDatabase, p: &Pair<'_>, cols: &[String]) -> Result<(u64, Vec<u64>)> {
    let to_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    let counts = |row: Vec<i64>| {
        let mut it = row.into_iter().map(to_u64);
        (it.next().unwrap_or(0), it.collect())
    };
    if let (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) = (live.url(), down.url()) {
        // `COLLATE BINARY` here and below: a `NOCASE` (or `RTRIM`) column's `IS` ignores what
        // the downgrade changed (`lower(email)`), but the value is not the one stored before.
        let mut sql = "SELECT count(*)".to_owned();
        for c in cols {
            let _ = write!(
                sql,
                ", coalesce(sum(CASE WHEN m.{c} IS NOT s.{c} COLLATE BINARY THEN 1 ELSE 0 END), 0)",
                c = q(c)
            );
        }
        let _ = write!(sql, " FROM main.{} m JOIN snap.{} s ON {}", p.live, p.snap, p.sqlite_join("m", "s"));
        let n = cols.len();
        let row: Vec<i64> = sqlite_attached(live, path, false, move |c| {
            c.query_row(&sql, [], |r| (0..=n).map(|i| r.get(i)).collect::<rusqlite::Result<Vec<i64>>>())
        })
        .await?;
        return Ok(counts(row));
    }
    // PostgreSQL: the rows and an order-independent digest of them (each row's key and compared
    // columns as the text of a record, which tells every row apart: a field holding a
    // delimiter, a quote or nothing is quoted, NULL is an empty field), on both sides; the rows
    // are read and compared only for a table where the two differ.
    let digest = |t: &str| {
        let fields = p.pk.iter().chain(cols).map(|c| q(c)).collect::<Vec<_>>().join(", ");
        // 60 bits of an MD5 per row (every server version has `md5`), summed.
        format!(
            "SELECT count(*)::text, coalesce(sum(('x' || substr(md5(ROW({fields})::text), 1, 15))::bit(60)::bigint::numeric), 0)::text FROM {t}"
        )
    };
    let read = |db: &UrlDatabase, sql: String| {
        let db = db.clone();
        async move {
            let pg = db.pg();
            let client = pg.connect().await?;
            pg.within("comparing values", async { postgres::rows(&client, &sql).await.map_err(|e| pg.query_err(&e)) })
                .await
        }
    };
    let (a, b) = (read(live, digest(&p.live_rows())).await?, read(down, digest(&p.snap_rows())).await?);
    if a == b {
        let rows = a.first().and_then(|r| r.first()).and_then(|n| n.parse().ok()).unwrap_or(0);
        return Ok((rows, vec![0; cols.len()]));
    }
    // The downgraded copy's rows go into a temporary table of a session on the live database
    // (in batches: see `pg_batches`), typed as the live table's columns, where they are
    // compared; the app's tables are only read. A column whose type the downgrade changed is
    // read back as the live type where its values allow (`numeric(8,2)` as `numeric(8,3)`: a
    // value the narrowing left alone is the same); where one does not (`a,b` is no `text[]`),
    // such columns are staged again in their text form, and compared by it.
    let mut with_key = p.pk.clone();
    with_key.extend(cols.iter().cloned());
    let pg = live.pg();
    let mut client = pg.connect().await?;
    let mut p = p.clone();
    let staged = match pg_batches::stage(down, &p, &with_key, None, &client, live, "forge_rollback_values").await {
        Err(_) if p.retyped.iter().any(|c| cols.contains(c)) => {
            p.as_text = p.retyped.iter().filter(|c| cols.contains(c)).cloned().collect();
            client = pg.connect().await?;
            pg_batches::stage(down, &p, &with_key, None, &client, live, "forge_rollback_values").await?
        }
        staged => staged?,
    };
    let mut sql = "SELECT count(*)".to_owned();
    for c in cols {
        let _ = write!(
            sql,
            ", coalesce(sum(CASE WHEN {} IS DISTINCT FROM {} THEN 1 ELSE 0 END), 0)",
            p.cmp("l", c),
            p.cmp("d", c)
        );
    }
    let _ = write!(sql, " FROM {} l JOIN {staged} d ON {}", p.live_rows(), p.join("l", "d"));
    pg.within("comparing values", async {
        let row = client.query_one(&sql, &[]).await.map_err(|e| pg.query_err(&e))?;
        Ok(counts((0..=cols.len()).map(|i| row.get::<_, i64>(i)).collect()))
    })
    .await
}

/// For every `Changed` entry `i` of `losses`, in the snapshot copy `snap`, two tables with the
/// key and the column, for every row whose value the downgrade changed: [`marker`]`(i)` with
/// the snapshot's values, [`marker_down`]`(i)` with those `downgraded` has (another copy of the
/// same snapshot, taken down as the run did).
pub(super) async fn mark_changed(
    snap: &UrlDatabase,
    downgraded: &UrlDatabase,
    (sc, dc): (&Census, &Census),
    losses: &[DataLoss],
) -> Result<()> {
    for (i, l) in losses.iter().enumerate().filter(|(_, l)| l.kind == LossKind::Changed) {
        let col = l.column.as_deref().unwrap_or_default();
        let (p, _) = compared(&l.table, sc, dc)
            .filter(|(_, cols)| cols.iter().any(|c| c == col))
            .ok_or_else(|| untold(snap, l, "its primary key or the column changed"))?;
        let (before, down) = (marker(snap, i), marker_down(snap, i));
        let keys = p.pk.iter().map(|k| format!("s.{k}", k = q(k))).collect::<Vec<_>>().join(", ");
        let c = q(col);
        if let (DbUrl::Sqlite { .. }, DbUrl::Sqlite { path }) = (snap.url(), downgraded.url()) {
            let rows = |side: &str| {
                format!(
                    "SELECT {keys}, {side}.{c} AS {c} FROM main.{t} s JOIN snap.{t} d ON {j} WHERE s.{c} IS NOT d.{c} COLLATE BINARY",
                    t = p.live,
                    j = p.sqlite_join("d", "s")
                )
            };
            let sql = format!("CREATE TABLE main.{before} AS {}; CREATE TABLE main.{down} AS {}", rows("s"), rows("d"));
            sqlite_attached(snap, path, true, move |conn| conn.execute_batch(&sql)).await?;
        } else {
            let with_key: Vec<String> = p.pk.iter().cloned().chain(std::iter::once(col.to_owned())).collect();
            // The downgraded copy's values, read there (in batches, into a temporary table of
            // this session), compared here.
            let pg = snap.pg();
            let client = pg.connect().await?;
            let src =
                pg_batches::stage(downgraded, &p, &with_key, None, &client, snap, "forge_rollback_values").await?;
            let (a, b, j, t) = (p.cmp("s", col), p.cmp("d", col), p.join("d", "s"), &p.live_rows());
            let fill = |side: &str, m: &str| {
                format!(
                    "INSERT INTO {m} SELECT {keys}, {side}.{c} FROM {t} s JOIN {src} d ON {j} WHERE {a} IS DISTINCT FROM {b}"
                )
            };
            let create = format!(
                "CREATE TABLE {before} AS SELECT {keys}, s.{c} FROM {t} s WITH NO DATA; CREATE TABLE {down} AS SELECT {keys}, s.{c} FROM {t} s WITH NO DATA"
            );
            let (fill_before, fill_down) = (fill("s", &before), fill("d", &down));
            pg.within("marking the values the downgrade changed", async {
                client.batch_execute(&pg_text_settings(false)).await.map_err(|e| pg.query_err(&e))?;
                client.batch_execute(&create).await.map_err(|e| pg.query_err(&e))?;
                client.execute(&fill_before, &[]).await.map_err(|e| pg.query_err(&e))?;
                client.execute(&fill_down, &[]).await.map_err(|e| pg.query_err(&e))
            })
            .await?;
        }
    }
    Ok(())
}

/// SQLite, with the snapshot copy attached as `snap`: writes back into `p`'s table the values of
/// `col` the downgrade changed (marker `before`), where the value is still the one it left
/// (marker `down`). A value the app changed while rolled back stays.
pub(super) fn sqlite_update(p: &Pair<'_>, col: &str, before: &str, down: &str) -> String {
    let on = |a: &str| p.sqlite_join(a, &format!("main.{}", p.live));
    format!(
        "UPDATE main.{l} SET {c} = (SELECT b.{c} FROM snap.{before} b WHERE {ob}) WHERE EXISTS (SELECT 1 FROM snap.{down} d WHERE {od} AND main.{l}.{c} IS d.{c} COLLATE BINARY)",
        l = p.live,
        c = q(col),
        ob = on("b"),
        od = on("d")
    )
}

/// PostgreSQL: [`sqlite_update`]'s statement, with the markers' rows staged in this session
/// (see `pg_batches`): `before` (the snapshot's values) and `down` (the values the downgrade
/// left).
pub(super) fn pg_update(p: &Pair<'_>, col: &str, before: &str, down: &str) -> String {
    format!(
        "UPDATE {l} m SET {c} = b.{c} FROM {before} b JOIN {down} d ON {bd} WHERE {mb} AND {now} IS NOT DISTINCT FROM {left}",
        l = p.live_rows(),
        c = q(col),
        bd = p.join("b", "d"),
        mb = p.join("m", "b"),
        now = p.cmp("m", col),
        left = p.cmp("d", col)
    )
}

/// SQLite, after [`sqlite_update`]: how many of the values the downgrade changed (marker
/// `before`) the live table holds now (written back, or there already: a resumed put-back).
pub(super) fn sqlite_back(p: &Pair<'_>, col: &str, before: &str) -> String {
    format!(
        "SELECT count(*) FROM snap.{before} b JOIN main.{l} m ON {j} WHERE m.{c} IS b.{c} COLLATE BINARY",
        l = p.live,
        c = q(col),
        j = p.sqlite_join("b", "m")
    )
}

/// PostgreSQL: [`sqlite_back`]'s query, with the marker's rows staged in this session as
/// `before` (the snapshot's values).
pub(super) fn pg_back(p: &Pair<'_>, col: &str, before: &str) -> String {
    format!(
        "SELECT count(*) FROM {before} b JOIN {l} m ON {mb} WHERE {now} IS NOT DISTINCT FROM {was}",
        l = p.live_rows(),
        mb = p.join("m", "b"),
        now = p.cmp("m", col),
        was = p.cmp("b", col)
    )
}
