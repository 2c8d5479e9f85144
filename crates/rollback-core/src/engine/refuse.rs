//! Refusals: the reasons a run must not start, checked before and again under the lock.

pub(super) mod checkout;
mod lfs;
mod nested_writes;
pub(super) mod room;

use super::show_revisions;
use super::{Ctx, Rollback, RunOptions, RunSummary};
use crate::assess::{Assessment, ChangedFile};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::hint::{Action, hint};
use crate::journal::{Record, RunState, RunStatus};
use crate::model::RiskCode;
use crate::plan::{Level, Plan, Step};

impl Rollback {
    /// The refusal of a target marked known bad in the registry: the one refusal whose way out
    /// is to take the commit out of the registry. No flag of `run` overrides it, so a dry run
    /// is refused with it too.
    pub(crate) fn known_bad_refusal(a: &Assessment) -> Option<Error> {
        a.target.registry_entry.as_ref().filter(|e| e.known_bad).map(|_| {
            Error::refused(
                format!("the target {} is marked bad in the known-good registry", a.target.commit.id.short()),
                Some(hint![
                    "pick another target, or ",
                    Action::Unmark { rev: a.target.commit.id.short().to_owned() },
                    " if the mark is wrong"
                ]),
            )
        })
    }

    /// What the reset writes: what the target changes, and local changes it reverts (paths
    /// the target has no file at are removed, not written).
    fn reset_writes(a: &Assessment) -> Vec<&crate::paths::RepoPath> {
        a.changes.iter().map(|c| &c.path).chain(&a.dirty.modified).chain(&a.dirty.staged).collect()
    }

    /// The risks behind the checkout refusals ([`checkout`]): blobs a partial clone lacks,
    /// names that differ only in case under the git2 back-end, LFS objects not on this machine,
    /// files or folders this run may not change; and the branch checked out in another
    /// worktree too (a warning). Part of every assessment a run
    /// is refused from: [`Rollback::refusals`] asks the back-end again only where these say so.
    pub(crate) fn checkout_risks(&self, a: &Assessment) -> Vec<crate::model::Risk> {
        let writes = Self::reset_writes(a);
        let mut out = checkout::risks(self.vcs.as_ref(), &a.target.commit.id, &a.head.commit, &writes);
        out.extend(lfs::risk(self.vcs.as_ref(), &a.target.commit.id, &writes));
        if let Some(branch) = &a.head.branch {
            out.extend(checkout::branch_elsewhere(self.vcs.as_ref(), branch, "the rollback"));
        }
        out.extend(self.locked_paths_refusal(a).into_iter().map(|e| {
            crate::model::Risk::new(
                crate::model::RiskCode::FilesNotChangeable,
                crate::model::RiskSeverity::High,
                format!("a run that moves the code refuses: {e}"),
            )
        }));
        out
    }

