//! The one run pipeline. Every entry point — a rollback (asked or unattended), `undo`,
//! `resume`, and the automatic undo after a failed verification or a manual abort — goes
//! through [`Rollback::drive`], which does the same things in the same order:
//!
//! 1. [`Entry::prepare`], without the lock and without writing: assess, refuse, plan, and ask
//!    the [`Prompter`] (a dry run ends here);
//! 2. take the lock;
//! 3. [`Entry::settle`], under the lock: refuse again and plan again from the state as it is
//!    now, into a [`Job`];
//! 4. execute the job's steps, each journaled, then record the run (`exec.rs`).
//!
//! An entry is a small type ([`RollbackEntry`](super::rollback_entry::RollbackEntry),
//! [`UndoEntry`](super::undo::UndoEntry), [`ResumeEntry`](super::resume::ResumeEntry)) that
//! says what its stages do; the order lives only here.

use std::collections::BTreeSet;

use super::{Ctx, Exec, Rollback, RunOutcome};
use crate::error::Result;
use crate::event::{LogLevel, Observer};
use crate::failpoint;
use crate::fsutil;
use crate::journal::{Journal, Record, RunState, Severity};
use crate::lock::RunLock;
use crate::plan::{Level, Plan, RunKind};
use crate::prompt::Prompter;
use crate::time::Timestamp;

/// How long a run waits for a git process writing the repository before it refuses.
const GIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// When it says that it waits.
const GIT_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// What a stage of an entry hands on: more work, or the outcome already.
pub(crate) enum Next<T> {
    /// Go on with this.
    Go(T),
    /// Nothing more to do (a dry run, an undo of a run that changed nothing).
    Done(Box<RunOutcome>),
}

/// How a job's execution begins.
pub(crate) enum Start {
    /// A new run: its `started` record carries these. `seq` is [`Rollback::next_seq`] of the
    /// runs read under the lock.
    New { reason: Option<String>, severity: Option<Severity>, actor: Option<String>, seq: u64 },
    /// An interrupted or failed run, from step `at`, never running the steps in `skipped`.
    Resumed { at: usize, skipped: BTreeSet<usize> },
}

/// The run locks a run, undo or resume holds ([`Rollback::take_lock`]); dropping releases them.
pub(crate) struct RunLocks {
    _state: RunLock,
    _repo: RunLock,
}

/// A plan ready to execute under the lock.
pub(crate) struct Job {
    pub(crate) run_id: String,
    pub(crate) plan: Plan,
    pub(crate) start: Start,
    /// Ask the prompter before each step (manual runs).
    pub(crate) manual: bool,
}

/// One entry point of the pipeline: what it does before and under the lock.
pub(crate) trait Entry {
    /// What `prepare` hands to `settle`.
    type Ready;
    /// The lock holder's command, for `lock status` and a refused second run.
    fn command(&self) -> String;
    /// Plans only and writes nothing (`run --dry-run`): shown even while another run holds
    /// the lock or a git writes the repository.
    fn dry_run(&self) -> bool {
        false
    }
    /// Reads only: assess, refuse, plan, confirm.
    fn prepare(&self, rb: &Rollback, ctx: &mut Ctx<'_>, prompter: &dyn Prompter) -> Result<Next<Self::Ready>>;
    /// Under the lock: refuse again, plan again, into a job.
    fn settle(
        &self,
        rb: &Rollback,
        ctx: &mut Ctx<'_>,
        ready: Self::Ready,
        prompter: &dyn Prompter,
    ) -> Result<Next<Job>>;
}

impl Rollback {
    /// The pipeline: prepare → lock → settle → execute → record.
    pub(crate) fn drive<E: Entry>(
        &self,
        entry: &E,
        prompter: &dyn Prompter,
        observer: &dyn Observer,
    ) -> Result<RunOutcome> {
        // Built now, or the run refused: built later (for the signal handlers, a service check)
        // it could fail half-way.
        crate::rt::try_runtime().map_err(crate::Error::Runtime)?;
        let mut ctx = Ctx::new(observer);
        // Before the checks read HEAD, the index and the tree: a `git` still writing them (the
        // orphan of a run killed during its reset) would move HEAD under the checks, and the
        // same wait under the lock would then find HEAD "moved while confirming". Not while a
        // live run holds the lock (its own git holds `index.lock`): the checks name that run,
        // after bad input; nor for a dry run, which writes nothing.
        if !entry.dry_run()
            && matches!(crate::lock::holder(&self.state.lock_path()), Ok(None))
            && matches!(crate::lock::holder(&self.repo_lock_path()), Ok(None))
        {
            self.wait_for_git(&mut ctx)?;
        }
        let ready = match entry.prepare(self, &mut ctx, prompter)? {
            Next::Go(ready) => ready,
            Next::Done(outcome) => return Ok(*outcome),
        };
        let created = self.state.ensure_new()?;
        let outcome = (|| {
            let lock = self.take_lock(&mut ctx, &entry.command())?;
            failpoint::hit("after:lock")?;
            let outcome = match entry.settle(self, &mut ctx, ready, prompter)? {
                // A caller that stops waiting before the first step (a cancelled asyncio task
                // or Ctrl-C in the Python module, while it confirmed or the lock was taken) gets
                // no run at all, as for a declined confirmation: a run journaled `cancelled`
                // before its first step would have nothing to undo, and its `resume` would
                // carry out what the caller had just cancelled. The CLI never says so here.
                Next::Go(job) => match ctx.observer.stop_waiting() {
                    Some(why) => {
                        Err(crate::Error::Cancelled(format!("{why} before the run's first step; nothing was changed")))
                    }
                    None => self.execute_job(&mut ctx, &job, prompter),
                },
                Next::Done(outcome) => Ok(*outcome),
            };
            drop(lock);
            outcome
        })();
        // Refused under the lock (or no lock): a state folder this call made holds nothing.
        if created && outcome.is_err() {
            self.state.remove_if_empty();
        }
        outcome
    }

