//! How the undo of an undo takes a database back down when rows were written since that undo.
//!
//! An undo that brought the schema forward (an upgrade, or the exact restore of a newer
//! snapshot) is undone the way a run goes back: the schema goes down again with the work
//! tree's migration files (those of the release that undo put back), so the rows written
//! since stay wherever the older schema has room for them; what the downgrade drops is kept in
//! this undo's own database snapshot, and the undo of this undo puts it back. Then what the
//! undone undo's upgrade had dropped (values written while rolled back into columns the newer
//! schema does not have, kept in its snapshot) comes back from that snapshot. Both are
//! rehearsed on copies first; what cannot be done faithfully is refused before anything
//! changes, and `--restore-snapshot` remains.

use super::Rollback;
use super::planner::DbUndoMode;

use crate::backup::DatabaseSnapshot;
use crate::db::{DowngradeStep, Revision, UrlDatabase, rows};
use crate::error::{Error, Result};
use crate::journal::RunState;
use crate::model::{DataLoss, DbFingerprint, Risk, RiskCode, RiskSeverity};
use crate::plan::Step;

/// The database as undo `u` left it: the fingerprint its last completed database step
/// recorded. When none completed (it failed in its first one), the one its own dump holds:
/// the database then differs from it by what was written since, and by what the failed step
/// left, which the rehearsal on a copy meets first.
pub(super) fn left_by_undo(u: &RunState) -> Option<&DbFingerprint> {
    use crate::detail::StepDetail as D;
    for (step, done) in u.plan.steps.iter().zip(&u.done).rev() {
        let changes_db = matches!(
            step,
            Step::Downgrade { .. }
                | Step::RestoreDatabase { .. }
                | Step::UpgradeDatabase { .. }
                | Step::PutBackRows { .. }
        );
        match done {
            Some(
                D::Downgrade { db_after, .. }
                | D::RestoreDatabase { db_after, .. }
                | D::UpgradeDatabase { db_after, .. }
                | D::PutBackRows { db_after, .. },
            ) if changes_db => return db_after.as_ref(),
            Some(D::DbSnapshot { holds, .. }) => return holds.as_ref(),
            _ => {}
        }
    }
    None
}

impl Rollback {
    /// The migrations down from the database's revisions now to `to`, with the work tree's
    /// files; `None` when `to` is not below them (the same revisions, or another branch of
    /// the graph: the undo then goes forward).
    pub(super) fn path_down_to(&self, to: &[Revision]) -> Result<Option<Vec<DowngradeStep>>> {
        let db = self.migrator()?;
        let (current, code) = crate::rt::block_on(async {
            Ok::<_, crate::db::Error>((db.current().await?, db.graph_worktree().await?))
        })?;
        if super::full::same(&current, to) {
            return Ok(None);
        }
        Ok(code.downgrade_path_on(&db.database().describe(), &current, to).ok().filter(|p| !p.is_empty()))
    }

    /// The undo of an undo, when rows were written since it: the downgrade to the snapshot's
    /// revisions along `path`, then the put-back of what the undone undo's upgrade dropped;
    /// rehearsed on copies. `refuse` words a refusal.
    pub(super) fn backward_mode(
        &self,
        live: &UrlDatabase,
        rec: &DatabaseSnapshot,
        path: Vec<DowngradeStep>,
        refuse: &dyn Fn(String) -> Error,
    ) -> Result<DbUndoMode> {
        if let Some(p) = path.iter().find(|p| p.irreversible.is_some()) {
            return Err(refuse(format!(
                "migration {} cannot be downgraded again ({})",
                p.revision,
                p.irreversible.as_deref().unwrap_or_default()
            )));
        }
        let db = self.migrator()?;
        let skip = db.bookkeeping_tables();
        let dir = super::db_undo::scratch_dir()?;
        let file = dir.path().join("snapshot.dump");
        self.store()?.get_blob_to_file(&rec.blob, &file)?;
        let on = |copy: &UrlDatabase| {
            db.on_database(copy.clone(), None)
                .ok_or_else(|| crate::db::Error::Config(format!("the `{}` migrator cannot run on a copy", db.kind())))
        };
        let rehearsed = crate::rt::block_on(async {
            let (now, snap) = live.scratch_now_and_dump(&file, &rec.dump, dir.path()).await?;
            let result = async {
                let before = rows::census(&now.db).await?;
                // What the snapshot holds that the database as it is now has no room for:
                // what the undone undo's upgrade dropped.
                let losses: Vec<DataLoss> = rows::dropped(&rows::census(&snap.db).await?, &before, &skip)
                    .into_iter()
                    .filter(|l| l.rows > 0)
                    .collect();
                let obstacles = rows::obstacles(live, &snap.db, &losses).await?;
                if !obstacles.is_empty() {
                    return Ok(Err(obstacles.join("; ")));
                }
                let down = on(&now.db)?;
                down.downgrade(&rec.revisions).await?;
                // What it left to know on the copy (references left broken), said before it runs.
                let warnings = down.take_warnings();
                let after = rows::census(&now.db).await?;
                let counters = rows::counters_behind(&now.db, &snap.db).await?;
                rows::put_back(&now.db, &snap.db, &losses).await?;
                // What the downgrade destroys, as a run's forecast says it (its undo reads it).
                let drops: Vec<DataLoss> = rows::dropped(&before, &after, &skip)
                    .into_iter()
                    .chain(rows::removed_and_changed(live, &now.db, &before, &after, &skip).await?)
                    .filter(|l| l.rows > 0)
                    .collect();
                Ok::<_, crate::db::Error>(Ok((losses, drops, counters, warnings)))
            }
            .await;
            let (a, b) = (now.discard().await, snap.discard().await);
            let out = result?;
            a?;
            b?;
            Ok::<_, crate::db::Error>(out)
        })
        .map_err(|e| refuse(format!("rehearsed on a copy, the undo fails: {e}")))?;
        let (losses, drops, counters, warnings) = rehearsed.map_err(refuse)?;
        let warnings = warnings
            .iter()
            .map(|w| {
                Risk::new(
                    RiskCode::DowngradeWarning,
                    RiskSeverity::Medium,
                    format!("rehearsed on a copy of the database, {w}; this undo's downgrade does the same"),
                )
            })
            .collect();
        Ok(DbUndoMode::Backward {
            migrator: db.kind().to_owned(),
            to: rec.revisions.clone(),
            path,
            losses,
            drops,
            counters,
            warnings,
        })
    }
}
