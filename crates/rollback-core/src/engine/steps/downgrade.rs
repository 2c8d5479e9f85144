//! `downgrade`: move the schema back with the current migration files, before the code moves;
//! on failure put the database back from its snapshot, with the rows written meanwhile
//! ([`after_failure`]).

mod after_failure;

use crate::db::Revision;
use crate::detail::{FailureDetail, StepDetail};
use crate::engine::full::same;
use crate::engine::show_revisions;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;

impl Rollback {
    pub(crate) fn step_downgrade(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        from: &[Revision],
        to: &[Revision],
    ) -> Result<StepDetail> {
        let db = self.migrator()?.clone();
        let snapshot = self.own_db_snapshot(ex)?.ok_or_else(|| {
            Error::refused(
                format!("run {} has no database snapshot: the downgrade will not run without one", ex.run_id),
                None,
            )
        })?;
        // A resumed run's downgrade Job may still run on the production target (the run was
        // killed, or gave up on it): nothing is read of the database until it has ended.
        if let Some(d) = self.deployer.as_ref().filter(|d| d.runs_downgrades())
            && let Some(job) = crate::rt::block_on(d.running_downgrade(&ex.run_id))?
        {
            ctx.log(LogLevel::Warn, format!("the downgrade {job} of this run still runs: waiting for it to end"));
            crate::rt::block_on(d.wait_downgrade_ended(&ex.run_id))?;
        }
        let current = crate::rt::block_on(db.current())?;
        let mut rows_put_back = 0;
        let mut written_since = false;
        if same(&current, to) {
            ctx.log(LogLevel::Info, format!("Database already at {}", show_revisions(to)));
            let db_after = self.fingerprint_after_downgrade(ctx);
            return Ok(StepDetail::Downgrade { from: current, to: to.to_vec(), already: true, db_after });
        }
        // Why a resumed run starts again from the snapshot, if it must.
        let mut restore_because = None;
        if !same(&current, from) {
            if ex.fresh_plan {
                return Err(Error::refused(
                    format!(
                        "the database moved to {} since the run was planned at {}",
                        show_revisions(&current),
                        show_revisions(from)
                    ),
                    Some("assess again and rerun".into()),
                ));
            }
            // A resumed run whose downgrade was cut short.
            restore_because = Some(format!(
                "database at {}: restoring backup {snapshot} before downgrading again",
                show_revisions(&current)
            ));
        } else if !ex.fresh_plan && !Self::db_snapshot_taken_now(ex)? && self.differs_from_snapshot(&snapshot)? {
            if db.failed_migration_rolls_back_whole() {
                // A downgrade that failed or was killed whole left the database as the snapshot
                // holds it, and the app has written since: those rows are in no backup of this
                // run, and what this downgrade drops of them would be lost to its undo.
                written_since = true;
            } else {
                // Still at `from`, but a migration killed half-way may have committed DDL
                // already (SQLite drops a table at once) while its version row never moved: the
                // database is not the snapshot's.
                restore_because = Some(format!(
                    "database at {} but not as backup {snapshot} holds it (a downgrade cut short may have changed it): restoring the backup before downgrading again",
                    show_revisions(&current)
                ));
            }
        }
        if let Some(why) = restore_because {
            // Start again from the snapshot, keeping the rows written since.
            ctx.log(LogLevel::Warn, why);
            let restored = self.restore_after_failure(ctx, &ex.run_id, &snapshot, from)?;
            ctx.log(LogLevel::Info, format!("Database restored from backup {snapshot}{}", restored.note));
            rows_put_back = restored.rows_put_back;
        }
        // Rows put back just now are in no snapshot of this run: the database is dumped again
        // and that dump is the run's snapshot from now on (what its undo restores or puts back
        // from), so what this downgrade drops of those rows comes back too. When it cannot be
        // taken, the fingerprint the undo compares with must not say "nothing written since"
        // (which restores the old snapshot exactly and would drop them): the database's before
        // the downgrade never equals one after it (the version moves), so the undo keeps every
        // row written since the snapshot.
        let mut snapshot = snapshot;
        let before_downgrade = if rows_put_back > 0 || written_since {
            match self.snapshot_again(ctx, ex, &snapshot) {
                // A failure below restores this one: the rows put back are in it.
                Some(again) => {
                    snapshot = again;
                    None
                }
                None => Some(self.db_fingerprint()?),
            }
        } else {
            None
        };
        // `[deploy]` may run it on the production target (a Kubernetes Job with the live image).
        let remote = self.deployer.as_ref().filter(|d| d.runs_downgrades());
        ctx.log(
            LogLevel::Info,
            format!(
                "Downgrading database {} from {} to {}{}...",
                db.database().describe(),
                show_revisions(from),
                show_revisions(to),
                if remote.is_some() { " on the production target, with the live release's image" } else { "" }
            ),
        );
        let result = crate::failpoint::hit("inside:downgrade").and_then(|()| match remote {
            Some(d) => {
                let revisions: Vec<String> = to.iter().map(|r| r.as_str().to_owned()).collect();
                let ran = crate::rt::block_on(d.run_downgrade(&ex.run_id, &revisions))?;
                ctx.log(LogLevel::Info, format!("Downgrade {ran} succeeded"));
                Ok(())
            }
            None => crate::rt::block_on(db.downgrade(to)).map_err(Error::from),
        });
        // What the migrations left to know (references left broken) stands only when they
        // stand: a failure below rolls them back or restores the snapshot.
        let left = db.take_warnings();
        if let Err(e) = result {
            let cause = crate::engine::support::chain(&e);
            // Nothing is wrong with a migration that waited for a lock the app held.
            let locked = matches!(e, Error::Db(crate::db::Error::Locked { .. }));
            let first = if locked {
                "find what holds the lock (a long transaction or a migration of the app: `fuser` on a SQLite file, `pg_locks` on PostgreSQL) and let it finish or stop it; then "
            } else {
                "fix the migration, then "
            };
            let way_on = || {
                crate::hint::hint![
                    first,
                    crate::hint::Action::resume(&ex.run_id),
                    "; or ",
                    crate::hint::Action::undo(&ex.run_id)
                ]
            };
            ctx.log(LogLevel::Error, format!("downgrade failed: {cause}"));
            // A Job given up on and not seen to end: the database may still be changing, so it
            // is neither declared as it was nor restored under the Job's feet.
            if let Error::Production(crate::production::Error::Unsettled { hint, .. }) = &e {
                ex.failure_detail = Some(FailureDetail { database_changed: true });
                return Err(Error::Service {
                    message: format!(
                        "the downgrade's outcome is not known ({cause}); the database was not restored and may have changed; the code was not touched"
                    ),
                    hint: Some(crate::hint::hint![
                        format!("{}; then ", hint.as_deref().unwrap_or("make sure the downgrade has ended")),
                        crate::hint::Action::resume(&ex.run_id),
                        " or ",
                        crate::hint::Action::undo(&ex.run_id),
                        " (both wait for it to end first)"
                    ]),
                });
            }
            // Migrations that are atomic (the native migrator everywhere, anything on
            // PostgreSQL) and failed on the first one left the database as it was: restoring
            // the snapshot would only throw away the writes made since it was taken.
            let atomic = db.failed_migration_rolls_back_whole();
            // The journal says so, for `undo`: nothing to restore from this run.
            ex.failure_detail = Some(FailureDetail { database_changed: false });
            if atomic && crate::rt::block_on(db.current()).is_ok_and(|now| same(&now, from)) {
                return Err(Error::Service {
                    message: format!(
                        "the downgrade failed ({cause}); the failed migration was rolled back whole, so the database is as it was and the code was not touched"
                    ),
                    hint: Some(way_on()),
                });
            }
            ctx.log(LogLevel::Info, format!("Restoring database from backup {snapshot}..."));
            return match self.restore_after_failure(ctx, &ex.run_id, &snapshot, from) {
                Ok(restored) => Err(Error::Service {
                    message: format!(
                        "the downgrade failed ({cause}); the database was restored from backup {snapshot}{} and the code was not touched",
                        restored.note
                    ),
                    hint: Some(way_on()),
                }),
                Err(r) => Err({
                    ex.failure_detail = Some(FailureDetail { database_changed: true });
                    Error::Service {
                        message: format!(
                            "the downgrade failed ({cause}) AND restoring the database from backup {snapshot} failed: {}",
                            crate::engine::support::chain(&r)
                        ),
                        hint: Some(crate::hint::hint![
                            format!(
                                "the code was not touched; restore the database by hand from backup {snapshot}, or retry "
                            ),
                            crate::hint::Action::undo(&ex.run_id)
                        ]),
                    }
                }),
            };
        }
        for w in left {
            ctx.log(LogLevel::Warn, w);
        }
        let now = crate::rt::block_on(db.current())?;
        ctx.log(LogLevel::Success, format!("Database at {}", show_revisions(&now)));
        // What the run leaves, taken before the code moves and the services restart: a row the
        // app writes from then on is a write since the run, which its undo keeps.
        let db_after = before_downgrade.or_else(|| self.fingerprint_after_downgrade(ctx));
        Ok(StepDetail::Downgrade { from: current, to: now, already: false, db_after })
    }
}
