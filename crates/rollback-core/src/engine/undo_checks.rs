//! What an undo checks before it changes anything: that its reset can be made, the database
//! answers, there is room for the files, HEAD is where the run left it, and its backup is
//! still there. Each refuses (exit 4) with nothing changed. And what it says without refusing:
//! the env files changed since the run left them, which it puts back over those edits.

use std::collections::BTreeMap;

use super::{Ctx, Exec, Rollback, planner};
use crate::backup::{EntryKind, Manifest};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::hint::{Action, hint};
use crate::journal::{RunState, RunStatus};
use crate::paths::RepoPath;
use crate::plan::Step;
use crate::vcs::CommitId;

impl Rollback {
    /// The env files of `restored` (run `run`'s snapshot) changed since `run` left them, that
    /// the undo puts the content from before the run back over ([`crate::env::edited_since`]);
    /// `is_now` tells what a file holds now. What the run wrote there comes from the steps of
    /// it that wrote env files: its `restore_env` (the record of the target's env), or, for an
    /// undo, its `restore_files`. A record that cannot be read any more is an error: what the
    /// run wrote from it is not known.
    pub(super) fn env_edited_since(
        &self,
        run: &RunState,
        restored: &Manifest,
        is_now: &dyn Fn(&RepoPath, &EntryKind) -> bool,
    ) -> Result<Vec<RepoPath>> {
        let records = self.env_records(&run.plan)?;
        let env = super::recapture::env_entries(restored, records.iter().map(|(_, m)| m));
        if env.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.store()?;
        let mut left: BTreeMap<RepoPath, EntryKind> = BTreeMap::new();
        for (i, step) in run.plan.steps.iter().enumerate() {
            if !run.step_changed(i) {
                continue;
            }
            if let Some((_, record)) = records.iter().find(|(at, _)| *at == i) {
                left.extend(record.entries.iter().map(|e| (e.path.clone(), e.kind.clone())));
            } else if let Step::RestoreFiles { snapshot: id, .. } = step {
                left.extend(store.manifest(id)?.entries.into_iter().map(|e| (e.path, e.kind)));
            }
        }
        Ok(crate::env::edited_since(restored, &env, &left, is_now))
    }

    /// Before an undo's `restore_files` writes back `restored`: a warning (in the undo's
    /// output, result and report) for each env file changed since the run left it (a secret
    /// rotated while rolled back), naming the file, the undo's own snapshot that keeps the
    /// changed version, and how to get it back. The undo goes on: the env of the release it
    /// returns to is what the operator asked for. What each file holds now is read from the
    /// undo's own snapshot, taken before anything changed.
    pub(crate) fn warn_env_edited_since(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, restored: &Manifest) {
        let Some(run_id) = ex.plan.undo_of.clone() else { return };
        let workdir = self.workdir();
        let found = self.own_manifest(ex).and_then(|own| {
            let run = self.load_run(&run_id)?;
            let now = |p: &RepoPath| own.entry(p).map(|o| o.kind.clone());
            let is_now = |p: &RepoPath, k: &EntryKind| match now(p) {
                Some(o) => crate::env::same_content(&o, k),
                None => crate::env::holds(workdir, p, k),
            };
            let files = self.env_edited_since(&run, restored, &is_now)?;
            let files: Vec<(Option<EntryKind>, RepoPath)> = files.into_iter().map(|f| (now(&f), f)).collect();
            Ok((own.id.clone(), files))
        });
        let (own, files) = match found {
            Ok(found) => found,
            Err(e) => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "could not tell whether env files were changed since run {run_id} left them ({}); this undo's snapshot keeps them as they were before it",
                        e.chain()
                    ),
                );
                return;
            }
        };
        for (now, file) in files {
            let (changed, kept) = match now {
                Some(EntryKind::File { blob, .. }) => {
                    let at = match self.store().ok().and_then(|s| s.blob_file(&blob)) {
                        Some(file) => format!("file `{}`", file.display()),
                        None => format!("blob {blob}"),
                    };
                    ("was changed", format!("the changed version is kept in backup {own}, this undo's snapshot ({at})"))
                }
                Some(EntryKind::Absent) => {
                    ("was removed", format!("backup {own}, this undo's snapshot, records it as absent"))
                }
                _ => ("was changed", format!("the changed version is kept in backup {own}, this undo's snapshot")),
            };
            ctx.log_hint(
                LogLevel::Warn,
                format!(
                    "env file `{file}` {changed} since run {run_id} left it: this undo puts back the version from before that run; {kept}"
                ),
                Some(hint!["undoing this undo brings it back (", Action::undo(&ex.run_id), ")"]),
            );
        }
    }
}

