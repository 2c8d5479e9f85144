//! `rehearse`: the whole plan, then its undo, on a throwaway copy (see [`crate::rehearse`]).
//!
//! The copy is a temp folder holding the work tree with its exact dirty state (tracked edits,
//! staged changes, untracked and ignored files; not the folders named in `[caches]
//! skip_dirs`, which a rollback never searches), the whole `.git`, the state folder's runs and
//! recorded env files (a run on the copy refuses and restores exactly as a real one would), the
//! registry, and a copy of the database. A [`Rollback`] is opened over it
//! with the real configuration, paths and URL rewritten to the copies, and `[[restart]]`,
//! `[[checks]]`, `[deploy]` and `[[notify]]` removed: those reach real services, so the
//! rehearsal says they were not rehearsed instead. Then `run` and `undo` go through the one
//! pipeline, and a picture of the copy taken before the run is compared with one taken after
//! the undo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Rollback, RunOptions, RunOutcome, planner};
use crate::db::{DbMigrator, MigratorKind, ScratchCopy, UrlDatabase};
use crate::error::{Error, Result};
use crate::event::{Event, Observer};
use crate::fsutil::{self, IoError};
use crate::model::{Level, RunStatus};
use crate::paths::RepoPath;
use crate::prompt::AutoConfirm;
use crate::rehearse::copy::{copy_state, copy_tree};
use crate::rehearse::picture::Picture;
use crate::rehearse::{
    DIFFERENCES_SHOWN, Rehearsal, RehearseOptions, RehearsedRun, RehearsedStep, not_rehearsed_reason,
};

/// Passes every event on, and keeps each step's time per run.
struct Timer<'a> {
    inner: &'a dyn Observer,
    millis: Mutex<BTreeMap<(String, usize), u64>>,
}

impl Observer for Timer<'_> {
    fn event(&self, event: &Event) {
        if let Event::StepFinished { run_id, index, millis, .. } = event
            && let Ok(mut m) = self.millis.lock()
        {
            m.insert((run_id.clone(), *index), *millis);
        }
        self.inner.event(event);
    }

    fn should_abort(&self) -> bool {
        self.inner.should_abort()
    }

    fn cancelled(&self) -> Option<String> {
        self.inner.cancelled()
    }

    fn stop_waiting(&self) -> Option<String> {
        self.inner.stop_waiting()
    }
}

impl Timer<'_> {
    fn rehearsed(&self, o: &RunOutcome, not_rehearsed: &[&'static str]) -> RehearsedRun {
        let millis = self.millis.lock().map(|m| m.clone()).unwrap_or_default();
        let run_id = o.run_id.clone().unwrap_or_default();
        let mut steps: Vec<RehearsedStep> = o
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| RehearsedStep {
                step: s.step.clone(),
                status: s.status.clone(),
                millis: millis.get(&(run_id.clone(), i + 1)).copied(),
                note: None,
            })
            .collect();
        if o.status == RunStatus::Failed
            && let Some(failed) = steps.iter_mut().find(|s| s.status == "failed")
        {
            failed.note.clone_from(&o.error);
        }
        // The steps of a real run that a rehearsal leaves out, where that run has them
        // (before `record`, which is always last).
        let at = steps.iter().position(|s| s.step == "record").unwrap_or(steps.len());
        for (k, name) in not_rehearsed.iter().enumerate() {
            steps.insert(
                at + k,
                RehearsedStep {
                    step: (*name).to_owned(),
                    status: "not_rehearsed".to_owned(),
                    millis: None,
                    note: not_rehearsed_reason(name).map(str::to_owned),
                },
            );
        }
        RehearsedRun { status: o.status, steps, error: o.error.clone(), duration_ms: o.duration_ms }
    }
}

/// Where things are in the throwaway copy.
struct Layout {
    /// Removed when dropped.
    _root: crate::tmpdir::Scratch,
    root: PathBuf,
    tree: PathBuf,
    /// The database file's path relative to the work tree, when it lives there.
    db_in_tree: Option<PathBuf>,
}

