//! `rehearse`: a whole rollback and its undo, run on a throwaway copy of the work tree, its
//! `.git`, the state folder and the database, reported step by step. Nothing of the real tree,
//! `.git`, state folder or database is written.
//!
//! - `copy`: the throwaway copy (files with their bytes and modes, `.git`, the state folder);
//! - `picture`: what the copy looks like (tree, HEAD, index, database), to tell whether the
//!   undo brought it back;
//! - this module: the options and the typed result, read by the CLI, Python and CI.
//!
//! The engine side (`Rollback::rehearse`) lives with the engine; it only calls `run` and `undo`
//! on a `Rollback` opened over the copy, so a rehearsal goes through the same pipeline as the
//! real thing.

pub(crate) mod copy;
pub(crate) mod picture;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::model::{DataLoss, Level, RunStatus};
use crate::vcs::CommitId;

/// Options of a rehearsal.
#[derive(Clone, Debug, Default)]
pub struct RehearseOptions {
    /// The level; `None` uses the assessment's recommendation.
    pub level: Option<Level>,
    /// The target revision; `None` picks the registry's newest verified known-good commit.
    pub target: Option<String>,
    /// Allow a target that is not an ancestor of HEAD (as `run --allow-non-ancestor`).
    pub allow_non_ancestor: bool,
    /// Rehearse a downgrade through a migration whose downgrade cannot restore data (as
    /// `run --allow-irreversible`).
    pub allow_irreversible: bool,
}

/// How one step of the rehearsal went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RehearsedStep {
    /// The step's machine name (`snapshot`, `downgrade`, ...).
    pub step: String,
    /// `done`, `failed`, `pending` (not reached), `skipped`, or `not_rehearsed` (a step that
    /// would reach real services: restart, deploy, promote, verify).
    pub status: String,
    /// How long it took on the copy, in milliseconds (`None`: it did not run).
    pub millis: Option<u64>,
    /// Why it was not rehearsed, or how it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The rollback or the undo, as rehearsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RehearsedRun {
    /// How it ended on the copy.
    pub status: RunStatus,
    /// Its steps, in plan order (with the steps not rehearsed where a real run has them).
    pub steps: Vec<RehearsedStep>,
    /// The error of a failed run, whole chain on one line.
    pub error: Option<String>,
    /// Wall time on the copy, in milliseconds.
    pub duration_ms: u64,
}

impl RehearsedRun {
    /// Whether every step that ran succeeded.
    pub fn passed(&self) -> bool {
        self.status == RunStatus::Succeeded
    }
}

/// What a rehearsal found: read by `forge-rollback rehearse` (text and `--json`), Python and
/// CI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rehearsal {
    /// `true` when the rollback and its undo both succeeded and the undo brought the copy back
    /// identical.
    pub passed: bool,
    /// The level rehearsed.
    pub level: Level,
    /// HEAD.
    pub from: CommitId,
    /// The target.
    pub to: CommitId,
    /// The real database, password removed (`None`: none configured or a fast rehearsal).
    pub database: Option<String>,
    /// How the database was copied (`sqlite-backup`, `pg-temporary-database`), if it was.
    pub database_copy: Option<String>,
    /// The data-loss forecast of the plan: what the downgrade destroys in the live database.
    pub data_loss: Vec<DataLoss>,
    /// Why the forecast could not be made (the downgrade failed on its copy, an irreversible
    /// migration): then what the downgrade destroys is unknown, not none.
    #[serde(default)]
    pub data_loss_unknown: Option<String>,
    /// The rollback on the copy.
    pub rollback: RehearsedRun,
    /// Its undo on the copy (`None`: the rollback stopped before changing anything).
    pub undo: Option<RehearsedRun>,
    /// Whether the copy's tree, HEAD, branch, index and database after the undo are exactly
    /// as before the rollback.
    pub undo_identical: bool,
    /// What the undo did not bring back (paths, `HEAD`, `index`, `database`), at most
    /// [`DIFFERENCES_SHOWN`].
    pub differences: Vec<String>,
    /// Files compared between before and after.
    pub files_compared: usize,
    /// Wall time of the whole rehearsal (copy included), in milliseconds.
    pub duration_ms: u64,
    /// Things to know (steps not rehearsed, warnings of the runs on the copy).
    pub warnings: Vec<String>,
}

