//! Incident reports: the runbook's "Rollback Incident Report" template, filled in from a run's
//! journal, as Markdown for people and JSON for machines.
//!
//! What the tool knows it fills in: date, time, severity and reason as given, rollback type,
//! the commits moved between, the duration and a timeline with real timestamps from the
//! journal, whether anything can have been lost (from the snapshot step), each step's outcome.
//! What only people know (symptoms, root cause, user impact, preventive measures, lessons)
//! stays a clearly marked prompt (`_To fill in: ..._`).
//!
//! Nothing read from a file's content ever goes into a report: only paths' counts, commit ids
//! and summaries, backup ids and the errors the engine journaled.

mod data_loss;
mod markdown;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::detail::StepDetail;
use crate::journal::{Record, RunState, RunStatus, Severity};
use crate::outcome::RunOutcome;
use crate::plan::{Level, RunKind, Step};
use crate::time::Timestamp;
use crate::vcs::{CommitId, VcsBackend};

/// A commit the run moved from or to.
#[derive(Clone, Debug, Serialize)]
pub struct CommitRef {
    /// Full id.
    pub hash: CommitId,
    /// First line of its message (empty if it could not be read).
    pub summary: String,
}

/// Whether the run can have lost anything, and why the tool says so.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DataLoss {
    /// `Some(false)`: nothing can be lost; `None`: the tool cannot tell.
    pub lost: Option<bool>,
    /// One sentence for people.
    pub explanation: String,
    /// What the run's downgrade dropped from the live database, per table and column (the
    /// forecast journaled with its plan), when the downgrade ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<crate::model::DataLoss>,
    /// What a downgrade that did not finish may have dropped (its forecast): killed, or
    /// failed having changed the database.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub may_have_dropped: Vec<crate::model::DataLoss>,
    /// Values the downgrade changed that the undo of the run did not write back (the app
    /// changed them while rolled back, or deleted their rows).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_put_back: Vec<crate::model::DataLoss>,
    /// Why what the downgrade dropped was not measured, when it ran without a data-loss
    /// forecast (`lost` is then `None`): "the data-loss forecast could not be made (…)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_measured: Option<String>,
    /// The database backup that keeps those rows, while the tool can still bring them back
    /// (not after an undo did, nor once the backup is pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_in: Option<String>,
    /// The command that brings them back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
}

/// One step of the plan and what happened to it.
#[derive(Clone, Debug, Serialize)]
pub struct StepLine {
    /// 1-based position in the plan.
    pub number: usize,
    /// Machine name (`snapshot`, `reset`, ...).
    pub step: String,
    /// What the step does, one line.
    pub title: String,
    /// `done`, `failed`, `interrupted`, `running` (under way in a live run) or `pending`.
    pub status: String,
    /// When its last attempt began.
    pub started_at: Option<Timestamp>,
    /// When its last attempt ended or failed.
    pub ended_at: Option<Timestamp>,
    /// Milliseconds from begin to end of its last attempt.
    pub duration_ms: Option<u64>,
    /// What it did, in counts and ids (never file contents).
    pub result: Option<String>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// The step that failed.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// 1-based position in the plan.
    pub number: usize,
    /// Step name.
    pub step: String,
    /// The error, whole chain, one line.
    pub error: String,
}

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Details.
    pub detail: String,
    /// A `prometheus` check's query, value and baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<crate::verify::MetricValue>,
}

/// Verification results: what the tool checked itself, and the note about service checks.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Checks the tool ran (the backup's verification).
    pub checks: Vec<CheckResult>,
    /// The configured service checks run at the end of the run (`[[checks]]`).
    pub service_checks: Vec<CheckResult>,
    /// Explanation for people.
    pub note: String,
    /// The runbook's checklist, left for people to tick.
    pub manual_checklist: Vec<String>,
}

/// One timeline entry, from one journal record.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub event: String,
}

/// Commands that settle or reverse the run.
#[derive(Clone, Debug, Serialize)]
pub struct Commands {
    /// Finishes a failed or interrupted run.
    pub resume: Option<String>,
    /// Puts back the state from before the run.
    pub undo: Option<String>,
    /// Why there is no `undo` command when the run is not settled: its backups are gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_unavailable: Option<String>,
}