impl Rollback {
    /// Rehearses a rollback: runs its whole plan, then its undo, on a throwaway copy of the
    /// work tree, `.git`, the state folder, the registry and the database, and reports each
    /// step's outcome and time, the data-loss forecast, and whether the undo brought the copy
    /// back identical. Nothing real is written; steps that reach real services (restart,
    /// deploy, promote, verify) are listed as not rehearsed. Refuses (as `run` does) what a
    /// run would refuse; a run holding the lock is [`crate::lock::Error::Held`].
    pub fn rehearse(&self, opts: &RehearseOptions, observer: &dyn Observer) -> Result<Rehearsal> {
        let started = Instant::now();
        crate::rt::try_runtime().map_err(Error::Runtime)?;
        self.rehearsal_preflight(opts)?;
        // Asked once before anything is copied: a front-end that stops on signals (the CLI)
        // starts listening now, so that Ctrl-C stops the rehearsal at its next boundary and
        // the copy (the `.env` files, the database's rows) is removed, not left in `$TMPDIR`.
        let stopped = |observer: &dyn Observer| {
            observer.cancelled().map(|why| Error::Cancelled(format!("{why}; nothing of the rehearsal's copy is left")))
        };
        if let Some(e) = stopped(observer) {
            return Err(e);
        }
        // A git writing the real repository (or its stale `index.lock`): refused here, naming
        // the real lock file, before a copy carries it along.
        self.wait_for_git(&mut super::support::Ctx::new(observer))?;
        let full_wanted = opts.level != Some(Level::Fast);
        let db_config = self.config.database.clone().filter(|_| full_wanted);
        let layout = self.copy_files(db_config.is_some())?;
        if let Some(e) = stopped(observer) {
            return Err(e);
        }
        // The database copy is dropped (PostgreSQL: `DROP DATABASE`) with `scratch`, whatever
        // happens from here on.
        let scratch = match &db_config {
            Some(_) => Some(self.copy_database(&layout)?),
            None => None,
        };
        let result = match stopped(observer) {
            Some(e) => Err(e),
            None => self
                .open_copy(&layout, scratch.as_ref())
                .and_then(|copy| self.rehearse_on(&copy, &layout, scratch.as_ref(), opts, observer)),
        };
        let removed = match scratch {
            Some(s) => crate::rt::block_on(s.discard()).map_err(Error::from),
            None => Ok(()),
        };
        if let Some(e) = stopped(observer) {
            return Err(e);
        }
        let mut rehearsal = result?;
        if let Err(e) = removed {
            rehearsal.warnings.push(format!("the temporary copy of the database could not be dropped: {}", e.chain()));
        }
        rehearsal.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(rehearsal)
    }

