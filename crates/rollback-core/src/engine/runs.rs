//! Reading runs back: the list, one run's details, its incident report.

use super::support::valid_run_id;
use super::{Rollback, RunOutcome, RunSummary};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::journal::{self, Record, RunState, RunStatus};
use crate::lock;

impl Rollback {
    // ----- undo and resume ------------------------------------------------------------

    pub(crate) fn load_run(&self, run_id: &str) -> Result<RunState> {
        if !valid_run_id(run_id) {
            return Err(journal::Error::UnknownRun { run_id: run_id.into() }.into());
        }
        let path = self.state.run_dir(run_id).join("journal.jsonl");
        if !path.exists() {
            return Err(journal::Error::UnknownRun { run_id: run_id.into() }.into());
        }
        Ok(RunState::load(&path)?)
    }

    /// The incident report of a run, built from its journal as it is now (an undo done since
    /// shows in it).
    pub fn report(&self, run_id: &str) -> Result<crate::report::IncidentReport> {
        let state = self.load_run(run_id)?;
        let mut outcome = self.outcome_of(&state);
        self.read_liveness(&state, &mut outcome)?;
        let mut report = crate::report::build(&state, &outcome, self.vcs.as_ref());
        // Rebuilt later than the run: `backups prune` may have removed what it offered. Read
        // only: a report changes nothing, not even on a read-only state folder.
        let store = self.existing_store()?;
        let gone: Vec<String> = ["snapshot", "db_snapshot"]
            .into_iter()
            .filter_map(|step| state.snapshot_of(step))
            .filter(|id| {
                store
                    .as_ref()
                    .is_none_or(|s| matches!(s.manifest(id), Err(crate::backup::Error::UnknownSnapshot { .. })))
            })
            .map(|id| id.to_string())
            .collect();
        report.backups_gone(&gone);
        // What the undo's put-back could not write back, from its own journal.
        if let Some(undo) = state.undone_by.as_deref().filter(|u| valid_run_id(u))
            && let Ok(u) = self.load_run(undo)
            && let Some(crate::detail::StepDetail::PutBackRows { values_left, .. }) = u.detail_of("put_back_rows")
        {
            let db = state.snapshot_of("db_snapshot").map_or_else(|| "?".to_owned(), |s| s.to_string());
            report.not_put_back(undo, &db, values_left);
        }
        Ok(report)
    }

    // ----- runs -----------------------------------------------------------------------

    /// Before a new run, under the lock: every run's journal read once ([`Rollback::runs`]),
    /// refused on a damaged one that may be unfinished, then on an unfinished run. Returns the
    /// runs read, for the new run's [`Rollback::next_seq`].
    pub(crate) fn refuse_unsettled(&self) -> Result<Vec<RunSummary>> {
        let runs = self.runs()?;
        self.refuse_damaged(&runs)?;
        self.refuse_unfinished_among(&runs)?;
        Ok(runs)
    }

    /// The `seq` of a run about to start: one more than the highest of `runs` (every run of
    /// the state folder, [`Rollback::runs`], read under its lock), 1 when none has one.
    pub(crate) fn next_seq(runs: &[RunSummary]) -> u64 {
        runs.iter().filter_map(|r| r.seq).max().map_or(1, |n| n.saturating_add(1))
    }

