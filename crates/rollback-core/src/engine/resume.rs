//! The resume entry of the pipeline: finish an interrupted or failed run from the first step
//! that did not complete.

use super::pipeline::{Entry, Job, Next, Start};
use super::{Ctx, Rollback, RunOutcome};
use crate::error::{Error, Result};
use crate::event::Observer;
use crate::journal::RunStatus;
use crate::plan::{Level, RunKind, Step};
use crate::prompt::Prompter;

pub(crate) struct ResumeEntry<'a> {
    pub(crate) run_id: &'a str,
}

impl Entry for ResumeEntry<'_> {
    type Ready = ();

    fn command(&self) -> String {
        format!("resume {}", self.run_id)
    }

    fn prepare(&self, rb: &Rollback, _ctx: &mut Ctx<'_>, _prompter: &dyn Prompter) -> Result<Next<()>> {
        // An unknown run is reported before anything is written.
        rb.load_run(self.run_id)?;
        Ok(Next::Go(()))
    }

    fn settle(&self, rb: &Rollback, ctx: &mut Ctx<'_>, (): (), prompter: &dyn Prompter) -> Result<Next<Job>> {
        let run_id = self.run_id;
        let state = rb.load_run(run_id)?;
        super::support::refuse_other_worktree(rb.vcs.as_ref(), &state, "resume")?;
        match state.status {
            // A cancelled run (a manual run aborted part-way; Ctrl-C, SIGTERM or the caller's
            // cancel between steps) can be finished later, whether or not it had changed
            // anything yet: the snapshots are taken again then (below).
            RunStatus::Running | RunStatus::Failed | RunStatus::Cancelled => {}
            other => {
                return Err(Error::refused(format!("run {run_id} ended `{other}`: there is nothing to resume"), None));
            }
        }
        // A downgrade Job the run left running decides what the database is: waited for
        // before any step looks at it (refused, nothing changed, while it still runs).
        rb.wait_run_downgrade(ctx, &state)?;
        let head = rb.vcs.head()?;
        let plan = state.plan.clone();
        if head.commit != plan.from.commit && head.commit != plan.to {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, neither where run {run_id} started ({}) nor its target ({})",
                    head.commit.short(),
                    plan.from.commit.short(),
                    plan.to.short()
                ),
                Some(crate::hint::hint![crate::hint::Action::undo(run_id), " restores the state from before the run"]),
            ));
        }
        refuse_other_branch(run_id, &plan, head.branch.as_deref())?;
        // Steps that change the tree or the database: once one has changed something, the
        // snapshots taken before it are the only record of the prior state and must not be
        // taken again. A downgrade that failed and left the database as it was (put back from
        // the snapshot, or its failed migration rolled back whole) changed nothing: the app
        // may have written rows since, and they are in no snapshot yet, so both snapshots are
        // taken again before the downgrade runs a second time.
        let changes_begun = plan.steps.iter().enumerate().any(|(index, step)| {
            matches!(
                step,
                Step::Reset { .. }
                    | Step::Downgrade { .. }
                    | Step::RestoreDatabase { .. }
                    | Step::UpgradeDatabase { .. }
                    | Step::PutBackRows { .. }
            ) && state.step_changed(index)
        });
        let mut at = state.next_step().unwrap_or(plan.steps.len());
        if !changes_begun && head.commit == plan.from.commit {
            // Nothing destructive happened yet: capture the tree again as it is now.
            at = 0;
        }
        // A merge (or the like) begun since the run stopped: the steps ahead that write the
        // tree and the index would silently abort it, as a run's would.
        if plan
            .steps
            .iter()
            .skip(at)
            .any(|s| matches!(s, Step::Reset { .. } | Step::RestoreFiles { .. } | Step::RestoreIndex { .. }))
            && let Some(e) =
                crate::assess::refuse_operation_in_progress(rb.vcs.as_ref(), &format!("resuming run {run_id}"))
        {
            return Err(e);
        }
        // A deploy still to run must be able to: refused now, before the steps ahead of it.
        if plan.steps.iter().skip(at).any(|s| matches!(s, Step::Deploy { .. })) {
            rb.refuse_deploy_unready(&plan)?;
        }
        let manual = plan.level == Some(Level::Manual) && plan.kind == RunKind::Rollback && !prompter.is_automatic();
        Ok(Next::Go(Job {
            run_id: run_id.to_owned(),
            plan,
            start: Start::Resumed { at, skipped: state.skipped.iter().copied().collect() },
            manual,
        }))
    }
}

/// Refuses when HEAD is on another branch than the run's: the branch it started on, or the
/// one its reset puts HEAD on (an undo's). Only for a plan that resets (a `--database-only`
/// run moves no branch). An operator who started a branch where the run
/// stopped (`git checkout -b hotfix`, at the same commit) would otherwise be taken off it
/// without a word, the run's branch checked out again and reset; and the snapshot taken again
/// would record `hotfix`, so the run's undo would give back `hotfix` and leave the run's
/// branch at the target.
fn refuse_other_branch(run_id: &str, plan: &crate::plan::Plan, here: Option<&str>) -> Result<()> {
    let Some(reset_branch) = plan.steps.iter().find_map(|s| match s {
        Step::Reset { branch, .. } => Some(branch.as_deref()),
        _ => None,
    }) else {
        return Ok(());
    };
    let started_on = plan.from.branch.as_deref();
    if here == started_on || here == reset_branch {
        return Ok(());
    }
    let Some(branch) = reset_branch.or(started_on) else { return Ok(()) };
    let now = here.map_or_else(|| "detached".to_owned(), |b| format!("on branch `{b}`"));
    Err(Error::refused(
        format!("HEAD is {now}, not on `{branch}`, the branch run {run_id} rolls back; nothing was changed"),
        Some(crate::hint::hint![
            format!("check `{branch}` out again (`git switch {branch}`) and resume; or "),
            crate::hint::Action::undo(run_id),
            " restores the state from before the run"
        ]),
    ))
}

impl Rollback {
    /// Finishes an interrupted or failed run from the first step that did not complete.
    pub fn resume(&self, run_id: &str, observer: &dyn Observer) -> Result<RunOutcome> {
        self.resume_with(run_id, &crate::prompt::AutoConfirm, observer)
    }

    /// [`Rollback::resume`], asking `prompter` before each remaining step of a manual run
    /// (an automatic prompter runs them unasked).
    pub fn resume_with(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        self.drive(&ResumeEntry { run_id }, prompter, observer)
    }
}