    /// Bad input and a run in progress, before anything is copied.
    fn rehearsal_preflight(&self, opts: &RehearseOptions) -> Result<()> {
        if let Some(holder) = crate::lock::holder(&self.state.lock_path())? {
            return Err(crate::lock::Error::Held { path: self.state.lock_path(), holder: Some(holder) }.into());
        }
        self.check_target(opts.target.as_deref())?;
        let git_dir = fsutil::resolve(self.vcs.git_dir());
        let dot_git = self.workdir().join(".git");
        // A `.git` symlink too: copied as the link, the copy's git folder would be the real one.
        if git_dir != fsutil::resolve(&dot_git) || std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_symlink()) {
            return Err(Error::usage(
                format!(
                    "`{}` keeps its git folder elsewhere (`{}`): rehearse copies a work tree whose `.git` folder is inside it",
                    self.workdir().display(),
                    git_dir.display()
                ),
                Some("rehearse from a plain clone of the repository".into()),
            ));
        }
        if opts.level != Some(Level::Fast) && self.config.database.is_none() && self.db.get().is_some() {
            return Err(Error::usage(
                "rehearse copies the database that `[database]` configures; this one was given in code".to_owned(),
                Some(crate::hint::hint!["configure it in `[database]`, or rehearse with ", crate::hint::Action::Fast]),
            ));
        }
        Ok(())
    }

    /// The real database file's path relative to the work tree, if it is a SQLite file there.
    fn sqlite_in_tree(&self) -> Result<Option<PathBuf>> {
        let Some(db) = self.db()? else { return Ok(None) };
        let Some(url_db) = db.database().url_database() else { return Ok(None) };
        let crate::db::url::DbUrl::Sqlite { path } = url_db.url() else { return Ok(None) };
        let resolved = fsutil::resolve(path);
        Ok(resolved.strip_prefix(fsutil::resolve(self.workdir())).ok().map(Path::to_path_buf))
    }

    /// Copies the tree with `.git`, the state folder and the registry into a new temp folder.
    fn copy_files(&self, with_db: bool) -> Result<Layout> {
        let tmp = crate::tmpdir::create(crate::tmpdir::Kind::Rehearse)?;
        let root = fsutil::resolve(tmp.path());
        let tree = root.join("tree");
        let db_in_tree = if with_db { self.sqlite_in_tree()? } else { None };
        let skip_dirs: Vec<&str> =
            self.config.caches.skip_dirs.iter().map(String::as_str).filter(|d| *d != ".git").collect();
        let db_file = db_in_tree.clone();
        let skip = move |rel: &Path| {
            if let Some(db) = &db_file
                && is_db_file(rel, db)
            {
                return true;
            }
            rel.file_name().and_then(|n| n.to_str()).is_some_and(|n| skip_dirs.contains(&n)) && !rel.starts_with(".git")
        };
        // The state folder is copied on its own (its runs and env records only), also when it
        // lives inside `.git`.
        let workdir = fsutil::resolve(self.workdir());
        let state = fsutil::resolve(self.state.root());
        let state_in_tree = state.strip_prefix(&workdir).ok().map(Path::to_path_buf);
        let skip_all = |rel: &Path| state_in_tree.as_deref() == Some(rel) || skip(rel);
        copy_tree(self.workdir(), &tree, &skip_all)?;
        isolate_git_config(&root, &tree)?;
        absolute_alternates(&fsutil::resolve(self.vcs.git_dir()), &tree)?;
        if state.exists() {
            let dest = match &state_in_tree {
                Some(rel) => tree.join(rel),
                None => root.join("state"),
            };
            copy_state(&state, &dest)?;
        }
        let registry = self.registry_path();
        if !fsutil::resolve(&registry).starts_with(fsutil::resolve(self.workdir())) && registry.exists() {
            let dest = root.join("registry").join(registry.file_name().unwrap_or_default());
            std::fs::create_dir_all(root.join("registry")).map_err(|e| IoError::new("create folder", &root, e))?;
            std::fs::copy(&registry, &dest).map_err(|e| IoError::new("copy", &registry, e))?;
        }
        Ok(Layout { _root: tmp, root, tree, db_in_tree })
    }

    /// Copies the database: a SQLite file where the copy's tree (or temp folder) has it, a
    /// temporary PostgreSQL database.
    fn copy_database(&self, layout: &Layout) -> Result<ScratchCopy> {
        let db = self.migrator()?;
        let Some(url_db) = db.database().url_database() else {
            return Err(Error::usage("rehearse can copy SQLite and PostgreSQL databases only".to_owned(), None));
        };
        if url_db.sqlite_missing() {
            return Err(Error::refused(
                format!("the database {} does not exist: there is nothing to rehearse on", url_db.describe()),
                Some(crate::hint::hint!["check `database.url`, or rehearse with ", crate::hint::Action::Fast]),
            ));
        }
        let dest = match &layout.db_in_tree {
            Some(rel) => layout.tree.join(rel),
            None => layout.root.join("database").join("copy.db"),
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| IoError::new("create folder", parent, e))?;
        }
        Ok(crate::rt::block_on(url_db.scratch_copy_to(&dest, &layout.root))?)
    }

    /// A rollback over the copy: the real configuration with its paths and URL rewritten to
    /// the copies, and without what reaches real services.
    fn open_copy(&self, layout: &Layout, scratch: Option<&ScratchCopy>) -> Result<Rollback> {
        let mut cfg = self.config.clone();
        cfg.checks.clear();
        cfg.restart.clear();
        cfg.deploy = None;
        cfg.notify.clear();
        let git_dir = fsutil::resolve(self.vcs.git_dir());
        let state = fsutil::resolve(self.state.root());
        cfg.state.dir = match state.strip_prefix(&git_dir) {
            // The default: the copy's own default, inside its `.git`.
            Ok(_) if cfg.state.dir.is_none() => None,
            Ok(rel) => Some(layout.tree.join(".git").join(rel)),
            Err(_) => Some(layout.root.join("state")),
        };
        let registry = self.registry_path();
        cfg.registry.path = match fsutil::resolve(&registry).strip_prefix(fsutil::resolve(self.workdir())) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => layout.root.join("registry").join(registry.file_name().unwrap_or_default()),
        };
        let vcs = crate::vcs::open(cfg.vcs.backend, &layout.tree)?;
        // Whatever else in the configuration could lead git back to the real repository (an
        // included file setting `core.worktree`), the copy is used only if git works on it.
        let (tree, git) = (fsutil::resolve(&layout.tree), fsutil::resolve(vcs.git_dir()));
        if fsutil::resolve(vcs.workdir()) != tree || !git.starts_with(&tree) {
            return Err(Error::refused(
                format!(
                    "git would work on `{}` (git folder `{}`) for the rehearsal's copy `{}`: the repository's configuration points it elsewhere, and rehearse changes nothing real",
                    vcs.workdir().display(),
                    git.display(),
                    tree.display()
                ),
                Some(
                    "look for `core.worktree` in the files `git config --show-origin --get-all core.worktree` names"
                        .into(),
                ),
            ));
        }
        let migrator: Option<Arc<dyn DbMigrator>> = match (scratch, &mut cfg.database) {
            (Some(s), Some(d)) => {
                // A relative interpreter (`.venv/bin/python`) is the real tree's: virtualenvs
                // are not copied.
                if d.python.contains('/') && !Path::new(&d.python).is_absolute() {
                    d.python = self.workdir().join(&d.python).to_string_lossy().into_owned();
                }
                let db: UrlDatabase = s.database().clone();
                let m: Arc<dyn DbMigrator> = match d.kind {
                    MigratorKind::Alembic => Arc::new(crate::db::alembic::AlembicMigrator::new(db, &layout.tree, d)),
                    MigratorKind::Sql => Arc::new(crate::db::sql::SqlMigrator::new(db, &layout.tree, d)?),
                };
                d.url = Some(s.database().url().for_child());
                d.url_env = None;
                Some(m)
            }
            (_, database) => {
                // A fast rehearsal never reaches the database.
                *database = None;
                None
            }
        };
        let mut copy = Rollback::with_backend(vcs, cfg)?;
        if let Some(o) = self.notice_observer() {
            copy = copy.with_notices(o);
        }
        if let Some(m) = migrator {
            copy = copy.with_db(m);
        }
        Ok(copy)
    }

    fn rehearse_on(
        &self,
        copy: &Rollback,
        layout: &Layout,
        scratch: Option<&ScratchCopy>,
        opts: &RehearseOptions,
        observer: &dyn Observer,
    ) -> Result<Rehearsal> {
        // The plan, on the copy: the same refusals, the forecast, the migration env's URL check.
        let plan = copy.plan(opts.level, opts.target.as_deref())?;
        let level = plan.level.unwrap_or(Level::Fast);
        // The steps a real run has that reach real services.
        let a = copy.assess(Some(plan.to.as_str()))?;
        // What the copy cannot carry: an immutable or append-only file or folder of the real
        // tree, or a folder of it this user may not write, on which the real run is refused.
        if let Some(e) = self.locked_paths_refusal(&a).into_iter().next() {
            return Err(e);
        }
        let real = planner::rollback_plan(copy.vcs.as_ref(), &self.config, &self.check_names(), &a, level);
        // The deploy is not rehearsed, but what would stop the real run before it changes
        // anything (the hook's variable, the remote) is said now, as `run` says it.
        self.refuse_deploy_unready(&real)?;
        let mut not_rehearsed: Vec<&'static str> =
            real.steps.iter().map(crate::plan::Step::name).filter(|n| not_rehearsed_reason(n).is_some()).collect();
        if self.deployer.is_some() {
            not_rehearsed.push("promote");
        }
        let db_file = layout.db_in_tree.clone();
        let cfg = &self.config;
        let skip = move |rel: &Path| {
            db_file.as_ref().is_some_and(|db| is_db_file(rel, db))
                || RepoPath::new(rel.as_os_str().as_encoded_bytes().to_vec()).is_ok_and(|p| cfg.is_cache(&p))
        };
        let dump = |s: Option<&ScratchCopy>| -> Result<Option<String>> {
            Ok(match s {
                Some(s) => Some(crate::rt::block_on(s.database().canonical_dump())?),
                None => None,
            })
        };
        let before = Picture::take(&layout.tree, &skip, dump(scratch)?)?;
        let timer = Timer { inner: observer, millis: Mutex::new(BTreeMap::new()) };
        let run_opts = RunOptions {
            level: Some(level),
            target: Some(plan.to.as_str().to_owned()),
            allow_non_ancestor: opts.allow_non_ancestor,
            allow_irreversible: opts.allow_irreversible,
            reason: Some("rehearsal".to_owned()),
            ..RunOptions::default()
        };
        let run = copy.run(&run_opts, &AutoConfirm, &timer)?;
        // The runs' hints name runs of the copy (`resume RUN`), which the real repository
        // does not have.
        let own = |w: &&String| !w.starts_with("hint: ");
        let mut warnings: Vec<String> = run.warnings.iter().filter(own).cloned().collect();
        let undo = match &run.run_id {
            Some(id) => {
                let u = copy.undo(id, &AutoConfirm, &timer)?;
                warnings.extend(u.warnings.iter().filter(own).cloned());
                Some(u)
            }
            None => None,
        };
        let after = Picture::take(&layout.tree, &skip, dump(scratch)?)?;
        let mut differences = before.differences(&after);
        let undo_identical = differences.is_empty();
        differences.truncate(DIFFERENCES_SHOWN);
        for n in &not_rehearsed {
            warnings.push(format!("step `{n}` was not rehearsed: {}", not_rehearsed_reason(n).unwrap_or_default()));
        }
        let rollback = timer.rehearsed(&run, &not_rehearsed);
        // A real undo restarts, deploys, promotes and verifies too.
        let undo = undo.map(|u| timer.rehearsed(&u, &not_rehearsed));
        let mut rehearsal = Rehearsal {
            passed: false,
            level,
            from: plan.from.commit.clone(),
            to: plan.to.clone(),
            database: match scratch {
                Some(_) => Some(self.migrator()?.database().describe()),
                None => None,
            },
            database_copy: scratch.map(|s| s.method().to_owned()),
            data_loss: plan.data_loss.clone(),
            data_loss_unknown: plan
                .risks
                .iter()
                .find(|r| r.code == crate::model::RiskCode::DataLossUnknown)
                .map(|r| r.message.clone()),
            rollback,
            undo,
            undo_identical,
            differences,
            files_compared: before.file_count(),
            duration_ms: 0,
            warnings,
        };
        rehearsal.passed = rehearsal.steps_passed() && rehearsal.undo_identical;
        Ok(rehearsal)
    }
}