/// Why the undo's reset back to the snapshot's commit cannot go ahead: a nested repository in
/// its way, or a file the back-end would have to write through a filter program it cannot run.
pub(super) fn refuse_reset(rb: &Rollback, plan: &crate::plan::Plan, manifest: &Manifest) -> Option<Error> {
    let changes = Rollback::reset_changes(plan);
    planner::refuse_nested_repos(rb.workdir(), changes, "state being restored")
        .or_else(|| {
            let paths: Vec<&crate::paths::RepoPath> = changes.iter().map(|c| &c.path).collect();
            planner::refuse_filters(rb.vcs.as_ref(), &manifest.head, &paths)
        })
        // What the run's own checks found for its reset, for the undo's: a hook or a setting
        // that came since the run would otherwise stop the undo after its snapshot.
        .or_else(|| {
            // HEAD that cannot be read is said, not taken for "nothing to check".
            let head = match rb.vcs.head() {
                Ok(h) => h,
                Err(e) => return Some(e.into()),
            };
            super::refuse::checkout::refuse_case_twins(rb.vcs.as_ref(), &[&head.commit, &manifest.head]).or_else(|| {
                super::refuse::checkout::refuse_hooked_move(rb.vcs.as_ref(), head.branch.as_deref(), &manifest.head)
            })
        })
}

/// Refuses the undo of a run that changed the database, before anything changes, when the
/// database does not answer: a server down or a wrong URL, or a lock another connection held
/// for all of `database.timeout_secs` (the same refusal as a full run's, exit 4).
pub(super) fn refuse_db_unreachable(db: &dyn crate::db::DbMigrator, run_id: &str) -> Result<()> {
    // A SQLite file deleted while rolled back is not refused here: the undo's own database
    // snapshot fails on it, and `touch` then `resume` restores the run's snapshot.
    if !db.database().exists() {
        return Ok(());
    }
    let e = match crate::rt::block_on(db.database().ping()) {
        Ok(_) => return Ok(()),
        Err(e @ (crate::db::Error::Unreachable { .. } | crate::db::Error::Locked { .. })) => e,
        Err(e) => return Err(e.into()),
    };
    let locked = matches!(e, crate::db::Error::Locked { .. });
    Err(Error::refused(
        format!(
            "the database {} cannot be reached: the undo of run {run_id} needs it ({e}); nothing was changed",
            db.database().describe()
        ),
        Some(if locked {
            crate::hint::hint![
                "find what holds the lock (a migration or a long transaction of the app: `fuser` on a SQLite file, `pg_locks` on PostgreSQL), let it finish or stop it, then ",
                crate::hint::Action::undo(run_id),
                " again"
            ]
        } else {
            crate::hint::hint![
                "bring the database back (check that it is up and the URL and credentials are right), then ",
                crate::hint::Action::undo(run_id),
                " again"
            ]
        }),
    ))
}

