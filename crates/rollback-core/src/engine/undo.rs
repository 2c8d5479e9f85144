//! The undo entry of the pipeline: put back exactly what a run's snapshots recorded.

use super::pipeline::{Entry, Job, Next, Start};
use super::support::new_run_id;
use super::{Ctx, Rollback, RunOutcome, planner};
use crate::backup::Manifest;
use crate::error::{Error, Result};
use crate::event::{LogLevel, Observer};
use crate::journal::{Journal, Record, RunState};
use crate::plan::Step;
use crate::prompt::{Confirmation, Prompter};
use crate::time::Timestamp;
use crate::vcs::Head;

pub(crate) struct UndoEntry<'a> {
    pub(crate) run_id: &'a str,
}

impl Entry for UndoEntry<'_> {
    /// HEAD as the operator confirmed it (`None`: the automatic undo, nobody confirmed).
    type Ready = Option<Head>;

    fn command(&self) -> String {
        format!("undo {}", self.run_id)
    }

    fn prepare(&self, rb: &Rollback, _ctx: &mut Ctx<'_>, prompter: &dyn Prompter) -> Result<Next<Option<Head>>> {
        let run_id = self.run_id;
        let target = rb.load_run(run_id)?;
        Rollback::refuse_undone(run_id, &target)?;
        let head = rb.vcs.head()?;
        if let Some((manifest, db)) = rb.undo_inputs(&target)? {
            let mut plan = planner::undo_plan(
                rb.vcs.as_ref(),
                &rb.config,
                &rb.check_names(),
                &head,
                &manifest,
                run_id,
                db.as_ref(),
            )?;
            rb.plan_repromotion(&mut plan, &target)?;
            let summary = format!(
                "Undo run {run_id}\nRepository: {}\nFrom: {} ({})\nBack to: {} on {} with {} path(s) from backup {}{}\n",
                rb.workdir().display(),
                head.commit.short(),
                head.branch.as_deref().unwrap_or("detached"),
                manifest.head.short(),
                manifest.branch.as_deref().unwrap_or("detached HEAD"),
                manifest.entries.len(),
                manifest.id,
                db.as_ref()
                    .map(|d| format!("\nDatabase: {} back from backup {}", d.database, d.snapshot))
                    .unwrap_or_default()
            );
            if !prompter.confirm(&Confirmation { action: "undo".into(), summary, plan })? {
                return Err(Error::Cancelled("the operator declined; nothing was changed".into()));
            }
        }
        Ok(Next::Go(Some(head)))
    }

    fn settle(
        &self,
        rb: &Rollback,
        ctx: &mut Ctx<'_>,
        seen: Option<Head>,
        _prompter: &dyn Prompter,
    ) -> Result<Next<Job>> {
        let run_id = self.run_id;
        if let Some(seen) = seen
            && rb.vcs.head()? != seen
        {
            return Err(Error::refused(
                "HEAD moved while the undo was being confirmed".to_owned(),
                Some("run the undo again".to_owned()),
            ));
        }
        let target = rb.load_run(run_id)?;
        Rollback::refuse_undone(run_id, &target)?;
        // Other unfinished runs (not this one, which the undo settles) block an undo too.
        if let Some(r) = rb.unfinished_runs()?.into_iter().find(|r| r.run_id != run_id) {
            return Err(Error::refused(
                format!("run {} is unfinished", r.run_id),
                Some(format!("resume or undo {} first", r.run_id)),
            ));
        }
        let Some((manifest, db)) = rb.undo_inputs(&target)? else {
            // Stopped before its snapshot completed: it changed nothing.
            let mut j = Journal::open(&rb.state.run_dir(run_id).join("journal.jsonl"))?;
            j.append(&Record::Undone { at: Timestamp::now(), by: "nothing-changed".into() })?;
            ctx.log(LogLevel::Info, format!("run {run_id} stopped before changing anything; marked as undone"));
            let mut outcome = rb.outcome_of(&rb.load_run(run_id)?);
            outcome.warnings = std::mem::take(&mut ctx.warnings);
            return Ok(Next::Done(Box::new(outcome)));
        };
        if db.is_some() && rb.db()?.is_none() {
            return Err(Error::usage(
                format!("run {run_id} changed the database, but no `[database]` is configured now"),
                Some("restore the `[database]` section of the configuration, then undo again".to_owned()),
            ));
        }
        let head = rb.vcs.head()?;
        let mut plan =
            planner::undo_plan(rb.vcs.as_ref(), &rb.config, &rb.check_names(), &head, &manifest, run_id, db.as_ref())?;
        rb.plan_repromotion(&mut plan, &target)?;
        Ok(Next::Go(Job {
            run_id: new_run_id(),
            plan,
            start: Start::New { reason: Some(format!("undo of {run_id}")), severity: None },
            manual: false,
        }))
    }
}

impl Rollback {
    /// Undoes run `run_id`: restores exactly the state its snapshot recorded (branch, HEAD,
    /// every file's bytes, mode and symlink target, untracked files, the index, and for a full
    /// rollback the database and the env files). The undo is itself a run with its own
    /// snapshot, so it can be undone too.
    pub fn undo(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        self.drive(&UndoEntry { run_id }, prompter, observer)
    }

    /// The undo, under the lock the caller holds (the automatic undo after a failed
    /// verification or a manual abort).
    pub(crate) fn undo_locked(&self, ctx: &mut Ctx<'_>, run_id: &str) -> Result<RunOutcome> {
        self.settle_and_execute(ctx, &UndoEntry { run_id }, None, &crate::prompt::AutoConfirm)
    }

    /// The work-tree snapshot of a run and, if it took one, its database snapshot; `None`
    /// when the run stopped before its snapshot completed (it changed nothing).
    pub(crate) fn undo_inputs(&self, target: &RunState) -> Result<Option<(Manifest, Option<planner::DbRestore>)>> {
        let snapshot = target.snapshot_of("snapshot");
        let Some(snapshot) = snapshot else { return Ok(None) };
        let manifest = self.store()?.manifest(&snapshot)?;
        // The database goes back only if the run changed it: its downgrade (or database
        // restore) began and was neither skipped nor put back already after failing.
        // Restoring a dump the run never diverged from would only discard the writes made
        // since it was taken.
        let changed_db =
            target.plan.steps.iter().enumerate().any(|(i, s)| {
                matches!(s, Step::Downgrade { .. } | Step::RestoreDatabase { .. }) && target.step_changed(i)
            });
        let db_snapshot = target.snapshot_of("db_snapshot").filter(|_| changed_db);
        let db = match db_snapshot {
            Some(id) => {
                let m = self.store()?.manifest(&id)?;
                let Some(rec) = m.database else {
                    return Err(Error::refused(format!("backup {id} holds no database dump"), None));
                };
                let current = match self.db()? {
                    Some(db) => crate::rt::block_on(db.current()).unwrap_or_default(),
                    None => Vec::new(),
                };
                Some(planner::DbRestore { snapshot: id, database: rec.database, current })
            }
            None => None,
        };
        Ok(Some((manifest, db)))
    }
}