    /// Stages 3 and 4, for a caller that holds the lock already (the automatic undo).
    pub(crate) fn settle_and_execute<E: Entry>(
        &self,
        ctx: &mut Ctx<'_>,
        entry: &E,
        ready: E::Ready,
        prompter: &dyn Prompter,
    ) -> Result<RunOutcome> {
        match entry.settle(self, ctx, ready, prompter)? {
            Next::Go(job) => self.execute_job(ctx, &job, prompter),
            Next::Done(outcome) => Ok(*outcome),
        }
    }

    /// Takes the run lock: the state folder's, then the repository's ([`Self::repo_lock_path`]),
    /// always in that order (two takers never wait for each other: each fails at once when
    /// the other holds one).
    pub(crate) fn take_lock(&self, ctx: &mut Ctx<'_>, command: &str) -> Result<RunLocks> {
        let state = RunLock::acquire(&self.state.lock_path(), command)?;
        if let Some(prev) = &state.taken_over {
            ctx.log(LogLevel::Warn, format!("took over a stale lock: its holder ({prev}) is gone"));
        }
        // The same dead holder left both; its state lock was named above.
        let repo = RunLock::acquire(&self.repo_lock_path(), command)?;
        self.wait_for_git(ctx)?;
        Ok(RunLocks { _state: state, _repo: repo })
    }

    /// The repository's run lock, in its common git folder, whatever `state.dir` says: two
    /// configurations naming different state folders (an operator's `--config` next to the
    /// repository's own file, a `state.dir` changed between releases) would each hold their
    /// own folder's lock and move the same branch at once. One lock for the whole repository,
    /// linked work trees included, as the default state folder (in the common git folder)
    /// already gives them: they share the branches and refs a run moves (a branch may be
    /// checked out in two of them), and a rollback is rare enough that waiting is no cost.
    /// Inside `.git`, it is never an untracked file, and `git gc` leaves it alone.
    pub(crate) fn repo_lock_path(&self) -> std::path::PathBuf {
        self.vcs.git_dir().join("forge-rollback.lock")
    }

