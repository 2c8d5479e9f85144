//! The data-loss forecast: what a downgrade would destroy in the live database, measured, not
//! guessed from migration text. The database is copied (see `scratch`), the planned
//! downgrade runs on the copy with the configured migrator and the work tree's files, and the
//! tables and columns before and after are compared: a dropped table counts its rows, a
//! dropped column its non-null values (not a column the database computes). The tables that
//! stay are compared with the live database row by row, matched by primary key: the rows the
//! downgrade deleted (keys the copy no longer holds; in a table without a primary key, the rows
//! it has fewer) and the values it changed (see `rows::removed_and_changed`). The copy is
//! discarded afterwards, on error too. The live database is only read. What the migrations
//! left for the operator to know on the copy (the native migrator on SQLite: references to rows
//! that are not there) comes with the count: the run's downgrade leaves the same.

use std::path::{Path, PathBuf};

use super::{DbMigrator, Error, Result, Revision, rows};
use crate::model::DataLoss;

/// What a downgrade run on a copy of the database showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forecast {
    /// What it destroys, per table and column.
    pub losses: Vec<DataLoss>,
    /// What its migrations left for the operator to know ([`DbMigrator::take_warnings`] of the
    /// migrator on the copy), in the order they ran.
    pub warnings: Vec<String>,
}

/// What downgrading `migrator`'s database to `to` would destroy; the copy is made under
/// `scratch` (SQLite) or on the same server (PostgreSQL). Fails when the copy cannot be made
/// or the downgrade fails on it.
pub async fn forecast(migrator: &dyn DbMigrator, to: &[Revision], scratch: &Path) -> Result<Forecast> {
    let dumped = dump_live(migrator, scratch).await?;
    forecast_from(migrator, to, scratch, dumped).await
}

/// The part of [`forecast`] that leaves nothing behind if it is abandoned (dropped): nothing
/// on the server, a killed `pg_dump`, a file in `scratch`. For PostgreSQL, the dump of the live
/// database the copy is made from; `None` for SQLite, whose copy is made in one go.
pub(crate) async fn dump_live(migrator: &dyn DbMigrator, scratch: &Path) -> Result<Option<PathBuf>> {
    live(migrator)?.dump_for_copy(scratch).await
}

/// The rest of [`forecast`], from what [`dump_live`] made: the copy (a database on the server,
/// for PostgreSQL), the downgrade on it, the comparison, and the copy discarded.
pub(crate) async fn forecast_from(
    migrator: &dyn DbMigrator,
    to: &[Revision],
    scratch: &Path,
    dumped: Option<PathBuf>,
) -> Result<Forecast> {
    let live = live(migrator)?;
    let copy = live.scratch_copy_from(scratch, dumped).await?;
    let result = async {
        let on_copy = migrator
            .on_database(copy.db.clone(), None)
            .ok_or_else(|| Error::Config(format!("the `{}` migrator cannot run on a copy", migrator.kind())))?;
        let before = rows::census(&copy.db).await?;
        on_copy.downgrade(to).await?;
        // Taken from the copy's own migrator, which nothing else reads.
        let warnings = on_copy.take_warnings();
        let after = rows::census(&copy.db).await?;
        let skip = migrator.bookkeeping_tables();
        let mut losses = rows::dropped(&before, &after, &skip);
        losses.extend(rows::removed_and_changed(live, &copy.db, &before, &after, &skip).await?);
        losses.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(Forecast { losses, warnings })
    }
    .await;
    let discarded = copy.discard().await;
    let forecast = result?;
    discarded?;
    Ok(forecast)
}

fn live(migrator: &dyn DbMigrator) -> Result<&super::UrlDatabase> {
    migrator
        .url_database()
        .ok_or_else(|| Error::Config(format!("the `{}` migrator's database cannot be copied", migrator.kind())))
}
