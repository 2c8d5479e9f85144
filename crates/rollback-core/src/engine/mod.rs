//! The engine: runs plans under the lock, journaled, snapshot first; undoes and resumes them.
//!
//! [`Rollback`] is the one entry point both front-ends use. A rollback run:
//!
//! 1. assesses and plans (reads only), checks safety, asks the [`Prompter`];
//! 2. takes the lock, checks that HEAD has not moved, plans again from the state as it is now;
//! 3. journals `started` with the plan, then for each step `step_begin`, the work, `step_end`;
//! 4. `snapshot` captures everything later steps change or delete and verifies it, `reset`
//!    moves branch, index and tree, `remove_untracked` deletes only what the snapshot holds,
//!    `clear_caches`, `record` writes `run.json` (the completion marker).
//!
//! Every destructive step works from the snapshot's manifest, not from the plan, so a resumed
//! run acts on what was actually captured. `undo` is itself a run (snapshot of the current
//! state first, so an undo can be undone) that puts back the snapshot of the run it undoes.

mod full;
pub use full::show_revisions;
mod manual;
pub mod planner;
mod services;

use std::collections::BTreeSet;

use crate::failpoint;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::assess::{self, Assessment};
use crate::backup::store::FsBackupStore;
use crate::backup::{self, BackupStore, EntryKind, IndexSnapshot, Manifest, Origin, SnapshotId, StagedObject};
use crate::config::Config;
use crate::db::DbMigrator;
use crate::error::{Error, Result};
use crate::event::{Event, LogLevel, Observer};
use crate::fsutil::{self, IoContext};
pub use crate::journal::RunStatus;
use crate::journal::{self, Journal, Record, RunState, Severity};
use crate::lock::{self, LockHolder, RunLock};
use crate::paths::RepoPath;
use crate::plan::{Level, Plan, RunKind, Step};
use crate::prompt::{Confirmation, Prompter};
use crate::registry::{MarkOutcome, Registry};
use crate::state::StateDir;
use crate::time::Timestamp;
use crate::vcs::{self, BackendKind, CommitId, StatusKind, VcsBackend};

/// Options of a rollback run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The level; `None` uses the assessment's recommendation.
    pub level: Option<Level>,
    /// The target revision; `None` picks the registry's newest verified known-good commit.
    pub target: Option<String>,
    /// Plan and report only; write nothing.
    pub dry_run: bool,
    /// Allow a target that is not an ancestor of HEAD.
    pub allow_non_ancestor: bool,
    /// Why the rollback is happening (journaled, and in the incident report).
    pub reason: Option<String>,
    /// How bad the incident is (journaled, and in the incident report).
    pub severity: Option<Severity>,
    /// Allow a downgrade through a migration whose downgrade cannot restore data.
    pub allow_irreversible: bool,
}

pub use crate::outcome::{RunOutcome, RunSummary, StepReport};

/// A repository opened for rollbacks.
pub struct Rollback {
    vcs: Box<dyn VcsBackend>,
    config: Config,
    state: StateDir,
    store: OnceLock<Arc<dyn BackupStore>>,
    db: OnceLock<Arc<dyn DbMigrator>>,
}

impl std::fmt::Debug for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollback")
            .field("workdir", &self.vcs.workdir())
            .field("backend", &self.vcs.name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The ref that keeps a run's starting commit reachable.
pub fn pin_ref(run_id: &str) -> String {
    format!("refs/forge-rollback/runs/{run_id}/from")
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn new_run_id() -> String {
    format!("{}-{}", Timestamp::now().compact(), crate::state::random_hex(6))
}

fn valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let part = c.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        src = c.source();
    }
    s
}

/// Logging for one run: observer plus the run's `run.log`.
struct Ctx<'a> {
    observer: &'a dyn Observer,
    log: Option<File>,
    warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(observer: &'a dyn Observer) -> Self {
        Self { observer, log: None, warnings: Vec::new() }
    }

    fn open_log(&mut self, path: &Path) -> Result<()> {
        let f = OpenOptions::new().create(true).append(true).mode(0o600).open(path).at("open log", path)?;
        self.log = Some(f);
        Ok(())
    }

    fn log(&mut self, level: LogLevel, message: impl Into<String>) {
        let event = Event::Log { at: Timestamp::now(), level, message: message.into() };
        if let (Some(f), Some(line)) = (self.log.as_mut(), event.log_line()) {
            let _ = writeln!(f, "{line}");
        }
        if level == LogLevel::Warn
            && let Event::Log { message, .. } = &event
        {
            self.warnings.push(message.clone());
        }
        self.observer.event(&event);
    }
}

/// What the steps of one execution share.
struct Exec<'a> {
    run_id: String,
    plan: &'a Plan,
    journal: Journal,
    /// The run's own snapshot, once taken.
    manifest: Option<Manifest>,
    /// The plan was made under the lock just now: the snapshot can use its capture list
    /// instead of scanning the tree again (a resume scans again).
    fresh_plan: bool,
    /// Manual runs: who approves each step.
    manual: Option<&'a dyn Prompter>,
    /// The verification round, once run.
    verification: Option<crate::verify::VerificationReport>,
    /// The operator aborted (manual runs); `true`: undo what ran.
    aborted: Option<bool>,
    /// Set by a step that fails but knows what it left behind; journaled with the failure.
    failure_detail: Option<serde_json::Value>,
    /// Steps the operator skipped earlier (a resumed manual run): never run.
    skipped: BTreeSet<usize>,
    /// The `started` webhooks, sent while the first steps run.
    started_notice: Option<tokio::task::JoinHandle<Vec<crate::notify::NotifyResult>>>,
}

impl Rollback {
    /// Opens the repository containing `dir` with the configuration found there (or `config`).
    pub fn open(dir: &Path, config: Option<&Path>) -> Result<Self> {
        let probe = vcs::git2::Git2Backend::open(dir)?;
        let workdir = probe.workdir().to_path_buf();
        let config_path = config.map(|c| if c.is_absolute() { c.to_path_buf() } else { dir.join(c) });
        let config = Config::discover(&workdir, config_path.as_deref())?;
        let backend: Box<dyn VcsBackend> = match config.vcs.backend {
            BackendKind::Git2 => Box::new(probe),
            BackendKind::GitCli => vcs::open(BackendKind::GitCli, &workdir)?,
        };
        Self::with_backend(backend, config)
    }

    /// Uses an already opened backend and a loaded configuration.
    pub fn with_backend(vcs: Box<dyn VcsBackend>, config: Config) -> Result<Self> {
        let workdir = vcs.workdir().to_path_buf();
        let git_dir = vcs.git_dir().to_path_buf();
        let state = match &config.state.dir {
            Some(d) => {
                let d = normalize(&workdir.join(d));
                if d.starts_with(&workdir) && !d.starts_with(&git_dir) {
                    return Err(crate::config::Error::Invalid {
                        path: config.source.clone().unwrap_or_else(|| PathBuf::from("<defaults>")),
                        key: "state.dir".into(),
                        message: format!(
                            "`{}` is inside the work tree, where a reset or clean could delete it",
                            d.display()
                        ),
                    }
                    .into());
                }
                StateDir::new(d)
            }
            None => StateDir::default_for(&git_dir),
        };
        Ok(Self { vcs, config, state, store: OnceLock::new(), db: OnceLock::new() })
    }

    /// Replaces the database migrator (tests inject failing fakes).
    #[must_use]
    pub fn with_db(self, db: Arc<dyn DbMigrator>) -> Self {
        let _ = self.db.set(db);
        self
    }

    /// The database migrator, if `[database]` is configured. It is opened on first use (no
    /// connection yet), so a `url_env` variable that is not set is an error for the commands
    /// that need the database, not for `runs list`, `report` or `unlock`.
    pub fn db(&self) -> Result<Option<&Arc<dyn DbMigrator>>> {
        if let Some(d) = self.db.get() {
            return Ok(Some(d));
        }
        let Some(c) = &self.config.database else { return Ok(None) };
        let m = crate::db::open(c, self.workdir())?;
        Ok(Some(self.db.get_or_init(|| m)))
    }

