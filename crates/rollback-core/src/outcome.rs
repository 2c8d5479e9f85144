//! What a run returns and what `runs list` shows: read by the CLI, Python and the report.

use serde::{Deserialize, Serialize};

use crate::backup::SnapshotId;
use crate::model::{Level, RunKind, RunStatus};
use crate::plan::Plan;
use crate::time::Timestamp;
use crate::vcs::CommitId;

/// What happened to one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step name.
    pub step: String,
    /// `done`, `skipped` (by the operator), `failed`, `interrupted`, `running` (under way in
    /// a run a live process still runs, read back from its journal) or `pending`.
    pub status: String,
    /// What it did, as journaled.
    pub detail: Option<crate::detail::StepDetail>,
}

/// The result of `run`, `undo` or `resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The run (`None` for a dry run).
    pub run_id: Option<String>,
    /// Rollback or undo.
    pub kind: RunKind,
    /// Outcome.
    pub status: RunStatus,
    /// Level of a rollback.
    pub level: Option<Level>,
    /// HEAD before.
    pub from: CommitId,
    /// Branch before.
    pub branch: Option<String>,
    /// The commit moved to.
    pub to: CommitId,
    /// The snapshot taken before any change (`undo RUN` restores it).
    pub backup_id: Option<SnapshotId>,
    /// For an undo: the run undone.
    pub undo_of: Option<String>,
    /// Start time.
    pub started_at: Timestamp,
    /// End time.
    pub finished_at: Option<Timestamp>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Steps, in plan order.
    pub steps: Vec<StepReport>,
    /// Things the operator should know.
    pub warnings: Vec<String>,
    /// The error of a failed run, whole chain on one line.
    pub error: Option<String>,
    /// The plan (dry runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The verification round at the end of the run, if checks are configured.
    pub verification: Option<crate::verify::VerificationReport>,
    /// The undo that put this run back (`[verify] on_failure = "undo"`, or a manual abort).
    pub undone_by: Option<String>,
    /// Read back from its journal ([`crate::Rollback::run_details`]): started and not finished,
    /// and nobody holds the lock, so it crashed or was killed (`status` stays `running`, as
    /// the journal says; `resume` or `undo` it). Always `false` for a run just made.
    #[serde(default)]
    pub interrupted: bool,
}

/// A line of `runs list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: String,
    /// Rollback or undo.
    pub kind: RunKind,
    /// Outcome; `running` with `interrupted` set means it crashed.
    pub status: RunStatus,
    /// Started and not finished, and nobody holds the lock: it crashed or was killed.
    pub interrupted: bool,
    /// Level.
    pub level: Option<Level>,
    /// HEAD before.
    pub from: CommitId,
    /// Target.
    pub to: CommitId,
    /// Snapshot.
    pub backup_id: Option<SnapshotId>,
    /// Undo of.
    pub undo_of: Option<String>,
    /// Undone by.
    pub undone_by: Option<String>,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub finished_at: Option<Timestamp>,
    /// Reason given.
    pub reason: Option<String>,
    /// Whether it changed anything: a step other than the snapshots and the record began, and
    /// did not fail leaving everything as it was (a downgrade whose database was put back). A
    /// failed run that changed nothing blocks no new run, and is not resumed by one.
    #[serde(default)]
    pub changed_something: bool,
    /// Its journal is damaged (a line other than a torn last one is not a record): what is
    /// wrong, naming the file and line. The other fields are what the records before the
    /// damage say; the run cannot be shown, resumed or undone until the journal is mended.
    /// `None` (`null`) for a readable journal.
    #[serde(default)]
    pub damaged: Option<String>,
    /// The work tree it ran in (absolute). Clones whose configs name one state folder list
    /// each other's runs.
    #[serde(default, with = "crate::paths::os_path")]
    pub workdir: std::path::PathBuf,
    /// It ran in another work tree (or repository) than the one this list was made in:
    /// `undo` and `resume` refuse it here.
    #[serde(default)]
    pub other_worktree: bool,
    /// Its place among the state folder's runs (the journal's `seq`); `None` for runs
    /// journaled before it was recorded. Not part of the JSON: the list is in that order.
    #[serde(skip)]
    pub seq: Option<u64>,
}

impl RunSummary {
    /// Its place among the runs of its state folder ([`crate::journal::RunOrder`]).
    pub fn order(&self) -> crate::journal::RunOrder<'_> {
        crate::journal::RunOrder::new(self.seq, self.started_at, &self.run_id)
    }
}
