//! Hints say what to do next. The core keeps them as data ([`Hint`]: text and [`Action`]s)
//! and each front-end renders them in its own words ([`Hint::render`]): the CLI as commands
//! and `--flags`, the Python module as method calls and `param=` names. Nothing is decided
//! per process, so a Python program that also runs the CLI in-process (`forge_rollback.cli_main`,
//! `python -m forge_rollback`) gets each front-end's words from each. `Display` uses the
//! CLI's words, for logs and files read by operators.
//!
//! This module imports nothing of the crate: any module may use it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whose words a hint is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Frontend {
    /// `forge-rollback undo RUN`, `--full`.
    Cli,
    /// `undo("RUN")`, `level="full"`.
    Python,
}

/// `word` as one shell word, for a command in a hint: as it is when it is plain, else
/// single-quoted.
pub(crate) fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-+@,".contains(&b)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Something the caller can do, named the same way by every front-end.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Undo run `run_id`.
    Undo {
        /// The run.
        run_id: String,
    },
    /// Resume run `run_id`.
    Resume {
        /// The run.
        run_id: String,
    },
    /// Show the assessment.
    Assess,
    /// Mark `rev` verified known-good.
    MarkGood {
        /// The revision.
        rev: String,
    },
    /// Take `rev` out of the known-good registry.
    Unmark {
        /// The revision.
        rev: String,
    },
    /// Open a folder inside a git work tree.
    OpenWorkTree,
    /// Print a configuration with every key and its default (`preset`: one of `init`'s
    /// presets).
    PrintConfig {
        /// The preset, if any.
        preset: Option<String>,
    },
    /// Run without asking (`--yes`, `confirm=True`).
    Yes,
    /// The fast level (code only).
    Fast,
    /// The full level (code, schema, env).
    Full,
    /// Allow an irreversible downgrade.
    AllowIrreversible,
    /// Allow a target that is not an ancestor of HEAD.
    AllowNonAncestor,
    /// Roll back to `rev`.
    Target {
        /// The revision.
        rev: String,
    },
    /// Undo by restoring the database snapshot as it was, after keeping the database as it is.
    RestoreSnapshot,
    /// Re-hash the blobs of backup `id` and list what is missing or corrupt.
    VerifyBackup {
        /// The snapshot.
        id: String,
    },
    /// Mark known-good a commit marked known bad, lifting that mark.
    LiftBad,
    /// List the runs, with their ids.
    ListRuns,
    /// Write the commented default configuration to `path`.
    InitConfig {
        /// Where (the path a configuration was looked for at).
        path: String,
    },
    /// Use the configuration at another path.
    ConfigFile,
}

impl Action {
    /// Undo run `run_id`.
    pub fn undo(run_id: impl Into<String>) -> Self {
        Self::Undo { run_id: run_id.into() }
    }

    /// Resume run `run_id`.
    pub fn resume(run_id: impl Into<String>) -> Self {
        Self::Resume { run_id: run_id.into() }
    }

    /// The action in `frontend`'s words, in backticks (Markdown and terminals alike).
    pub fn render(&self, frontend: Frontend) -> String {
        let words = match frontend {
            Frontend::Cli => self.cli(),
            Frontend::Python => self.python(),
        };
        format!("`{words}`")
    }

    fn cli(&self) -> String {
        match self {
            Action::Undo { run_id } => format!("forge-rollback undo {run_id}"),
            Action::Resume { run_id } => format!("forge-rollback resume {run_id}"),
            Action::Assess => "forge-rollback assess".to_owned(),
            Action::MarkGood { rev } => format!("forge-rollback known-good mark {rev}"),
            Action::Unmark { rev } => format!("forge-rollback known-good unmark {rev}"),
            Action::OpenWorkTree => "-C DIR".to_owned(),
            Action::PrintConfig { preset } => print_config("forge-rollback", preset.as_deref()),
            Action::Yes => "--yes".to_owned(),
            Action::Fast => "--fast".to_owned(),
            Action::Full => "--full".to_owned(),
            Action::AllowIrreversible => "--allow-irreversible".to_owned(),
            Action::AllowNonAncestor => "--allow-non-ancestor".to_owned(),
            Action::Target { rev } => format!("--target {rev}"),
            Action::RestoreSnapshot => "--restore-snapshot".to_owned(),
            Action::VerifyBackup { id } => format!("forge-rollback backups verify {id}"),
            Action::LiftBad => "--lift-bad".to_owned(),
            Action::ListRuns => "forge-rollback runs list".to_owned(),
            Action::InitConfig { path } => format!("forge-rollback init --path {}", shell_word(path)),
            Action::ConfigFile => "--config FILE".to_owned(),
        }
    }

