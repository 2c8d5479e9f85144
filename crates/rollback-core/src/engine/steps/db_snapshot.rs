//! `db_snapshot`: dump the database into the backup store and verify it.

use crate::backup::SnapshotId;
use crate::detail::StepDetail;
use crate::engine::show_revisions;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::plan::{RunKind, Step};

impl Rollback {
    /// The database snapshot this run took, if any.
    pub(crate) fn own_db_snapshot(&self, ex: &Exec<'_>) -> Result<Option<SnapshotId>> {
        let state = crate::journal::RunState::load(ex.journal.path())?;
        Ok(state.snapshot_of("db_snapshot"))
    }

    pub(crate) fn step_db_snapshot(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        let db = self.migrator()?;
        ctx.log(LogLevel::Info, format!("Creating backup of database {}...", db.database().describe()));
        // An undo restoring a snapshot it did not choose for "nothing written since the run"
        // checks the database against what this dump holds before it restores: its
        // fingerprint, the same before and after the dump.
        let guarded = ex.plan.kind == RunKind::Undo
            && ex.plan.steps.iter().any(|s| matches!(s, Step::RestoreDatabase { unchanged_since: None, .. }));
        // Any other undo records it too, unchecked: the undo of this undo compares the
        // database with it when none of this undo's database steps completed.
        let before = if guarded {
            Some(self.db_fingerprint()?)
        } else if ex.plan.kind == RunKind::Undo {
            self.db_fingerprint().ok()
        } else {
            None
        };
        let m = self.dump_database(Some(&ex.run_id), "database")?;
        let holds = match before {
            Some(before) if guarded && self.db_fingerprint()? != before => {
                return Err(Error::Service {
                    message: format!(
                        "the database was written to while this undo dumped it (backup {}): the restore that follows would lose those writes; nothing was changed",
                        m.id
                    ),
                    hint: Some(crate::hint::hint![
                        "stop the app's writes, then ",
                        crate::hint::Action::resume(&ex.run_id),
                        " (it dumps the database again)"
                    ]),
                });
            }
            before => before,
        };
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
            holds,
            forecast: None,
        })
    }
}
