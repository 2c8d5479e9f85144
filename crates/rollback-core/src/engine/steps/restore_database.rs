//! `restore_database` (undo of a full rollback): the database exactly as a snapshot holds it.

use crate::backup::SnapshotId;
use crate::detail::StepDetail;
use crate::engine::show_revisions;
use crate::engine::{Ctx, Rollback};
use crate::error::Result;
use crate::event::LogLevel;

impl Rollback {
    pub(crate) fn step_restore_database(
        &self,
        ctx: &mut Ctx<'_>,
        snapshot: &SnapshotId,
        kept: Option<std::path::PathBuf>,
    ) -> Result<StepDetail> {
        let db = self.migrator()?.clone();
        ctx.log(LogLevel::Info, format!("Restoring database {} from backup {snapshot}...", db.database().describe()));
        let m = self.restore_database_from(snapshot)?;
        let now = crate::rt::block_on(db.current())?;
        ctx.log(LogLevel::Success, format!("Database restored, at revision {}", show_revisions(&now)));
        Ok(StepDetail::RestoreDatabase { snapshot: m.id, revisions: now, kept })
    }
}
