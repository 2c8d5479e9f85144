//! The run pipeline.

use super::support::new_run_id;
use super::{Ctx, Exec, Rollback, RunOptions, RunOutcome, StepReport, planner};
use crate::assess;
use crate::backup::Manifest;
use crate::error::{Error, Result};
use crate::event::{LogLevel, Observer};
use crate::failpoint;
use crate::journal::{Journal, Record, RunState, RunStatus};
use crate::lock::RunLock;
use crate::plan::{Level, RunKind, Step};
use crate::prompt::{Confirmation, Prompter};
use crate::time::Timestamp;

impl Rollback {
    // ----- run ------------------------------------------------------------------------

    /// Runs a rollback: plan, safety checks, confirmation, then the steps under the lock.
    pub fn run(&self, opts: &RunOptions, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        let mut ctx = Ctx::new(observer);
        if prompter.is_automatic() && !opts.dry_run {
            return self.run_unattended(&mut ctx, opts);
        }
        let a = self.assess(opts.target.as_deref())?;
        let level = Self::resolve_level(&a, opts.level);
        self.require_database(&a, level)?;
        let mut plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &a, level)?;
        let refusals = self.refusals(&a, opts, level);
        if opts.dry_run || level == Level::Manual {
            self.fill_previews(&mut plan);
        }
        if opts.dry_run {
            let mut warnings: Vec<String> =
                a.risks.iter().filter(|r| r.severity > assess::Severity::Info).map(|r| r.message.clone()).collect();
            warnings.extend(refusals.iter().map(|e| format!("a run would refuse: {e}")));
            return Ok(RunOutcome {
                run_id: None,
                kind: RunKind::Rollback,
                status: RunStatus::Planned,
                level: Some(level),
                from: a.head.commit.clone(),
                branch: a.head.branch.clone(),
                to: a.target.commit.id.clone(),
                backup_id: None,
                undo_of: None,
                started_at: Timestamp::now(),
                finished_at: None,
                duration_ms: 0,
                steps: plan
                    .steps
                    .iter()
                    .map(|s| StepReport { step: s.name().into(), status: "pending".into(), detail: None })
                    .collect(),
                warnings,
                error: None,
                plan: Some(plan),
                verification: None,
                undone_by: None,
            });
        }
        // An unfinished run comes first: until it is settled, the tree is between two states.
        self.refuse_unfinished()?;
        if let Some(e) = refusals.into_iter().next() {
            return Err(e);
        }
        Self::warn_schema(&mut ctx, &a, level);
        let request =
            Confirmation { action: "rollback".into(), summary: Self::summary(&a, &plan, level), plan: plan.clone() };
        if !prompter.confirm(&request)? {
            return Err(Error::Cancelled("the operator declined; nothing was changed".into()));
        }

