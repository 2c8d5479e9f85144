//! The undo entry of the pipeline: put back exactly what a run's snapshots recorded.

use std::fmt::Write as _;

use super::pipeline::{Entry, Job, Next, Start};
use super::support::{new_run_id, refuse_other_worktree};
use super::undo_checks::{
    refuse_damaged_backup, refuse_db_unreachable, refuse_locked_paths, refuse_no_space, refuse_reset,
};
use super::{Ctx, Rollback, RunOutcome, planner};
use crate::backup::Manifest;
use crate::error::{Error, Result};
use crate::event::{LogLevel, Observer};
use crate::journal::{Journal, Record, RunState, RunStatus};
use crate::plan::Step;
use crate::prompt::{Confirmation, Prompter};
use crate::time::Timestamp;
use crate::vcs::{CommitId, CommitInfo, Head};

pub(crate) struct UndoEntry<'a> {
    pub(crate) run_id: &'a str,
    /// Who asked for the undo (journaled, and in its report).
    pub(crate) actor: Option<&'a str>,
    pub(crate) restore_snapshot: bool,
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
        rb.refuse_locked()?;
        Rollback::refuse_undone(run_id, &target)?;
        refuse_other_worktree(rb.vcs.as_ref(), &target, "undo")?;
        if let Some(e) = crate::assess::refuse_operation_in_progress(rb.vcs.as_ref(), &format!("undoing run {run_id}"))
        {
            return Err(e);
        }
        let head = rb.vcs.head()?;
        // Nobody to show a plan to (`--yes`): it is made once, under the lock (its database
        // part can cost copies and a rehearsal). The run's snapshot is still read now, so a
        // store that cannot be trusted is refused before the lock.
        if prompter.is_automatic() {
            if let Some(id) = &target.tree_snapshot {
                let manifest = rb.run_manifest(run_id, id)?;
                refuse_no_space(rb, run_id, &manifest)?;
                refuse_locked_paths(rb, run_id, &manifest)?;
                rb.refuse_missing_shared_index(&manifest)?;
            }
            return Ok(Next::Go(Some(head)));
        }
        // Checked again under the lock (`settle`); named first here too, as with `--yes`:
        // another run's half-done work (a stopped undo of this run) would otherwise show as a
        // database changed since the run, a misleading refusal.
        refuse_other_unfinished(rb, run_id)?;
        if let Some((manifest, db)) = rb.undo_inputs(&target, self.restore_snapshot)? {
            rb.refuse_head_moved_since(&target, &manifest, &head.commit)?;
            refuse_no_space(rb, run_id, &manifest)?;
            refuse_locked_paths(rb, run_id, &manifest)?;
            rb.refuse_missing_shared_index(&manifest)?;
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
            if let Some(e) = refuse_reset(rb, &plan, &manifest) {
                return Err(e);
            }
            rb.refuse_deploy_unready(&plan)?;
            rb.refuse_pushed_over(&target, head.branch.as_deref())?;
            let made_since = rb.commits_made_since(&target, &manifest.head, &head.commit)?;
            let mut summary = format!(
                "Undo run {run_id}\nRepository: {}\nFrom: {} ({})\nBack to: {} on {} with {} path(s) from backup {}{}\n",
                rb.workdir().display(),
                head.commit.short(),
                head.branch.as_deref().unwrap_or("detached"),
                manifest.head.short(),
                manifest.branch.as_deref().unwrap_or("detached HEAD"),
                manifest.entries.len(),
                manifest.id,
                db.as_ref().map(describe_db).unwrap_or_default()
            );
            if !made_since.is_empty() {
                let _ = writeln!(
                    summary,
                    "Commits made since the run leave the branch, kept on branch `{}`: {}",
                    kept_branch(run_id),
                    show_commits(&made_since)
                );
            }
            // The database's warnings are in its line above.
            for r in plan.risks.iter().filter(|r| r.code != crate::model::RiskCode::DowngradeWarning) {
                let _ = writeln!(summary, "Warning: {}", r.message);
            }
            // A record that cannot be read refuses nothing: the undo's warning says so.
            let workdir = rb.workdir();
            let edited = rb.env_edited_since(&target, &manifest, &|p, k| crate::env::holds(workdir, p, k));
            for file in edited.unwrap_or_default() {
                let _ = writeln!(
                    summary,
                    "Env file `{file}` was changed since the run left it: this undo puts back the version from before the run; the changed version stays in this undo's backup (undoing this undo brings it back)"
                );
            }
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
                Some("run the undo again".into()),
            ));
        }
        let target = rb.load_run(run_id)?;
        Rollback::refuse_undone(run_id, &target)?;
        refuse_other_worktree(rb.vcs.as_ref(), &target, "undo")?;
        // An earlier undo of this run that failed having changed nothing: this one takes its
        // place (it is closed, so that it is not resumed later over this one's work).
        let runs = rb.runs()?;
        // Its `seq`: the statuses changed below do not change it.
        let seq = Rollback::next_seq(&runs);
        for r in runs.into_iter().filter(|r| r.run_id != run_id && r.status == RunStatus::Failed) {
            if rb.load_run(&r.run_id).is_ok_and(|s| Rollback::failed_undo_that_changed_nothing(&s, run_id)) {
                mark_undone_nothing_changed(rb, &r.run_id)?;
                ctx.log(
                    LogLevel::Info,
                    format!(
                        "undo {} of run {run_id} failed having changed nothing; this undo takes its place",
                        r.run_id
                    ),
                );
            }
        }
        refuse_other_unfinished(rb, run_id)?;
        rb.wait_run_downgrade(ctx, &target)?;
        let Some((manifest, db)) = rb.undo_inputs(&target, self.restore_snapshot)? else {
            // Stopped before its snapshot completed: it changed nothing.
            mark_undone_nothing_changed(rb, run_id)?;
            ctx.log(LogLevel::Info, format!("run {run_id} stopped before changing anything; marked as undone"));
            let mut outcome = rb.outcome_of(&rb.load_run(run_id)?);
            outcome.warnings = std::mem::take(&mut ctx.warnings);
            return Ok(Next::Done(Box::new(outcome)));
        };
        // Under the lock, once (not again for the confirmation's plan).
        refuse_damaged_backup(rb, &manifest.id, "the files")?;
        // The database's dump too: found corrupt by the restore step, the undo would fail
        // half-way and stay unfinished, blocking the next one.
        if let Some(db) = &db {
            refuse_damaged_backup(rb, &db.snapshot, "the database")?;
        }
        if db.is_some() && rb.db()?.is_none() {
            return Err(Error::usage(
                format!("run {run_id} changed the database, but no `[database]` is configured now"),
                Some("restore the `[database]` section of the configuration, then undo again".into()),
            ));
        }
        // Again under the lock: git may have started one since the confirmation.
        if let Some(e) = crate::assess::refuse_operation_in_progress(rb.vcs.as_ref(), &format!("undoing run {run_id}"))
        {
            return Err(e);
        }
        let head = rb.vcs.head()?;
        rb.refuse_head_moved_since(&target, &manifest, &head.commit)?;
        refuse_no_space(rb, run_id, &manifest)?;
        refuse_locked_paths(rb, run_id, &manifest)?;
        rb.refuse_missing_shared_index(&manifest)?;
        let mut plan =
            planner::undo_plan(rb.vcs.as_ref(), &rb.config, &rb.check_names(), &head, &manifest, run_id, db.as_ref())?;
        if let Some(e) = refuse_reset(rb, &plan, &manifest) {
            return Err(e);
        }
        rb.refuse_deploy_unready(&plan)?;
        rb.refuse_pushed_over(&target, head.branch.as_deref())?;
        rb.keep_commits_made_since(ctx, &target, &manifest.head, &head.commit)?;
        rb.plan_repromotion(&mut plan, &target)?;
        Ok(Next::Go(Job {
            run_id: new_run_id(),
            plan,
            start: Start::New {
                reason: Some(format!("undo of {run_id}")),
                severity: None,
                actor: self.actor.map(str::to_owned),
                seq,
            },
            manual: false,
        }))
    }
}

