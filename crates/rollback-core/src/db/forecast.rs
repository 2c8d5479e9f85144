//! The data-loss forecast: what a downgrade would destroy in the live database, measured, not
//! guessed from migration text. The database is copied (see `scratch`), the planned
//! downgrade runs on the copy with the configured migrator and the work tree's files, and the
//! tables and columns before and after are compared: a dropped table counts its rows, a
//! dropped column its non-null values (not a column the database computes). The tables that
//! stay are compared with the live database row by row, matched by primary key: the rows the
//! downgrade deleted (keys the copy no longer holds; in a table without a primary key, the rows
//! it has fewer) and the values it changed (see `rows::removed_and_changed`). The copy is
//! discarded afterwards, on error too. The live database is only read.

use std::path::Path;

use super::{DbMigrator, Error, Result, Revision, rows};
use crate::model::DataLoss;

/// What downgrading `migrator`'s database to `to` would destroy; the copy is made under
/// `scratch` (SQLite) or on the same server (PostgreSQL). Fails when the copy cannot be made
/// or the downgrade fails on it.
pub async fn forecast(migrator: &dyn DbMigrator, to: &[Revision], scratch: &Path) -> Result<Vec<DataLoss>> {
    let Some(live) = migrator.url_database() else {
        return Err(Error::Config(format!("the `{}` migrator's database cannot be copied", migrator.kind())));
    };
    let copy = live.scratch_copy(scratch).await?;
    let result = async {
        let on_copy = migrator
            .on_database(copy.db.clone(), None)
            .ok_or_else(|| Error::Config(format!("the `{}` migrator cannot run on a copy", migrator.kind())))?;
        let before = rows::census(&copy.db).await?;
        on_copy.downgrade(to).await?;
        let after = rows::census(&copy.db).await?;
        let skip = migrator.bookkeeping_tables();
        let mut losses = rows::dropped(&before, &after, &skip);
        losses.extend(rows::removed_and_changed(live, &copy.db, &before, &after, &skip).await?);
        losses.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(losses)
    }
    .await;
    let discarded = copy.discard().await;
    let losses = result?;
    discarded?;
    Ok(losses)
}