    /// Replaces the backup store (tests inject failing fakes).
    #[must_use]
    pub fn with_store(self, store: Arc<dyn BackupStore>) -> Self {
        let _ = self.store.set(store);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The git backend.
    pub fn vcs(&self) -> &dyn VcsBackend {
        self.vcs.as_ref()
    }

    /// The state folder.
    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// The work tree's root.
    pub fn workdir(&self) -> &Path {
        self.vcs.workdir()
    }

    /// The backup store if it exists already; never creates the state folder (reads only).
    fn existing_store(&self) -> Result<Option<Arc<dyn BackupStore>>> {
        if self.store.get().is_none() && !self.state.backups_dir().exists() {
            return Ok(None);
        }
        self.store().map(Some)
    }

    fn store(&self) -> Result<Arc<dyn BackupStore>> {
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        self.state.ensure()?;
        let s: Arc<dyn BackupStore> = Arc::new(FsBackupStore::open(&self.state.backups_dir())?);
        Ok(self.store.get_or_init(|| s).clone())
    }

    /// The registry path.
    pub fn registry_path(&self) -> PathBuf {
        self.config.registry_path(self.workdir())
    }

    /// Reads the registry.
    pub fn registry(&self) -> Result<Registry> {
        Ok(Registry::load(&self.registry_path())?)
    }

    // ----- assess and plan -------------------------------------------------------------

    /// Assesses a rollback to `target` (or the registry's choice). Reads only.
    pub fn assess(&self, target: Option<&str>) -> Result<Assessment> {
        let registry = self.registry()?;
        let mut a = assess::assess(self.vcs.as_ref(), &self.config, &registry, target)?;
        self.assess_database(&mut a);
        self.assess_env(&mut a)?;
        Ok(a)
    }

    fn resolve_level(a: &Assessment, level: Option<Level>) -> Level {
        level.unwrap_or(a.recommended_level)
    }

    /// Plans a rollback. Reads only. The downgrade step shows the SQL it would run where the
    /// migrator can tell (Alembic's offline mode, the native `.down.sql` files).
    pub fn plan(&self, level: Option<Level>, target: Option<&str>) -> Result<Plan> {
        let a = self.assess(target)?;
        let level = Self::resolve_level(&a, level);
        self.require_database(&a, level)?;
        let mut plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &a, level)?;
        self.fill_previews(&mut plan);
        Ok(plan)
    }

    /// The reasons a run of this assessment would be refused (empty: it may go ahead).
    fn refusals(&self, a: &Assessment, opts: &RunOptions, level: Level) -> Vec<Error> {
        let mut out = Vec::new();
        if level != Level::Fast {
            out.extend(self.database_refusals(a, opts));
        }
        if a.head.branch.is_none() {
            out.push(Error::refused(
                "HEAD is detached: forge-rollback moves a branch and will not roll back a detached HEAD",
                Some("check out the branch you deploy from (`git switch main`) and run again".to_owned()),
            ));
        }
        if a.has_risk(crate::model::RiskCode::OperationInProgress) {
            let msg = a
                .risks
                .iter()
                .find(|r| r.code == crate::model::RiskCode::OperationInProgress)
                .map(|r| r.message.clone())
                .unwrap_or_default();
            out.push(Error::refused(
                msg,
                Some("finish or abort it (`git merge --abort`, `git rebase --abort`, ...) first".to_owned()),
            ));
        }
        if a.target.registry_entry.as_ref().is_some_and(|e| e.known_bad) {
            out.push(Error::refused(
                format!("the target {} is marked bad in the known-good registry", a.target.commit.id.short()),
                Some(format!(
                    "pick another target, or `forge-rollback known-good unmark {}` if the mark is wrong",
                    a.target.commit.id.short()
                )),
            ));
        }
        if a.target.commit.id == a.head.commit && a.dirty.is_clean() {
            out.push(Error::refused(
                format!(
                    "nothing to roll back: HEAD is already at {} and the tree is clean",
                    a.target.commit.id.short()
                ),
                None,
            ));
        } else if !a.target_is_ancestor && !opts.allow_non_ancestor {
            out.push(Error::refused(
                format!(
                    "the target {} is not an ancestor of HEAD {}",
                    a.target.commit.id.short(),
                    a.head.commit.short()
                ),
                Some("pass `--allow-non-ancestor` if you really mean to move to a commit HEAD never had".to_owned()),
            ));
        }
        out
    }

    /// Runs that leave the repository between two states: interrupted, failed, or aborted
    /// by the operator after a step past the snapshots began (a manual run stopped with the
    /// schema downgraded and the code not yet reset, say). Until they are resumed or undone,
    /// new runs are refused and `backups prune` keeps their snapshots.
    fn unfinished_runs(&self) -> Result<Vec<RunSummary>> {
        Ok(self
            .runs()?
            .into_iter()
            .filter(|r| match r.status {
                RunStatus::Running | RunStatus::Failed => true,
                RunStatus::Cancelled => self.load_run(&r.run_id).is_ok_and(|s| Self::changed_something(&s)),
                _ => false,
            })
            .collect())
    }

    /// Whether a step that changes the tree, the database or the services began.
    fn changed_something(s: &RunState) -> bool {
        s.records.iter().any(|r| {
            matches!(r, Record::StepBegin { index, .. }
                if !matches!(s.plan.steps.get(*index), Some(Step::Snapshot { .. } | Step::DbSnapshot { .. } | Step::Record)))
        })
    }

    fn refuse_unfinished(&self) -> Result<()> {
        if let Some(r) = self.unfinished_runs()?.first() {
            let what = match r.status {
                RunStatus::Cancelled => "was aborted",
                _ if r.interrupted || r.status == RunStatus::Running => "was interrupted",
                _ => "failed",
            };
            return Err(Error::refused(
                format!("run {} {what} half-way; the repository may be between two states", r.run_id),
                Some(format!(
                    "finish it with `forge-rollback resume {0}` or put everything back with `forge-rollback undo {0}`",
                    r.run_id
                )),
            ));
        }
        Ok(())
    }

    fn summary(a: &Assessment, plan: &Plan, level: Level) -> String {
        let discards = plan.steps.iter().find_map(|s| match s {
            Step::Reset { discards, .. } => Some(discards.len()),
            _ => None,
        });
        let removes = plan.steps.iter().find_map(|s| match s {
            Step::RemoveUntracked { paths, .. } => Some(paths.len()),
            _ => None,
        });
        let mut s = format!(
            "Rollback level: {level}\nRepository: {}\nFrom: {} ({}) {}\nTo:   {} {}\nCommits rolled back: {}\nTracked files that change: {}\nLocal changes discarded (snapshotted first): {}\nUntracked files removed (snapshotted first): {}\n",
            a.workdir.display(),
            a.head.commit.short(),
            a.head.branch.as_deref().unwrap_or("detached"),
            a.head_summary,
            a.target.commit.id.short(),
            a.target.commit.summary,
            a.commits_rolled_back_total,
            a.changes.len(),
            discards.unwrap_or(0),
            removes.unwrap_or(0),
        );
        // What else changes, beyond the work tree: the schema, the env, production.
        for step in &plan.steps {
            let line = match step {
                Step::Downgrade { database, from, to, path, .. } => {
                    let irreversible = path.iter().filter(|p| p.irreversible.is_some()).count();
                    format!(
                        "Database {database}: downgraded {} -> {} ({} migration(s) undone{}; snapshotted first)",
                        full::show_revisions(from),
                        full::show_revisions(to),
                        path.len(),
                        if irreversible > 0 { format!(", {irreversible} IRREVERSIBLE") } else { String::new() }
                    )
                }
                Step::RestoreEnv { record: Some(_), diffs, .. } if !diffs.is_empty() => format!(
                    "Env files replaced with those recorded for the target (snapshotted first): {}",
                    diffs.iter().map(|d| d.file.to_string()).collect::<Vec<_>>().join(", ")
                ),
                Step::Restart { steps, .. } => format!("Services restarted: {}", steps.join(", ")),
                Step::Deploy { .. } => format!("Production: {}", step.details().join("; ")),
                Step::Verify { checks } => format!("Then verified: {} check(s)", checks.len()),
                _ => continue,
            };
            s.push_str(&line);
            s.push('\n');
        }
        s
    }