/// Closes a run that changed nothing: undone, by nobody ([`crate::journal::NOTHING_CHANGED`]).
/// Other unfinished runs (not `run_id`, which the undo settles) block an undo. A failed undo
/// of `run_id` that changed nothing is not one: the undo takes its place.
fn refuse_other_unfinished(rb: &Rollback, run_id: &str) -> Result<()> {
    let blocking = rb.unfinished_runs()?.into_iter().find(|r| {
        r.run_id != run_id
            && !rb.load_run(&r.run_id).is_ok_and(|s| Rollback::failed_undo_that_changed_nothing(&s, run_id))
    });
    match blocking {
        Some(r) => Err(Error::refused(
            format!("run {} is unfinished", r.run_id),
            Some(format!("resume or undo {} first", r.run_id).into()),
        )),
        None => Ok(()),
    }
}

fn mark_undone_nothing_changed(rb: &Rollback, run_id: &str) -> Result<()> {
    let mut j = Journal::open(&rb.state.run_dir(run_id).join("journal.jsonl"))?;
    Ok(j.append(&Record::Undone { at: Timestamp::now(), by: crate::journal::NOTHING_CHANGED.into() })?)
}

/// The confirmation's database line: which way it goes back.
fn describe_db(d: &planner::DbRestore) -> String {
    match &d.mode {
        planner::DbUndoMode::Restore { keep_current: false, unchanged_since: Some(_) } => {
            format!("\nDatabase: {} unchanged since the run: restore snapshot {}", d.database, d.snapshot)
        }
        planner::DbUndoMode::Restore { keep_current: false, unchanged_since: None } => format!(
            "\nDatabase: {}: restore snapshot {} exactly (the run recorded no state of the database to compare with: writes made since it stay only in this undo's own database snapshot)",
            d.database, d.snapshot
        ),
        planner::DbUndoMode::Restore { keep_current: true, .. } => format!(
            "\nDatabase: {}: dump it as it is now into the state folder, then restore snapshot {} (writes made since the run stay only in that dump)",
            d.database, d.snapshot
        ),
        planner::DbUndoMode::Backward { to, path, losses, drops, counters, warnings, .. } => format!(
            "\nDatabase: {} changed since that undo: downgrade to {} ({} migration(s), as the run did; the rows written since stay where the older schema has room for them){}{}{}",
            d.database,
            crate::db::show_revisions(to),
            path.len(),
            if drops.is_empty() {
                String::new()
            } else {
                format!(
                    "\nThe downgrade drops: {} (kept in this undo's database snapshot; its undo puts them back)",
                    crate::db::rows::describe(drops)
                )
            },
            warnings.iter().map(|r| format!("\nWarning: {}", r.message)).collect::<Vec<_>>().concat(),
            if losses.is_empty() && counters.is_empty() {
                String::new()
            } else {
                format!("\nThen put back {} from backup {}", put_back_words(losses, counters), d.snapshot)
            }
        ),
        planner::DbUndoMode::Forward { to, losses, upgrade_drops, counters, .. } => format!(
            "\nDatabase: {} changed since the run: upgrade to {} and put back {} from backup {}; the rows written since stay{}",
            d.database,
            crate::db::show_revisions(to),
            put_back_words(losses, counters),
            d.snapshot,
            if upgrade_drops.is_empty() {
                String::new()
            } else {
                format!(
                    "\nThe upgrade removes, of the rolled-back schema: {} (renamed by it, or dropped with whatever the app wrote there since: kept in this undo's database snapshot)",
                    crate::db::rows::describe(upgrade_drops)
                )
            }
        ),
    }
}

