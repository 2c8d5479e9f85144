//! Moving a table's rows from one PostgreSQL database into a session of another, in batches.
//!
//! The rows are read through a cursor in the database they come from, a bounded batch at a
//! time (so many rows, or so many bytes of text), and each batch goes as one value (see
//! [`pg_row_out`]) into a temporary table of the receiving session, typed as the table there.
//! The statements that compare, insert and update then read that table, as they would the
//! table itself. So no table is ever one value (PostgreSQL caps a value at 1 GB in text form:
//! before, a dropped table larger than that could not be put back), and neither end holds more
//! than a batch in memory. The temporary table is the session's own: nobody else sees it, it
//! goes when the session ends, and filling it takes no lock on the app's tables.

use futures_util::{StreamExt, pin_mut};
use tokio_postgres::Client;

use super::compare::{Pair, lit, over_one_value, pg_row_out, pg_rows_in, pg_scalar, pg_text_settings};
use super::q;
use crate::db::{Error, Result, UrlDatabase};

/// Rows in one batch, at most.
const BATCH_ROWS: usize = 10_000;

/// Bytes of text in one batch, about (a batch closes once it holds as many; one row larger than
/// that is a batch of its own). Far below the 1 GB a value may hold.
const BATCH_BYTES: usize = 32 << 20;

/// The variable that sets [`BATCH_ROWS`] in tests, so a small table moves in many batches
/// (read only in builds with the `testing` or `failpoints` feature, never in a release).
#[cfg_attr(not(any(test, feature = "testing", feature = "failpoints")), allow(dead_code))]
const BATCH_ROWS_VAR: &str = "FORGE_ROLLBACK_ROWS_BATCH";

fn batch_rows() -> usize {
    #[cfg(any(test, feature = "testing", feature = "failpoints"))]
    if let Some(n) = std::env::var(BATCH_ROWS_VAR).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0) {
        return n;
    }
    BATCH_ROWS
}

/// Copies the values of `cols` of every row of `p`'s table in `from` (the table `p.snap`, read
/// as [`Pair::snap_rows`] aliased `s`; only the rows `filter` holds for, when given) into a new
/// temporary table `name` of the session `to` (a connection to `to_db`, typed as the columns of
/// `p.live` there, text for those of [`Pair::as_text`]), in batches; returns that table as SQL, to read in its place. Values travel in their text form, as [`pg_row_out`] writes them, so
/// both sessions get the fixed text settings (see `pg_text_settings`): `to`'s for the rest of
/// the session. Must run outside a transaction of `to` (the table is the session's).
pub(super) async fn stage(
    from: &UrlDatabase,
    p: &Pair<'_>,
    cols: &[String],
    filter: Option<&str>,
    to: &Client,
    to_db: &UrlDatabase,
    name: &str,
) -> Result<String> {
    let table = format!("pg_temp.{}", q(name));
    let into = to_db.pg();
    let create = format!(
        "{} CREATE TEMPORARY TABLE {table} AS SELECT {} FROM {} WITH NO DATA",
        pg_text_settings(false),
        cols.iter()
            .map(|c| if p.as_text.contains(c) { format!("{c}::text AS {c}", c = q(c)) } else { q(c) })
            .collect::<Vec<_>>()
            .join(", "),
        p.live
    );
    into.within("reading rows", async {
        to.batch_execute(&create).await.map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => Error::Query {
                database: into.database(),
                detail: format!(
                    "the rows of `{}` are read into a temporary table, and this role may not create one ({}); grant it `TEMPORARY` on the database (`GRANT TEMPORARY ON DATABASE … TO …`, which PostgreSQL grants everyone unless revoked). Nothing was changed",
                    p.name,
                    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())
                ),
            },
            _ => into.query_err(&e),
        })
    })
    .await?;
    let insert = format!("INSERT INTO {table} SELECT * FROM {} s", pg_rows_in(p, cols));
    let pg = from.pg();
    let client = pg.connect().await?;
    let (per_batch, settings) = (batch_rows(), pg_text_settings(true));
    let read = async {
        let read_err = |e: &tokio_postgres::Error| pg.query_err(e);
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {settings} DECLARE forge_rollback_rows NO SCROLL CURSOR FOR {}",
                pg_row_out(p, cols, filter)
            ))
            .await
            .map_err(|e| read_err(&e))?;
        let fetch = format!("FETCH FORWARD {per_batch} FROM forge_rollback_rows");
        let mut batch = Batch::default();
        loop {
            let rows = client.query_raw(&fetch, std::iter::empty::<&str>()).await.map_err(|e| read_err(&e))?;
            pin_mut!(rows);
            let mut fetched = 0;
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| read_err(&e))?;
                fetched += 1;
                if batch.push(row.get(0)) >= BATCH_BYTES || batch.rows >= per_batch {
                    batch.flush(to, &insert).await.map_err(|e| into.query_err(&e))?;
                }
            }
            if fetched < per_batch {
                break;
            }
        }
        batch.flush(to, &insert).await.map_err(|e| into.query_err(&e))?;
        let _ = client.batch_execute("COMMIT").await;
        Ok(())
    };
    match pg.within("reading rows", read).await {
        Ok(()) => Ok(table),
        Err(Error::Query { database, detail }) if over_one_value(&detail) => {
            let size = format!("SELECT pg_size_pretty(pg_total_relation_size({}::regclass))", lit(&p.snap));
            let size = pg_scalar(from, &size).await.unwrap_or_else(|_| "?".to_owned());
            Err(Error::Query {
                database,
                detail: format!(
                    "a row of `{}` ({size} on disk) cannot be moved row by row: in text form it is over PostgreSQL's 1 GB limit for one value ({detail}); only `undo --restore-snapshot` brings such a row back",
                    p.name
                ),
            })
        }
        Err(e) => Err(e),
    }
}

/// The rows read and not written yet, as the JSON array [`pg_rows_in`] reads.
#[derive(Default)]
struct Batch {
    json: String,
    rows: usize,
}

impl Batch {
    /// Adds one row (its text, as [`pg_row_out`] writes it); the batch's size in bytes.
    fn push(&mut self, row: &str) -> usize {
        self.json.push(if self.rows == 0 { '[' } else { ',' });
        self.json.push_str(row);
        self.rows += 1;
        self.json.len()
    }

    /// Writes the rows with `insert` (its `$1`), and starts again empty.
    async fn flush(&mut self, to: &Client, insert: &str) -> Result<(), tokio_postgres::Error> {
        if self.rows > 0 {
            self.json.push(']');
            to.execute(insert, &[&self.json]).await?;
        }
        *self = Self::default();
        Ok(())
    }
}
