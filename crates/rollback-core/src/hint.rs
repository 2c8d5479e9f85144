//! Hints say what to do next in the words of the front-end in use: the CLI's commands and
//! flags, or the Python module's methods and arguments. The core phrases every hint that
//! names an action through these functions; a front-end says once, at start-up, which words
//! it speaks ([`set_frontend`]). The CLI's words are the default.
//!
//! This module imports nothing of the crate: any module may use it.

use std::sync::atomic::{AtomicU8, Ordering};

/// Whose words hints use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frontend {
    /// `forge-rollback undo RUN`, `--full`.
    Cli,
    /// `undo("RUN")`, `level="full"`.
    Python,
}

static FRONTEND: AtomicU8 = AtomicU8::new(0);

/// Sets the words hints use, for the whole process.
pub fn set_frontend(frontend: Frontend) {
    FRONTEND.store(
        match frontend {
            Frontend::Cli => 0,
            Frontend::Python => 1,
        },
        Ordering::Relaxed,
    );
}

/// The words hints use now.
pub fn frontend() -> Frontend {
    match FRONTEND.load(Ordering::Relaxed) {
        1 => Frontend::Python,
        _ => Frontend::Cli,
    }
}

fn say(cli: String, python: String) -> String {
    match frontend() {
        Frontend::Cli => cli,
        Frontend::Python => python,
    }
}

/// Undo run `run_id`.
pub fn undo(run_id: &str) -> String {
    say(format!("`forge-rollback undo {run_id}`"), format!("`undo(\"{run_id}\")`"))
}

/// Resume run `run_id`.
pub fn resume(run_id: &str) -> String {
    say(format!("`forge-rollback resume {run_id}`"), format!("`resume(\"{run_id}\")`"))
}

/// Show the assessment.
pub fn assess() -> String {
    say("`forge-rollback assess`".into(), "`assess()`".into())
}

/// Mark `rev` verified known-good.
pub fn mark_good(rev: &str) -> String {
    say(format!("`forge-rollback known-good mark {rev}`"), format!("`known_good.mark(\"{rev}\")`"))
}

/// Take `rev` out of the registry.
pub fn unmark(rev: &str) -> String {
    say(format!("`forge-rollback known-good unmark {rev}`"), format!("`known_good.unmark(\"{rev}\")`"))
}

/// Open a work tree.
pub fn in_work_tree() -> String {
    say(
        "run inside a git work tree, or pass `-C DIR`".into(),
        "open a folder inside a git work tree: `Rollback.open(\"/srv/app\")`".into(),
    )
}

/// A run option, as the front-end spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arg<'a> {
    /// Run without asking.
    Yes,
    /// The fast level (code only).
    Fast,
    /// The full level (code, schema, env).
    Full,
    /// Allow an irreversible downgrade.
    AllowIrreversible,
    /// Allow a target that is not an ancestor of HEAD.
    AllowNonAncestor,
    /// The target revision.
    Target(&'a str),
    /// Undo by restoring the database snapshot as it was, after keeping the database as it is.
    RestoreSnapshot,
}

/// `arg` as the front-end spells it, in backticks.
pub fn arg(arg: Arg<'_>) -> String {
    let (cli, python) = match arg {
        Arg::Yes => ("--yes".to_owned(), "confirm=True".to_owned()),
        Arg::Fast => ("--fast".to_owned(), "level=\"fast\"".to_owned()),
        Arg::Full => ("--full".to_owned(), "level=\"full\"".to_owned()),
        Arg::AllowIrreversible => ("--allow-irreversible".to_owned(), "allow_irreversible=True".to_owned()),
        Arg::AllowNonAncestor => ("--allow-non-ancestor".to_owned(), "allow_non_ancestor=True".to_owned()),
        Arg::Target(rev) => (format!("--target {rev}"), format!("target=\"{rev}\"")),
        Arg::RestoreSnapshot => ("--restore-snapshot".to_owned(), "restore_snapshot=True".to_owned()),
    };
    say(format!("`{cli}`"), format!("`{python}`"))
}
