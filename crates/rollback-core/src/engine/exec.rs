//! Executing a plan: each step journaled (`step_begin`, work, `step_end`), then the run
//! recorded: its status, incident report and `run.json`, then its webhooks (journaled, and
//! the report written again with their warnings).

use std::collections::BTreeSet;

use super::support::chain;
use super::{Ctx, Rollback, RunOutcome, StepReport};
use crate::backup::Manifest;
use crate::error::{Error, Result};
use crate::event::{Event, LogLevel, ProgressUnit};
use crate::failpoint;
use crate::fsutil;
use crate::hint::{Action, hint};
use crate::journal::{Journal, Record, RunState, RunStatus};
use crate::plan::{Plan, RunKind};
use crate::prompt::Prompter;
use crate::time::Timestamp;

/// Steps reported as busy ([`ProgressUnit::Busy`]) while they run.
const BUSY_STEPS: &[&str] = &["db_snapshot", "downgrade", "restore_database", "restart"];

/// What the steps of one execution share.
pub(crate) struct Exec<'a> {
    pub(crate) run_id: String,
    pub(crate) plan: &'a Plan,
    pub(crate) journal: Journal,
    /// The run's own snapshot, once taken.
    pub(crate) manifest: Option<Manifest>,
    /// The stat of each file that snapshot read, as it read it (this process only; a resume
    /// has none and hashes again): lets a later step see that a file it is about to delete is
    /// still the one the snapshot holds without reading it
    /// ([`crate::backup::snapshot::still_as_recorded`]).
    pub(crate) captured: Option<crate::backup::statcache::StatCache>,
    /// The plan was made under the lock just now: the snapshot can use its capture list
    /// instead of scanning the tree again (a resume scans again).
    pub(crate) fresh_plan: bool,
    /// Manual runs: who approves each step.
    pub(crate) manual: Option<&'a dyn Prompter>,
    /// The verification round, once run.
    pub(crate) verification: Option<crate::verify::VerificationReport>,
    /// The operator aborted (manual runs) or the caller cancelled; `true`: undo what ran.
    pub(crate) aborted: Option<bool>,
    /// Why the run was cancelled, when the caller cancelled it (journaled as its error).
    pub(crate) abort_reason: Option<String>,
    /// Set by a step that fails but knows what it left behind; journaled with the failure.
    pub(crate) failure_detail: Option<crate::detail::FailureDetail>,
    /// Steps the operator skipped earlier (a resumed manual run): never run.
    pub(crate) skipped: BTreeSet<usize>,
    /// The `started` webhooks, sent while the first steps run.
    pub(crate) started_notice: Option<crate::notify::Sending>,
}

impl Rollback {
    /// Journals that step `index` failed with `e` (and what it left behind, if it said);
    /// returns the error's whole chain, as journaled.
    fn journal_failure(ex: &mut Exec<'_>, index: usize, name: &str, e: &Error) -> Result<String> {
        let text = chain(e);
        ex.journal.append(&Record::StepFailed {
            at: Timestamp::now(),
            index,
            step: name.into(),
            error: text.clone(),
            detail: ex.failure_detail.take(),
        })?;
        Ok(text)
    }

