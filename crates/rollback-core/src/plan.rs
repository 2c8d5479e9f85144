//! Plans: the ordered, typed steps of a rollback or an undo. Pure data: building one changes
//! nothing, `--dry-run` prints one, and the journal stores the one a run executes.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backup::{Origin, SnapshotId};
use crate::db::{DowngradeStep, Revision};
use crate::env::EnvFileDiff;
use crate::model::DataLoss;
pub use crate::model::{Level, RunKind};
use crate::paths::RepoPath;
use crate::production::Release;
use crate::vcs::{Change, ChangeKind, CommitId, Head};

/// One path a snapshot captures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// The path.
    pub path: RepoPath,
    /// Why.
    pub origin: Origin,
}

/// One step, with the data it needs to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Capture every path the next steps change or delete, plus the index, into the backup
    /// store; verify it; pin HEAD with a ref so `git gc` keeps it.
    Snapshot {
        /// Paths to capture.
        capture: Vec<Capture>,
    },
    /// Move the branch, index and work tree to `target`.
    Reset {
        /// The commit.
        target: CommitId,
        /// The branch to be on afterwards (`None`: stay detached).
        branch: Option<String>,
        /// Tracked paths that differ between HEAD and `target`.
        changes: Vec<Change>,
        /// Untracked or ignored entries in the way of paths `target` tracks: removed (they are
        /// in the snapshot) before the reset, so both git backends behave the same.
        clear_way: Vec<RepoPath>,
        /// Tracked files with uncommitted changes that the reset overwrites (in the snapshot).
        discards: Vec<RepoPath>,
        /// Paths the reset leaves as they are: the registry and the configuration file, which
        /// a rollback keeps with their content from before it, whether the target changes
        /// them (then also in `changes`) or they have uncommitted edits (then not in
        /// `discards`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<RepoPath>,
    },
    /// Delete untracked files (all captured in the snapshot), then the folders they leave
    /// empty.
    RemoveUntracked {
        /// The files, as planned.
        paths: Vec<RepoPath>,
        /// Whether the list is computed again after the reset (undo: what is untracked depends
        /// on the commit restored).
        recompute: bool,
    },
    /// Remove caches (`__pycache__`, `*.pyc`, configured globs) outside skipped folders. Not
    /// snapshotted.
    ClearCaches {
        /// What matches now (found again when the step runs).
        found: Vec<RepoPath>,
    },
    /// Write back every file the snapshot recorded (bytes, mode, symlink target, absence).
    RestoreFiles {
        /// The snapshot restored.
        snapshot: SnapshotId,
        /// Number of entries.
        entries: usize,
    },
    /// Write back the index recorded by the snapshot (staged changes).
    RestoreIndex {
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// Dump the database into the backup store (SQLite online backup + integrity check,
    /// `pg_dump -Fc`) and verify it: a failed downgrade and `undo` restore it.
    DbSnapshot {
        /// The database, password removed.
        database: String,
        /// Its revisions when planned.
        revisions: Vec<Revision>,
    },
    /// Downgrade the schema with the migration files in the work tree as they are now (they
    /// hold the downgrade code), before the code moves. On failure the database is restored
    /// from the snapshot and the code is left untouched.
    Downgrade {
        /// The database, password removed.
        database: String,
        /// `alembic` or `sql`.
        migrator: String,
        /// Revisions now.
        from: Vec<Revision>,
        /// The target commit's head revisions.
        to: Vec<Revision>,
        /// The migrations undone, in order.
        path: Vec<DowngradeStep>,
        /// The SQL it runs, where it can be shown (plans and dry runs only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sql: Option<String>,
    },
    /// Write back the env files recorded with the target commit (`known-good mark`).
    RestoreEnv {
        /// The target commit.
        commit: CommitId,
        /// The env record used; `None`: none was recorded, the files stay as they are.
        record: Option<SnapshotId>,
        /// Per file, the keys that change (names only).
        diffs: Vec<EnvFileDiff>,
    },
    /// Put the database back exactly as a snapshot recorded (undo of a full rollback whose
    /// database did not change since, or `--restore-snapshot`).
    RestoreDatabase {
        /// The snapshot holding the dump.
        snapshot: SnapshotId,
        /// The database, password removed.
        database: String,
        /// First write the database as it is now (the undo's own `db_snapshot`) to a file in
        /// the state folder and say where (`--restore-snapshot`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_current: bool,
        /// Restore only if the database still has this fingerprint (the one the run recorded
        /// after its downgrade, which the undo found unchanged when it chose to restore),
        /// checked under the lock the restore writes under: rows the app committed since are
        /// never overwritten; the step fails instead, the database unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unchanged_since: Option<crate::model::DbFingerprint>,
    },
    /// Bring the schema forward with the migration files just restored (undo of a full
    /// rollback whose database changed since): an upgrade, so the rows written since stay.
    UpgradeDatabase {
        /// The database, password removed.
        database: String,
        /// Revisions now.
        from: Vec<Revision>,
        /// The revisions the run's database snapshot was at.
        to: Vec<Revision>,
        /// What the upgrade drops of the database as it is (rehearsed on a copy before the
        /// undo): values written while rolled back into columns the newer schema lacks.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        drops: Vec<DataLoss>,
    },
    /// Put back, from the run's database snapshot, the tables and column values its downgrade
    /// dropped: rows of whole tables that are not there, column values matched by primary key.
    /// One transaction; running it again changes nothing more.
    PutBackRows {
        /// The run's database snapshot.
        snapshot: SnapshotId,
        /// The database, password removed.
        database: String,
        /// What goes back, with the snapshot's counts.
        losses: Vec<DataLoss>,
        /// The revisions the run's downgrade went to, when it deleted rows from tables that
        /// stay (`LossKind::Removed` losses): it runs again on a second copy of the snapshot,
        /// and the rows that copy no longer has are the ones to put back. Empty otherwise.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deleted_at: Vec<crate::db::Revision>,
        /// SQLite: the `AUTOINCREMENT` tables whose counter is below the snapshot's once the
        /// schema is where it goes (rehearsed on a copy): moved up, even with no row to put back
        /// (a downgrade or upgrade that rebuilt the table lowered it). The put-back moves up
        /// every counter below the snapshot's; these are the ones the plan knew of.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        counters: Vec<String>,
    },
    /// Run the `[[restart]]` commands in order, each followed by its readiness wait.
    Restart {
        /// Their names.
        steps: Vec<String>,
        /// Their commands, for people.
        commands: Vec<String>,
    },
    /// Deploy the rolled-back code (`[deploy]`): push, revert commit, deploy hook.
    Deploy {
        /// `none`, `push` or `revert-commit`.
        strategy: String,
        /// The remote, for push strategies.
        remote: Option<String>,
        /// The remote branch, for push strategies.
        branch: Option<String>,
        /// Whether a deploy hook is called (its URL is a secret and never shown).
        hook: bool,
        /// `revert-commit`: the tool's files (registry, configuration file) that the pushed
        /// commit has as the commit production runs has them, not as the target has them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<RepoPath>,
    },
    /// Make an earlier release live on the production target (a [`crate::production::Deployer`])
    /// and wait until it serves. Both ids are in the plan, so a resumed run and an undo know
    /// them after a crash.
    Promote {
        /// The target, in one line.
        production: String,
        /// The release live when the run was planned (an undo promotes it again).
        from: Release,
        /// The release to make live.
        to: Release,
        /// Then turn the platform's automatic deploys off (`false`: the freeze after a
        /// rollback) or back on (`true`: the undo of a run that froze them); absent: leave them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        autodeploy: Option<bool>,
    },
    /// Run the `[[checks]]`, concurrently; a failure makes the run `verification_failed`.
    Verify {
        /// The checks' names.
        checks: Vec<String>,
    },
    /// Write the run's outcome; the completion marker.
    Record,
}