impl IncidentReport {
    /// The run's undo `undo` did not write back `left` (values the downgrade changed, then
    /// changed again or deleted while rolled back): the Data Loss section says so instead of
    /// "put them back".
    pub(crate) fn not_put_back(&mut self, undo: &str, db: &str, left: &[crate::model::DataLoss]) {
        if left.is_empty() {
            return;
        }
        self.data_loss.explanation = format!(
            "{}; but undo {undo} did NOT write back {} (changed or deleted while rolled back): the values from before the run are only in database backup {db}",
            self.data_loss.explanation,
            crate::db::rows::describe(left)
        );
        self.data_loss.not_put_back = left.to_vec();
    }

    /// The run's backups `gone` (ids) are no longer in the store (`backups prune` removed
    /// them, or someone did): the report stops offering the undo, and the rows they kept.
    pub(crate) fn backups_gone(&mut self, gone: &[String]) {
        if gone.is_empty() {
            return;
        }
        let why = format!(
            "its backup{} {} {} gone from the store (`backups prune`, or removed)",
            if gone.len() == 1 { "" } else { "s" },
            gone.join(", "),
            if gone.len() == 1 { "is" } else { "are" }
        );
        if self.commands.undo.take().is_some() {
            self.commands.undo_unavailable = Some(why.clone());
        }
        data_loss::backups_gone(&mut self.data_loss, gone, &why);
    }
}

/// Everything the report says, serializable (the JSON form).
#[derive(Clone, Debug, Serialize)]
pub struct IncidentReport {
    /// The run.
    pub run_id: String,
    /// Rollback or undo.
    pub kind: RunKind,
    /// Level of a rollback.
    pub level: Option<Level>,
    /// The template's "Rollback Type": `Fast`, `Full`, `Manual` or `Undo`.
    pub rollback_type: String,
    /// Outcome.
    pub status: RunStatus,
    /// Journaled `running` while nothing runs it (no process holds the lock): killed half-way,
    /// as `runs list` says. The report calls it `interrupted`.
    #[serde(default)]
    pub interrupted: bool,
    /// From `--severity`.
    pub severity: Option<Severity>,
    /// From `--reason` (an undo's is `undo of RUN`).
    pub reason: Option<String>,
    /// Who asked for the run, if given (`RunOptions::actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When the run started.
    pub started_at: Timestamp,
    /// When it finished, if it did.
    pub finished_at: Option<Timestamp>,
    /// Wall time, if it finished.
    pub duration_ms: Option<u64>,
    /// The work tree.
    #[serde(with = "crate::paths::os_path")]
    pub workdir: PathBuf,
    /// The git backend used.
    pub backend: String,
    /// The branch HEAD was on (`None`: detached).
    pub branch: Option<String>,
    /// The commit moved to.
    pub target: CommitRef,
    /// The commit HEAD was on before.
    pub previous: CommitRef,
    /// The verified snapshot taken before any change.
    pub backup_id: Option<String>,
    /// Whether anything can have been lost.
    pub data_loss: DataLoss,
    /// For an undo: the run it undid.
    pub undo_of: Option<String>,
    /// The undo that undid this run, if any.
    pub undone_by: Option<String>,
    /// The step that failed, if the run failed.
    pub failure: Option<Failure>,
    /// Every step of the plan.
    pub steps: Vec<StepLine>,
    /// Steps the operator skipped (manual runs).
    pub skipped: Vec<String>,
    /// Verification results.
    pub verification: Verification,
    /// One entry per journal record.
    pub timeline: Vec<TimelineEntry>,
    /// How to finish or reverse the run.
    pub commands: Commands,
    /// Warnings the engine gave during the run.
    pub warnings: Vec<String>,
    /// The template's fields only people can fill in.
    pub to_fill_in: Vec<String>,
}

const MANUAL_CHECKLIST: [&str; 4] =
    ["All services healthy", "Authentication working", "Core features functional", "Data integrity confirmed"];
const ACTION_ITEMS: [&str; 4] =
    ["Update deployment checklist", "Add new test coverage", "Improve monitoring", "Update documentation"];
const NO_SERVICE_CHECKS: &str =
    "no service checks ran (none are configured in `[[checks]]`, or the run did not reach them)";