/// The copy's own git configuration, so that git run on the copy touches nothing real:
/// - no `core.worktree` (a path to the real work tree, which git would reset and clean);
/// - hooks from an empty folder (`core.hooksPath`): the repository's hooks notify, deploy or
///   log where a rehearsal must not.
fn isolate_git_config(root: &Path, tree: &Path) -> Result<()> {
    let no_hooks = root.join("no-hooks");
    std::fs::create_dir_all(&no_hooks).map_err(|e| IoError::new("create folder", &no_hooks, e))?;
    let git_err = |path: &Path, e: &git2::Error| -> Error {
        IoError::new("edit git configuration", path, std::io::Error::other(e.message().to_owned())).into()
    };
    for name in ["config", "config.worktree"] {
        let path = tree.join(".git").join(name);
        if !path.exists() && name != "config" {
            continue;
        }
        let mut config = git2::Config::open(&path).map_err(|e| git_err(&path, &e))?;
        match config.remove_multivar("core.worktree", ".*") {
            Err(e) if e.code() != git2::ErrorCode::NotFound => return Err(git_err(&path, &e)),
            _ => {}
        }
        if name == "config" {
            config.set_str("core.hooksPath", &no_hooks.to_string_lossy()).map_err(|e| git_err(&path, &e))?;
        }
    }
    Ok(())
}

/// The copy's `objects/info/alternates` (a `git clone --shared`: objects the repository
/// borrows from another) with its relative paths made absolute: relative to the real object
/// folder, they would not resolve from the copy, and the rehearsal would fail where the run
/// works.
fn absolute_alternates(git_dir: &Path, tree: &Path) -> Result<()> {
    let path = tree.join(".git/objects/info/alternates");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let objects = git_dir.join("objects");
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') || Path::new(t).is_absolute() {
                l.to_owned()
            } else {
                objects.join(t).to_string_lossy().into_owned()
            }
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").map_err(|e| IoError::new("write", &path, e).into())
}

/// Whether `rel` is the database file `db` or one of its `-wal`, `-shm`, `-journal` files.
fn is_db_file(rel: &Path, db: &Path) -> bool {
    if rel == db {
        return true;
    }
    let (r, d) = (rel.as_os_str().as_encoded_bytes(), db.as_os_str().as_encoded_bytes());
    r.strip_prefix(d).is_some_and(|rest| [&b"-wal"[..], b"-shm", b"-journal"].contains(&rest))
}