    fn python(&self) -> String {
        match self {
            Action::Undo { run_id } => format!("undo(\"{run_id}\")"),
            Action::Resume { run_id } => format!("resume(\"{run_id}\")"),
            Action::Assess => "assess()".to_owned(),
            Action::MarkGood { rev } => format!("known_good.mark(\"{rev}\")"),
            Action::Unmark { rev } => format!("known_good.unmark(\"{rev}\")"),
            Action::OpenWorkTree => "Rollback.open(\"/srv/app\")".to_owned(),
            // The module has no `init`: the command the wheel ships, through this Python.
            Action::PrintConfig { preset } => print_config("python -m forge_rollback", preset.as_deref()),
            Action::Yes => "confirm=True".to_owned(),
            Action::Fast => "level=\"fast\"".to_owned(),
            Action::Full => "level=\"full\"".to_owned(),
            Action::AllowIrreversible => "allow_irreversible=True".to_owned(),
            Action::AllowNonAncestor => "allow_non_ancestor=True".to_owned(),
            Action::Target { rev } => format!("target=\"{rev}\""),
            Action::RestoreSnapshot => "restore_snapshot=True".to_owned(),
            Action::VerifyBackup { .. } => "verify_backups()".to_owned(),
            Action::LiftBad => "lift_bad=True".to_owned(),
            Action::ListRuns => "runs()".to_owned(),
            // The module has no `init`: the command the wheel ships, through this Python.
            Action::InitConfig { path } => format!("python -m forge_rollback init --path {}", shell_word(path)),
            Action::ConfigFile => "Rollback.open(dir, config=\"FILE\")".to_owned(),
        }
    }
}

fn print_config(program: &str, preset: Option<&str>) -> String {
    match preset {
        Some(p) => format!("{program} init --preset {p} --print"),
        None => format!("{program} init --print"),
    }
}

/// One piece of a hint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Part {
    /// Words every front-end says alike.
    Text(String),
    /// Something to do, in the front-end's words.
    Action(Action),
}

impl From<&str> for Part {
    fn from(s: &str) -> Self {
        Part::Text(s.to_owned())
    }
}

impl From<String> for Part {
    fn from(s: String) -> Self {
        Part::Text(s)
    }
}

impl From<Action> for Part {
    fn from(a: Action) -> Self {
        Part::Action(a)
    }
}

/// What to do next: text and actions, rendered by each front-end ([`Hint::render`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hint(Vec<Part>);

impl Hint {
    /// A hint of these parts, in order.
    pub fn from_parts(parts: Vec<Part>) -> Self {
        Self(parts)
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.0
    }

    /// The actions the hint names, in order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.0.iter().filter_map(|p| match p {
            Part::Action(a) => Some(a),
            Part::Text(_) => None,
        })
    }

    /// The hint in `frontend`'s words.
    pub fn render(&self, frontend: Frontend) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Action(a) => a.render(frontend),
            })
            .collect()
    }
}

impl From<String> for Hint {
    fn from(s: String) -> Self {
        Self(vec![Part::Text(s)])
    }
}

impl From<&str> for Hint {
    fn from(s: &str) -> Self {
        Self(vec![Part::Text(s.to_owned())])
    }
}

impl From<Action> for Hint {
    fn from(a: Action) -> Self {
        Self(vec![Part::Action(a)])
    }
}

/// The CLI's words (for logs and files).
impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Frontend::Cli))
    }
}

/// A [`Hint`] of text (`&str`, `String`) and [`Action`] parts:
/// `hint!["fix it, then ", Action::resume(id)]`.
macro_rules! hint {
    ($($part:expr),* $(,)?) => {
        $crate::hint::Hint::from_parts(vec![$($crate::hint::Part::from($part)),*])
    };
}
pub(crate) use hint;

#[cfg(test)]
mod tests {
    use super::{Action, Frontend, Hint};

    #[test]
    fn each_front_end_renders_the_same_hint_in_its_own_words() {
        let h: Hint = hint![
            "finish it with ",
            Action::resume("r1"),
            " or put everything back with ",
            Action::undo("r1"),
            "; or pass ",
            Action::Target { rev: "v1".into() },
            " with ",
            Action::Full,
        ];
        assert_eq!(
            h.render(Frontend::Cli),
            "finish it with `forge-rollback resume r1` or put everything back with `forge-rollback undo r1`; \
             or pass `--target v1` with `--full`"
        );
        assert_eq!(
            h.render(Frontend::Python),
            "finish it with `resume(\"r1\")` or put everything back with `undo(\"r1\")`; \
             or pass `target=\"v1\"` with `level=\"full\"`"
        );
        assert_eq!(h.to_string(), h.render(Frontend::Cli));
        assert_eq!(h.actions().count(), 4);
    }

    #[test]
    fn a_hint_survives_json_as_data() {
        let h: Hint = hint!["run ", Action::undo("r2"), " now"];
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"[{"text":"run "},{"action":{"action":"undo","run_id":"r2"}},{"text":" now"}]"#);
        assert_eq!(serde_json::from_str::<Hint>(&json).unwrap(), h);
    }
}