    /// The reasons a run of this assessment would be refused (empty: it may go ahead).
    /// `stop`: as for [`Rollback::environment_refusal`], whose check may wait.
    pub(crate) fn refusals(
        &self,
        a: &Assessment,
        opts: &RunOptions,
        level: Level,
        stop: &(dyn Fn() -> Option<String> + Sync),
    ) -> Result<Vec<Error>> {
        let mut out = Vec::new();
        if let Some(expected) = &opts.expect_head
            && &a.head.commit != expected
        {
            out.push(Error::refused(
                format!(
                    "HEAD is at {}, not at {}, the commit this rollback was asked to leave (it moved since that was decided)",
                    a.head.commit.short(),
                    expected.short()
                ),
                Some("check what HEAD is now before rolling back from it".into()),
            ));
        }
        if level != Level::Fast {
            out.extend(self.database_refusals(a, opts));
            if !opts.database_only {
                out.extend(Self::env_refusals(a));
            }
            if a.database.as_ref().is_some_and(|d| d.reachable && d.needs_downgrade) {
                out.extend(self.environment_refusal(stop)?);
            }
        }
        if a.head.branch.is_none() {
            out.push(Error::refused(
                "HEAD is detached: forge-rollback moves a branch and will not roll back a detached HEAD",
                Some("check out the branch you deploy from (`git switch main`) and run again".into()),
            ));
        }
        if a.has_risk(crate::model::RiskCode::OperationInProgress) {
            let msg = a
                .risks
                .iter()
                .find(|r| r.code == crate::model::RiskCode::OperationInProgress)
                .map(|r| r.message.clone())
                .unwrap_or_default();
            let hint = crate::assess::operation_in_progress(self.vcs.as_ref())
                .map_or(crate::assess::FINISH_OR_ABORT, |(_, hint)| hint);
            out.push(Error::refused(msg, Some(hint.into())));
        }
        out.extend(Self::known_bad_refusal(a));
        let changes: Vec<crate::vcs::Change> = a.changes.iter().map(ChangedFile::change).collect();
        out.extend(super::planner::refuse_nested_repos(self.workdir(), &changes, "target"));
        if !opts.database_only {
            let target = &a.target.commit.id;
            out.extend(nested_writes::refuse_writes_into_repos(self.workdir(), self.vcs.as_ref(), target, &changes));
        }
        if !opts.database_only {
            let touched = Self::reset_writes(a);
            out.extend(super::planner::refuse_filters(self.vcs.as_ref(), &a.target.commit.id, &touched));
            // The assessment looked already ([`Rollback::checkout_risks`]): asked again (the
            // fetch, the refusal's words) only where it found something.
            if a.has_risk(crate::model::RiskCode::BlobsNotFetched) {
                out.extend(checkout::refuse_missing_blobs(
                    self.vcs.as_ref(),
                    &a.target.commit.id,
                    &touched,
                    !opts.dry_run,
                ));
            }
            if a.has_risk(crate::model::RiskCode::LfsObjectsNotFetched) {
                out.extend(lfs::refusal(self.vcs.as_ref(), &a.target.commit.id, &touched, !opts.dry_run));
            }
            if a.has_risk(crate::model::RiskCode::CaseOnlyNames) {
                out.extend(checkout::refuse_case_twins(self.vcs.as_ref(), &[&a.head.commit, &a.target.commit.id]));
            }
            if !opts.dry_run {
                out.extend(checkout::refuse_hooked_move(
                    self.vcs.as_ref(),
                    a.head.branch.as_deref(),
                    &a.target.commit.id,
                ));
            }
            if a.has_risk(crate::model::RiskCode::FilesNotChangeable) {
                out.extend(self.locked_paths_refusal(a));
            }
            out.extend(room::refusal(self.vcs.as_ref(), self.workdir(), &a.target.commit.id, &changes));
            // An undo at once when verification fails writes HEAD's files back the same way.
            if self.config.verify.on_failure == crate::verify::config::OnFailure::Undo {
                let changed: Vec<&crate::paths::RepoPath> = changes.iter().map(|c| &c.path).collect();
                out.extend(super::planner::refuse_filters(self.vcs.as_ref(), &a.head.commit, &changed));
            }
        }
        let me = crate::restart::SelfIdentity::current();
        for step in &self.config.restart {
            if let Some(why) = crate::restart::targets_self(step, &me) {
                out.push(Error::refused(
                    format!(
                        "`[[restart]]` `{}` would stop the process running this rollback ({why}): the run would die half-way, or wait on its own graceful shutdown",
                        step.name
                    ),
                    Some(
                        "run the rollback from another process (the CLI, a sidecar, a job runner), or restart the service from one (`systemd-run`, a deploy hook)"
                            .into(),
                    ),
                ));
            }
        }
        out.extend(self.restart_refusals(a, opts));
        if opts.database_only {
            out.extend(self.database_only_refusal(a));
        }
        // A database-only run leaves the code where it is: HEAD at the target is no refusal.
        let at_head = a.target.commit.id == a.head.commit && !opts.database_only;
        let schema_moves = a.database.as_ref().is_some_and(|d| d.needs_downgrade);
        let env_moves = a.env.as_ref().is_some_and(|e| e.target_record.is_some() && !e.diffs.is_empty());
        if at_head && a.dirty.is_clean() {
            out.push(Error::refused(
                format!(
                    "nothing to roll back: HEAD is already at {} and the tree is clean",
                    a.target.commit.id.short()
                ),
                Some(
                    "to roll back further, name an older release: `--target REV` (`forge-rollback known-good list` shows the verified ones)"
                        .into(),
                ),
            ));
        } else if at_head && level != Level::Fast && !schema_moves && !env_moves {
            // A full rollback to HEAD would snapshot, "reset" to the same commit and restart
            // the services: nothing a full rollback is for.
            out.push(Error::refused(
                format!(
                    "nothing to roll back: HEAD is already at {}, the database is at its revision and the env is as recorded",
                    a.target.commit.id.short()
                ),
                Some(hint!["to discard the uncommitted changes only (they are snapshotted first), use ", Action::Fast]),
            ));
        } else if !a.target_is_ancestor && !opts.allow_non_ancestor && crate::assess::is_shallow(self.vcs.as_ref()) {
            // The walk stopped at the clone's depth: the operator needs the history, not to
            // turn the check off.
            out.push(Error::refused(
                format!(
                    "the target {} is not found in the history of HEAD {}: this is a shallow clone (`.git/shallow`), whose history stops before it, so whether it is an ancestor cannot be told",
                    a.target.commit.id.short(),
                    a.head.commit.short()
                ),
                Some(
                    "fetch the missing history (`git fetch --unshallow`, or `git fetch --deepen=N` with enough commits), then run again"
                        .into(),
                ),
            ));
        } else if !a.target_is_ancestor && !opts.allow_non_ancestor {
            out.push(Error::refused(
                format!(
                    "the target {} is not an ancestor of HEAD {}",
                    a.target.commit.id.short(),
                    a.head.commit.short()
                ),
                Some(hint![
                    "pass ",
                    Action::AllowNonAncestor,
                    " if you really mean to move to a commit HEAD never had"
                ]),
            ));
        }
        Ok(out)
    }

