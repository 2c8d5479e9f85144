//! `upgrade_database`: the configured database brought up to the work tree's migrations, for
//! preparing a database (a fresh deploy, tests). A rollback never upgrades.

use std::sync::Arc;

use super::Rollback;
use crate::db::{Revision, StopCheck, show_revisions};
use crate::error::{Error, Result};
use crate::lock::RunLock;

/// What [`Rollback::upgrade_database_unless`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUpgrade {
    /// The revisions the database is at afterwards.
    pub revisions: Vec<Revision>,
    /// What was asked for but not done, for the operator: a revision the database is already
    /// past (an upgrade never goes down); and what a migration left to know (SQLite:
    /// references it left broken).
    pub notes: Vec<String>,
}

impl Rollback {
    /// Upgrades the configured database to `to` (all heads when empty) with the work tree's
    /// migration files; returns its revisions afterwards. For preparing a database (a fresh
    /// deploy, tests); a rollback never upgrades.
    ///
    /// Takes the run lock like every call that changes things: during a full rollback an
    /// upgrade would put back the schema the run is taking down, and the run would still end
    /// `succeeded` with the old code on the new schema. Refused too while a run is unfinished
    /// (failed or interrupted half-way): its `resume` and `undo` go on from the schema the
    /// journal recorded, and an upgrade made meanwhile would have `resume` leave the old code
    /// on the new schema.
    pub fn upgrade_database(&self, to: &[Revision]) -> Result<Vec<Revision>> {
        Ok(self.upgrade_database_unless(to, &(Arc::new(|| None) as StopCheck))?.revisions)
    }

    /// [`Rollback::upgrade_database`], asking `stop` before each migration: `Some(why)` ends
    /// the upgrade there ([`Error::Cancelled`], naming the revisions the database is left at;
    /// the migrations applied before stay, each committed whole) and releases the lock. The
    /// native migrator stops between any two migrations; Alembic, which applies them all in
    /// one process, only before it starts.
    ///
    /// A revision of `to` that no migration file of the work tree defines is a usage error,
    /// refused before the lock is taken; one the database is already past is left as it is,
    /// and said in [`DatabaseUpgrade::notes`].
    pub fn upgrade_database_unless(&self, to: &[Revision], stop: &StopCheck) -> Result<DatabaseUpgrade> {
        let db = self.migrator()?;
        let graph = crate::rt::block_on(db.graph_worktree())?;
        if let Some(unknown) = to.iter().find(|r| graph.get(r).is_none()) {
            let heads = graph.heads();
            return Err(Error::usage(
                format!(
                    "cannot upgrade `{}` to revision `{unknown}`: no migration file in the work tree defines it",
                    db.database().describe()
                ),
                Some(
                    format!(
                        "name revisions of the work tree's migration files (its heads: {}), or none to upgrade to the heads",
                        show_revisions(&heads)
                    )
                    .into(),
                ),
            ));
        }
        self.state.ensure()?;
        let _lock = RunLock::acquire(&self.state.lock_path(), "upgrade_database")?;
        self.refuse_unsettled()?;
        let before = crate::rt::block_on(db.current())?;
        let below = graph.ancestors_or_self(&before);
        let mut notes: Vec<String> = to
            .iter()
            .filter(|r| below.contains(*r) && !before.contains(*r))
            .map(|r| {
                format!(
                    "the database is already at {}, past {r}: an upgrade never goes down, so it was left there",
                    show_revisions(&before)
                )
            })
            .collect();
        let upgraded = crate::rt::block_on(db.upgrade_unless(to, stop));
        // References a migration left broken, said; for migrations that were applied.
        notes.extend(db.take_warnings());
        match upgraded {
            Ok(()) => {}
            Err(crate::db::Error::Stopped { why, .. }) => {
                let now = crate::rt::block_on(db.current())?;
                return Err(Error::Cancelled(format!(
                    "the upgrade stopped between two migrations ({why}); the database is at {}",
                    show_revisions(&now)
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(DatabaseUpgrade { revisions: crate::rt::block_on(db.current())?, notes })
    }
}