        self.state.ensure()?;
        let lock = self.take_lock(&mut ctx, "run")?;
        failpoint::hit("after:lock")?;
        self.refuse_unfinished()?;
        // Plan again under the lock, from the state as it is now.
        let now = self.assess(Some(a.target.commit.id.as_str()))?;
        self.require_database(&now, level)?;
        if now.head != a.head {
            return Err(Error::refused(
                format!(
                    "HEAD moved from {} to {} while the rollback was being confirmed",
                    a.head.commit.short(),
                    now.head.commit.short()
                ),
                Some("assess again and rerun".to_owned()),
            ));
        }
        let mut plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &now, level)?;
        if level == Level::Manual {
            self.fill_previews(&mut plan);
        }
        let run_id = new_run_id();
        let manual = (level == Level::Manual).then_some(prompter);
        let outcome = self.start_and_execute(&mut ctx, run_id, &plan, opts.reason.clone(), opts.severity, manual);
        drop(lock);
        outcome
    }

    /// `--yes`: no one to ask, so take the lock first and assess and plan once, under it.
    pub(crate) fn run_unattended(&self, ctx: &mut Ctx<'_>, opts: &RunOptions) -> Result<RunOutcome> {
        if opts.level == Some(Level::Manual) {
            return Err(Error::usage(
                "a manual rollback asks before every step: it cannot run with `--yes`".to_owned(),
                Some("drop `--yes` to approve each step, or use `--full` to run them all".to_owned()),
            ));
        }
        // Bad input is reported before anything is written, even the state folder.
        let head = self.vcs.head()?;
        let registry = self.registry()?;
        assess::resolve_target(
            self.vcs.as_ref(),
            &registry,
            &self.registry_path(),
            &head.commit,
            opts.target.as_deref(),
        )?;
        self.state.ensure()?;
        let lock = self.take_lock(ctx, "run")?;
        failpoint::hit("after:lock")?;
        self.refuse_unfinished()?;
        let a = self.assess(opts.target.as_deref())?;
        let level = Self::resolve_level(&a, opts.level);
        self.require_database(&a, level)?;
        if let Some(e) = self.refusals(&a, opts, level).into_iter().next() {
            return Err(e);
        }
        Self::warn_schema(ctx, &a, level);
        let plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &a, level)?;
        let outcome = self.start_and_execute(ctx, new_run_id(), &plan, opts.reason.clone(), opts.severity, None);
        drop(lock);
        outcome
    }

    pub(crate) fn take_lock(&self, ctx: &mut Ctx<'_>, command: &str) -> Result<RunLock> {
        let lock = RunLock::acquire(&self.state.lock_path(), command)?;
        if let Some(prev) = &lock.taken_over {
            ctx.log(LogLevel::Warn, format!("took over a stale lock: its holder ({prev}) is gone"));
        }
        Ok(lock)
    }

    /// Undoes run `run_id`: restores exactly the state its snapshot recorded (branch, HEAD,
    /// every file's bytes, mode and symlink target, untracked files, the index, and for a full
    /// rollback the database and the env files). The undo is itself a run with its own
    /// snapshot, so it can be undone too.
    pub fn undo(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        let mut ctx = Ctx::new(observer);
        let target = self.load_run(run_id)?;
        Self::refuse_undone(run_id, &target)?;
        let head = self.vcs.head()?;
        if let Some((manifest, db)) = self.undo_inputs(&target)? {
            let plan = planner::undo_plan(self.vcs.as_ref(), &self.config, &head, &manifest, run_id, db.as_ref())?;
            let summary = format!(
                "Undo run {run_id}\nRepository: {}\nFrom: {} ({})\nBack to: {} on {} with {} path(s) from backup {}{}\n",
                self.workdir().display(),
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
        self.state.ensure()?;
        let lock = self.take_lock(&mut ctx, &format!("undo {run_id}"))?;
        failpoint::hit("after:lock")?;
        if self.vcs.head()? != head {
            return Err(Error::refused(
                "HEAD moved while the undo was being confirmed".to_owned(),
                Some("run the undo again".to_owned()),
            ));
        }
        let out = self.undo_locked(&mut ctx, run_id);
        drop(lock);
        out
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
        let changed_db = target.plan.steps.iter().enumerate().any(|(i, s)| {
            matches!(s, Step::Downgrade { .. } | Step::RestoreDatabase { .. })
                && target.step_changed(i, "database_changed")
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

    /// The undo itself, under the lock the caller holds.
    pub(crate) fn undo_locked(&self, ctx: &mut Ctx<'_>, run_id: &str) -> Result<RunOutcome> {
        let target = self.load_run(run_id)?;
        Self::refuse_undone(run_id, &target)?;
        // Other unfinished runs (not this one, which the undo settles) block an undo too.
        if let Some(r) = self.unfinished_runs()?.into_iter().find(|r| r.run_id != run_id) {
            return Err(Error::refused(
                format!("run {} is unfinished", r.run_id),
                Some(format!("resume or undo {} first", r.run_id)),
            ));
        }
        let Some((manifest, db)) = self.undo_inputs(&target)? else {
            // Stopped before its snapshot completed: it changed nothing.
            let mut j = Journal::open(&self.state.run_dir(run_id).join("journal.jsonl"))?;
            j.append(&Record::Undone { at: Timestamp::now(), by: "nothing-changed".into() })?;
            ctx.log(LogLevel::Info, format!("run {run_id} stopped before changing anything; marked as undone"));
            let mut outcome = self.outcome_of(&self.load_run(run_id)?);
            outcome.warnings = std::mem::take(&mut ctx.warnings);
            return Ok(outcome);
        };
        if db.is_some() && self.db()?.is_none() {
            return Err(Error::usage(
                format!("run {run_id} changed the database, but no `[database]` is configured now"),
                Some("restore the `[database]` section of the configuration, then undo again".to_owned()),
            ));
        }
        let head = self.vcs.head()?;
        let plan = planner::undo_plan(self.vcs.as_ref(), &self.config, &head, &manifest, run_id, db.as_ref())?;
        self.start_and_execute(ctx, new_run_id(), &plan, Some(format!("undo of {run_id}")), None, None)
    }

    /// Finishes an interrupted or failed run from the first step that did not complete.
    pub fn resume(&self, run_id: &str, observer: &dyn Observer) -> Result<RunOutcome> {
        self.resume_with(run_id, &crate::prompt::AutoConfirm, observer)
    }

    /// [`Rollback::resume`], asking `prompter` before each remaining step of a manual run
    /// (an automatic prompter runs them unasked).
    pub fn resume_with(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        let mut ctx = Ctx::new(observer);
        self.load_run(run_id)?;
        self.state.ensure()?;
        let lock = self.take_lock(&mut ctx, &format!("resume {run_id}"))?;
        let state = self.load_run(run_id)?;
        match state.status {
            RunStatus::Running | RunStatus::Failed => {}
            // A manual run the operator aborted part-way can be finished later.
            RunStatus::Cancelled if Self::changed_something(&state) => {}
            other => {
                return Err(Error::refused(format!("run {run_id} is {other}: there is nothing to resume"), None));
            }
        }
        let head = self.vcs.head()?;
        let plan = state.plan.clone();
        if head.commit != plan.from.commit && head.commit != plan.to {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, neither where run {run_id} started ({}) nor its target ({})",
                    head.commit.short(),
                    plan.from.commit.short(),
                    plan.to.short()
                ),
                Some(format!("`forge-rollback undo {run_id}` restores the state from before the run")),
            ));
        }
        // Steps that change the tree or the database: once one has begun, the snapshots taken
        // before it are the only record of the prior state and must not be taken again.
        let changes_begun = state.records.iter().any(|r| {
            matches!(r, Record::StepBegin { index, .. }
                if matches!(plan.steps.get(*index), Some(Step::Reset { .. } | Step::Downgrade { .. } | Step::RestoreDatabase { .. })))
        });
        let mut start = state.next_step().unwrap_or(plan.steps.len());
        if !changes_begun && head.commit == plan.from.commit {
            // Nothing destructive happened yet: capture the tree again as it is now.
            start = 0;
        }
        let dir = self.state.run_dir(run_id);
        ctx.open_log(&dir.join("run.log"))?;
        let mut journal = Journal::open(&dir.join("journal.jsonl"))?;
        journal.append(&Record::Resumed { at: Timestamp::now() })?;
        ctx.log(LogLevel::Info, format!("Resuming run {run_id} at step {} of {}", start + 1, plan.steps.len()));
        let manual = (plan.level == Some(Level::Manual) && plan.kind == RunKind::Rollback && !prompter.is_automatic())
            .then_some(prompter);
        let mut ex = Exec {
            run_id: run_id.to_owned(),
            plan: &plan,
            journal,
            manifest: None,
            fresh_plan: false,
            manual,
            verification: None,
            aborted: None,
            failure_detail: None,
            skipped: state.skipped.iter().copied().collect(),
            started_notice: None,
        };
        let out = self.execute(&mut ctx, &mut ex, start);
        drop(lock);
        out
    }
}
