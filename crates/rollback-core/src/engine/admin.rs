//! The known-good registry, the backup store and the lock, as operators manage them.

use std::sync::Arc;

use super::Rollback;
use super::support::pin_ref;
use crate::backup::store::FsBackupStore;
use crate::backup::{self, BackupStore, SnapshotId};
use crate::error::{Error, Result};
use crate::gate::{self, Gate, GateArgs};
use crate::hint::{Action, hint};
use crate::lock::{self, LockHolder, RunLock};
use crate::paths::RepoPath;
use crate::registry::{MarkOutcome, Registry};
use crate::vcs::CommitId;
use crate::vcs::git2::BareRepo;

impl Rollback {
    // ----- known-good registry --------------------------------------------------------

    pub(crate) fn edit_registry(
        &self,
        rev: &str,
        f: impl FnOnce(&mut Registry, &CommitId) -> Result<MarkOutcome>,
    ) -> Result<MarkOutcome> {
        let id = self.vcs.resolve(rev)?;
        let path = self.registry_path();
        crate::failpoint::hit("before:registry-edit")?;
        Registry::locked(&path, || {
            let mut reg = Registry::load(&path)?;
            crate::failpoint::hit("after:registry-load")?;
            let out = f(&mut reg, &id)?;
            reg.save(&path)?;
            Ok(out)
        })
    }

    /// Marks `rev` verified known-good. When `rev` is HEAD, also records the `[env] files`
    /// with it (restored by a full rollback to it) and, with a `[database]`, fills the entry's
    /// `database_migrations` with the database's revisions. A commit marked known bad is
    /// refused ([`Error::Refused`], nothing written): see [`Rollback::mark_good_with`].
    pub fn mark_good(&self, rev: &str, note: Option<&str>) -> Result<MarkOutcome> {
        self.mark_good_with(rev, note, false)
    }

    /// [`Rollback::mark_good`]; with `lift_bad`, a commit marked known bad is marked
    /// known-good too, and the outcome's notes name the mark lifted (when it was made, why).
    /// Without it such a commit is refused: a bad mark is a decision that a `mark` typed for
    /// the wrong commit must not undo silently.
    pub fn mark_good_with(&self, rev: &str, note: Option<&str>, lift_bad: bool) -> Result<MarkOutcome> {
        let id = self.vcs.resolve(rev)?;
        // Refused early (before the database is asked anything), and again under the
        // registry's lock: a bad mark made in between must not be lifted unasked.
        bad_mark(&Registry::load(&self.registry_path())?, &id, lift_bad)?;
        let is_head = self.vcs.head().is_ok_and(|h| h.commit == id);
        let mut notes = Vec::new();
        let migrator = match self.db() {
            Ok(m) => m,
            Err(e) => {
                notes.push(format!("database revisions not recorded: {e}"));
                None
            }
        };
        let revisions = match (migrator, is_head) {
            (Some(db), true) => match crate::rt::block_on(db.current()) {
                Ok(r) => Some(r),
                Err(e) => {
                    notes.push(format!("database revisions not recorded: {e}"));
                    None
                }
            },
            _ => None,
        };
        // The env files first: a mark that fails while recording them (a full disk) must not
        // have marked the commit already, verified with no env record for a full rollback to
        // restore. A record without a registry entry is harmless (a later mark records again).
        let env = if is_head { Some(self.record_env(&id)?) } else { None };
        let mut lifted = None;
        let mut out = self.edit_registry(rev, |r, id| {
            lifted = bad_mark(r, id, lift_bad)?;
            // A lifted mark's note ("broke login") must not stay on the known-good entry:
            // without a note of its own, the entry says which mark was lifted.
            let mut out = r.mark(self.vcs.as_ref(), id, note.or(lifted.as_deref()))?;
            if let Some(revs) = &revisions
                && let Some(e) = r.commits.iter_mut().find(|e| e.hash == id.as_str())
            {
                e.database_migrations = revs.iter().map(|r| r.0.clone()).collect();
                out.entry = e.clone();
            }
            Ok(out)
        })?;
        if let Some((record, env_notes)) = env {
            out.env = record;
            // The notes say why a file that exists was not recorded (a symlinked folder, a
            // dangling link): "no env file exists" would be false then.
            if out.env.is_none() && !self.config.env.files.is_empty() && env_notes.is_empty() {
                notes.push("no env file exists: nothing recorded for a full rollback to restore".into());
            } else if out.env.is_none() && !self.config.env.files.is_empty() {
                notes.push("nothing recorded for a full rollback to restore".into());
            }
            notes.splice(0..0, env_notes);
        } else if !self.config.env.files.is_empty() {
            notes.push(format!(
                "env files not recorded: {} is not HEAD, and the files in the work tree belong to HEAD (mark a release while it is deployed)",
                id.short()
            ));
        }
        notes.extend(lifted);
        out.notes = notes;
        Ok(out)
    }