    /// `[[restart]]` steps that could not run once the code has moved: an `env_from` variable
    /// not set in this environment (a usage error, as any variable the configuration names),
    /// a `cwd` that neither is in the work tree now nor comes with the target. Found after the
    /// reset, either would leave the run half-way for want of a setting.
    fn restart_refusals(&self, a: &Assessment, opts: &RunOptions) -> Vec<Error> {
        let mut out = Vec::new();
        for step in &self.config.restart {
            if let Some(var) = crate::restart::unset_env(step) {
                out.push(Error::usage(
                    format!("`[[restart]]` `{}`: {}", step.name, crate::restart::unset_env_message(var)),
                    Some(
                        format!("set `{var}` in the environment forge-rollback runs in, or take it out of `env_from`")
                            .into(),
                    ),
                ));
            }
            let Some(cwd) = &step.cwd else { continue };
            if self.workdir().join(cwd).is_dir() {
                continue;
            }
            let parts: Vec<&str> = cwd
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(p) => p.to_str(),
                    _ => None,
                })
                .collect();
            let Ok(dir) = crate::paths::RepoPath::new(parts.join("/")) else { continue };
            // The reset writes the folder if the target adds or keeps a file in it.
            let comes = !opts.database_only
                && a.changes
                    .iter()
                    .map(ChangedFile::change)
                    .any(|c| c.path.starts_with(&dir) && c.path != dir && c.kind != crate::vcs::ChangeKind::Deleted);
            if !comes {
                out.push(Error::usage(
                    format!(
                        "`[[restart]]` `{}`: its `cwd` `{}` is not a folder in the work tree, and the target {} does not bring one",
                        step.name,
                        cwd.display(),
                        a.target.commit.id.short()
                    ),
                    Some("fix `cwd` in the configuration (it is relative to the top of the work tree)".into()),
                ));
            }
        }
        out
    }

    /// Runs that leave the repository between two states: interrupted, failed, or aborted
    /// by the operator after a step past the snapshots began (a manual run stopped with the
    /// schema downgraded and the code not yet reset, say). Until they are resumed or undone,
    /// new runs are refused and `backups prune` keeps their snapshots.
    pub(crate) fn unfinished_runs(&self) -> Result<Vec<RunSummary>> {
        Ok(self.unfinished_among(&self.runs()?).into_iter().cloned().collect())
    }

    /// [`Rollback::unfinished_runs`] among `runs`, already read ([`Rollback::runs`]).
    fn unfinished_among<'a>(&self, runs: &'a [RunSummary]) -> Vec<&'a RunSummary> {
        runs.iter()
            .filter(|r| match r.status {
                RunStatus::Running => true,
                // A run that failed (or was cancelled) having changed nothing is no state to
                // finish or put back: it blocks no new run.
                RunStatus::Failed => self.load_run(&r.run_id).map_or(true, |s| Self::changed_something(&s)),
                RunStatus::Cancelled => self.load_run(&r.run_id).is_ok_and(|s| Self::changed_something(&s)),
                _ => false,
            })
            .collect()
    }

    /// Whether a step that changes the tree, the database or the services began, other than
    /// the failed step when its failure says it changed nothing (a downgrade whose database
    /// was put back, an exact restore that found rows written since, a restore that never got
    /// the database's lock). Snapshots and the record change nothing.
    pub(crate) fn changed_something(s: &RunState) -> bool {
        s.records.iter().any(|r| match r {
            Record::StepBegin { index, .. } => {
                let changes_nothing = matches!(
                    s.plan.steps.get(*index),
                    Some(Step::Snapshot { .. } | Step::DbSnapshot { .. } | Step::Record)
                );
                let failed_changing_nothing =
                    s.failure.as_ref().is_some_and(|(f, _)| f == index) && !s.step_changed(*index);
                !changes_nothing && !failed_changing_nothing
            }
            _ => false,
        })
    }

    /// Whether a failed run is an undo of `run_id` that left everything as it was
    /// ([`Self::changed_something`]). Undoing `run_id` again takes its place.
    pub(crate) fn failed_undo_that_changed_nothing(s: &RunState, run_id: &str) -> bool {
        s.status == RunStatus::Failed && s.plan.undo_of.as_deref() == Some(run_id) && !Self::changed_something(s)
    }

    /// Refuses while a live process holds the run lock, naming it. Asked before the
    /// unfinished-run refusal outside the lock: a run that is still running is unfinished too,
    /// and "resume or undo it" would be dangerous advice about a live run.
    /// The refusals when a file the rollback of `a` changes (what the reset rewrites or
    /// removes, the untracked files `remove_untracked` removes), or the folder it changes it
    /// in, is immutable or append-only in this work tree, and when this user may not write
    /// such a folder. `a` may be a copy's assessment (a rehearsal): its paths are relative,
    /// and the real tree is what is looked at.
    pub(crate) fn locked_paths_refusal(&self, a: &Assessment) -> Vec<Error> {
        let kept = super::planner::kept_untracked(self.workdir(), &self.config);
        let removed = a.dirty.untracked.iter().filter(|p| !kept.contains(p));
        let touched: Vec<&crate::paths::RepoPath> =
            a.changes.iter().map(|c| &c.path).chain(&a.dirty.modified).chain(&a.dirty.staged).chain(removed).collect();
        let locked = crate::immutable::locked(self.workdir(), touched.iter().copied());
        let unwritable = crate::unwritable::unwritable(self.workdir(), touched.iter().copied());
        crate::immutable::refusal("the rollback", &locked)
            .into_iter()
            .chain(crate::unwritable::refusal("the rollback", &unwritable))
            .collect()
    }

    pub(crate) fn refuse_locked(&self) -> Result<()> {
        crate::lock::refuse_held(&self.state.lock_path())?;
        Ok(crate::lock::refuse_held(&self.repo_lock_path())?)
    }

    /// Checks that the target `rev` names (or, without one, the registry's) resolves from
    /// HEAD, without assessing anything: bad input found before anything is written.
    pub(crate) fn check_target(&self, rev: Option<&str>) -> Result<()> {
        let head = self.vcs.head()?;
        let registry = self.registry()?;
        crate::assess::resolve_target(self.vcs.as_ref(), &registry, &self.registry_path(), &head.commit, rev)?;
        Ok(())
    }

    /// [`Rollback::refuse_unfinished`] as a risk, for `assess` and `plan`: after a crash they
    /// showed a plan that looked fine while `run` would refuse.
    pub(crate) fn unfinished_risk(&self) -> Option<crate::model::Risk> {
        let e = self.refuse_unfinished().err()?;
        let hint = e.hint().map(|h| format!(": {h}")).unwrap_or_default();
        Some(crate::model::Risk::new(
            RiskCode::UnfinishedRun,
            crate::model::RiskSeverity::High,
            format!("{e}; a new run is refused until it is finished or put back{hint}"),
        ))
    }

    pub(crate) fn refuse_unfinished(&self) -> Result<()> {
        self.refuse_unfinished_among(&self.runs()?)
    }

    /// [`Rollback::refuse_unfinished`] among `runs`, already read ([`Rollback::runs`]).
    pub(super) fn refuse_unfinished_among(&self, runs: &[RunSummary]) -> Result<()> {
        if let Some(r) = self.unfinished_among(runs).first() {
            let what = match r.status {
                RunStatus::Cancelled => "was aborted",
                _ if r.interrupted || r.status == RunStatus::Running => "was interrupted",
                _ => "failed",
            };
            if r.other_worktree {
                // Its own work tree is the one between two states; this one waits for it
                // (the state folder, and its lock, are shared).
                return Err(Error::refused(
                    format!(
                        "run {} {what} half-way in another work tree, `{}`, that shares this state folder",
                        r.run_id,
                        r.workdir.display()
                    ),
                    Some(hint![
                        "finish it with ",
                        Action::resume(&r.run_id),
                        " or put it back with ",
                        Action::undo(&r.run_id),
                        " in that work tree"
                    ]),
                ));
            }
            return Err(Error::refused(
                format!("run {} {what} half-way; the repository may be between two states", r.run_id),
                Some(hint![
                    "finish it with ",
                    Action::resume(&r.run_id),
                    " or put everything back with ",
                    Action::undo(&r.run_id)
                ]),
            ));
        }
        Ok(())
    }

    pub(crate) fn refuse_undone(run_id: &str, target: &RunState) -> Result<()> {
        if target.status == RunStatus::Undone {
            if target.undone_by.as_deref() == Some(crate::journal::NOTHING_CHANGED) {
                return Err(Error::refused(
                    format!("run {run_id} is already undone: it stopped before changing anything"),
                    None,
                ));
            }
            return Err(Error::refused(
                format!("run {run_id} was already undone by {}", target.undone_by.as_deref().unwrap_or("?")),
                Some(hint![
                    "to get its result back, undo that run: ",
                    Action::undo(target.undone_by.as_deref().unwrap_or("?"))
                ]),
            ));
        }
        Ok(())
    }

    pub(crate) fn summary(a: &Assessment, plan: &Plan, level: Level) -> String {
        let discards = plan.steps.iter().find_map(|s| match s {
            Step::Reset { discards, .. } => Some(discards.len()),
            _ => None,
        });
        let removes = plan.steps.iter().find_map(|s| match s {
            Step::RemoveUntracked { paths, .. } => Some(paths.len()),
            _ => None,
        });
        let mut s = format!(
            "Rollback level: {level}\nRepository: {}\nFrom: {} ({}) {}\nTo:   {} {}\nCommits rolled back: {}\nTracked files that change: {}\nLocal changes discarded (snapshotted first): {}\nUntracked files removed (snapshotted first): {}\n",
            a.workdir.display(),
            a.head.commit.short(),
            a.head.branch.as_deref().unwrap_or("detached"),
            a.head_summary,
            a.target.commit.id.short(),
            a.target.commit.summary,
            a.commits_rolled_back_total,
            a.changes.len(),
            discards.unwrap_or(0),
            removes.unwrap_or(0),
        );
        // What else changes, beyond the work tree: the schema, the env, production.
        for step in &plan.steps {
            let line = match step {
                Step::Downgrade { database, from, to, path, .. } => {
                    let irreversible = path.iter().filter(|p| p.irreversible.is_some()).count();
                    format!(
                        "Database {database}: downgraded {} -> {} ({} migration(s) undone{}; snapshotted first)",
                        show_revisions(from),
                        show_revisions(to),
                        path.len(),
                        if irreversible > 0 { format!(", {irreversible} IRREVERSIBLE") } else { String::new() }
                    ) + &match plan.risks.iter().find(|r| r.code == crate::model::RiskCode::DataLossUnknown) {
                        Some(r) => format!("\nData loss: unknown, {}", r.message),
                        None if plan.data_loss.iter().any(|l| l.rows > 0) => format!(
                            "\nThe downgrade destroys: {} (kept in the database snapshot; `undo` puts them back)",
                            crate::db::rows::describe(&plan.data_loss)
                        ),
                        None => "\nThe downgrade destroys no rows".to_owned(),
                    } + &plan
                        .risks
                        .iter()
                        .filter(|r| r.code == crate::model::RiskCode::DowngradeWarning)
                        .map(|r| format!("\nWarning: {}", r.message))
                        .collect::<Vec<_>>()
                        .concat()
                }
                Step::RestoreEnv { record: Some(_), diffs, .. } if !diffs.is_empty() => format!(
                    "Env files replaced with those recorded for the target (snapshotted first): {}",
                    diffs.iter().map(|d| d.file.to_string()).collect::<Vec<_>>().join(", ")
                ),
                // The registry or config with local edits or a change in the target: the
                // operator sees they are not lost with the reset.
                Step::Reset { kept, .. } if !kept.is_empty() => format!(
                    "Kept as they are (not reset): {}",
                    kept.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
                Step::Restart { steps, .. } => format!("Services restarted: {}", steps.join(", ")),
                Step::Deploy { .. } => format!("Production: {}", step.details().join("; ")),
                Step::Promote { production, from, to, .. } => format!("Production {production}: {from} -> {to}"),
                Step::Verify { checks } => format!("Then verified: {} check(s)", checks.len()),
                _ => continue,
            };
            s.push_str(&line);
            s.push('\n');
        }
        // The plan's other risks (a worktree sharing the branch, dependencies removed with the
        // untracked files, ...): what the operator weighs before typing `yes`.
        for r in plan.risks.iter().filter(|r| !matches!(r.code, RiskCode::DowngradeWarning | RiskCode::DataLossUnknown))
        {
            s.push_str("Warning: ");
            s.push_str(&r.message);
            s.push('\n');
        }
        s
    }

    /// A full or manual rollback with no `[database]` configured leaves the schema alone: said
    /// out loud (a warning, so it reaches the result and the report), never silently.
    pub(crate) fn no_database_warning(&self, level: Level) -> Option<String> {
        (level != Level::Fast && self.config.database.is_none()).then(|| {
            format!(
                "no `[database]` is configured: this {level} rollback puts back the code and the env files only; the database schema, if there is one, stays where it is"
            )
        })
    }

    /// Warns when the code will run on a schema it does not expect.
    pub(crate) fn warn_schema(ctx: &mut Ctx<'_>, a: &Assessment, level: Level) {
        if level != Level::Fast {
            return;
        }
        match &a.database {
            Some(db) if db.needs_downgrade => ctx.log_hint(
                LogLevel::Warn,
                format!(
                    "the database {} is at {}, the target expects {}: the rolled-back code will run on a newer schema",
                    db.database,
                    show_revisions(&db.current),
                    show_revisions(&db.target_heads),
                ),
                Some(hint![Action::Full, " downgrades it"]),
            ),
            Some(_) => {}
            None if a.has_risk(crate::model::RiskCode::MigrationsChanged) => ctx.log(LogLevel::Warn, "migration files changed between HEAD and the target: the rolled-back code will run on the newer schema"),
            None => {}
        }
    }
}