/// `12 rows of payments, 3 values of users.nickname`, then the `AUTOINCREMENT` counters of
/// `counters`; `nothing` when none.
fn put_back_words(losses: &[crate::model::DataLoss], counters: &[String]) -> String {
    let rows = (!losses.is_empty()).then(|| rows_words(losses));
    crate::db::rows::with_counters(rows, counters)
}

fn rows_words(losses: &[crate::model::DataLoss]) -> String {
    losses
        .iter()
        .map(|l| match (&l.column, l.kind) {
            (None, crate::model::LossKind::Removed) => {
                format!("{} row(s) the downgrade deleted from {}", l.rows, l.table)
            }
            (Some(c), crate::model::LossKind::Changed) => {
                format!("{} value(s) of {}.{c} the downgrade changed", l.rows, l.table)
            }
            (None, _) => format!("{} row(s) of {}", l.rows, l.table),
            (Some(c), _) => format!("{} value(s) of {}.{c}", l.rows, l.table),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Commits named at most in a confirmation or a warning.
const KEPT_SHOWN: usize = 10;

/// The branch that keeps commits made on top of a rollback when it is undone.
fn kept_branch(run_id: &str) -> String {
    format!("forge-rollback/kept-{run_id}")
}

fn show_commits(commits: &[CommitInfo]) -> String {
    commits.iter().map(|c| format!("{} {}", c.id.short(), c.summary)).collect::<Vec<_>>().join("; ")
}

impl Rollback {
    /// Commits made on top of the rolled-back release (a hotfix) would leave the branch when
    /// the undo moves it back: they are kept on a branch of their own, and said so, before
    /// anything moves.
    fn keep_commits_made_since(
        &self,
        ctx: &mut Ctx<'_>,
        run: &RunState,
        before: &CommitId,
        head: &CommitId,
    ) -> Result<()> {
        let run_id = run.run_id.as_str();
        let made_since = self.commits_made_since(run, before, head)?;
        if made_since.is_empty() {
            return Ok(());
        }
        let branch = kept_branch(run_id);
        self.vcs.set_ref(&format!("refs/heads/{branch}"), head, "forge-rollback: keep commits made since the run")?;
        ctx.log(
            LogLevel::Warn,
            format!(
                "{} commit(s) made since run {run_id} leave the branch with this undo; they are kept on branch `{branch}`: {}",
                made_since.len(),
                show_commits(&made_since)
            ),
        );
        Ok(())
    }

    /// The commits on `head` made since `run` (which started at `before`), that the undo's
    /// move back to `before` takes off the branch; newest first, at most [`KEPT_SHOWN`].
    ///
    /// A commit that was there when the run started is not one: it is reachable from where
    /// this run, or a run before it, started or moved to (an undo of an undo moves away from
    /// the commits its run moved to; undos out of order move back past commits an earlier
    /// run started from). A commit made since cannot be reachable from those, which all
    /// existed before it. Runs that cannot be read, or endpoints gone from the repository,
    /// only make the list longer (more is kept, nothing lost).
    pub(super) fn commits_made_since(
        &self,
        run: &RunState,
        before: &CommitId,
        head: &CommitId,
    ) -> Result<Vec<CommitInfo>> {
        let candidates = self.vcs.commits_between(before, head, KEPT_SHOWN)?;
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let mut known: Vec<CommitId> = vec![run.plan.from.commit.clone(), run.plan.to.clone()];
        for r in self.runs().unwrap_or_default() {
            if r.order() <= run.order() {
                known.extend([r.from, r.to]);
            }
        }
        known.sort();
        known.dedup();
        known.retain(|k| k != before);
        let reachable = |c: &CommitId, k: &CommitId| self.vcs.is_ancestor(c, k).unwrap_or(false);
        if known.iter().any(|k| reachable(head, k)) {
            return Ok(Vec::new());
        }
        Ok(candidates.into_iter().filter(|c| !known.iter().any(|k| reachable(&c.id, k))).collect())
    }

    /// Undoes run `run_id`: restores exactly the state its snapshot recorded (branch, HEAD,
    /// every file's bytes, mode and symlink target, untracked files, the index, and for a full
    /// rollback the database and the env files). The undo is itself a run with its own
    /// snapshot, so it can be undone too.
    ///
    /// When the run changed the database and rows were written since it ended, the schema is
    /// brought forward and only what its downgrade dropped comes back (see
    /// [`UndoOptions::restore_snapshot`](crate::UndoOptions::restore_snapshot) for the other way).
    pub fn undo(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        self.undo_with(run_id, &super::UndoOptions::default(), prompter, observer)
    }

    /// [`Rollback::undo`], recording who asked for it (`actor`) in its journal and report.
    pub fn undo_as(
        &self,
        run_id: &str,
        actor: Option<&str>,
        prompter: &dyn Prompter,
        observer: &dyn Observer,
    ) -> Result<RunOutcome> {
        let opts = super::UndoOptions { actor: actor.map(str::to_owned), ..super::UndoOptions::default() };
        self.undo_with(run_id, &opts, prompter, observer)
    }

    /// [`Rollback::undo`] with options.
    pub fn undo_with(
        &self,
        run_id: &str,
        opts: &super::UndoOptions,
        prompter: &dyn Prompter,
        observer: &dyn Observer,
    ) -> Result<RunOutcome> {
        let entry = UndoEntry { run_id, actor: opts.actor.as_deref(), restore_snapshot: opts.restore_snapshot };
        self.drive(&entry, prompter, observer)
    }

    /// The undo, under the lock the caller holds (the automatic undo after a failed
    /// verification or a manual abort).
    pub(crate) fn undo_locked(&self, ctx: &mut Ctx<'_>, run_id: &str) -> Result<RunOutcome> {
        self.settle_and_execute(
            ctx,
            &UndoEntry { run_id, actor: None, restore_snapshot: false },
            None,
            &crate::prompt::AutoConfirm,
        )
    }

    /// The work-tree snapshot of a run and, if it took one, its database snapshot; `None`
    /// when the run stopped before its snapshot completed (it changed nothing).
    pub(crate) fn undo_inputs(
        &self,
        target: &RunState,
        restore_snapshot: bool,
    ) -> Result<Option<(Manifest, Option<planner::DbRestore>)>> {
        let snapshot = target.tree_snapshot.clone();
        let Some(snapshot) = snapshot else { return Ok(None) };
        let manifest = self.run_manifest(&target.run_id, &snapshot)?;
        // The database goes back only if the run changed it: its downgrade (or database
        // restore) began and was neither skipped nor put back already after failing.
        // Restoring a dump the run never diverged from would only discard the writes made
        // since it was taken.
        let changed_db = target.plan.steps.iter().enumerate().any(|(i, s)| {
            matches!(
                s,
                Step::Downgrade { .. }
                    | Step::RestoreDatabase { .. }
                    | Step::UpgradeDatabase { .. }
                    | Step::PutBackRows { .. }
            ) && target.step_changed(i)
        });
        let db_snapshot = target.snapshot_of("db_snapshot").filter(|_| changed_db);
        let db = match db_snapshot {
            Some(id) => {
                let m = self.run_manifest(&target.run_id, &id)?;
                let Some(rec) = m.database else {
                    return Err(Error::refused(format!("backup {id} holds no database dump"), None));
                };
                // The database must answer before anything is decided or changed: a server
                // that is down, or a lock another connection holds, refuses the undo like it
                // refuses a full run (waiting for the lock once, here).
                if let Some(db) = self.db()? {
                    refuse_db_unreachable(db.as_ref(), &target.run_id)?;
                }
                let current = match self.db()? {
                    Some(db) => crate::rt::block_on(db.current()).unwrap_or_default(),
                    None => Vec::new(),
                };
                let mode = if self.db()?.is_some() {
                    self.db_undo_mode(target, &manifest, &id, &rec, restore_snapshot)?
                } else {
                    planner::DbUndoMode::Restore { keep_current: restore_snapshot, unchanged_since: None }
                };
                Some(planner::DbRestore { snapshot: id, database: rec.database, current, mode })
            }
            None => None,
        };
        Ok(Some((manifest, db)))
    }
}