/// A manual run whose operator answered `skip` at `verify`: configured, reached, not run.
const SKIPPED_SERVICE_CHECKS: &str = "the service checks are configured but were skipped by the operator (manual run)";

fn commit_ref(vcs: &dyn VcsBackend, id: &CommitId, fallback: &str) -> CommitRef {
    let summary = vcs.commit_info(id).map_or_else(|_| fallback.to_owned(), |c| c.summary);
    CommitRef { hash: id.clone(), summary }
}

fn revisions(revs: &[crate::db::Revision]) -> String {
    crate::db::show_revisions(revs)
}

/// One line about what a step did, from its journaled detail: counts and ids only.
fn step_result(step: &Step, detail: &StepDetail) -> String {
    if detail.is_skipped() {
        return "skipped by the operator".to_owned();
    }
    match (step, detail) {
        (_, StepDetail::Snapshot { entries, bytes, snapshot, .. }) => {
            format!("captured {entries} path(s), {bytes} byte(s), and the index in backup {snapshot}; verified")
        }
        (Step::Reset { target, .. }, StepDetail::Reset { changed, cleared, kept, .. }) => {
            let mut line = format!(
                "moved to {}: {changed} tracked path(s) changed, {cleared} cleared out of the way",
                target.short()
            );
            // The registry or config put back as it was: the reader must not think a fresh
            // bad mark or setting was lost with the reset.
            if !kept.is_empty() {
                let names: Vec<String> = kept.iter().map(|p| format!("`{p}`")).collect();
                let _ = write!(line, "; kept as before the reset: {}", names.join(", "));
            }
            line
        }
        (_, StepDetail::RemoveUntracked { removed }) => format!("removed {removed} untracked file(s)"),
        (_, StepDetail::ClearCaches { removed }) => format!("removed {removed} cache path(s)"),
        (Step::RestoreFiles { snapshot, .. }, StepDetail::RestoreFiles(stats)) => format!(
            "restored {} file(s) and {} symlink(s), removed {} path(s) from backup {snapshot}",
            stats.files, stats.symlinks, stats.removed
        ),
        (_, StepDetail::RestoreIndex { restored: true, .. }) => "restored the index".to_owned(),
        (_, StepDetail::RestoreIndex { restored: false, .. }) => "no index to restore".to_owned(),
        (_, StepDetail::DbSnapshot { revisions: revs, bytes, format, snapshot, .. }) => format!(
            "dumped the database at revision {} ({bytes} byte(s), {format}) into backup {snapshot}; verified",
            revisions(revs)
        ),
        (_, StepDetail::Downgrade { from, to, .. }) => {
            format!("database moved from {} to {}", revisions(from), revisions(to))
        }
        (_, StepDetail::RestoreEnv { recorded: Some(false), .. }) => {
            "no env recorded for the target: env files left as they were".to_owned()
        }
        (_, StepDetail::RestoreEnv { files, .. }) => {
            format!("restored env files recorded with the target: {}", files.join(", "))
        }
        (_, StepDetail::RestoreDatabase { snapshot, revisions: revs, kept, .. }) => format!(
            "database restored from backup {snapshot}, at revision {}{}",
            revisions(revs),
            kept.as_ref().map(|k| format!("; its state before is kept in {}", k.display())).unwrap_or_default()
        ),
        (_, StepDetail::UpgradeDatabase { from, to, .. }) => {
            format!("database upgraded from {} to {}", revisions(from), revisions(to))
        }
        (
            _,
            StepDetail::PutBackRows {
                snapshot,
                rows_inserted,
                rows_present,
                values_set,
                values_left,
                counters_raised,
                ..
            },
        ) => format!(
            "from backup {snapshot}: {rows_inserted} row(s) put back ({rows_present} there already), {values_set} column value(s) written back{}{}",
            crate::db::rows::counters_moved(counters_raised),
            if values_left.is_empty() {
                String::new()
            } else {
                format!("; NOT written back (changed or deleted since): {}", crate::db::rows::describe(values_left))
            }
        ),
        (_, StepDetail::Restart { steps }) => format!("{} restart step(s) succeeded", steps.len()),
        (_, StepDetail::Deploy { summary, .. }) => summary.clone(),
        (_, StepDetail::Promote { from, to, already, autodeploy, autodeploy_was }) => {
            let moved = if *already {
                format!("{to} was live already")
            } else {
                format!("production moved from {from} to {to}")
            };
            let switch = match (autodeploy, autodeploy_was) {
                (Some(false), Some(true)) => "; automatic deploys turned off",
                (Some(false), _) => "; automatic deploys were off already",
                (Some(true), Some(false)) => "; automatic deploys turned back on",
                (Some(true), _) => "; automatic deploys were on already",
                (None, _) => "",
            };
            format!("{moved}{switch}")
        }
        (_, StepDetail::Verify(v)) => {
            let passed = v.checks.iter().filter(|c| c.passed).count();
            format!("{passed} of {} check(s) passed in {} ms", v.checks.len(), v.duration_ms)
        }
        (_, StepDetail::Record { head, branch }) => {
            let head = head.as_str();
            let head = head.get(..7).unwrap_or(head);
            match branch {
                Some(b) => format!("HEAD is {head} on `{b}`"),
                None => format!("HEAD is {head} (detached)"),
            }
        }
        // A detail that does not belong to its step (a hand-edited journal).
        (_, other) => format!("{other:?}"),
    }
}

