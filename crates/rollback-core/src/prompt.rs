//! Asking a human before the engine changes anything.
//!
//! The engine asks a [`Prompter`] once, after planning and before taking the lock: the CLI
//! shows from → to, level and what will change and wants a typed `yes`; the Python module calls
//! a callback. [`AutoConfirm`] is `--yes`.
//!
//! In a manual run the engine also asks before every step ([`Prompter::approve_step`]): the
//! operator answers `yes` (run it), `no` (skip it), `inspect` (show more, then ask again) or
//! `abort` (stop, and optionally undo what ran).
//!
//! What an answer means is decided here, once, for the CLI and the Python module alike:
//! [`confirms`] for the confirmation, [`StepAnswer::parse`] for a step, [`yes_no`] for a
//! yes/no follow-up.

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

/// Whether a typed confirmation goes ahead: the word `yes`, ignoring surrounding whitespace
/// and ASCII case (`yes`, `YES`, `  Yes  `). Nothing else goes ahead (`y`, `no`, `yes please`,
/// an empty line): the CLI declines, Python raises `ValueError`. The one rule for both.
#[must_use]
pub fn confirms(answer: &str) -> bool {
    yes_no(answer) == Some(true)
}

/// A yes/no answer: `yes` is `Some(true)`, `no` is `Some(false)` (surrounding whitespace and
/// ASCII case ignored); anything else is `None` (ask again).
#[must_use]
pub fn yes_no(answer: &str) -> Option<bool> {
    let answer = answer.trim();
    if answer.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if answer.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// An answer to a manual run's question before a step, typed on the CLI's terminal or
/// returned as a string by Python's `approve` callback: one vocabulary for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepAnswer {
    /// `yes` or `run`.
    Run,
    /// `no` or `skip`.
    Skip,
    /// `inspect`: show more, then ask again (only a terminal can; Python's `approve` gets the
    /// preview in its argument and refuses it).
    Inspect,
    /// `abort`: stop (the CLI then asks whether to undo what ran; for Python it does not undo).
    Abort,
    /// `abort-undo`: stop and undo what ran.
    AbortUndo,
}

impl StepAnswer {
    /// Reads an answer, ignoring surrounding whitespace and ASCII case; `None` for any other
    /// word (the CLI asks again, Python raises `ValueError`): an unknown answer never runs a
    /// step.
    #[must_use]
    pub fn parse(answer: &str) -> Option<Self> {
        let answer = answer.trim();
        [
            ("yes", Self::Run),
            ("run", Self::Run),
            ("no", Self::Skip),
            ("skip", Self::Skip),
            ("inspect", Self::Inspect),
            ("abort", Self::Abort),
            ("abort-undo", Self::AbortUndo),
        ]
        .into_iter()
        .find_map(|(word, parsed)| answer.eq_ignore_ascii_case(word).then_some(parsed))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_is_the_word_yes_in_any_ascii_case_trimmed() {
        for yes in ["yes", "YES", "  Yes  ", "yEs\n"] {
            assert!(confirms(yes), "{yes:?}");
        }
        for not in ["y", "no", "", "yes please", "ye s", "true", "1", "ｙｅｓ"] {
            assert!(!confirms(not), "{not:?}");
        }
    }

    #[test]
    fn step_answers_are_the_documented_words_only() {
        assert_eq!(StepAnswer::parse(" YES "), Some(StepAnswer::Run));
        assert_eq!(StepAnswer::parse("Run"), Some(StepAnswer::Run));
        assert_eq!(StepAnswer::parse("no"), Some(StepAnswer::Skip));
        assert_eq!(StepAnswer::parse("SKIP"), Some(StepAnswer::Skip));
        assert_eq!(StepAnswer::parse("inspect"), Some(StepAnswer::Inspect));
        assert_eq!(StepAnswer::parse("Abort"), Some(StepAnswer::Abort));
        assert_eq!(StepAnswer::parse("abort-undo"), Some(StepAnswer::AbortUndo));
        for unknown in ["y", "n", "a", "i", "maybe", "", "ok", "abort undo"] {
            assert_eq!(StepAnswer::parse(unknown), None, "{unknown:?}");
        }
        assert_eq!(yes_no(" No"), Some(false));
        assert_eq!(yes_no("n"), None);
    }
}