/// Refuses the undo when a path it writes (a file of the snapshot, one its reset changes) or
/// a folder holding one is immutable or append-only, or when this user may not write such a
/// folder: the undo would stop half-way on it.
pub(super) fn refuse_locked_paths(rb: &Rollback, run_id: &str, manifest: &Manifest) -> Result<()> {
    let mut paths: Vec<crate::paths::RepoPath> = manifest.entries.iter().map(|e| e.path.clone()).collect();
    let head = rb.vcs.head()?.commit;
    if head != manifest.head {
        paths.extend(rb.vcs.diff(&head, &manifest.head)?.into_iter().map(|c| c.path));
    }
    let what = format!("undo of run {run_id}");
    let locked = crate::immutable::locked(rb.workdir(), &paths);
    crate::immutable::refusal(&what, &locked).map_or(Ok(()), Err)?;
    let unwritable = crate::unwritable::unwritable(rb.workdir(), &paths);
    crate::unwritable::refusal(&what, &unwritable).map_or(Ok(()), Err)
}

/// Refuses the undo before anything changes when the work tree's file system has no room for
/// what it writes (an undo that ran out of space after moving HEAD would leave the tree between
/// two states): the bytes of the files it writes back, of the tracked files its reset writes
/// (the blobs of the snapshot's commit that differ from HEAD's, less what they replace), and of
/// the index (written whole before it replaces the old one); and an inode for each file,
/// symlink and folder made where nothing is. A checkout filter that makes a file bigger than
/// its blob (git LFS: a pointer of a hundred bytes for a file of gigabytes) is not counted.
pub(super) fn refuse_no_space(rb: &Rollback, run_id: &str, manifest: &Manifest) -> Result<()> {
    use crate::backup::snapshot::{free_inodes, free_space, inodes_needed, space_needed};
    let workdir = rb.workdir();
    let files = space_needed(workdir, &manifest.entries);
    let mut inodes = inodes_needed(workdir, &manifest.entries);
    let head = rb.vcs.head()?.commit;
    // Counted whole even where the snapshot holds the path too: git writes its version first,
    // and the restore's temp file sits next to it until the rename.
    let mut tracked = 0u64;
    if head != manifest.head {
        let (bytes, made) = super::refuse::room::checkout_needs(
            rb.vcs.as_ref(),
            workdir,
            &manifest.head,
            &rb.vcs.diff(&head, &manifest.head)?,
        );
        tracked = bytes;
        inodes += made;
    }
    // A split index's shared index file counts too: the undo may have to write it back.
    let index = match &manifest.index {
        Some(i) => {
            let store = rb.store()?;
            let size = |b: &crate::backup::BlobId| Ok::<_, Error>(store.blob_stat(b)?.map_or(0, |s| s.size));
            size(&i.blob)? + i.shared.as_ref().map_or(Ok(0), |s| size(&s.blob))?
        }
        None => 0,
    };
    let needed = files + tracked + index;
    let hint = |what: String| -> Option<crate::hint::Hint> {
        Some(format!("free {what} there, then run the undo again; nothing was changed").into())
    };
    let available = free_space(workdir)?;
    if needed > available {
        return Err(Error::refused(
            format!(
                "undo of run {run_id} needs {needed} byte(s) free ({files} for the files it writes back, {tracked} for the tracked files git writes, {index} for the index), but `{}` has {available} byte(s) free",
                workdir.display()
            ),
            hint(format!("at least {} byte(s)", needed - available)),
        ));
    }
    if let Some(free) = free_inodes(workdir)?
        && inodes > free
    {
        return Err(Error::refused(
            format!(
                "undo of run {run_id} makes {inodes} file(s), symlink(s) and folder(s) where none is, but `{}` can hold only {free} more (it runs out of inodes)",
                workdir.display()
            ),
            hint(format!("at least {} inode(s) (delete files)", inodes - free)),
        ));
    }
    Ok(())
}

