//! The plan of an undo: the steps that put back the state a run's backup holds, and how its
//! database goes back ([`DbUndoMode`], chosen by `db_undo`).

use std::collections::BTreeSet;

use super::planner::{Split, captures, service_steps, split, with_env_files};
use crate::backup::{EntryKind, Manifest, Origin};
use crate::config::Config;
use crate::paths::RepoPath;
use crate::plan::{Plan, RunKind, Step};
use crate::vcs::{CommitId, Head, VcsBackend};

/// A database snapshot an undo restores.
#[derive(Clone, Debug)]
pub struct DbRestore {
    /// The snapshot.
    pub snapshot: crate::backup::SnapshotId,
    /// The database, password removed.
    pub database: String,
    /// Its revisions now, for the undo's own snapshot.
    pub current: Vec<crate::db::Revision>,
    /// How it goes back.
    pub mode: DbUndoMode,
}

/// How an undo puts a database back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbUndoMode {
    /// Exactly as the snapshot holds it, byte for byte: nothing was written since the run
    /// (or `--restore-snapshot`, which first keeps the database as it is in a file:
    /// `keep_current`).
    Restore {
        /// Dump the database as it is now into the state folder first.
        keep_current: bool,
        /// The fingerprint the database had when the undo chose to restore it exactly; the
        /// restore checks it still has it (see [`Step::RestoreDatabase`]).
        unchanged_since: Option<crate::model::DbFingerprint>,
    },
    /// The database changed since the run: upgrade it to `to` with the restored migration
    /// files, then put back what the downgrade dropped (`losses`, counted in the snapshot).
    Forward {
        /// The snapshot's revisions.
        to: Vec<crate::db::Revision>,
        /// Tables and columns to put back.
        losses: Vec<crate::model::DataLoss>,
        /// What the upgrade itself drops of the database as it is now (rehearsed on a copy):
        /// values written while rolled back into columns the newer schema does not have.
        upgrade_drops: Vec<crate::model::DataLoss>,
        /// The revisions the run's downgrade went to, when it deleted rows from tables that
        /// stay (see `Step::PutBackRows::deleted_at`); empty otherwise.
        deleted_at: Vec<crate::db::Revision>,
        /// SQLite: the `AUTOINCREMENT` tables whose counter the upgrade leaves below the
        /// snapshot's (rehearsed on a copy): the put-back moves them up, and runs for them
        /// alone when nothing else goes back.
        counters: Vec<String>,
    },
    /// The undo of an undo that brought the schema forward, when the database changed since:
    /// downgrade it to `to` with the work tree's migration files (as a run does), then put
    /// back what that undo's upgrade dropped (`losses`, counted in the snapshot).
    Backward {
        /// The migrator, for the downgrade step.
        migrator: String,
        /// The snapshot's revisions.
        to: Vec<crate::db::Revision>,
        /// The migrations undone.
        path: Vec<crate::db::DowngradeStep>,
        /// Tables and columns to put back from the snapshot after the downgrade.
        losses: Vec<crate::model::DataLoss>,
        /// SQLite: the `AUTOINCREMENT` tables whose counter the downgrade leaves below the
        /// snapshot's (rehearsed on a copy), moved up as in `Forward`.
        counters: Vec<String>,
        /// What the downgrade's migrations left to know on the copy, as `downgrade_warning`
        /// risks (the plan's).
        warnings: Vec<crate::model::Risk>,
        /// What the downgrade drops of the database as it is now (rehearsed on a copy; kept
        /// in this undo's database snapshot).
        drops: Vec<crate::model::DataLoss>,
    },
}