    /// Every run, in the order they began (`RunOrder`).
    pub fn runs(&self) -> Result<Vec<RunSummary>> {
        let dir = self.state.runs_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fsutil::IoError::new("read folder", &dir, e).into()),
        };
        let mut ids: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| valid_run_id(n))
            .collect();
        ids.sort();
        let live = lock::holder(&self.state.lock_path())?;
        let mut summaries = Vec::new();
        for id in ids {
            let path = self.state.run_dir(&id).join("journal.jsonl");
            if !path.exists() {
                continue;
            }
            // One damaged journal does not hide the other runs: it is listed as damaged, with
            // what its readable records say (see `refuse_damaged`).
            let (s, damage) = RunState::load_readable(&path)?;
            let changed_something = Self::changed_something(&s);
            let other_worktree = !super::support::ran_here(self.vcs.as_ref(), &s);
            summaries.push(RunSummary {
                changed_something,
                damaged: damage.map(|d| d.to_string()),
                interrupted: s.status == RunStatus::Running && live.is_none(),
                backup_id: s.tree_snapshot.clone(),
                run_id: s.run_id,
                kind: s.plan.kind,
                status: s.status,
                level: s.plan.level,
                from: s.plan.from.commit,
                to: s.plan.to,
                undo_of: s.plan.undo_of,
                undone_by: s.undone_by,
                started_at: s.started_at,
                finished_at: s.finished_at,
                reason: s.reason,
                workdir: s.plan.workdir,
                other_worktree,
                seq: s.seq,
            });
        }
        // In the order they began, which their clocks may not tell (a clock stepped back).
        summaries.sort_by(|a, b| a.order().cmp(&b.order()));
        Ok(summaries)
    }

    /// Refuses while a run whose journal is damaged might be unfinished: the records before
    /// the damage do not show it finished (`succeeded`, `undone`, `verification_failed`, or
    /// cancelled before it changed anything). Once a run's journal says it finished, no later
    /// record can make it unfinished again (only a failed or interrupted run is resumed), so a
    /// damaged run that finished blocks nothing. Asked before the unfinished-run refusal,
    /// whose advice (resume or undo it) cannot work on a journal that cannot be read.
    fn refuse_damaged(&self, runs: &[RunSummary]) -> Result<()> {
        for r in runs {
            let Some(damage) = &r.damaged else { continue };
            let unfinished = match r.status {
                RunStatus::Running | RunStatus::Failed => true,
                RunStatus::Cancelled => {
                    let path = self.state.run_dir(&r.run_id).join("journal.jsonl");
                    RunState::load_readable(&path).map_or(true, |(s, _)| Self::changed_something(&s))
                }
                _ => false,
            };
            if unfinished {
                return Err(Error::refused(
                    format!("run {} may be unfinished, and its journal cannot be read to the end: {damage}", r.run_id),
                    Some(crate::hint::hint![
                        "check the state the run left by hand (`git status`, ",
                        crate::hint::Action::Assess,
                        format!(
                            "); then mend the journal, or move the folder `{}` out of the state folder's `runs/` (keep it: its snapshots are in the backup store) so the run no longer counts",
                            self.state.run_dir(&r.run_id).display()
                        )
                    ]),
                ));
            }
        }
        Ok(())
    }

    /// One run's outcome, journal records and log lines.
    pub fn run_details(&self, run_id: &str) -> Result<(RunOutcome, Vec<Record>, String)> {
        let s = self.load_run(run_id)?;
        let log = std::fs::read_to_string(self.state.run_dir(run_id).join("run.log")).unwrap_or_default();
        let records = s.records.clone();
        let mut outcome = self.outcome_of(&s);
        self.read_liveness(&s, &mut outcome)?;
        Ok((outcome, records, log))
    }

    /// Sets `interrupted` of a run read back from its journal. A run journaled `running`
    /// that a live process still runs was not interrupted: the step it began is `running`,
    /// and nothing in its outcome may advise resuming or undoing it.
    fn read_liveness(&self, s: &RunState, outcome: &mut RunOutcome) -> Result<()> {
        outcome.interrupted = self.interrupted(s)?;
        if s.status == RunStatus::Running && !outcome.interrupted {
            for step in outcome.steps.iter_mut().filter(|st| st.status == "interrupted") {
                step.status = "running".into();
            }
        }
        Ok(())
    }

    /// The run is journaled `running` and no process holds the lock: it was killed half-way.
    fn interrupted(&self, s: &RunState) -> Result<bool> {
        Ok(s.status == RunStatus::Running && lock::holder(&self.state.lock_path())?.is_none())
    }
}