impl Step {
    /// The step's machine name (`snapshot`, `reset`, ...): journals, failpoints, JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Snapshot { .. } => "snapshot",
            Step::Reset { .. } => "reset",
            Step::RemoveUntracked { .. } => "remove_untracked",
            Step::ClearCaches { .. } => "clear_caches",
            Step::RestoreFiles { .. } => "restore_files",
            Step::RestoreIndex { .. } => "restore_index",
            Step::DbSnapshot { .. } => "db_snapshot",
            Step::Downgrade { .. } => "downgrade",
            Step::RestoreEnv { .. } => "restore_env",
            Step::RestoreDatabase { .. } => "restore_database",
            Step::UpgradeDatabase { .. } => "upgrade_database",
            Step::PutBackRows { .. } => "put_back_rows",
            Step::Restart { .. } => "restart",
            Step::Deploy { .. } => "deploy",
            Step::Promote { .. } => "promote",
            Step::Verify { .. } => "verify",
            Step::Record => "record",
        }
    }

    /// Whether manual mode may skip it: the snapshots every later step relies on, and the
    /// final record, may not be skipped.
    pub fn skippable(&self) -> bool {
        !matches!(self, Step::Snapshot { .. } | Step::DbSnapshot { .. } | Step::Record)
    }

    /// More than [`Step::files`]: the SQL, commands and checks a step runs, line by line, for
    /// plans and manual approval.
    pub fn details(&self) -> Vec<String> {
        let revs = |r: &[Revision]| {
            if r.is_empty() {
                "base (no migration)".to_owned()
            } else {
                r.iter().map(Revision::as_str).collect::<Vec<_>>().join(", ")
            }
        };
        match self {
            Step::DbSnapshot { database, revisions } => {
                vec![format!("database {database} at {}", revs(revisions))]
            }
            Step::Downgrade { database, migrator, from, to, path, sql } => {
                let mut v = vec![format!("{migrator} downgrade of {database}: {} -> {}", revs(from), revs(to))];
                for p in path {
                    let warn = p.irreversible.as_ref().map(|r| format!("  IRREVERSIBLE: {r}")).unwrap_or_default();
                    v.push(format!("undo {} {} ({}){warn}", p.revision, p.description, p.path));
                }
                if let Some(sql) = sql {
                    v.push("SQL:".into());
                    v.extend(sql.lines().map(|l| format!("  {l}")));
                }
                v
            }
            Step::RestoreEnv { record, diffs, .. } => {
                let mut v = Vec::new();
                if record.is_none() {
                    v.push("no env recorded for the target: env files are left as they are".into());
                }
                for d in diffs {
                    let mut parts = Vec::new();
                    if d.only_now {
                        parts.push("remove the file".to_owned());
                    }
                    if d.only_recorded {
                        parts.push("create the file".to_owned());
                    }
                    for (what, keys) in [("add", &d.added), ("remove", &d.removed), ("change", &d.changed)] {
                        if !keys.is_empty() {
                            parts.push(format!("{what} {}", keys.join(", ")));
                        }
                    }
                    if d.content_differs {
                        parts.push("put back its recorded bytes (they differ, no key does)".to_owned());
                    }
                    v.push(format!("{}: {}", d.file, parts.join("; ")));
                }
                v
            }
            Step::Restart { steps, commands } => steps.iter().zip(commands).map(|(n, c)| format!("{n}: {c}")).collect(),
            Step::Deploy { strategy, remote, branch, hook, kept } => {
                let mut v = Vec::new();
                if strategy != "none" && remote.is_some() {
                    v.push(format!(
                        "{strategy} to {} branch {}",
                        remote.as_deref().unwrap_or("origin"),
                        branch.as_deref().unwrap_or("(the rolled-back branch)")
                    ));
                }
                if !kept.is_empty() {
                    let paths: Vec<String> = kept.iter().map(|p| format!("`{p}`")).collect();
                    let it = if kept.len() == 1 { "it" } else { "them" };
                    v.push(format!(
                        "the rollback commit has the target's files, but keeps {} as production's commit has {it}",
                        paths.join(", ")
                    ));
                }
                if *hook {
                    v.push("POST the deploy hook (URL not shown: it is a secret)".into());
                }
                v
            }
            Step::Promote { production, from, to, autodeploy } => {
                let mut v = vec![format!("{production}: {from} -> {to}")];
                match autodeploy {
                    Some(false) => v.push("then turn automatic deploys off (undo turns them back on)".to_owned()),
                    Some(true) => v.push("then turn automatic deploys back on".to_owned()),
                    None => {}
                }
                v
            }
            Step::Verify { checks } => checks.iter().map(|c| format!("check {c}")).collect(),
            _ => Vec::new(),
        }
    }

    /// One line for people.
    pub fn title(&self) -> String {
        match self {
            Step::Snapshot { capture } => {
                format!("snapshot {} path(s) and the index into the backup store, verify it", capture.len())
            }
            Step::Reset { target, branch, changes, .. } => match branch {
                Some(b) => format!(
                    "move branch `{b}`, index and work tree to {} ({} tracked path(s) change)",
                    target.short(),
                    changes.len()
                ),
                None => format!(
                    "move detached HEAD, index and work tree to {} ({} tracked path(s) change)",
                    target.short(),
                    changes.len()
                ),
            },
            Step::RemoveUntracked { paths, recompute } => {
                if *recompute {
                    format!("remove untracked files the restored commit does not have (now {})", paths.len())
                } else {
                    format!("remove {} untracked file(s)", paths.len())
                }
            }
            Step::ClearCaches { found } => format!("clear caches ({} found now)", found.len()),
            Step::RestoreFiles { snapshot, entries } => format!("restore {entries} path(s) from backup {snapshot}"),
            Step::RestoreIndex { snapshot } => format!("restore the index (staged changes) from backup {snapshot}"),
            Step::DbSnapshot { database, .. } => {
                format!("snapshot database {database} into the backup store, verify it")
            }
            Step::Downgrade { database, path, .. } => {
                format!("downgrade database {database}: undo {} migration(s) with the current files", path.len())
            }
            Step::RestoreEnv { record, diffs, .. } => match record {
                Some(r) => {
                    format!("restore env files recorded with the target (record {r}; {} file(s) differ)", diffs.len())
                }
                None => "restore env files: none recorded for the target, left as they are".into(),
            },
            Step::RestoreDatabase { snapshot, database, keep_current, .. } => {
                format!(
                    "restore database {database} from backup {snapshot}{}",
                    if *keep_current { " (its state now dumped into the state folder first)" } else { "" }
                )
            }
            Step::UpgradeDatabase { database, from, to, drops } => format!(
                "upgrade database {database} from {} to {} with the restored migration files{}",
                crate::db::show_revisions(from),
                crate::db::show_revisions(to),
                if drops.is_empty() {
                    String::new()
                } else {
                    format!(" (it drops {})", crate::db::rows::describe(drops))
                }
            ),
            Step::PutBackRows { snapshot, losses, counters, .. } => format!(
                "put back {} from backup {snapshot}",
                crate::db::rows::with_counters(
                    (!losses.is_empty()).then(|| crate::db::rows::describe(losses)),
                    counters
                )
            ),
            Step::Restart { steps, .. } => format!("restart services ({} step(s))", steps.len()),
            Step::Deploy { strategy, hook, .. } => {
                format!("deploy ({strategy}{})", if *hook { ", deploy hook" } else { "" })
            }
            Step::Promote { production, from, to, autodeploy } => {
                let then = match autodeploy {
                    Some(false) => "; then turn automatic deploys off",
                    Some(true) => "; then turn automatic deploys back on",
                    None => "",
                };
                format!("production: {production}, {from} -> {to}; wait until it serves{then}")
            }
            Step::Verify { checks } => format!("verify services ({} check(s), concurrently)", checks.len()),
            Step::Record => "record the outcome".into(),
        }
    }

    /// The files this step touches, with what it does to each.
    pub fn files(&self) -> Vec<(String, &RepoPath)> {
        match self {
            Step::Snapshot { capture } => capture
                .iter()
                .map(|c| {
                    let why = match c.origin {
                        Origin::Tracked => "capture (modified)",
                        Origin::Untracked => "capture (untracked)",
                        Origin::Ignored => "capture (ignored)",
                        Origin::Env => "capture (env file)",
                    };
                    (why.to_owned(), &c.path)
                })
                .collect(),
            Step::Reset { changes, clear_way, discards, kept, .. } => {
                let mut v: Vec<(String, &RepoPath)> =
                    clear_way.iter().map(|p| ("clear the way".to_owned(), p)).collect();
                v.extend(discards.iter().map(|p| ("discard local changes".to_owned(), p)));
                // Kept with their local edits, though the target does not change them.
                v.extend(
                    kept.iter()
                        .filter(|p| !changes.iter().any(|c| &c.path == *p))
                        .map(|p| ("keep (not reset)".to_owned(), p)),
                );
                v.extend(changes.iter().map(|c| {
                    if kept.contains(&c.path) {
                        return ("keep (not reset)".to_owned(), &c.path);
                    }
                    let what = match c.kind {
                        // `changes` are HEAD → target: "added" means the target has it.
                        ChangeKind::Added => "add",
                        ChangeKind::Deleted => "delete",
                        ChangeKind::Modified => "update",
                        ChangeKind::TypeChanged => "replace",
                    };
                    (what.to_owned(), &c.path)
                }));
                v
            }
            Step::RemoveUntracked { paths, .. } => paths.iter().map(|p| ("remove".to_owned(), p)).collect(),
            Step::ClearCaches { found } => found.iter().map(|p| ("clear".to_owned(), p)).collect(),
            _ => Vec::new(),
        }
    }
}