    /// Waits, up to [`GIT_WAIT`], for no git process to be writing the repository: git holds
    /// `index.lock` for as long as a `reset --hard` writes the work tree. A run killed with
    /// `kill -9` leaves the `git` it started running, and a run that took the lock over at once
    /// would capture and reset a tree that git is still writing.
    ///
    /// The lock files of the refs a reset moves count too (`HEAD.lock`, and the current
    /// branch's): `git reset --hard` writes the work tree and the index first and fails on a
    /// held ref after that, which would leave the files at the target and HEAD where it was.
    pub(crate) fn wait_for_git(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let with_lock = |p: std::path::PathBuf| {
            let mut lock = p.into_os_string();
            lock.push(".lock");
            std::path::PathBuf::from(lock)
        };
        let index = self.vcs.index_path();
        let mut locks = vec![with_lock(index.clone())];
        if let Some(worktree_git_dir) = index.parent() {
            locks.push(with_lock(worktree_git_dir.join("HEAD")));
        }
        if let Ok(Some(branch)) = self.vcs.head().map(|h| h.branch) {
            locks.push(with_lock(self.vcs.git_dir().join("refs/heads").join(branch)));
        }
        let start = std::time::Instant::now();
        self.wait_for_push(ctx, start)?;
        let mut told = false;
        while let Some(held) = locks.iter().find(|l| std::fs::symlink_metadata(l).is_ok()) {
            if start.elapsed() >= GIT_WAIT {
                return Err(
                    crate::lock::Error::GitBusy { index_lock: held.clone(), waited_secs: GIT_WAIT.as_secs() }.into()
                );
            }
            if !told && start.elapsed() >= GIT_NOTICE_AFTER {
                told = true;
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "waiting for a git process that is writing the repository (`{}` exists), up to {} s",
                        held.display(),
                        GIT_WAIT.as_secs()
                    ),
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits, up to [`GIT_WAIT`] from `start`, for no `git push` of `[deploy]` to be running:
    /// one that outlived a killed run (its push lock, [`crate::lock::PushLock`]) may still
    /// move the remote branch, and an undo or resume reading the remote meanwhile would find
    /// it where it was, then act on that. Refused (exit 3) when it is still running after.
    fn wait_for_push(&self, ctx: &mut Ctx<'_>, start: std::time::Instant) -> Result<()> {
        let path = self.state.push_lock_path();
        let mut told = false;
        loop {
            let running = match crate::lock::refuse_push_running(&path) {
                Ok(()) => return Ok(()),
                Err(e @ crate::lock::Error::PushRunning { .. }) if start.elapsed() < GIT_WAIT => e,
                Err(e) => return Err(e.into()),
            };
            if !told && start.elapsed() >= GIT_NOTICE_AFTER {
                told = true;
                ctx.log(LogLevel::Warn, format!("{running}: waiting up to {} s for it to end", GIT_WAIT.as_secs()));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Opens (or creates) the job's journal and log, then runs its steps.
    fn execute_job(&self, ctx: &mut Ctx<'_>, job: &Job, prompter: &dyn Prompter) -> Result<RunOutcome> {
        let Job { run_id, plan, start, manual } = job;
        let dir = self.state.run_dir(run_id);
        let (journal, at, skipped, started_notice) = match start {
            Start::New { reason, severity, actor, seq } => {
                fsutil::create_private_dir(&dir)?;
                ctx.open_log(&dir.join("run.log"))?;
                let journal = Journal::create(
                    &dir.join("journal.jsonl"),
                    &Record::Started {
                        at: Timestamp::now(),
                        run_id: run_id.clone(),
                        plan: plan.clone(),
                        reason: reason.clone(),
                        severity: *severity,
                        worktree: Some(super::support::worktree_id(self.vcs.as_ref())),
                        git_dir: Some(self.vcs.git_dir().to_path_buf()),
                        actor: actor.clone(),
                        format: crate::journal::JOURNAL_FORMAT,
                        seq: Some(*seq),
                    },
                )?;
                match plan.kind {
                    RunKind::Rollback => {
                        ctx.log(LogLevel::Info, format!("Emergency rollback {run_id} initiated"));
                        ctx.log(
                            LogLevel::Info,
                            format!("Rollback level: {}", plan.level.map_or("fast", Level::as_str)),
                        );
                    }
                    RunKind::Undo => ctx.log(
                        LogLevel::Info,
                        format!("Undo {run_id} of run {} initiated", plan.undo_of.as_deref().unwrap_or("?")),
                    ),
                }
                ctx.log(LogLevel::Info, format!("From {} to {}", plan.from.commit.short(), plan.to.short()));
                // Sent while the first steps run: a slow webhook must not hold up an emergency.
                let notice = self.notify_later(run_id, plan);
                (journal, 0, BTreeSet::new(), notice)
            }
            Start::Resumed { at, skipped } => {
                ctx.open_log(&dir.join("run.log"))?;
                let mut journal = Journal::open(&dir.join("journal.jsonl"))?;
                journal.append(&Record::Resumed { at: Timestamp::now() })?;
                ctx.log(LogLevel::Info, format!("Resuming run {run_id} at step {} of {}", at + 1, plan.steps.len()));
                (journal, *at, skipped.clone(), None)
            }
        };
        let resumed_at = match start {
            Start::Resumed { at, .. } => Some(*at),
            Start::New { .. } => None,
        };
        let resumed = match resumed_at {
            Some(_) => Some(RunState::load(journal.path())?),
            None => None,
        };
        let mut ex = Exec {
            run_id: run_id.clone(),
            plan,
            journal,
            manifest: None,
            captured: None,
            // A new plan was made under the lock just now; a resumed one was not.
            fresh_plan: matches!(start, Start::New { .. }),
            manual: manual.then_some(prompter),
            // A resume past the checks keeps their verdict: a run stopped (Ctrl-C) after checks
            // that failed is `verification_failed`, and `on_failure` applies, not `succeeded`.
            verification: resumed.as_ref().and_then(RunState::verification).cloned(),
            aborted: None,
            abort_reason: None,
            failure_detail: None,
            skipped,
            started_notice,
        };
        // A resume past the snapshot first captures what changed since the run stopped: the
        // operator may have fixed a file as the hint said, and the steps left would overwrite it.
        if resumed_at.is_some_and(|at| at > 0) && resumed.is_some_and(|s| s.tree_snapshot.is_some()) {
            self.recapture(ctx, &mut ex, super::recapture::Why::Resume, None)?;
        }
        self.execute(ctx, &mut ex, at).map_err(|e| Self::stopped_by_journal(&ex, e))
    }
}
