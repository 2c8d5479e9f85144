//! `restore_database` (undo of a full rollback): the database exactly as a snapshot holds it.

use crate::backup::SnapshotId;
use crate::detail::{FailureDetail, StepDetail};
use crate::engine::show_revisions;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::model::DbFingerprint;

impl Rollback {
    /// `unchanged_since`: the undo chose this exact restore because nothing had been written
    /// since the run; the restore checks, under its lock, that nothing has been written since
    /// either. Written since: the step fails with the database unchanged (journaled so), and
    /// the way on is to undo the run again, which then keeps those rows. Without it, the check
    /// is against what this undo's own dump holds (`holds` of its `db_snapshot`), and the way
    /// on is `resume`, which dumps again.
    pub(crate) fn step_restore_database(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        snapshot: &SnapshotId,
        kept: Option<std::path::PathBuf>,
        unchanged_since: Option<&DbFingerprint>,
    ) -> Result<StepDetail> {
        let db = self.migrator()?.clone();
        ctx.log(LogLevel::Info, format!("Restoring database {} from backup {snapshot}...", db.database().describe()));
        let undone = ex.plan.undo_of.clone().unwrap_or_else(|| "RUN".to_owned());
        // The undo chose this restore for "nothing written since the run": checked against
        // the run's own record. Else (`--restore-snapshot`, the undo of an undo): against
        // what this undo's dump holds, so that no row is overwritten that is in no backup.
        let guard = match unchanged_since {
            Some(f) => {
                Some(crate::db::Unchanged { expect: f.hash.clone(), since: format!("this undo of run {undone} began") })
            }
            None => match crate::journal::RunState::load(ex.journal.path())?.detail_of("db_snapshot") {
                Some(StepDetail::DbSnapshot { holds: Some(f), snapshot, .. }) => Some(crate::db::Unchanged {
                    expect: f.hash.clone(),
                    since: format!("this undo dumped it (backup {snapshot})"),
                }),
                _ => None,
            },
        };
        let m = match self.restore_database_from(snapshot, guard.as_ref()) {
            Ok(m) => m,
            Err(Error::Db(e @ crate::db::Error::ChangedSince { .. })) => {
                ex.failure_detail = Some(FailureDetail { database_changed: false });
                let hint = match unchanged_since {
                    Some(_) => crate::hint::hint![
                        crate::hint::Action::undo(&undone),
                        " again: it finds the rows written since and keeps them (it migrates the schema and puts back what the migration dropped); or, to restore the snapshot anyway, ",
                        crate::hint::Action::undo(&undone),
                        " with ",
                        crate::hint::Action::RestoreSnapshot,
                        " (the database as it is now is kept in a file first)"
                    ],
                    None => crate::hint::hint![
                        "stop the app's writes, then ",
                        crate::hint::Action::resume(&ex.run_id),
                        ": it dumps the database again (those writes with it) and restores after that"
                    ],
                };
                return Err(Error::Service {
                    message: format!("{e}, and this undo changed nothing else"),
                    hint: Some(hint),
                });
            }
            // The app held the database's write lock for all of `timeout_secs`: the restore
            // never began (SQLite gives up before its first write; a PostgreSQL restore is
            // one transaction). Journaled as such, so that undoing the run again may take
            // this undo's place, as after a refusal.
            Err(Error::Db(e @ crate::db::Error::Locked { .. })) => {
                ex.failure_detail = Some(FailureDetail { database_changed: false });
                return Err(Error::Service {
                    message: format!("{e}, and this undo changed nothing"),
                    hint: Some(crate::hint::hint![
                        "find what holds the lock (a long transaction or a migration of the app: `fuser` on a SQLite file, `pg_locks` on PostgreSQL) and let it finish or stop it; then ",
                        crate::hint::Action::resume(&ex.run_id),
                        " restores, or ",
                        crate::hint::Action::undo(&undone),
                        " again takes this undo's place"
                    ]),
                });
            }
            // Refused before the restore's transaction began: once the subscriptions are out
            // of the way, `resume` restores.
            Err(Error::Db(crate::db::Error::Subscribed { database, names })) => {
                ex.failure_detail = Some(FailureDetail { database_changed: false });
                let hint = crate::hint::hint![
                    crate::db::detach_subscriptions(&names),
                    "; then ",
                    crate::hint::Action::resume(&ex.run_id),
                    " restores"
                ];
                let e = crate::db::Error::Subscribed { database, names };
                return Err(Error::Service {
                    message: format!("{e}, and this undo changed nothing"),
                    hint: Some(hint),
                });
            }
            Err(e) => return Err(e),
        };
        let now = crate::rt::block_on(db.current())?;
        ctx.log(LogLevel::Success, format!("Database restored, at revision {}", show_revisions(&now)));
        let db_after = self.fingerprint_after(ctx, "restore");
        Ok(StepDetail::RestoreDatabase { snapshot: m.id, revisions: now, kept, db_after })
    }
}