    /// Marks `rev` known bad: never a target.
    pub fn mark_bad(&self, rev: &str, note: Option<&str>) -> Result<MarkOutcome> {
        self.edit_registry(rev, |r, id| r.mark_bad(self.vcs.as_ref(), id, note))
    }

    /// The gate for CI and git hooks: whether `rev` is marked known bad in the registry
    /// (`forge-rollback gate REV` exits non-zero then). Reads only.
    pub fn gate(&self, rev: &str) -> Result<Gate> {
        self.gate_with(rev, GateArgs::default())
    }

    /// [`Rollback::gate`] with the registry as the commit `at` holds it (a branch: `main`,
    /// `FETCH_HEAD`), not as the work tree does: see [`Rollback::gate_with`].
    pub fn gate_at(&self, rev: &str, at: Option<&str>) -> Result<Gate> {
        self.gate_with(rev, GateArgs { registry_at: at, ..GateArgs::default() })
    }

    /// The gate, asked as [`GateArgs`] says. With `registry_at`, the registry is read as that
    /// commit holds it (in CI the work tree is the commit being deployed, which cannot hold its
    /// own bad mark: that is committed on top of it, later), at the path the configuration
    /// committed there gives (the registry may have moved since the commit deployed), or the
    /// work tree's when it has none or `config` was given; a commit without the registry is
    /// bad usage, not an empty registry that passes all.
    ///
    /// In a push's hook (a repository with a work tree that receives pushes, as push-to-deploy
    /// has it), `rev` is read where git keeps the pushed objects until the hook accepts them.
    /// An object that is not a commit (a tag of a blob) passes, with a note.
    pub fn gate_with(&self, rev: &str, args: GateArgs<'_>) -> Result<Gate> {
        let hook = gate::in_push_quarantine();
        let history = if hook || args.push_ref.is_some() { Some(BareRepo::open(self.workdir())?) } else { None };
        let resolved = match &history {
            Some(h) => h.resolve(rev),
            None => self.vcs.resolve(rev),
        };
        let commit = match resolved {
            Ok(c) => c,
            Err(e) => {
                let repo = history.or_else(|| BareRepo::open(self.workdir()).ok());
                return gate::non_commit(repo.as_ref(), rev, e.into());
            }
        };
        let explicit = args.config.map(|_| &self.config);
        let pushed = match &history {
            Some(h) => gate::pushed_copy(h, &commit, args.push_ref, explicit)?,
            None => None,
        };
        let mut notes = Vec::new();
        let Some(at) = args.registry_at else {
            let path = self.registry_path();
            let (reg, found) = match Registry::load(&path) {
                // `load` reads a missing file as an empty registry.
                Ok(reg) => (reg, std::fs::metadata(&path).is_ok()),
                Err(e) => match (Error::from(e), pushed) {
                    (e, Some((branch, copy))) if gate::unloadable(&e) => {
                        notes.push(format!(
                            "the registry on {branch} cannot be read ({e}); this push repairs it, and is judged by {}",
                            copy.shown
                        ));
                        let found = copy.registry.is_some();
                        (copy.registry.unwrap_or_default(), found)
                    }
                    (e, _) if hook && gate::unloadable(&e) => {
                        let branch = history.as_ref().and_then(BareRepo::head_branch).unwrap_or_else(|| "HEAD".into());
                        return Err(gate::unreadable_on_server(&e, branch.trim_start_matches("refs/heads/")));
                    }
                    (e, _) => return Err(e),
                },
            };
            let mut gate = Gate::of(&reg, commit, found);
            gate.notes = notes;
            return Ok(gate);
        };
        let holder = self.vcs.resolve(at)?;
        let read = |c: &CommitId, p: &RepoPath| self.vcs.read_file_at(c, p).map_err(Error::from);
        let committed = if args.config.is_some() { None } else { gate::committed_config(&read, &holder, at)? };
        let ours = || {
            let path = self.registry_path();
            RepoPath::from_fs(self.workdir(), &path).map_err(|_| {
                Error::usage(
                    format!("the registry `{}` is outside the work tree: no commit holds it", path.display()),
                    Some("leave out `--registry-at`, or keep the registry in the repository".into()),
                )
            })
        };
        let (rel, origin) = match committed {
            Some((config, file)) => {
                let rel = gate::registry_in_repository(&config)?;
                // The registry moved since the commit in the work tree: say where it was read.
                if ours().ok().as_ref() != Some(&rel) {
                    notes.push(format!("the registry's path `{rel}` is the one {file} gives"));
                }
                (rel, file)
            }
            None if args.config.is_some() => (ours()?, "the configuration given (`--config`)".to_owned()),
            None => (ours()?, format!("the work tree's configuration ({at} has none)")),
        };
        let Some(bytes) = read(&holder, &rel)? else {
            return Err(gate::no_registry(&holder, at, &rel, &origin));
        };
        let reg = Registry::parse(&bytes, &std::path::PathBuf::from(format!("{at}:{rel}")))?;
        let mut gate = Gate::of(&reg, commit, true);
        gate.notes = notes;
        Ok(gate)
    }