/// The undo plan restoring `manifest` (taken by run `undo_of`) from the current state.
pub fn undo_plan(
    vcs: &dyn VcsBackend,
    config: &Config,
    checks: &[String],
    head: &Head,
    manifest: &Manifest,
    undo_of: &str,
    db: Option<&DbRestore>,
) -> crate::Result<Plan> {
    let workdir = vcs.workdir();
    let to: CommitId = manifest.head.clone();
    let changes = vcs.diff(&head.commit, &to)?;
    let status = vcs.status(true)?;
    let env_files: Vec<RepoPath> =
        manifest.entries.iter().filter(|e| e.origin == Origin::Env).map(|e| e.path.clone()).collect();
    let capture = with_env_files(captures(workdir, config, &status, &changes), &env_files);
    let Split { clear_way, discards, rest } = split(&capture, &changes, &status);
    let restored: BTreeSet<&RepoPath> =
        manifest.entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| &e.path).collect();
    let remove: Vec<RepoPath> = rest
        .into_iter()
        .filter(|c| c.origin == Origin::Untracked && !restored.contains(&c.path))
        .map(|c| c.path.clone())
        .collect();
    Ok(Plan {
        kind: RunKind::Undo,
        level: None,
        workdir: workdir.to_path_buf(),
        backend: vcs.name().into(),
        from: head.clone(),
        to: to.clone(),
        to_summary: vcs.commit_info(&to)?.summary,
        undo_of: Some(undo_of.to_owned()),
        steps: {
            let mut steps = vec![Step::Snapshot { capture }];
            let mut after_files = Vec::new();
            if let Some(db) = db {
                steps.push(Step::DbSnapshot { database: db.database.clone(), revisions: db.current.clone() });
                match &db.mode {
                    // A restore goes first, like a rollback's downgrade: a failure there leaves
                    // the code untouched.
                    DbUndoMode::Restore { keep_current, unchanged_since } => steps.push(Step::RestoreDatabase {
                        snapshot: db.snapshot.clone(),
                        database: db.database.clone(),
                        keep_current: *keep_current,
                        unchanged_since: unchanged_since.clone(),
                    }),
                    // A downgrade needs the newer migration files: it runs before they go.
                    DbUndoMode::Backward { migrator, to, path, losses, counters, .. } => {
                        steps.push(Step::Downgrade {
                            database: db.database.clone(),
                            migrator: migrator.clone(),
                            from: db.current.clone(),
                            to: to.clone(),
                            path: path.clone(),
                            sql: None,
                        });
                        if !losses.is_empty() || !counters.is_empty() {
                            steps.push(Step::PutBackRows {
                                snapshot: db.snapshot.clone(),
                                database: db.database.clone(),
                                losses: losses.clone(),
                                deleted_at: Vec::new(),
                                counters: counters.clone(),
                            });
                        }
                    }
                    // An upgrade needs the newer migration files: it runs once they are back.
                    DbUndoMode::Forward { to, losses, upgrade_drops, deleted_at, counters } => {
                        after_files.push(Step::UpgradeDatabase {
                            database: db.database.clone(),
                            from: db.current.clone(),
                            to: to.clone(),
                            drops: upgrade_drops.clone(),
                        });
                        // Also for counters alone: ids of rows deleted before the run are never
                        // handed out again.
                        if !losses.is_empty() || !counters.is_empty() {
                            after_files.push(Step::PutBackRows {
                                snapshot: db.snapshot.clone(),
                                database: db.database.clone(),
                                losses: losses.clone(),
                                deleted_at: deleted_at.clone(),
                                counters: counters.clone(),
                            });
                        }
                    }
                }
            }
            steps.extend([
                // The undo's restore puts back the tool's files as the snapshot holds them.
                Step::Reset {
                    target: to,
                    branch: manifest.branch.clone(),
                    changes,
                    clear_way,
                    discards,
                    kept: Vec::new(),
                },
                Step::RemoveUntracked { paths: remove, recompute: true },
                Step::RestoreFiles { snapshot: manifest.id.clone(), entries: manifest.entries.len() },
                Step::RestoreIndex { snapshot: manifest.id.clone() },
            ]);
            steps.extend(after_files);
            // The undo puts back the commit the run started from, tool files and all: its
            // deploy pushes that commit's tree exactly.
            steps.extend(service_steps(config, checks, Vec::new()));
            steps.push(Step::Record);
            steps
        },
        data_loss: match db.map(|d| &d.mode) {
            Some(DbUndoMode::Backward { drops, .. }) => drops.clone(),
            _ => Vec::new(),
        },
        risks: match db.map(|d| &d.mode) {
            Some(DbUndoMode::Backward { warnings, .. }) => warnings.clone(),
            _ => Vec::new(),
        }
        .into_iter()
        // The undo moves the branch back: a worktree that shares it is moved too.
        .chain(head.branch.as_deref().and_then(|b| super::refuse::checkout::branch_elsewhere(vcs, b, "the undo")))
        .collect(),
    })
}
