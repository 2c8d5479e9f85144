//! Run vocabulary: levels, kinds, statuses, incident severity. Imports nothing of the crate.

use serde::{Deserialize, Serialize};

/// How much a rollback puts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Code only: snapshot, reset, remove untracked files, clear caches.
    Fast,
    /// Code, database schema and env config.
    Full,
    /// Like full, with a human approving each step.
    Manual,
}

impl Level {
    /// `fast`, `full`, `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Fast => "fast",
            Level::Full => "full",
            Level::Manual => "manual",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Move to an older, known-good commit.
    Rollback,
    /// Restore the state a snapshot recorded (undo of an earlier run).
    Undo,
}

impl RunKind {
    /// `rollback` or `undo`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Rollback => "rollback",
            RunKind::Undo => "undo",
        }
    }
}

/// The outcome of a run, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Planned only (a dry run); nothing was written.
    Planned,
    /// Started and not finished: either still running, or interrupted by a crash.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed; the run can be resumed or undone.
    Failed,
    /// The operator declined before anything changed.
    Cancelled,
    /// A later undo restored the state from before this run.
    Undone,
    /// Every step ran, but the services failed verification afterwards.
    VerificationFailed,
}

impl RunStatus {
    /// `succeeded`, `failed`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Planned => "planned",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Undone => "undone",
            RunStatus::VerificationFailed => "verification_failed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad the incident behind a run is (`--severity`), as in the runbook's report template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Production down or data at risk.
    Critical,
    /// Core features broken.
    High,
    /// Partial breakage.
    Medium,
    /// Minor.
    Low,
}

impl Severity {
    /// `critical`, `high`, `medium`, `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}