    /// Removes `rev` from the registry.
    pub fn unmark(&self, rev: &str) -> Result<crate::registry::Entry> {
        let id = self.vcs.resolve(rev)?;
        let path = self.registry_path();
        Registry::locked(&path, || {
            let mut reg = Registry::load(&path)?;
            let e = reg.unmark(&id, &path)?;
            reg.save(&path)?;
            Ok(e)
        })
    }

    // ----- backups and lock -----------------------------------------------------------

    /// The backup store for a command that only reads: opened without creating the state
    /// folder or anything in it, nor changing a mode (`None`: nothing was ever stored). The
    /// state folder's ownership is checked as for a command that writes.
    fn store_to_read(&self) -> Result<Option<Arc<dyn BackupStore>>> {
        if let Some(s) = self.store.get() {
            return Ok(Some(s.clone()));
        }
        self.state.check()?;
        let store = FsBackupStore::open_existing(&self.state.backups_dir())?;
        Ok(store.map(|s| Arc::new(s) as Arc<dyn BackupStore>))
    }

    /// Every snapshot, oldest first. Reads only.
    pub fn backups(&self) -> Result<Vec<backup::SnapshotSummary>> {
        Ok(self.store_to_read()?.map(|s| s.list()).transpose()?.unwrap_or_default())
    }

    /// Re-hashes every blob of the named snapshots (all when `None`). Reads only: with no
    /// backup store, there is nothing to check (and a named snapshot is unknown).
    pub fn verify_backups(&self, ids: Option<&[SnapshotId]>) -> Result<backup::VerifyReport> {
        match self.store_to_read()? {
            Some(store) => Ok(store.verify(ids)?),
            None => match ids.and_then(<[SnapshotId]>::first) {
                Some(id) => Err(backup::Error::UnknownSnapshot { id: id.to_string() }.into()),
                None => Ok(backup::VerifyReport::default()),
            },
        }
    }

