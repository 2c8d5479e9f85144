//! Asking a human before the engine changes anything.
//!
//! The engine asks a [`Prompter`] once, after planning and before taking the lock: the CLI
//! shows from → to, level and what will change and wants a typed `yes`; the Python module calls
//! a callback. [`AutoConfirm`] is `--yes`.
//!
//! In a manual run the engine also asks before every step ([`Prompter::approve_step`]): the
//! operator answers `yes` (run it), `no` (skip it), `inspect` (show more, then ask again) or
//! `abort` (stop, and optionally undo what ran).

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Step};

/// What the operator is asked to approve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Confirmation {
    /// `rollback` or `undo`.
    pub action: String,
    /// A few lines for a person: from → to, level, counts of files that change.
    pub summary: String,
    /// The plan that will run.
    pub plan: Plan,
}

/// One step of a manual run, shown to the operator before it runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepApproval {
    /// The run.
    pub run_id: String,
    /// 1-based position.
    pub index: usize,
    /// Number of steps.
    pub total: usize,
    /// Machine name (`reset`, `downgrade`, ...).
    pub name: String,
    /// One line for people.
    pub title: String,
    /// What it will do: files it changes, SQL it runs, commands it starts, checks it makes.
    pub preview: Vec<String>,
    /// Whether `no` is allowed (snapshots and the final record cannot be skipped).
    pub skippable: bool,
    /// The step itself.
    pub step: Step,
}

/// The operator's answer for one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepDecision {
    /// Run it.
    Run,
    /// Skip it (journaled; the report lists it).
    Skip,
    /// Stop here; the run is recorded as cancelled. With `undo`, everything it changed so far
    /// is put back at once.
    Abort {
        /// Undo what ran.
        undo: bool,
    },
}

/// More about a step, computed only when the operator asks (`inspect`).
pub trait StepInspector {
    /// The diff, the database's current revision, the backup's manifest: whatever applies.
    fn inspect(&self) -> String;
}

/// Answers confirmations.
pub trait Prompter: Send + Sync {
    /// `Ok(true)` to go ahead, `Ok(false)` to cancel (nothing changes), `Err` when no answer
    /// can be had (no terminal): the engine refuses.
    fn confirm(&self, request: &Confirmation) -> crate::Result<bool>;

    /// `true` when the answer is always yes without looking (`--yes`): the engine then takes
    /// the lock first and plans once, under it, instead of planning, asking, and planning
    /// again.
    fn is_automatic(&self) -> bool {
        false
    }

    /// Asked before each step of a manual run. The default runs every step.
    fn approve_step(&self, request: &StepApproval, inspector: &dyn StepInspector) -> crate::Result<StepDecision> {
        let _ = (request, inspector);
        Ok(StepDecision::Run)
    }
}

/// Approves everything (`--yes` / `--auto-confirm`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoConfirm;

impl Prompter for AutoConfirm {
    fn confirm(&self, _request: &Confirmation) -> crate::Result<bool> {
        Ok(true)
    }

    fn is_automatic(&self) -> bool {
        true
    }
}

/// Refuses everything: for callers that must never change anything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decline;

impl Prompter for Decline {
    fn confirm(&self, _request: &Confirmation) -> crate::Result<bool> {
        Ok(false)
    }
}