    // ----- run ------------------------------------------------------------------------

    /// Runs a rollback: plan, safety checks, confirmation, then the steps under the lock.
    pub fn run(&self, opts: &RunOptions, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        let mut ctx = Ctx::new(observer);
        if prompter.is_automatic() && !opts.dry_run {
            return self.run_unattended(&mut ctx, opts);
        }
        let a = self.assess(opts.target.as_deref())?;
        let level = Self::resolve_level(&a, opts.level);
        self.require_database(&a, level)?;
        let mut plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &a, level)?;
        let refusals = self.refusals(&a, opts, level);
        if opts.dry_run || level == Level::Manual {
            self.fill_previews(&mut plan);
        }
        if opts.dry_run {
            let mut warnings: Vec<String> =
                a.risks.iter().filter(|r| r.severity > assess::Severity::Info).map(|r| r.message.clone()).collect();
            warnings.extend(refusals.iter().map(|e| format!("a run would refuse: {e}")));
            return Ok(RunOutcome {
                run_id: None,
                kind: RunKind::Rollback,
                status: RunStatus::Planned,
                level: Some(level),
                from: a.head.commit.clone(),
                branch: a.head.branch.clone(),
                to: a.target.commit.id.clone(),
                backup_id: None,
                undo_of: None,
                started_at: Timestamp::now(),
                finished_at: None,
                duration_ms: 0,
                steps: plan
                    .steps
                    .iter()
                    .map(|s| StepReport { step: s.name().into(), status: "pending".into(), detail: None })
                    .collect(),
                warnings,
                error: None,
                plan: Some(plan),
                verification: None,
                undone_by: None,
            });
        }
        // An unfinished run comes first: until it is settled, the tree is between two states.
        self.refuse_unfinished()?;
        if let Some(e) = refusals.into_iter().next() {
            return Err(e);
        }
        Self::warn_schema(&mut ctx, &a, level);
        let request =
            Confirmation { action: "rollback".into(), summary: Self::summary(&a, &plan, level), plan: plan.clone() };
        if !prompter.confirm(&request)? {
            return Err(Error::Cancelled("the operator declined; nothing was changed".into()));
        }