    /// What a journal error out of [`Rollback::execute`] becomes: the run has begun, and stops
    /// between two of its records (a full disk, an I/O error), so the error names it and says
    /// to `resume` or `undo` it ([`Error::RunStopped`]), never "try again": a new run is refused
    /// while this one is unfinished. Tries once to journal it as failed, as a failed step is
    /// (its step, if one was under way, then `finished`), through a fresh open that first
    /// cuts a torn last line the failed append may have left; still `interrupted` when that
    /// fails too. Other errors are returned as they are.
    pub(crate) fn stopped_by_journal(ex: &Exec<'_>, e: Error) -> Error {
        if !matches!(e, Error::Journal(crate::journal::Error::Io(_))) {
            return e;
        }
        let text = chain(&e);
        let record_failure = || -> Result<()> {
            let path = ex.journal.path();
            let mut journal = Journal::open(path)?;
            let state = RunState::load(path)?;
            // Its end is journaled already (a later record failed), or every step is done and
            // only `finished` is missing: `resume` writes that, without running a step again.
            if state.status != RunStatus::Running || (state.interrupted_at.is_none() && state.next_step().is_none()) {
                return Ok(());
            }
            if let Some(index) = state.interrupted_at {
                let step = ex.plan.steps.get(index).map_or("?", crate::plan::Step::name).into();
                let at = Timestamp::now();
                journal.append(&Record::StepFailed { at, index, step, error: text.clone(), detail: None })?;
            }
            let at = Timestamp::now();
            journal.append(&Record::Finished {
                at,
                status: RunStatus::Failed,
                error: Some(text),
                warnings: Vec::new(),
            })?;
            Ok(())
        };
        let _ = record_failure();
        Error::RunStopped { run_id: ex.run_id.clone(), source: Box::new(e) }
    }