fn rollback_type(kind: RunKind, level: Option<Level>) -> String {
    match (kind, level) {
        (RunKind::Undo, _) => "Undo".into(),
        (RunKind::Rollback, Some(Level::Fast)) => "Fast".into(),
        (RunKind::Rollback, Some(Level::Full)) => "Full".into(),
        (RunKind::Rollback, Some(Level::Manual)) => "Manual".into(),
        (RunKind::Rollback, None) => "Rollback".into(),
    }
}

/// Builds the report of a run from its journal state, its outcome and the repository (for
/// commit summaries).
pub fn build(state: &RunState, outcome: &RunOutcome, vcs: &dyn VcsBackend) -> IncidentReport {
    let plan = &state.plan;
    let total = plan.steps.len();

    // Last attempt's begin and end of each step (a resume may run a step again). A resume
    // that takes the database snapshot again journals a second end of `db_snapshot`, then the
    // downgrade's begin again, inside the downgrade's attempt: neither is an attempt of its own,
    // so the snapshot keeps its times and the downgrade its first begin.
    let mut began: Vec<Option<Timestamp>> = vec![None; total];
    let mut ended: Vec<Option<Timestamp>> = vec![None; total];
    let mut errors: Vec<Option<String>> = vec![None; total];
    // Begun by the process that journals now, and not ended.
    let mut open = vec![false; total];
    for r in &state.records {
        match r {
            Record::Resumed { .. } => open.fill(false),
            Record::StepBegin { index, .. } if *index < total && open[*index] => {}
            Record::StepBegin { at, index, .. } if *index < total => {
                began[*index] = Some(*at);
                ended[*index] = None;
                errors[*index] = None;
                open[*index] = true;
            }
            Record::StepEnd { index, .. } if *index < total && ended[*index].is_some() && !open[*index] => {}
            Record::StepEnd { at, index, .. } if *index < total => {
                ended[*index] = Some(*at);
                open[*index] = false;
            }
            Record::StepFailed { at, index, error, .. } if *index < total => {
                ended[*index] = Some(*at);
                errors[*index] = Some(error.clone());
                open[*index] = false;
            }
            _ => {}
        }
    }

    let steps: Vec<StepLine> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let status = outcome
                .steps
                .get(i)
                .filter(|r| r.step == s.name())
                .map_or_else(|| state.step_status(i).to_owned(), |r| r.status.clone());
            let duration_ms = match (began[i], ended[i]) {
                (Some(b), Some(e)) => Some(e.millis_since(b)),
                _ => None,
            };
            StepLine {
                number: i + 1,
                step: s.name().into(),
                title: s.title(),
                error: if status == "failed" { errors[i].clone() } else { None },
                status,
                started_at: began[i],
                ended_at: ended[i],
                duration_ms,
                result: state.done[i].as_ref().map(|d| step_result(s, d)),
            }
        })
        .collect();

    let failure = state.failure.as_ref().map(|(i, e)| Failure {
        number: i + 1,
        step: plan.steps.get(*i).map_or("?", Step::name).into(),
        error: e.clone(),
    });

    let snapshot_idx = plan.steps.iter().position(|s| matches!(s, Step::Snapshot { .. }));
    let backup_id =
        snapshot_idx.and_then(|i| state.done[i].as_ref()).and_then(StepDetail::snapshot).map(ToString::to_string);
    let anything_else_began =
        state.records.iter().any(|r| matches!(r, Record::StepBegin { index, .. } if Some(*index) != snapshot_idx));
    let data_loss = data_loss::of(state, backup_id.as_deref(), anything_else_began);

    let mut checks = Vec::new();
    if let Some(id) = &backup_id {
        checks.push(CheckResult {
            name: "backup verified".into(),
            passed: true,
            detail: format!("backup {id} was read back and every blob's hash checked before any change"),
            metric: None,
        });
    } else if let Some(i) = snapshot_idx
        && state.failure.as_ref().is_some_and(|(f, _)| *f == i)
    {
        checks.push(CheckResult {
            name: "backup verified".into(),
            passed: false,
            detail: "the snapshot step failed: no backup was stored, and nothing was changed".into(),
            metric: None,
        });
    }
    let service_checks: Vec<CheckResult> = outcome
        .verification
        .iter()
        .flat_map(|v| &v.checks)
        .map(|c| CheckResult {
            name: format!("{} ({})", c.name, c.kind),
            passed: c.passed,
            detail: match &c.metric {
                Some(m) => format!("{} in {} ms: {} (query `{}`)", c.status, c.latency_ms, c.reason, m.query),
                None => format!("{} in {} ms: {}", c.status, c.latency_ms, c.reason),
            },
            metric: c.metric.clone(),
        })
        .collect();
    let verify_skipped =
        state.skipped.iter().filter_map(|i| plan.steps.get(*i)).any(|s| matches!(s, Step::Verify { .. }));
    let note = match &outcome.verification {
        Some(v) if v.passed => format!("all {} service check(s) passed after the run", v.checks.len()),
        Some(v) => format!(
            "{} of {} service check(s) FAILED after the run",
            v.checks.iter().filter(|c| !c.passed).count(),
            v.checks.len()
        ),
        None if verify_skipped => format!("{SKIPPED_SERVICE_CHECKS}: check the services by hand"),
        None => format!("{NO_SERVICE_CHECKS}: check the services by hand"),
    };
    let verification = Verification {
        checks,
        service_checks,
        note,
        manual_checklist: MANUAL_CHECKLIST.iter().map(|s| (*s).to_owned()).collect(),
    };
    let skipped = state.skipped.iter().filter_map(|i| plan.steps.get(*i)).map(|s| s.name().to_owned()).collect();

    let timeline = timeline(state);

    let id = &state.run_id;
    // A cancelled run that took its snapshot (a manual run aborted part-way) can be undone.
    let settled = matches!(state.status, RunStatus::Undone | RunStatus::Planned)
        || (state.status == RunStatus::Cancelled && backup_id.is_none());
    // A run that a live process still runs is settled by that process: resuming or undoing it
    // would be dangerous advice.
    let live = state.status == RunStatus::Running && !outcome.interrupted;
    let commands = Commands {
        resume: (matches!(state.status, RunStatus::Failed | RunStatus::Running) && !live)
            .then(|| format!("forge-rollback resume {id}")),
        undo: (!settled && !live).then(|| format!("forge-rollback undo {id}")),
        undo_unavailable: None,
    };

    let mut to_fill_in = Vec::new();
    if state.severity.is_none() {
        to_fill_in.push("severity".to_owned());
    }
    if state.reason.is_none() {
        to_fill_in.push("issue_description".to_owned());
    }
    for f in ["symptoms", "root_cause", "user_impact_duration", "verification_results", "preventive_measures"] {
        to_fill_in.push(f.to_owned());
    }
    to_fill_in.push("lessons_learned".to_owned());

    IncidentReport {
        run_id: id.clone(),
        kind: plan.kind,
        level: plan.level,
        rollback_type: rollback_type(plan.kind, plan.level),
        status: state.status,
        interrupted: outcome.interrupted,
        severity: state.severity,
        reason: state.reason.clone(),
        actor: state.actor.clone(),
        started_at: state.started_at,
        finished_at: state.finished_at,
        duration_ms: state.finished_at.map(|f| f.millis_since(state.started_at)),
        workdir: plan.workdir.clone(),
        backend: plan.backend.clone(),
        branch: plan.from.branch.clone(),
        target: commit_ref(vcs, &plan.to, &plan.to_summary),
        previous: commit_ref(vcs, &plan.from.commit, ""),
        backup_id,
        data_loss,
        undo_of: plan.undo_of.clone(),
        undone_by: state.undone_by.clone(),
        failure,
        steps,
        skipped,
        verification,
        timeline,
        commands,
        warnings: outcome.warnings.clone(),
        to_fill_in,
    }
}