    /// Keeps the `keep` newest snapshots taken by runs (env records do not count) and the
    /// other snapshots of their runs, plus the
    /// work-tree and database snapshots of unfinished runs (interrupted, failed, aborted
    /// part-way) and the newest env record of every verified known-good commit; removes the
    /// rest, the pinned refs of runs whose snapshot went, and unreferenced blobs.
    ///
    /// Takes the run lock before it reads the runs: a rollback that started (or failed) after
    /// that reading would otherwise lose the snapshot it is undone from.
    /// `dry_run` reads only: no lock is taken and nothing is created.
    pub fn prune_backups(&self, keep: usize, dry_run: bool) -> Result<backup::PruneReport> {
        let _lock = if dry_run {
            None
        } else {
            self.state.ensure()?;
            Some(RunLock::acquire(&self.state.lock_path(), "backups prune")?)
        };
        let store = if dry_run {
            match self.store_to_read()? {
                Some(store) => store,
                None => return Ok(backup::PruneReport::default()),
            }
        } else {
            self.store()?
        };
        crate::failpoint::hit("before:prune")?;
        let runs = self.runs()?;
        let mut protect: Vec<SnapshotId> = Vec::new();
        for r in &self.unfinished_runs()? {
            protect.extend(r.backup_id.clone());
            // Its database snapshot too: a failed full run is undone from it.
            if let Ok(state) = self.load_run(&r.run_id)
                && let Some(id) = state.snapshot_of("db_snapshot")
            {
                protect.push(id);
            }
        }
        let summaries = store.list()?;
        // A run's snapshots (its work tree, its database) go together: a run is undone from
        // both, so keeping one of the `keep` newest keeps the others its run took.
        // Env records do not count toward `keep`: the ones still needed are kept on top of
        // it (below), and counting them would push a run's backup out. Damaged snapshots (a
        // manifest that cannot be read) cannot be restored from: they count for nothing.
        let mut newest: Vec<&backup::SnapshotSummary> =
            summaries.iter().filter(|s| s.damaged.is_none() && s.label.as_deref() != Some(crate::env::LABEL)).collect();
        // Newest first by their runs' order (`RunOrder`: a clock set back between two runs
        // does not make the later one's backup look older); a snapshot whose run is gone
        // counts as older than every run's.
        let order: std::collections::HashMap<&str, usize> =
            runs.iter().enumerate().map(|(i, r)| (r.run_id.as_str(), i)).collect();
        let rank = |s: &backup::SnapshotSummary| s.run_id.as_deref().and_then(|id| order.get(id).copied());
        newest.sort_by(|a, b| (rank(b), b.created_at, &b.id).cmp(&(rank(a), a.created_at, &a.id)));
        let newest: Vec<&backup::SnapshotSummary> = newest.into_iter().take(keep).collect();
        protect.extend(newest.iter().map(|s| s.id.clone()));
        let mut kept_runs: std::collections::BTreeSet<&str> =
            newest.iter().filter_map(|s| s.run_id.as_deref()).collect();
        // A run whose journal is damaged may be unfinished, and which of its snapshots it
        // needs cannot be read: all of them stay.
        kept_runs.extend(runs.iter().filter(|r| r.damaged.is_some()).map(|r| r.run_id.as_str()));
        protect.extend(
            summaries
                .iter()
                .filter(|s| s.run_id.as_deref().is_some_and(|r| kept_runs.contains(r)))
                .map(|s| s.id.clone()),
        );
        // A snapshot whose manifest cannot be read is never deleted: it may be a newer
        // forge-rollback's (another format) that an undo of that version still needs, or
        // damage the operator mends. Kept, it stops the prune (which blobs it needs cannot be
        // read), naming it.
        protect.extend(summaries.iter().filter(|s| s.damaged.is_some()).map(|s| s.id.clone()));
        // The newest env record of every commit the registry lists as verified: a full
        // rollback to it restores that env.
        if let Ok(reg) = self.registry() {
            let mut newest: std::collections::BTreeMap<CommitId, backup::SnapshotSummary> =
                std::collections::BTreeMap::new();
            for s in &summaries {
                let Some(head) = &s.head else { continue };
                if s.label.as_deref() == Some(crate::env::LABEL)
                    && reg.deciding(head).is_some_and(|e| e.verified && !e.known_bad)
                    && newest.get(head).is_none_or(|n| (n.created_at, &n.id) < (s.created_at, &s.id))
                {
                    newest.insert(head.clone(), s.clone());
                }
            }
            protect.extend(newest.into_values().map(|s| s.id));
        }
        // Every snapshot to keep is in `protect`, the `keep` newest counted above.
        let mut report = store.prune(0, &protect, dry_run)?;
        if !dry_run {
            // The backups are gone whatever happens to the refs: a ref git will not delete now
            // is said in the report, and the next prune deletes it (its backup was removed by
            // this prune or an earlier one), so the runs that can no longer be undone are
            // always named.
            let present: std::collections::HashSet<&SnapshotId> = summaries.iter().map(|s| &s.id).collect();
            for r in &runs {
                let Some(b) = &r.backup_id else { continue };
                let name = pin_ref(&r.run_id);
                let gone = report.removed_snapshots.contains(b)
                    || (!present.contains(b) && self.vcs.read_ref(&name).ok().flatten().is_some());
                if gone && let Err(e) = self.vcs.delete_ref(&name) {
                    // git's advice about the lock runs on for lines: its first line says it.
                    let e = e.to_string();
                    report.refs_left.push(format!("{name}: {}", e.lines().next().unwrap_or_default()));
                }
            }
        }
        Ok(report)
    }