    /// Runs the steps from `start`; journals the end of the run; builds the outcome.
    pub(crate) fn execute(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, start: usize) -> Result<RunOutcome> {
        // Under the lock: the partial copy of a large file a run that died (a hangup, `kill -9`)
        // left in the store is no one's now; left there, it would hold its space until a prune.
        let freed = crate::backup::store::remove_dead_temp_blobs(&self.state.backups_dir());
        if freed > 0 {
            ctx.log(LogLevel::Info, format!("removed {freed} byte(s) of partial backup files a run that died left"));
        }
        let total = ex.plan.steps.len();
        let mut failure: Option<(usize, Error)> = None;
        for index in start..total {
            let step = &ex.plan.steps[index];
            let name = step.name();
            if ex.skipped.contains(&index) {
                continue;
            }
            if let Some(why) = ctx.observer.cancelled() {
                ctx.log(LogLevel::Warn, format!("run {} cancelled before step `{name}`: {why}", ex.run_id));
                ex.aborted = Some(false);
                ex.abort_reason = Some(why);
                break;
            }
            if ex.manual.is_some() {
                match self.approve(ctx, ex, index)? {
                    crate::prompt::StepDecision::Run => {}
                    crate::prompt::StepDecision::Skip => continue,
                    crate::prompt::StepDecision::Abort { undo } => {
                        ex.aborted = Some(undo);
                        break;
                    }
                }
            }
            if ctx.observer.should_abort() {
                let e = Error::Callback(format!("stopped before step `{name}` because an event callback failed"));
                let text = Self::journal_failure(ex, index, name, &e)?;
                ctx.log(LogLevel::Error, text);
                failure = Some((index, e));
                break;
            }
            ex.journal.append(&Record::StepBegin { at: Timestamp::now(), index, step: name.into() })?;
            ctx.observer.event(&Event::StepStarted {
                run_id: ex.run_id.clone(),
                index: index + 1,
                total,
                step: name.into(),
            });
            // Long work that cannot be counted ahead (a dump or restore, a migration tool, a
            // restart and its readiness wait): busy until its `StepFinished`.
            if BUSY_STEPS.contains(&name) {
                ctx.progress(&ex.run_id, name, ProgressUnit::Busy, 0, None);
            }
            let t0 = std::time::Instant::now();
            let result = failpoint::hit(&format!("before:{name}"))
                .and_then(|()| self.run_step(ctx, ex, step))
                .and_then(|d| failpoint::hit(&format!("after:{name}")).map(|()| d));
            let millis = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok(detail) => {
                    ex.journal.append(&Record::StepEnd { at: Timestamp::now(), index, step: name.into(), detail })?;
                    ctx.observer.event(&Event::StepFinished {
                        run_id: ex.run_id.clone(),
                        index: index + 1,
                        step: name.into(),
                        millis,
                        ok: true,
                    });
                    failpoint::hit(&format!("end:{name}"))?;
                }
                Err(e) => {
                    let text = Self::journal_failure(ex, index, name, &e)?;
                    ctx.observer.event(&Event::StepFinished {
                        run_id: ex.run_id.clone(),
                        index: index + 1,
                        step: name.into(),
                        millis,
                        ok: false,
                    });
                    ctx.log(LogLevel::Error, format!("step `{name}` failed: {text}"));
                    if let Some(hint) = e.hint() {
                        // A warning, so it also reaches the outcome and the report; a line
                        // that is only advice, rendered in each front-end's words.
                        ctx.log_hint(LogLevel::Warn, "", Some(hint));
                    }
                    failure = Some((index, e));
                    break;
                }
            }
        }
        let finished = Timestamp::now();
        let cancelled_by_caller = ex.abort_reason.take();
        let verification_failed = ex.verification.as_ref().is_some_and(|v| !v.passed);
        let (status, error) = match (&failure, ex.aborted) {
            (Some((_, e)), _) => (RunStatus::Failed, Some(chain(e))),
            (None, Some(_)) => (
                RunStatus::Cancelled,
                Some(cancelled_by_caller.clone().unwrap_or_else(|| "the operator aborted the run".to_owned())),
            ),
            (None, None) if verification_failed => (RunStatus::VerificationFailed, None),
            (None, None) => (RunStatus::Succeeded, None),
        };
        let warnings = ctx.warnings.clone();
        ex.journal.append(&Record::Finished { at: finished, status, error: error.clone(), warnings })?;
        // A cancel asked for until now was for the steps; from now on one only stops the wait
        // for the webhooks, and the front-end says so.
        let cancelled_before = ctx.observer.cancelled().is_some();
        ctx.observer.finishing(true);
        // The undo of an undo rolls back again: say what it puts back.
        let back = match ex.plan.kind {
            RunKind::Undo => " puts back what this undo changed",
            RunKind::Rollback => " puts everything back",
        };
        let undo_hint = || Some(hint![Action::undo(&ex.run_id), back]);
        // A manual run whose operator skipped the reset left the code where it was.
        let reset_skipped = ex
            .plan
            .steps
            .iter()
            .enumerate()
            .any(|(i, s)| matches!(s, crate::plan::Step::Reset { .. }) && ex.skipped.contains(&i));
        match (status, ex.plan.kind) {
            (RunStatus::Succeeded, RunKind::Rollback) if reset_skipped => ctx.log(
                LogLevel::Warn,
                format!(
                    "Manual rollback finished with step `reset` skipped: the code in {} is still at {}, not {}",
                    self.workdir().display(),
                    ex.plan.from.commit.short(),
                    ex.plan.to.short()
                ),
            ),
            (RunStatus::Succeeded, RunKind::Rollback) => ctx.log(
                LogLevel::Success,
                format!("Rollback complete: {} is at {}", self.workdir().display(), ex.plan.to.short()),
            ),
            (RunStatus::Succeeded, RunKind::Undo) => ctx.log(
                LogLevel::Success,
                format!("Undo complete: the state before run {} is back", ex.plan.undo_of.as_deref().unwrap_or("?")),
            ),
            (RunStatus::VerificationFailed, _) => ctx.log_hint(
                LogLevel::Error,
                format!(
                    "Run {} finished its steps but VERIFICATION FAILED: the services do not answer as expected",
                    ex.run_id
                ),
                undo_hint(),
            ),
            (RunStatus::Cancelled, _) if cancelled_by_caller.is_some() => {
                ctx.log_hint(LogLevel::Warn, format!("Run {} cancelled", ex.run_id), undo_hint());
            }
            (RunStatus::Cancelled, _) => {
                ctx.log_hint(LogLevel::Warn, format!("Run {} aborted by the operator", ex.run_id), undo_hint());
            }
            // Failed having changed nothing (a snapshot that could not be taken, a downgrade
            // put back, an undo's restore refused): nothing to finish or put back.
            _ if RunState::load(ex.journal.path()).is_ok_and(|s| !Self::changed_something(&s)) => {
                let again = match (ex.plan.kind, ex.plan.undo_of.as_deref()) {
                    (RunKind::Undo, Some(of)) => hint![
                        Action::undo(of),
                        " again takes this undo's place, ",
                        Action::resume(&ex.run_id),
                        " tries this one again"
                    ],
                    _ => hint![Action::resume(&ex.run_id), " tries again; a new run is not blocked by this one"],
                };
                ctx.log_hint(LogLevel::Error, format!("Run {} FAILED, having changed nothing", ex.run_id), Some(again));
            }
            _ => {
                ctx.log_hint(
                    LogLevel::Error,
                    format!("Run {} FAILED", ex.run_id),
                    Some(hint![Action::resume(&ex.run_id), " finishes it, ", Action::undo(&ex.run_id), back]),
                );
            }
        }
        let recorded = self.record_and_notify(ctx, ex, status, error.as_deref(), cancelled_before);
        ctx.observer.finishing(false);
        let (mut outcome, written) = recorded?;
        // The journal's (this attempt's up to its `finished` record), and the notifications' since.
        outcome.warnings = std::mem::take(&mut ctx.warnings);
        if let Err(e) = written {
            let warning = format!(
                "the run's report could not be written ({}); `forge-rollback report {}` rebuilds it from the journal",
                e.chain(),
                ex.run_id
            );
            ctx.log(LogLevel::Warn, warning.clone());
            // This run's, not the automatic undo's below (which shares `ctx`).
            ctx.warnings.retain(|w| *w != warning);
            outcome.warnings.push(warning);
        }
        let undo_now = match status {
            RunStatus::VerificationFailed => {
                ex.plan.kind == RunKind::Rollback
                    && self.config.verify.on_failure == crate::verify::config::OnFailure::Undo
            }
            RunStatus::Cancelled => ex.aborted == Some(true),
            _ => false,
        };
        if undo_now {
            outcome = self.undo_after(ctx, &ex.run_id, outcome);
        }
        Ok(outcome)
    }

    /// Writes the report and `run.json` of a run just recorded (`finished`), then sends its
    /// webhooks, journals what they did, and writes the report again with their warnings.
    /// Returns the outcome and whether its files could be written.
    ///
    /// The files come first: a webhook that hangs for its whole timeout, or a second Ctrl-C
    /// during that wait, must not leave a recorded run without them.
    fn record_and_notify(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        status: RunStatus,
        error: Option<&str>,
        cancelled_before: bool,
    ) -> Result<(RunOutcome, Result<()>)> {
        let recorded = self.write_outcome(ctx, ex, status)?;
        let kind = match status {
            RunStatus::Succeeded => crate::notify::NotifyEventKind::Succeeded,
            RunStatus::VerificationFailed => crate::notify::NotifyEventKind::VerificationFailed,
            RunStatus::Cancelled => crate::notify::NotifyEventKind::Cancelled,
            _ => crate::notify::NotifyEventKind::Failed,
        };
        let results = self.notify_end(ctx, ex, kind, error, cancelled_before);
        if results.is_empty() {
            return Ok(recorded);
        }
        // Journaled, as the `finished` record's warnings are, for `report RUN` and `runs show`.
        if let Err(e) = ex.journal.append(&Record::Notified { at: Timestamp::now(), results }) {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "what the webhooks did could not be journaled ({e}): `forge-rollback report {}` will not list their warnings",
                    ex.run_id
                ),
            );
        }
        self.write_outcome(ctx, ex, status)
    }

    /// The outcome of a recorded run, with the warnings logged so far, written to its report
    /// and (when it succeeded) its `run.json`; with whether they could be written.
    fn write_outcome(&self, ctx: &Ctx<'_>, ex: &Exec<'_>, status: RunStatus) -> Result<(RunOutcome, Result<()>)> {
        let state = RunState::load(ex.journal.path())?;
        let mut outcome = self.outcome_of(&state);
        outcome.warnings.clone_from(&ctx.warnings);
        // The report and `run.json` are read from the journal (`report RUN` rebuilds the
        // report): one that cannot be written (a full disk) is a warning, never the run's
        // outcome, and the automatic undo still runs.
        let written = self.write_report(&state, &outcome).and_then(|()| {
            if status != RunStatus::Succeeded {
                return Ok(());
            }
            let json = serde_json::to_vec_pretty(&outcome).unwrap_or_default();
            Ok(fsutil::atomic_write(&self.state.run_dir(&ex.run_id).join("run.json"), &json)?)
        });
        Ok((outcome, written))
    }

    /// Undoes a run that just finished, under the lock it already holds (`on_failure =
    /// "undo"`, or a manual abort with undo). The outcome returned is the original run's, with
    /// `undone_by` set; a failed undo is a warning on it (the operator can run `undo` again).
    pub(crate) fn undo_after(&self, ctx: &mut Ctx<'_>, run_id: &str, mut outcome: RunOutcome) -> RunOutcome {
        ctx.log(LogLevel::Warn, format!("Undoing run {run_id} now"));
        match self.undo_locked(ctx, run_id) {
            Ok(undo) => {
                outcome.undone_by.clone_from(&undo.run_id);
                if undo.status != RunStatus::Succeeded {
                    outcome.warnings.push(format!(
                        "the automatic undo {} ended {}: {}",
                        undo.run_id.as_deref().unwrap_or("-"),
                        undo.status,
                        undo.error.as_deref().unwrap_or("see its log")
                    ));
                }
            }
            Err(e) => {
                let text = chain(&e);
                ctx.log(LogLevel::Error, format!("the automatic undo of {run_id} failed: {text}"));
                let again = hint!["run ", Action::undo(run_id)];
                outcome.warnings.push(format!("the automatic undo failed: {text}; {again}"));
            }
        }
        outcome
    }

    /// Writes `report.md` and `report.json` into the run's folder.
    pub(crate) fn write_report(&self, state: &RunState, outcome: &RunOutcome) -> Result<()> {
        crate::failpoint::hit("write:report")?;
        let report = crate::report::build(state, outcome, self.vcs.as_ref());
        let dir = self.state.run_dir(&state.run_id);
        fsutil::atomic_write(&dir.join("report.md"), report.to_markdown().as_bytes())?;
        fsutil::atomic_write(&dir.join("report.json"), report.to_json().as_bytes())?;
        Ok(())
    }

    pub(crate) fn outcome_of(&self, state: &RunState) -> RunOutcome {
        let plan = &state.plan;
        let steps = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepReport {
                step: s.name().into(),
                status: state.step_status(i).into(),
                detail: state.done[i].clone(),
            })
            .collect();
        let backup_id = state.tree_snapshot.clone();
        let finished_at = state.finished_at;
        RunOutcome {
            run_id: Some(state.run_id.clone()),
            kind: plan.kind,
            status: state.status,
            level: plan.level,
            from: plan.from.commit.clone(),
            branch: plan.from.branch.clone(),
            to: plan.to.clone(),
            backup_id,
            undo_of: plan.undo_of.clone(),
            started_at: state.started_at,
            finished_at,
            duration_ms: finished_at.map_or(0, |f| f.millis_since(state.started_at)),
            steps,
            warnings: state.warnings.clone(),
            error: state.failure.as_ref().map(|(_, e)| e.clone()).or_else(|| {
                state.records.iter().rev().find_map(|r| match r {
                    Record::Finished { error: Some(e), status: RunStatus::Cancelled, .. } => Some(e.clone()),
                    _ => None,
                })
            }),
            plan: None,
            verification: state.verification().cloned(),
            undone_by: state.undone_by.clone(),
            interrupted: false,
        }
    }
}