        self.state.ensure()?;
        let lock = self.take_lock(&mut ctx, "run")?;
        failpoint::hit("after:lock")?;
        self.refuse_unfinished()?;
        // Plan again under the lock, from the state as it is now.
        let now = self.assess(Some(a.target.commit.id.as_str()))?;
        self.require_database(&now, level)?;
        if now.head != a.head {
            return Err(Error::refused(
                format!(
                    "HEAD moved from {} to {} while the rollback was being confirmed",
                    a.head.commit.short(),
                    now.head.commit.short()
                ),
                Some("assess again and rerun".to_owned()),
            ));
        }
        let mut plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &now, level)?;
        if level == Level::Manual {
            self.fill_previews(&mut plan);
        }
        let run_id = new_run_id();
        let manual = (level == Level::Manual).then_some(prompter);
        let outcome = self.start_and_execute(&mut ctx, run_id, &plan, opts.reason.clone(), opts.severity, manual);
        drop(lock);
        outcome
    }

    /// Warns when the code will run on a schema it does not expect.
    fn warn_schema(ctx: &mut Ctx<'_>, a: &Assessment, level: Level) {
        if level != Level::Fast {
            return;
        }
        match &a.database {
            Some(db) if db.needs_downgrade => ctx.log(
                LogLevel::Warn,
                format!(
                    "the database {} is at {}, the target expects {}: the rolled-back code will run on a newer schema (`--full` downgrades it)",
                    db.database,
                    full::show_revisions(&db.current),
                    full::show_revisions(&db.target_heads)
                ),
            ),
            Some(_) => {}
            None if a.has_risk(crate::model::RiskCode::MigrationsChanged) => ctx.log(LogLevel::Warn, "migration files changed between HEAD and the target: the rolled-back code will run on the newer schema"),
            None => {}
        }
    }

    /// `--yes`: no one to ask, so take the lock first and assess and plan once, under it.
    fn run_unattended(&self, ctx: &mut Ctx<'_>, opts: &RunOptions) -> Result<RunOutcome> {
        if opts.level == Some(Level::Manual) {
            return Err(Error::usage(
                "a manual rollback asks before every step: it cannot run with `--yes`".to_owned(),
                Some("drop `--yes` to approve each step, or use `--full` to run them all".to_owned()),
            ));
        }
        // Bad input is reported before anything is written, even the state folder.
        let head = self.vcs.head()?;
        let registry = self.registry()?;
        assess::resolve_target(
            self.vcs.as_ref(),
            &registry,
            &self.registry_path(),
            &head.commit,
            opts.target.as_deref(),
        )?;
        self.state.ensure()?;
        let lock = self.take_lock(ctx, "run")?;
        failpoint::hit("after:lock")?;
        self.refuse_unfinished()?;
        let a = self.assess(opts.target.as_deref())?;
        let level = Self::resolve_level(&a, opts.level);
        self.require_database(&a, level)?;
        if let Some(e) = self.refusals(&a, opts, level).into_iter().next() {
            return Err(e);
        }
        Self::warn_schema(ctx, &a, level);
        let plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &a, level)?;
        let outcome = self.start_and_execute(ctx, new_run_id(), &plan, opts.reason.clone(), opts.severity, None);
        drop(lock);
        outcome
    }

    fn take_lock(&self, ctx: &mut Ctx<'_>, command: &str) -> Result<RunLock> {
        let lock = RunLock::acquire(&self.state.lock_path(), command)?;
        if let Some(prev) = &lock.taken_over {
            ctx.log(LogLevel::Warn, format!("took over a stale lock: its holder ({prev}) is gone"));
        }
        Ok(lock)
    }

    fn start_and_execute(
        &self,
        ctx: &mut Ctx<'_>,
        run_id: String,
        plan: &Plan,
        reason: Option<String>,
        severity: Option<Severity>,
        manual: Option<&dyn Prompter>,
    ) -> Result<RunOutcome> {
        let dir = self.state.run_dir(&run_id);
        fsutil::create_private_dir(&dir)?;
        ctx.open_log(&dir.join("run.log"))?;
        let mut journal = Journal::create(&dir.join("journal.jsonl"))?;
        let started = Timestamp::now();
        journal.append(&Record::Started {
            at: started,
            run_id: run_id.clone(),
            plan: plan.clone(),
            reason,
            severity,
        })?;
        match plan.kind {
            RunKind::Rollback => {
                ctx.log(LogLevel::Info, format!("Emergency rollback {run_id} initiated"));
                ctx.log(LogLevel::Info, format!("Rollback level: {}", plan.level.map_or("fast", Level::as_str)));
            }
            RunKind::Undo => ctx.log(
                LogLevel::Info,
                format!("Undo {run_id} of run {} initiated", plan.undo_of.as_deref().unwrap_or("?")),
            ),
        }
        ctx.log(LogLevel::Info, format!("From {} to {}", plan.from.commit.short(), plan.to.short()));
        // Sent while the first steps run: a slow webhook must not hold up an emergency.
        let started_notice = self.notify_later(crate::notify::NotifyEventKind::Started, &run_id, plan);
        let mut ex = Exec {
            run_id,
            plan,
            journal,
            manifest: None,
            fresh_plan: true,
            manual,
            verification: None,
            aborted: None,
            failure_detail: None,
            skipped: BTreeSet::new(),
            started_notice,
        };
        self.execute(ctx, &mut ex, 0)
    }

    /// Runs the steps from `start`; journals the end of the run; builds the outcome.
    fn execute(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, start: usize) -> Result<RunOutcome> {
        let total = ex.plan.steps.len();
        let mut failure: Option<(usize, Error)> = None;
        for index in start..total {
            let step = &ex.plan.steps[index];
            let name = step.name();
            if ex.skipped.contains(&index) {
                continue;
            }
            if ex.manual.is_some() {
                match self.approve(ctx, ex, index)? {
                    crate::prompt::StepDecision::Run => {}
                    crate::prompt::StepDecision::Skip => continue,
                    crate::prompt::StepDecision::Abort { undo } => {
                        ex.aborted = Some(undo);
                        break;
                    }
                }
            }
            if ctx.observer.should_abort() {
                let e = Error::Callback(format!("stopped before step `{name}` because an event callback failed"));
                let text = chain(&e);
                ex.journal.append(&Record::StepFailed {
                    at: Timestamp::now(),
                    index,
                    step: name.into(),
                    error: text.clone(),
                    detail: None,
                })?;
                ctx.log(LogLevel::Error, text);
                failure = Some((index, e));
                break;
            }
            ex.journal.append(&Record::StepBegin { at: Timestamp::now(), index, step: name.into() })?;
            ctx.observer.event(&Event::StepStarted {
                run_id: ex.run_id.clone(),
                index: index + 1,
                total,
                step: name.into(),
            });
            let t0 = std::time::Instant::now();
            let result = failpoint::hit(&format!("before:{name}"))
                .and_then(|()| self.run_step(ctx, ex, step))
                .and_then(|d| failpoint::hit(&format!("after:{name}")).map(|()| d));
            let millis = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok(detail) => {
                    ex.journal.append(&Record::StepEnd { at: Timestamp::now(), index, step: name.into(), detail })?;
                    ctx.observer.event(&Event::StepFinished {
                        run_id: ex.run_id.clone(),
                        index: index + 1,
                        step: name.into(),
                        millis,
                        ok: true,
                    });
                    failpoint::hit(&format!("end:{name}"))?;
                }
                Err(e) => {
                    let text = chain(&e);
                    ex.journal.append(&Record::StepFailed {
                        at: Timestamp::now(),
                        index,
                        step: name.into(),
                        error: text.clone(),
                        detail: ex.failure_detail.take(),
                    })?;
                    ctx.observer.event(&Event::StepFinished {
                        run_id: ex.run_id.clone(),
                        index: index + 1,
                        step: name.into(),
                        millis,
                        ok: false,
                    });
                    ctx.log(LogLevel::Error, format!("step `{name}` failed: {text}"));
                    if let Some(hint) = e.hint() {
                        // A warning, so it also reaches the outcome and the report.
                        ctx.log(LogLevel::Warn, format!("hint: {hint}"));
                    }
                    failure = Some((index, e));
                    break;
                }
            }
        }
        let finished = Timestamp::now();
        let verification_failed = ex.verification.as_ref().is_some_and(|v| !v.passed);
        let (status, error) = match (&failure, ex.aborted) {
            (Some((_, e)), _) => (RunStatus::Failed, Some(chain(e))),
            (None, Some(_)) => (RunStatus::Cancelled, Some("the operator aborted the run".to_owned())),
            (None, None) if verification_failed => (RunStatus::VerificationFailed, None),
            (None, None) => (RunStatus::Succeeded, None),
        };
        ex.journal.append(&Record::Finished { at: finished, status, error: error.clone() })?;
        let undo_hint = format!("`forge-rollback undo {}` puts everything back", ex.run_id);
        match (status, ex.plan.kind) {
            (RunStatus::Succeeded, RunKind::Rollback) => ctx.log(LogLevel::Success, format!("Rollback complete: {} is at {}", self.workdir().display(), ex.plan.to.short())),
            (RunStatus::Succeeded, RunKind::Undo) => ctx.log(LogLevel::Success, format!("Undo complete: the state before run {} is back", ex.plan.undo_of.as_deref().unwrap_or("?"))),
            (RunStatus::VerificationFailed, _) => ctx.log(
                LogLevel::Error,
                format!("Run {} finished its steps but VERIFICATION FAILED: the services do not answer as expected; {undo_hint}", ex.run_id),
            ),
            (RunStatus::Cancelled, _) => ctx.log(LogLevel::Warn, format!("Run {} aborted by the operator; {undo_hint}", ex.run_id)),
            _ => ctx.log(
                LogLevel::Error,
                format!("Run {} FAILED; `forge-rollback resume {0}` finishes it, {undo_hint}", ex.run_id),
            ),
        }
        let kind = match status {
            RunStatus::Succeeded => crate::notify::NotifyEventKind::Succeeded,
            RunStatus::VerificationFailed => crate::notify::NotifyEventKind::VerificationFailed,
            RunStatus::Cancelled => crate::notify::NotifyEventKind::Cancelled,
            _ => crate::notify::NotifyEventKind::Failed,
        };
        if let Some(started) = ex.started_notice.take() {
            let results = crate::rt::block_on(async { started.await.unwrap_or_default() });
            Self::log_notified(ctx, crate::notify::NotifyEventKind::Started, &results);
        }
        self.notify(ctx, kind, &ex.run_id, ex.plan, error.as_deref());
        let state = RunState::load(ex.journal.path())?;
        let mut outcome = self.outcome_of(&state);
        outcome.warnings = std::mem::take(&mut ctx.warnings);
        self.write_report(&state, &outcome)?;
        if status == RunStatus::Succeeded {
            let json = serde_json::to_vec_pretty(&outcome).unwrap_or_default();
            fsutil::atomic_write(&self.state.run_dir(&ex.run_id).join("run.json"), &json)?;
        }
        let undo_now = match status {
            RunStatus::VerificationFailed => {
                ex.plan.kind == RunKind::Rollback
                    && self.config.verify.on_failure == crate::verify::config::OnFailure::Undo
            }
            RunStatus::Cancelled => ex.aborted == Some(true),
            _ => false,
        };
        if undo_now {
            outcome = self.undo_after(ctx, &ex.run_id, outcome);
        }
        Ok(outcome)
    }

    /// Undoes a run that just finished, under the lock it already holds (`on_failure =
    /// "undo"`, or a manual abort with undo). The outcome returned is the original run's, with
    /// `undone_by` set; a failed undo is a warning on it (the operator can run `undo` again).
    fn undo_after(&self, ctx: &mut Ctx<'_>, run_id: &str, mut outcome: RunOutcome) -> RunOutcome {
        ctx.log(LogLevel::Warn, format!("Undoing run {run_id} now"));
        match self.undo_locked(ctx, run_id) {
            Ok(undo) => {
                outcome.undone_by.clone_from(&undo.run_id);
                if undo.status != RunStatus::Succeeded {
                    outcome.warnings.push(format!(
                        "the automatic undo {} ended {}: {}",
                        undo.run_id.as_deref().unwrap_or("-"),
                        undo.status,
                        undo.error.as_deref().unwrap_or("see its log")
                    ));
                }
            }
            Err(e) => {
                let text = chain(&e);
                ctx.log(LogLevel::Error, format!("the automatic undo of {run_id} failed: {text}"));
                outcome.warnings.push(format!("the automatic undo failed: {text}; run `forge-rollback undo {run_id}`"));
            }
        }
        outcome
    }

    /// Writes `report.md` and `report.json` into the run's folder.
    fn write_report(&self, state: &RunState, outcome: &RunOutcome) -> Result<()> {
        let report = crate::report::build(state, outcome, self.vcs.as_ref());
        let dir = self.state.run_dir(&state.run_id);
        fsutil::atomic_write(&dir.join("report.md"), report.to_markdown().as_bytes())?;
        fsutil::atomic_write(&dir.join("report.json"), report.to_json().as_bytes())?;
        Ok(())
    }

    /// The incident report of a run, built from its journal as it is now (an undo done since
    /// shows in it).
    pub fn report(&self, run_id: &str) -> Result<crate::report::IncidentReport> {
        let state = self.load_run(run_id)?;
        let outcome = self.outcome_of(&state);
        Ok(crate::report::build(&state, &outcome, self.vcs.as_ref()))
    }

    fn outcome_of(&self, state: &RunState) -> RunOutcome {
        let plan = &state.plan;
        let steps = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let status = if state.skipped.contains(&i) {
                    "skipped"
                } else if state.done[i].is_some() {
                    "done"
                } else if state.failure.as_ref().is_some_and(|(f, _)| *f == i) {
                    "failed"
                } else if state.interrupted_at == Some(i) {
                    "interrupted"
                } else {
                    "pending"
                };
                StepReport { step: s.name().into(), status: status.into(), detail: state.done[i].clone() }
            })
            .collect();
        let backup_id = state.snapshot_of("snapshot");
        let finished_at = state.finished_at;
        RunOutcome {
            run_id: Some(state.run_id.clone()),
            kind: plan.kind,
            status: state.status,
            level: plan.level,
            from: plan.from.commit.clone(),
            branch: plan.from.branch.clone(),
            to: plan.to.clone(),
            backup_id,
            undo_of: plan.undo_of.clone(),
            started_at: state.started_at,
            finished_at,
            duration_ms: finished_at.map_or(0, |f| f.millis_since(state.started_at)),
            steps,
            warnings: Vec::new(),
            error: state.failure.as_ref().map(|(_, e)| e.clone()).or_else(|| {
                state.records.iter().rev().find_map(|r| match r {
                    Record::Finished { error: Some(e), status: RunStatus::Cancelled, .. } => Some(e.clone()),
                    _ => None,
                })
            }),
            plan: None,
            verification: state
                .detail_of("verify")
                .and_then(|d| serde_json::from_value::<crate::verify::VerificationReport>(d.clone()).ok()),
            undone_by: state.undone_by.clone(),
        }
    }

    // ----- steps ----------------------------------------------------------------------

    fn run_step(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, step: &Step) -> Result<serde_json::Value> {
        match step {
            Step::Snapshot { .. } => self.step_snapshot(ctx, ex),
            Step::Reset { target, branch, changes, .. } => self.step_reset(ctx, ex, target, branch.as_deref(), changes),
            Step::RemoveUntracked { recompute, .. } => self.step_remove_untracked(ctx, ex, *recompute),
            Step::ClearCaches { .. } => self.step_clear_caches(ctx, ex),
            Step::RestoreFiles { snapshot, .. } => self.step_restore_files(ctx, snapshot),
            Step::RestoreIndex { snapshot } => self.step_restore_index(ctx, snapshot),
            Step::DbSnapshot { .. } => self.step_db_snapshot(ctx, ex),
            Step::Downgrade { to, from, .. } => self.step_downgrade(ctx, ex, from, to),
            Step::RestoreEnv { record, .. } => self.step_restore_env(ctx, record.as_ref()),
            Step::RestoreDatabase { snapshot, .. } => self.step_restore_database(ctx, snapshot),
            Step::Restart { .. } => self.step_restart(ctx),
            Step::Deploy { .. } => self.step_deploy(ctx, ex),
            Step::Verify { .. } => self.step_verify(ctx, ex),
            Step::Record => self.step_record(ctx, ex),
        }
    }

    fn reset_changes(plan: &Plan) -> &[vcs::Change] {
        plan.steps
            .iter()
            .find_map(|s| match s {
                Step::Reset { changes, .. } => Some(changes.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    fn step_snapshot(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, "Creating backup of current state...");
        let head = self.vcs.head()?;
        if head.commit != ex.plan.from.commit {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, not at {} where the run started",
                    head.commit.short(),
                    ex.plan.from.commit.short()
                ),
                None,
            ));
        }
        let store = self.store()?;
        let workdir = self.workdir();
        let captures = if ex.fresh_plan {
            ex.plan.captures().to_vec()
        } else {
            // A resume scans again; the env files a full plan (or an undo) captures are not in
            // `git status` (they are ignored), so they come from the plan.
            let status = self.vcs.status(true)?;
            let env: Vec<RepoPath> =
                ex.plan.captures().iter().filter(|c| c.origin == Origin::Env).map(|c| c.path.clone()).collect();
            planner::with_env_files(
                planner::captures(workdir, &self.config, &status, Self::reset_changes(ex.plan)),
                &env,
            )
        };
        let paths: Vec<(RepoPath, Origin)> = captures.into_iter().map(|c| (c.path, c.origin)).collect();
        let (entries, mut stats) = backup::snapshot::capture(store.as_ref(), workdir, &paths)?;
        let index_path = self.vcs.index_path();
        let index = match std::fs::read(&index_path) {
            Ok(bytes) => {
                let (blob, new) = store.put_blob(&bytes)?;
                stats.blobs += 1;
                if new {
                    stats.new_blobs += 1;
                    stats.new_bytes += bytes.len() as u64;
                }
                let mut staged = Vec::new();
                for s in self.vcs.staged_blobs()? {
                    let (b, new) = store.put_blob(&s.content)?;
                    if new {
                        stats.new_blobs += 1;
                        stats.new_bytes += s.content.len() as u64;
                    }
                    staged.push(StagedObject { path: s.path, oid: s.oid, blob: b });
                }
                Some(IndexSnapshot { blob, staged })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(fsutil::IoError::new("read", &index_path, e).into()),
        };
        failpoint::hit("inside:snapshot")?;
        let manifest = Manifest {
            format: 1,
            id: SnapshotId::generate(),
            created_at: Timestamp::now(),
            run_id: Some(ex.run_id.clone()),
            workdir: workdir.to_path_buf(),
            head: head.commit.clone(),
            branch: head.branch.clone(),
            entries,
            index,
            label: None,
            database: None,
        };
        store.put_manifest(&manifest)?;
        let report = store.verify(Some(std::slice::from_ref(&manifest.id)))?;
        if !report.problems.is_empty() {
            return Err(Error::refused(
                format!("the new backup {} failed verification: {}", manifest.id, report.problems.join("; ")),
                None,
            ));
        }
        self.vcs.set_ref(&pin_ref(&ex.run_id), &head.commit, "forge-rollback: keep the pre-rollback commit")?;
        ctx.log(
            LogLevel::Success,
            format!(
                "Backup {} created and verified: {} path(s), {} byte(s), {} new byte(s) stored",
                manifest.id,
                manifest.entries.len(),
                manifest.content_bytes(),
                stats.new_bytes
            ),
        );
        let detail = serde_json::json!({
            "snapshot": manifest.id,
            "entries": manifest.entries.len(),
            "bytes": manifest.content_bytes(),
            "new_blobs": stats.new_blobs,
            "new_bytes": stats.new_bytes,
            "verified_blobs": report.blobs,
        });
        ex.manifest = Some(manifest);
        Ok(detail)
    }

    fn own_manifest(&self, ex: &mut Exec<'_>) -> Result<Manifest> {
        if let Some(m) = &ex.manifest {
            return Ok(m.clone());
        }
        let state = RunState::load(ex.journal.path())?;
        let id = state
            .snapshot_of("snapshot")
            .ok_or_else(|| Error::refused(format!("run {} has no completed snapshot", ex.run_id), None))?;
        let m = self.store()?.manifest(&id)?;
        ex.manifest = Some(m.clone());
        Ok(m)
    }

    fn remove_entry(&self, path: &RepoPath) -> Result<bool> {
        let full = path.to_fs(self.workdir());
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(&full).at("remove folder", &full)?;
                Ok(true)
            }
            Ok(_) => Ok(fsutil::remove_file_if_exists(&full)?),
            Err(_) => Ok(false),
        }
    }

    fn step_reset(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        target: &CommitId,
        branch: Option<&str>,
        changes: &[vcs::Change],
    ) -> Result<serde_json::Value> {
        let manifest = self.own_manifest(ex)?;
        let head = self.vcs.head()?;
        let message = format!("forge-rollback: {} {} to {}", ex.plan.kind.as_str(), ex.run_id, target.short());
        let mut cleared = 0;
        if head.commit == ex.plan.from.commit {
            for p in planner::clear_way_from(&manifest, changes) {
                if self.remove_entry(&p)? {
                    cleared += 1;
                }
            }
            failpoint::hit("inside:reset")?;
        } else if head.commit != *target {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, neither where run {} started ({}) nor its target ({})",
                    head.commit.short(),
                    ex.run_id,
                    ex.plan.from.commit.short(),
                    target.short()
                ),
                Some(
                    "something moved HEAD since the run stopped; `forge-rollback undo` restores the snapshot"
                        .to_owned(),
                ),
            ));
        }
        ctx.log(LogLevel::Info, format!("Reverting code to commit: {target}"));
        match branch {
            Some(b) if head.branch.as_deref() != Some(b) => self.vcs.checkout_branch_at(b, target, &message)?,
            _ => self.vcs.reset_hard(target, &message)?,
        }
        let kept = if ex.plan.kind == RunKind::Rollback { self.keep_tool_files(ctx, &manifest)? } else { Vec::new() };
        Ok(serde_json::json!({ "target": target, "cleared": cleared, "changed": changes.len(), "kept": kept }))
    }

    /// The tool's own files inside the work tree: the registry and the configuration file.
    /// A rollback never removes them and leaves them with their pre-rollback content (the old
    /// scripts reset their own config and backups away).
    pub fn tool_files(&self) -> Vec<RepoPath> {
        let workdir = self.workdir();
        let mut out = Vec::new();
        for path in std::iter::once(self.registry_path()).chain(self.config.source.clone()) {
            let path = normalize(&if path.is_absolute() { path } else { workdir.join(path) });
            if path.starts_with(workdir)
                && let Ok(rel) = RepoPath::from_fs(workdir, &path)
                && !out.contains(&rel)
            {
                out.push(rel);
            }
        }
        out
    }

    /// Puts the registry and the config file back as they were before the reset: the target's
    /// older copies must not forget commits marked since (a bad release would become eligible
    /// again) nor settings changed since.
    fn keep_tool_files(&self, ctx: &mut Ctx<'_>, manifest: &Manifest) -> Result<Vec<String>> {
        let workdir = self.workdir();
        let mut kept = Vec::new();
        for rel in self.tool_files() {
            let path = rel.to_fs(workdir);
            // Content and mode as they were: a config holding an inline secret at 0600 stays
            // 0600.
            let (before, mode) = if let Some(e) = manifest.entries.iter().find(|e| e.path == rel) {
                match &e.kind {
                    EntryKind::File { blob, mode, .. } => (Some(self.store()?.get_blob(blob)?), *mode & 0o7777),
                    _ => (None, 0o644),
                }
            } else {
                let mode = std::fs::symlink_metadata(&path)
                    .map_or(0o644, |m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
                (self.vcs.read_file_at(&manifest.head, &rel)?, mode)
            };
            let Some(before) = before else { continue };
            if std::fs::read(&path).ok().as_deref() == Some(&before[..]) {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).at("create folder", parent)?;
            }
            fsutil::atomic_write_mode(&path, &before, mode)?;
            ctx.log(LogLevel::Info, format!("Kept `{rel}` as it was before the reset (commit it to keep it)"));
            kept.push(rel.to_string());
        }
        Ok(kept)
    }

    fn step_remove_untracked(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        recompute: bool,
    ) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, "Cleaning untracked files...");
        let manifest = self.own_manifest(ex)?;
        let paths: Vec<RepoPath> = if recompute {
            // Undo: remove what is untracked at the restored commit, was captured by this
            // run's snapshot, and is not part of the state being restored.
            let captured: BTreeSet<&RepoPath> =
                manifest.entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| &e.path).collect();
            let restored: BTreeSet<RepoPath> = match ex.plan.steps.iter().find_map(|s| match s {
                Step::RestoreFiles { snapshot, .. } => Some(snapshot.clone()),
                _ => None,
            }) {
                Some(id) => self
                    .store()?
                    .manifest(&id)?
                    .entries
                    .into_iter()
                    .filter(|e| e.kind != EntryKind::Absent)
                    .map(|e| e.path)
                    .collect(),
                None => BTreeSet::new(),
            };
            let mut out = Vec::new();
            for e in self.vcs.status(false)? {
                if e.kind != StatusKind::Untracked || restored.contains(&e.path) {
                    continue;
                }
                if captured.contains(&e.path) {
                    out.push(e.path);
                } else {
                    ctx.log(LogLevel::Warn, format!("left `{}` in place: it is not in this run's snapshot", e.path));
                }
            }
            out
        } else {
            let keep = self.tool_files();
            planner::removals_from(&manifest, Self::reset_changes(ex.plan))
                .into_iter()
                .filter(|p| !keep.contains(p))
                .collect()
        };
        let workdir = self.workdir();
        let mut removed = 0;
        for p in &paths {
            let full = p.to_fs(workdir);
            match std::fs::symlink_metadata(&full) {
                Ok(m) if !m.is_dir() => {
                    fsutil::remove_file_if_exists(&full)?;
                    removed += 1;
                    if let Some(parent) = full.parent() {
                        fsutil::remove_empty_parents(parent, workdir);
                    }
                }
                _ => {}
            }
        }
        Ok(serde_json::json!({ "removed": removed }))
    }

    fn step_clear_caches(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, "Clearing Python cache...");
        // A fresh plan listed the caches from the status taken under the lock; a resumed run
        // asks again.
        let found = match (
            ex.fresh_plan,
            ex.plan.steps.iter().find_map(|s| match s {
                Step::ClearCaches { found } => Some(found),
                _ => None,
            }),
        ) {
            (true, Some(found)) => found.clone(),
            _ => planner::find_caches(&self.config, &self.vcs.status(true)?, Self::reset_changes(ex.plan)),
        };
        let mut removed = 0;
        for p in &found {
            if self.remove_entry(p)? {
                removed += 1;
            }
            // A cache folder emptied by removing its files one by one goes too.
            for parent in p.ancestors() {
                if !self.config.is_cache(&parent) || std::fs::remove_dir(parent.to_fs(self.workdir())).is_err() {
                    break;
                }
            }
        }
        Ok(serde_json::json!({ "removed": removed }))
    }

    fn step_restore_files(&self, ctx: &mut Ctx<'_>, snapshot: &SnapshotId) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, format!("Restoring files from backup {snapshot}..."));
        let store = self.store()?;
        let m = store.manifest(snapshot)?;
        let stats = backup::snapshot::restore(store.as_ref(), self.workdir(), &m.entries)?;
        Ok(serde_json::to_value(stats).unwrap_or_default())
    }

    fn step_restore_index(&self, ctx: &mut Ctx<'_>, snapshot: &SnapshotId) -> Result<serde_json::Value> {
        let store = self.store()?;
        let m = store.manifest(snapshot)?;
        let Some(index) = &m.index else { return Ok(serde_json::json!({ "restored": false })) };
        ctx.log(LogLevel::Info, "Restoring the index (staged changes)...");
        let mut written = 0;
        for s in &index.staged {
            if !self.vcs.has_object(&s.oid)? {
                let content = store.get_blob(&s.blob)?;
                let oid = self.vcs.write_blob(&content)?;
                if oid != s.oid {
                    return Err(Error::refused(
                        format!("staged content of `{}` hashes to {oid}, not {}", s.path, s.oid),
                        None,
                    ));
                }
                written += 1;
            }
        }
        let bytes = store.get_blob(&index.blob)?;
        fsutil::atomic_write_mode(&self.vcs.index_path(), &bytes, 0o644)?;
        Ok(serde_json::json!({ "restored": true, "objects_written": written }))
    }

    fn step_record(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        if let Some(orig) = &ex.plan.undo_of {
            let path = self.state.run_dir(orig).join("journal.jsonl");
            let mut j = Journal::open(&path)?;
            j.append(&Record::Undone { at: Timestamp::now(), by: ex.run_id.clone() })?;
        }
        let head = self.vcs.head()?;
        ctx.log(
            LogLevel::Info,
            format!(
                "Recorded: HEAD is {} on {}",
                head.commit.short(),
                head.branch.as_deref().unwrap_or("detached HEAD")
            ),
        );
        Ok(serde_json::json!({ "head": head.commit, "branch": head.branch }))
    }

    // ----- undo and resume ------------------------------------------------------------

    fn load_run(&self, run_id: &str) -> Result<RunState> {
        if !valid_run_id(run_id) {
            return Err(journal::Error::UnknownRun { run_id: run_id.into() }.into());
        }
        let path = self.state.run_dir(run_id).join("journal.jsonl");
        if !path.exists() {
            return Err(journal::Error::UnknownRun { run_id: run_id.into() }.into());
        }
        Ok(RunState::load(&path)?)
    }

    /// Undoes run `run_id`: restores exactly the state its snapshot recorded (branch, HEAD,
    /// every file's bytes, mode and symlink target, untracked files, the index, and for a full
    /// rollback the database and the env files). The undo is itself a run with its own
    /// snapshot, so it can be undone too.
    pub fn undo(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        let mut ctx = Ctx::new(observer);
        let target = self.load_run(run_id)?;
        Self::refuse_undone(run_id, &target)?;
        let head = self.vcs.head()?;
        if let Some((manifest, db)) = self.undo_inputs(&target)? {
            let plan = planner::undo_plan(self.vcs.as_ref(), &self.config, &head, &manifest, run_id, db.as_ref())?;
            let summary = format!(
                "Undo run {run_id}\nRepository: {}\nFrom: {} ({})\nBack to: {} on {} with {} path(s) from backup {}{}\n",
                self.workdir().display(),
                head.commit.short(),
                head.branch.as_deref().unwrap_or("detached"),
                manifest.head.short(),
                manifest.branch.as_deref().unwrap_or("detached HEAD"),
                manifest.entries.len(),
                manifest.id,
                db.as_ref()
                    .map(|d| format!("\nDatabase: {} back from backup {}", d.database, d.snapshot))
                    .unwrap_or_default()
            );
            if !prompter.confirm(&Confirmation { action: "undo".into(), summary, plan })? {
                return Err(Error::Cancelled("the operator declined; nothing was changed".into()));
            }
        }
        self.state.ensure()?;
        let lock = self.take_lock(&mut ctx, &format!("undo {run_id}"))?;
        failpoint::hit("after:lock")?;
        if self.vcs.head()? != head {
            return Err(Error::refused(
                "HEAD moved while the undo was being confirmed".to_owned(),
                Some("run the undo again".to_owned()),
            ));
        }
        let out = self.undo_locked(&mut ctx, run_id);
        drop(lock);
        out
    }

    fn refuse_undone(run_id: &str, target: &RunState) -> Result<()> {
        if target.status == RunStatus::Undone {
            return Err(Error::refused(
                format!("run {run_id} was already undone by {}", target.undone_by.as_deref().unwrap_or("?")),
                Some(format!(
                    "to get its result back, undo that run: `forge-rollback undo {}`",
                    target.undone_by.as_deref().unwrap_or("?")
                )),
            ));
        }
        Ok(())
    }

    /// The work-tree snapshot of a run and, if it took one, its database snapshot; `None`
    /// when the run stopped before its snapshot completed (it changed nothing).
    fn undo_inputs(&self, target: &RunState) -> Result<Option<(Manifest, Option<planner::DbRestore>)>> {
        let snapshot = target.snapshot_of("snapshot");
        let Some(snapshot) = snapshot else { return Ok(None) };
        let manifest = self.store()?.manifest(&snapshot)?;
        // The database goes back only if the run changed it: its downgrade (or database
        // restore) began and was neither skipped nor put back already after failing.
        // Restoring a dump the run never diverged from would only discard the writes made
        // since it was taken.
        let changed_db = target.plan.steps.iter().enumerate().any(|(i, s)| {
            matches!(s, Step::Downgrade { .. } | Step::RestoreDatabase { .. })
                && target.step_changed(i, "database_changed")
        });
        let db_snapshot = target.snapshot_of("db_snapshot").filter(|_| changed_db);
        let db = match db_snapshot {
            Some(id) => {
                let m = self.store()?.manifest(&id)?;
                let Some(rec) = m.database else {
                    return Err(Error::refused(format!("backup {id} holds no database dump"), None));
                };
                let current = match self.db()? {
                    Some(db) => crate::rt::block_on(db.current()).unwrap_or_default(),
                    None => Vec::new(),
                };
                Some(planner::DbRestore { snapshot: id, database: rec.database, current })
            }
            None => None,
        };
        Ok(Some((manifest, db)))
    }

    /// The undo itself, under the lock the caller holds.
    fn undo_locked(&self, ctx: &mut Ctx<'_>, run_id: &str) -> Result<RunOutcome> {
        let target = self.load_run(run_id)?;
        Self::refuse_undone(run_id, &target)?;
        // Other unfinished runs (not this one, which the undo settles) block an undo too.
        if let Some(r) = self.unfinished_runs()?.into_iter().find(|r| r.run_id != run_id) {
            return Err(Error::refused(
                format!("run {} is unfinished", r.run_id),
                Some(format!("resume or undo {} first", r.run_id)),
            ));
        }
        let Some((manifest, db)) = self.undo_inputs(&target)? else {
            // Stopped before its snapshot completed: it changed nothing.
            let mut j = Journal::open(&self.state.run_dir(run_id).join("journal.jsonl"))?;
            j.append(&Record::Undone { at: Timestamp::now(), by: "nothing-changed".into() })?;
            ctx.log(LogLevel::Info, format!("run {run_id} stopped before changing anything; marked as undone"));
            let mut outcome = self.outcome_of(&self.load_run(run_id)?);
            outcome.warnings = std::mem::take(&mut ctx.warnings);
            return Ok(outcome);
        };
        if db.is_some() && self.db()?.is_none() {
            return Err(Error::usage(
                format!("run {run_id} changed the database, but no `[database]` is configured now"),
                Some("restore the `[database]` section of the configuration, then undo again".to_owned()),
            ));
        }
        let head = self.vcs.head()?;
        let plan = planner::undo_plan(self.vcs.as_ref(), &self.config, &head, &manifest, run_id, db.as_ref())?;
        self.start_and_execute(ctx, new_run_id(), &plan, Some(format!("undo of {run_id}")), None, None)
    }

    /// Finishes an interrupted or failed run from the first step that did not complete.
    pub fn resume(&self, run_id: &str, observer: &dyn Observer) -> Result<RunOutcome> {
        self.resume_with(run_id, &crate::prompt::AutoConfirm, observer)
    }

    /// [`Rollback::resume`], asking `prompter` before each remaining step of a manual run
    /// (an automatic prompter runs them unasked).
    pub fn resume_with(&self, run_id: &str, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        let mut ctx = Ctx::new(observer);
        self.load_run(run_id)?;
        self.state.ensure()?;
        let lock = self.take_lock(&mut ctx, &format!("resume {run_id}"))?;
        let state = self.load_run(run_id)?;
        match state.status {
            RunStatus::Running | RunStatus::Failed => {}
            // A manual run the operator aborted part-way can be finished later.
            RunStatus::Cancelled if Self::changed_something(&state) => {}
            other => {
                return Err(Error::refused(format!("run {run_id} is {other}: there is nothing to resume"), None));
            }
        }
        let head = self.vcs.head()?;
        let plan = state.plan.clone();
        if head.commit != plan.from.commit && head.commit != plan.to {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, neither where run {run_id} started ({}) nor its target ({})",
                    head.commit.short(),
                    plan.from.commit.short(),
                    plan.to.short()
                ),
                Some(format!("`forge-rollback undo {run_id}` restores the state from before the run")),
            ));
        }
        // Steps that change the tree or the database: once one has begun, the snapshots taken
        // before it are the only record of the prior state and must not be taken again.
        let changes_begun = state.records.iter().any(|r| {
            matches!(r, Record::StepBegin { index, .. }
                if matches!(plan.steps.get(*index), Some(Step::Reset { .. } | Step::Downgrade { .. } | Step::RestoreDatabase { .. })))
        });
        let mut start = state.next_step().unwrap_or(plan.steps.len());
        if !changes_begun && head.commit == plan.from.commit {
            // Nothing destructive happened yet: capture the tree again as it is now.
            start = 0;
        }
        let dir = self.state.run_dir(run_id);
        ctx.open_log(&dir.join("run.log"))?;
        let mut journal = Journal::open(&dir.join("journal.jsonl"))?;
        journal.append(&Record::Resumed { at: Timestamp::now() })?;
        ctx.log(LogLevel::Info, format!("Resuming run {run_id} at step {} of {}", start + 1, plan.steps.len()));
        let manual = (plan.level == Some(Level::Manual) && plan.kind == RunKind::Rollback && !prompter.is_automatic())
            .then_some(prompter);
        let mut ex = Exec {
            run_id: run_id.to_owned(),
            plan: &plan,
            journal,
            manifest: None,
            fresh_plan: false,
            manual,
            verification: None,
            aborted: None,
            failure_detail: None,
            skipped: state.skipped.iter().copied().collect(),
            started_notice: None,
        };
        let out = self.execute(&mut ctx, &mut ex, start);
        drop(lock);
        out
    }

    // ----- runs -----------------------------------------------------------------------

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>> {
        let dir = self.state.runs_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fsutil::IoError::new("read folder", &dir, e).into()),
        };
        let mut ids: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| valid_run_id(n))
            .collect();
        ids.sort();
        let live = lock::holder(&self.state.lock_path())?;
        let mut summaries = Vec::new();
        for id in ids {
            let path = self.state.run_dir(&id).join("journal.jsonl");
            if !path.exists() {
                continue;
            }
            let s = RunState::load(&path)?;
            summaries.push(RunSummary {
                interrupted: s.status == RunStatus::Running && live.is_none(),
                backup_id: s.snapshot_of("snapshot"),
                run_id: s.run_id,
                kind: s.plan.kind,
                status: s.status,
                level: s.plan.level,
                from: s.plan.from.commit,
                to: s.plan.to,
                undo_of: s.plan.undo_of,
                undone_by: s.undone_by,
                started_at: s.started_at,
                finished_at: s.finished_at,
                reason: s.reason,
            });
        }
        // Ids sort by second only; two runs in the same second sort by their start time.
        summaries.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        Ok(summaries)
    }

    /// One run's outcome, journal records and log lines.
    pub fn run_details(&self, run_id: &str) -> Result<(RunOutcome, Vec<Record>, String)> {
        let s = self.load_run(run_id)?;
        let log = std::fs::read_to_string(self.state.run_dir(run_id).join("run.log")).unwrap_or_default();
        let records = s.records.clone();
        Ok((self.outcome_of(&s), records, log))
    }

    // ----- known-good registry --------------------------------------------------------

    fn edit_registry(
        &self,
        rev: &str,
        f: impl FnOnce(&mut Registry, &CommitId) -> Result<MarkOutcome>,
    ) -> Result<MarkOutcome> {
        let id = self.vcs.resolve(rev)?;
        let path = self.registry_path();
        let mut reg = Registry::load(&path)?;
        let out = f(&mut reg, &id)?;
        reg.save(&path)?;
        Ok(out)
    }

    /// Marks `rev` verified known-good. When `rev` is HEAD, also records the `[env] files`
    /// with it (restored by a full rollback to it) and, with a `[database]`, fills the entry's
    /// `database_migrations` with the database's revisions.
    pub fn mark_good(&self, rev: &str, note: Option<&str>) -> Result<MarkOutcome> {
        let id = self.vcs.resolve(rev)?;
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
        let mut out = self.edit_registry(rev, |r, id| {
            let mut out = r.mark(self.vcs.as_ref(), id, note)?;
            if let Some(revs) = &revisions {
                if let Some(e) = r.commits.iter_mut().find(|e| e.hash == id.as_str()) {
                    e.database_migrations = revs.iter().map(|r| r.0.clone()).collect();
                    out.entry = e.clone();
                }
            }
            Ok(out)
        })?;
        if is_head {
            out.env = self.record_env(&id)?;
            if out.env.is_none() && !self.config.env.files.is_empty() {
                notes.push("no env file exists: nothing recorded for a full rollback to restore".into());
            }
        } else if !self.config.env.files.is_empty() {
            notes.push(format!(
                "env files not recorded: {} is not HEAD, and the files in the work tree belong to HEAD (mark a release while it is deployed)",
                id.short()
            ));
        }
        out.notes = notes;
        Ok(out)
    }

    /// Marks `rev` known bad: never a target.
    pub fn mark_bad(&self, rev: &str, note: Option<&str>) -> Result<MarkOutcome> {
        self.edit_registry(rev, |r, id| r.mark_bad(self.vcs.as_ref(), id, note))
    }

    /// Removes `rev` from the registry.
    pub fn unmark(&self, rev: &str) -> Result<crate::registry::Entry> {
        let id = self.vcs.resolve(rev)?;
        let path = self.registry_path();
        let mut reg = Registry::load(&path)?;
        let e = reg.unmark(&id, &path)?;
        reg.save(&path)?;
        Ok(e)
    }

    // ----- backups and lock -----------------------------------------------------------

    /// Every snapshot, oldest first.
    pub fn backups(&self) -> Result<Vec<backup::SnapshotSummary>> {
        if !self.state.backups_dir().exists() && self.store.get().is_none() {
            return Ok(Vec::new());
        }
        Ok(self.store()?.list()?)
    }

    /// Re-hashes every blob of the named snapshots (all when `None`).
    pub fn verify_backups(&self, ids: Option<&[SnapshotId]>) -> Result<backup::VerifyReport> {
        Ok(self.store()?.verify(ids)?)
    }

    /// Keeps the `keep` newest snapshots, plus the work-tree and database snapshots of
    /// unfinished runs (interrupted, failed, aborted part-way) and the newest env record of
    /// every verified known-good commit; removes the rest, the pinned refs of runs whose
    /// snapshot went, and unreferenced blobs.
    pub fn prune_backups(&self, keep: usize, dry_run: bool) -> Result<backup::PruneReport> {
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
        // The newest env record of every commit the registry lists as verified: a full
        // rollback to it restores that env.
        if let Ok(reg) = self.registry() {
            let mut newest: std::collections::BTreeMap<CommitId, backup::SnapshotSummary> =
                std::collections::BTreeMap::new();
            for s in self.store()?.list()? {
                if s.label.as_deref() == Some(crate::env::LABEL)
                    && reg.find(&s.head).is_some_and(|e| e.verified && !e.known_bad)
                    && newest.get(&s.head).is_none_or(|n| (n.created_at, &n.id) < (s.created_at, &s.id))
                {
                    newest.insert(s.head.clone(), s);
                }
            }
            protect.extend(newest.into_values().map(|s| s.id));
        }
        let _lock = if dry_run { None } else { Some(RunLock::acquire(&self.state.lock_path(), "backups prune")?) };
        let report = self.store()?.prune(keep, &protect, dry_run)?;
        if !dry_run {
            for r in runs.iter().filter(|r| r.backup_id.as_ref().is_some_and(|b| report.removed_snapshots.contains(b)))
            {
                self.vcs.delete_ref(&pin_ref(&r.run_id))?;
            }
        }
        Ok(report)
    }

    /// Who holds the run lock, if a live process does.
    pub fn lock_holder(&self) -> Result<Option<LockHolder>> {
        Ok(lock::holder(&self.state.lock_path())?)
    }

    /// Removes a dead holder's leftover lock file; refuses while the holder is alive.
    pub fn unlock(&self) -> Result<Option<LockHolder>> {
        Ok(lock::unlock(&self.state.lock_path())?)
    }
}