    /// The runs not undone yet whose work-tree backup is among `removed` (a
    /// [`backup::PruneReport::removed_snapshots`]): without it they can no longer be undone.
    pub fn runs_no_longer_undoable(&self, removed: &[SnapshotId]) -> Result<Vec<String>> {
        Ok(self
            .runs()?
            .into_iter()
            .filter(|r| {
                r.status != crate::journal::RunStatus::Undone
                    && r.backup_id.as_ref().is_some_and(|b| removed.contains(b))
            })
            .map(|r| r.run_id)
            .collect())
    }

    /// Who holds the run lock, if a live process does.
    pub fn lock_holder(&self) -> Result<Option<LockHolder>> {
        Ok(lock::holder(&self.state.lock_path())?)
    }

    /// Removes a dead holder's leftover lock file; refuses while the holder is alive.
    pub fn unlock(&self) -> Result<lock::Unlocked> {
        Ok(lock::unlock(&self.state.lock_path())?)
    }
}

/// Refuses to mark `id` known-good while it is marked known bad, unless `lift_bad`; then
/// the note saying which mark goes.
fn bad_mark(reg: &Registry, id: &CommitId, lift_bad: bool) -> Result<Option<String>> {
    let Some(e) = reg.deciding(id).filter(|e| e.known_bad) else { return Ok(None) };
    let mark = match (e.marked_at.as_deref(), e.notes.trim()) {
        (Some(at), "") => format!("marked {at}"),
        (Some(at), why) => format!("marked {at}: {why}"),
        (None, "") => "no note".to_owned(),
        (None, why) => why.to_owned(),
    };
    if lift_bad {
        return Ok(Some(format!("lifted the known-bad mark of {} ({mark})", id.short())));
    }
    Err(Error::refused(
        format!(
            "commit {} is marked known bad in the registry ({mark}): marking it known-good would lift that mark",
            id.short()
        ),
        Some(hint![
            "if the mark is wrong, pass ",
            Action::LiftBad,
            " to lift it and mark the commit known-good; a release that fixes it needs no flag"
        ]),
    ))
}
