//! `db_snapshot`: dump the database into the backup store and verify it.

use crate::backup::SnapshotId;
use crate::detail::StepDetail;
use crate::engine::show_revisions;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::Result;
use crate::event::LogLevel;

impl Rollback {
    /// The database snapshot this run took, if any.
    pub(crate) fn own_db_snapshot(&self, ex: &Exec<'_>) -> Result<Option<SnapshotId>> {
        let state = crate::journal::RunState::load(ex.journal.path())?;
        Ok(state.snapshot_of("db_snapshot"))
    }

    pub(crate) fn step_db_snapshot(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        let db = self.migrator()?;
        ctx.log(LogLevel::Info, format!("Creating backup of database {}...", db.database().describe()));
        let m = self.dump_database(Some(&ex.run_id), "database")?;
        let rec = m.database.as_ref().expect("a database manifest");
        ctx.log(
            LogLevel::Success,
            format!(
                "Database backup {} created and verified: {} byte(s) ({}), at revision {}",
                m.id,
                rec.dump.size,
                rec.dump.format,
                show_revisions(&rec.revisions)
            ),
        );
        Ok(StepDetail::DbSnapshot {
            snapshot: m.id,
            bytes: rec.dump.size,
            format: rec.dump.format.clone(),
            revisions: rec.revisions.clone(),
        })
    }
}