/// An ordered list of steps and what they move between.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Rollback or undo.
    pub kind: RunKind,
    /// The level (rollbacks).
    pub level: Option<Level>,
    /// The work tree.
    #[serde(with = "crate::paths::os_path")]
    pub workdir: PathBuf,
    /// The git backend (`git2`, `git-cli`).
    pub backend: String,
    /// Where HEAD is now.
    pub from: Head,
    /// The commit the run moves to.
    pub to: CommitId,
    /// Its summary line.
    pub to_summary: String,
    /// For an undo: the run undone.
    pub undo_of: Option<String>,
    /// The steps, in order. The lock is taken before the first and released after the last.
    pub steps: Vec<Step>,
    /// What the database downgrade would destroy in the live database (empty when nothing, or
    /// when the plan has no downgrade).
    #[serde(default)]
    pub data_loss: Vec<DataLoss>,
    /// Risks found while planning: a data-loss forecast that could not be made
    /// (`data_loss_unknown`), a production target's, untracked dependencies the run removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<crate::model::Risk>,
}

/// Most files listed per step in human output (JSON lists all).
pub const FILES_SHOWN: usize = 20;

impl Plan {
    /// The revisions the plan's downgrade step takes the database to (`None`: no downgrade).
    pub fn downgrade_to(&self) -> Option<&[crate::db::Revision]> {
        self.steps.iter().find_map(|s| match s {
            Step::Downgrade { to, .. } => Some(to.as_slice()),
            _ => None,
        })
    }