fn timeline(state: &RunState) -> Vec<TimelineEntry> {
    let plan = &state.plan;
    let total = plan.steps.len();
    let mut out = Vec::new();
    for r in &state.records {
        let (at, event) = match r {
            Record::Started { at, .. } => {
                let what = match plan.kind {
                    RunKind::Rollback => format!(
                        "{} rollback initiated: {} → {} (run {})",
                        rollback_type(plan.kind, plan.level),
                        plan.from.commit.short(),
                        plan.to.short(),
                        state.run_id
                    ),
                    RunKind::Undo => format!(
                        "Undo of run {} initiated: {} → {} (run {})",
                        plan.undo_of.as_deref().unwrap_or("?"),
                        plan.from.commit.short(),
                        plan.to.short(),
                        state.run_id
                    ),
                };
                (*at, what)
            }
            Record::StepBegin { at, index, step } => (*at, format!("Step {}/{total} `{step}` started", index + 1)),
            Record::StepEnd { at, index, step, detail } => {
                let result = plan.steps.get(*index).map(|s| step_result(s, detail)).unwrap_or_default();
                (*at, format!("Step {}/{total} `{step}` done: {result}", index + 1))
            }
            Record::StepFailed { at, index, step, error, .. } => {
                (*at, format!("Step {}/{total} `{step}` FAILED: {error}", index + 1))
            }
            Record::Resumed { at } => (*at, "Run resumed".to_owned()),
            Record::Recaptured { at, snapshot, changed, reason, .. } => (
                *at,
                format!(
                    "Captured the work tree again ({reason}): {changed} path(s) changed since the last backup, now in backup {snapshot}"
                ),
            ),
            Record::Decision { at, index, step, answer } => {
                let n = index + 1;
                let what = match answer.as_str() {
                    "yes" => format!("approved step {n}/{total} `{step}`"),
                    "no" => format!("declined (skip) step {n}/{total} `{step}`"),
                    "inspect" => format!("inspected step {n}/{total} `{step}`"),
                    "abort-undo" => format!("aborted the run at step {n}/{total} `{step}`, with undo"),
                    _ => format!("aborted the run at step {n}/{total} `{step}`"),
                };
                (*at, format!("Operator {what}"))
            }
            Record::StepSkipped { at, index, step } => (*at, format!("Step {}/{total} `{step}` SKIPPED", index + 1)),
            Record::Progress { at, index, step, detail } => {
                let found = match detail {
                    crate::detail::ProgressDetail::AutodeployFound { on: true } => "automatic deploys were on",
                    crate::detail::ProgressDetail::AutodeployFound { on: false } => "automatic deploys were off",
                };
                (*at, format!("Step {}/{total} `{step}` found: {found}", index + 1))
            }
            Record::Finished { at, status, .. } => {
                let what = match status {
                    RunStatus::Succeeded if plan.kind == RunKind::Undo => "Undo complete".to_owned(),
                    RunStatus::Succeeded => "Rollback complete".to_owned(),
                    RunStatus::Failed => "Run FAILED".to_owned(),
                    other => format!("Run finished: {other}"),
                };
                (*at, what)
            }
            Record::Notified { at, results } => {
                let each: Vec<String> = results
                    .iter()
                    .map(|r| {
                        let how = if r.ok { "delivered" } else { "FAILED" };
                        format!("`{}` ({}) {how}", r.name, r.kind.as_str())
                    })
                    .collect();
                (*at, format!("Webhooks: {}", each.join(", ")))
            }
            Record::Undone { at, by } => {
                if by == crate::journal::NOTHING_CHANGED {
                    (*at, "Marked as undone: it had changed nothing".to_owned())
                } else {
                    (*at, format!("Undone by run {by}"))
                }
            }
        };
        out.push(TimelineEntry { at, event });
    }
    out
}
