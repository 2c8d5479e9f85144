//! Asking a human before the engine changes anything.
//!
//! The engine asks a [`Prompter`] once, after planning and before taking the lock: the CLI
//! shows from → to, level and what will change and wants a typed `yes`; the Python module calls
//! a callback. [`AutoConfirm`] is `--yes`.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

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