/// Refuses the undo when a blob of `snapshot`, the backup it writes the files back from, is
/// missing or corrupt: found by `restore_files` instead, it would leave the tree half-way,
/// HEAD already moved. Every blob is re-hashed.
pub(super) fn refuse_damaged_backup(rb: &Rollback, snapshot: &crate::backup::SnapshotId, what: &str) -> Result<()> {
    let report = rb.store()?.verify(Some(std::slice::from_ref(snapshot)))?;
    if let Some(first) = report.problems.first() {
        let more = match report.problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(Error::refused(
            format!("backup {snapshot}, which the undo restores {what} from, is damaged: {first}{more}"),
            Some(crate::hint::hint![
                "nothing was changed; ",
                crate::hint::Action::VerifyBackup { id: snapshot.to_string() },
                " lists every problem: put the state folder's `backups/` back from a copy (a file-system snapshot, a backup of the server) and undo again"
            ]),
        ));
    }
    Ok(())
}

impl Rollback {
    /// Refuses the undo of `run` when HEAD is not where the run left it (the commit its reset
    /// moved to, or where it started if it never moved HEAD), unless only commits made since
    /// lie on top of it (those are kept on a branch, [`Self::keep_commits_made_since`]):
    /// another rollback or undo (or git) moved HEAD since, and moving the branch back to where
    /// the run started would take the newer state off it, with nothing to say so.
    pub(super) fn refuse_head_moved_since(&self, run: &RunState, manifest: &Manifest, head: &CommitId) -> Result<()> {
        let reset = run.plan.steps.iter().enumerate().find_map(|(i, s)| match s {
            Step::Reset { target, .. } => Some((i, target)),
            _ => None,
        });
        let left = match reset {
            Some((i, to)) if run.step_changed(i) => {
                // A reset that did not finish may have left HEAD where it was.
                if run.step_status(i) != "done" && *head == run.plan.from.commit {
                    return Ok(());
                }
                to.clone()
            }
            _ => run.plan.from.commit.clone(),
        };
        if *head == left
            || (self.vcs.is_ancestor(&left, head).unwrap_or(false)
                && !self.commits_made_since(run, &manifest.head, head)?.is_empty())
        {
            return Ok(());
        }
        let run_id = run.run_id.as_str();
        let mut later: Vec<_> = self
            .runs()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.order() > run.order() && r.status != RunStatus::Undone)
            .collect();
        later.sort_by(|a, b| b.order().cmp(&a.order()));
        let message = format!(
            "HEAD is at {}, not where run {run_id} left it ({}): {} moved it since, and undoing run {run_id} now would move the branch back to {} from where that left it; nothing was changed",
            head.short(),
            left.short(),
            match later.as_slice() {
                [] => "something other than forge-rollback (git)".to_owned(),
                [one] => format!("another rollback or undo (run {})", one.run_id),
                many => format!(
                    "other rollbacks or undos (runs {})",
                    many.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
            manifest.head.short()
        );
        let hint = match later.first() {
            Some(newest) => crate::hint::hint![
                "undo the later runs first, newest first (",
                crate::hint::Action::undo(&newest.run_id),
                format!("), until HEAD is back at {}; then undo this run", left.short())
            ],
            None => format!(
                "if HEAD belongs where run {run_id} left it, move it back to {} (`git reset --keep {}` on the branch), then undo again",
                left.short(),
                left.short()
            )
            .into(),
        };
        Err(Error::refused(message, Some(hint)))
    }

    /// The manifest of snapshot `id`, which run `run_id` is undone from; a snapshot gone from
    /// the store (`backups prune` removed it, or it was deleted) refuses the undo: nothing
    /// can put the run's state back any more.
    pub(super) fn run_manifest(&self, run_id: &str, id: &crate::backup::SnapshotId) -> Result<Manifest> {
        match self.store()?.manifest(id) {
            Err(crate::backup::Error::UnknownSnapshot { .. }) => Err(Error::refused(
                format!(
                    "run {run_id} can no longer be undone: its backup {id} is gone from the store (pruned by `backups prune`, or removed); nothing was changed"
                ),
                Some(
                    "the state from before the run is in no backup any more: put the state folder's `backups/` back from a copy (a file-system snapshot, a backup of the server) and undo again, or restore that state by hand (the run's report names the commit it started from)"
                        .into(),
                ),
            )),
            other => Ok(other?),
        }
    }
}