    /// The plan as text for people: numbered steps, each with the files it touches.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let what = match (self.kind, self.level) {
            (RunKind::Rollback, Some(l)) => format!("{l} rollback"),
            (RunKind::Rollback, None) => "rollback".into(),
            (RunKind::Undo, _) => format!("undo of run {}", self.undo_of.as_deref().unwrap_or("?")),
        };
        let branch = self.from.branch.as_deref().map_or_else(|| "detached HEAD".to_owned(), |b| format!("branch {b}"));
        let _ = writeln!(out, "Plan: {what} of {}", self.workdir.display());
        let _ = writeln!(out, "  from {} ({branch})", self.from.commit.short());
        let _ = writeln!(out, "  to   {} {}", self.to.short(), self.to_summary);
        if self.steps.iter().any(|s| matches!(s, Step::Downgrade { .. }))
            && !self.risks.iter().any(|r| r.code == crate::model::RiskCode::DataLossUnknown)
        {
            let _ = writeln!(out, "  the downgrade destroys: {}", crate::db::rows::describe(&self.data_loss));
        }
        for r in &self.risks {
            let _ = writeln!(out, "  risk {}: {}", r.code, r.message);
        }
        let _ = writeln!(out, "  0. take the run lock");
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", i + 1, step.title());
            for line in step.details() {
                let _ = writeln!(out, "       {line}");
            }
            let files = step.files();
            for (action, path) in files.iter().take(FILES_SHOWN) {
                let _ = writeln!(out, "       {action:<22} {path}");
            }
            if files.len() > FILES_SHOWN {
                let _ = writeln!(out, "       … and {} more (see --json)", files.len() - FILES_SHOWN);
            }
        }
        let _ = writeln!(out, "  {}. release the run lock", self.steps.len() + 1);
        out
    }

    /// The snapshot step's captures, if the plan has one.
    pub fn captures(&self) -> &[Capture] {
        self.steps
            .iter()
            .find_map(|s| match s {
                Step::Snapshot { capture } => Some(capture.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}