/// Differences listed at most in [`Rehearsal::differences`].
pub const DIFFERENCES_SHOWN: usize = 20;

/// Steps a rehearsal never runs: they reach real services or production.
pub(crate) fn not_rehearsed_reason(step: &str) -> Option<&'static str> {
    match step {
        "restart" => Some("restarts real services: never run on a copy"),
        "deploy" => Some("pushes or calls a deploy hook: never run on a copy"),
        "promote" => Some("changes the production target: never run on a copy"),
        "verify" => Some("checks the real services, which the copy does not run"),
        _ => None,
    }
}

impl Rehearsal {
    /// Whether every step of the rollback and of its undo succeeded on the copy (whether the
    /// undo came back identical is [`Rehearsal::undo_identical`]).
    pub fn steps_passed(&self) -> bool {
        self.rollback.passed() && self.undo.as_ref().is_none_or(RehearsedRun::passed)
    }

    /// For people: one line per step with its time, the forecast, the verdict.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rehearsal of a {} rollback {} -> {} on a throwaway copy",
            self.level.as_str(),
            self.from.short(),
            self.to.short()
        );
        if let Some(db) = &self.database {
            let _ = writeln!(s, "database: {db} (copied: {})", self.database_copy.as_deref().unwrap_or("no"));
        }
        if self.database.is_none() {
            let _ = writeln!(s, "database: not part of this rehearsal");
        } else if let (true, Some(why)) = (self.data_loss.is_empty(), &self.data_loss_unknown) {
            let _ = writeln!(s, "data loss forecast: UNKNOWN ({why})");
        } else if self.data_loss.is_empty() {
            let _ = writeln!(s, "data loss forecast: none");
        } else {
            let _ = writeln!(s, "data loss forecast:");
            for d in &self.data_loss {
                let _ = match (&d.column, d.kind) {
                    (Some(c), crate::model::LossKind::Changed) => {
                        writeln!(s, "  column {}.{c}: {} value(s) changed, the column stays", d.table, d.rows)
                    }
                    (Some(c), _) => writeln!(s, "  column {}.{c}: {} value(s)", d.table, d.rows),
                    (None, crate::model::LossKind::Removed) => {
                        writeln!(s, "  table {}: {} row(s) deleted, the table stays", d.table, d.rows)
                    }
                    (None, _) => writeln!(s, "  table {}: {} row(s)", d.table, d.rows),
                };
            }
        }
        let run = |s: &mut String, title: &str, r: &RehearsedRun| {
            let _ = writeln!(s, "{title}: {} in {} ms", r.status, r.duration_ms);
            for st in &r.steps {
                let ms = st.millis.map_or_else(|| "-".to_owned(), |m| format!("{m} ms"));
                let note = st.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default();
                let _ = writeln!(s, "  [{:<13}] {:<17} {:>9}{note}", st.status, st.step, ms);
            }
            if let Some(e) = &r.error {
                let _ = writeln!(s, "  error: {e}");
            }
        };
        run(&mut s, "rollback", &self.rollback);
        match &self.undo {
            Some(u) => run(&mut s, "undo", u),
            None => {
                let _ = writeln!(s, "undo: not needed (the rollback changed nothing)");
            }
        }
        let _ = writeln!(
            s,
            "after the undo, {} file(s), HEAD, branch, index{} identical to before: {}",
            self.files_compared,
            if self.database.is_some() { " and database" } else { "" },
            if self.undo_identical { "yes" } else { "NO" }
        );
        for d in &self.differences {
            let _ = writeln!(s, "  differs: {d}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(
            s,
            "rehearsal {} in {} ms; nothing real was changed",
            if self.passed { "passed" } else { "FAILED" },
            self.duration_ms
        );
        s
    }
}
