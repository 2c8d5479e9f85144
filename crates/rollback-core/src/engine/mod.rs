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

mod admin;
mod builder;
mod db_back;
mod db_undo;
mod exec;
mod forecast;
mod full;
pub(crate) use crate::db::show_revisions;
mod manual;
mod pipeline;
pub mod planner;
mod production;
mod recapture;
mod refuse;
mod rehearse;
mod resume;
mod rollback_entry;
mod runs;
mod scope;
mod services;
mod steps;
mod support;
mod undo;
mod undo_checks;
mod undo_plan;
mod upgrade;

pub use builder::RollbackBuilder;
use exec::Exec;
use support::Ctx;
pub use upgrade::DatabaseUpgrade;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::assess::{self, Assessment};
use crate::backup::BackupStore;
use crate::backup::store::FsBackupStore;
use crate::config::Config;
use crate::db::DbMigrator;
use crate::error::Result;
use crate::journal::Severity;
use crate::plan::{Level, Plan};
use crate::production::Deployer;
use crate::registry::Registry;
use crate::state::StateDir;
use crate::vcs::{self, BackendKind, VcsBackend};
use crate::verify::ServiceVerifier;

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
    /// Who asked for the run (an operator, a token's subject): journaled, and in the report.
    pub actor: Option<String>,
    /// Only the database part of a full rollback: snapshot the database and downgrade it to
    /// the target's revision, leaving the code, the env files and the services as they are
    /// (`run --database-only`). A fleet runs it once, on one host, before any host's code
    /// moves; `undo RUN` brings the schema and the rows back like any full run's undo.
    pub database_only: bool,
    /// Roll back only from this commit: refused, changing nothing, when HEAD is elsewhere when
    /// the run takes its lock. A watcher passes the commit its failing rounds checked, so that
    /// a fix deployed meanwhile (or another watcher's rollback) is not rolled back unchecked.
    pub expect_head: Option<crate::vcs::CommitId>,
}

pub use crate::outcome::{RunOutcome, RunSummary, StepReport};

/// A database notice, as a warning log event to `observer`.
fn notice_sink(observer: &Arc<dyn crate::event::Observer>) -> crate::db::NoticeSink {
    let observer = observer.clone();
    Arc::new(move |n: &crate::db::DbNotice| {
        observer.event(&crate::event::Event::Log {
            at: crate::time::Timestamp::now(),
            level: crate::event::LogLevel::Warn,
            message: n.to_string(),
            hint: None,
        });
    })
}

/// Options of an undo.
#[derive(Clone, Debug, Default)]
pub struct UndoOptions {
    /// Put the database back exactly as the run's snapshot holds it even when rows were
    /// written since: the database as it is now is first dumped into the state folder (and
    /// the undo says where). Without it, an undo whose database changed since the run brings
    /// the schema forward and puts back only what the downgrade dropped, or refuses.
    pub restore_snapshot: bool,
    /// Who asked for the undo (journaled, and in its report).
    pub actor: Option<String>,
}

/// A repository opened for rollbacks.
pub struct Rollback {
    vcs: Arc<dyn VcsBackend>,
    config: Config,
    state: StateDir,
    store: OnceLock<Arc<dyn BackupStore>>,
    db: OnceLock<Arc<dyn DbMigrator>>,
    verifier: OnceLock<Arc<dyn ServiceVerifier>>,
    deployer: Option<Arc<dyn Deployer>>,
    /// Hears what happens outside a run's steps too (a locked database while assessing).
    notices: Option<Arc<dyn crate::event::Observer>>,
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

impl Rollback {
    /// Opens the repository containing `dir` with the configuration found there (or `config`).
    pub fn open(dir: &Path, config: Option<&Path>) -> Result<Self> {
        let probe = vcs::git2::Git2Backend::open(dir)?;
        let workdir = probe.workdir().to_path_buf();
        let config_path = config.map(|c| if c.is_absolute() { c.to_path_buf() } else { dir.join(c) });
        let config = Config::discover(&workdir, config_path.as_deref())?;
        let backend: Box<dyn VcsBackend> = match config.vcs.backend {
            BackendKind::Git2 => Box::new(probe),
            BackendKind::GitCli => {
                Box::new(vcs::cli::GitCliBackend::with_reader(probe).with_fetch_timeout(config.vcs.fetch_timeout()))
            }
        };
        Self::with_backend(backend, config)
    }

    /// Uses an already opened backend and a loaded configuration.
    pub fn with_backend(vcs: Box<dyn VcsBackend>, config: Config) -> Result<Self> {
        Self::from_parts(Arc::from(vcs), config)
    }

    /// A rollback over `vcs` with `config`; the state folder is checked and chosen here.
    ///
    /// A configured `state.dir` is resolved for real (symlinks and `..` of the part that
    /// exists) before it is compared with the work tree, and the resolved path is the one used:
    /// a symlink cannot bring the state into the tree, where a reset or clean would delete it.
    fn from_parts(vcs: Arc<dyn VcsBackend>, config: Config) -> Result<Self> {
        let workdir = crate::fsutil::resolve(vcs.workdir());
        let git_dir = crate::fsutil::resolve(vcs.git_dir());
        let state = match &config.state.dir {
            Some(configured) => {
                let d = crate::fsutil::resolve(&workdir.join(configured));
                if d.starts_with(&workdir) && !d.starts_with(&git_dir) {
                    let shown = if support::normalize(&workdir.join(configured)) == d {
                        format!("`{}` is", d.display())
                    } else {
                        format!("`{}` resolves to `{}`, which is", configured.display(), d.display())
                    };
                    return Err(crate::config::Error::Invalid {
                        path: config.source.clone().unwrap_or_else(|| PathBuf::from("<defaults>")),
                        key: "state.dir".into(),
                        message: format!(
                            "{shown} inside the work tree `{}`, where a reset or clean could delete it",
                            workdir.display()
                        ),
                    }
                    .into());
                }
                StateDir::new(d)
            }
            None => StateDir::default_for(&git_dir),
        };
        // `[deploy] strategy = "railway"`: its adapter; `with_deployer` may replace it.
        let deployer = config.deploy.as_ref().and_then(crate::platform::from_config);
        Ok(Self {
            vcs,
            config,
            state,
            store: OnceLock::new(),
            db: OnceLock::new(),
            verifier: OnceLock::new(),
            deployer,
            notices: None,
        })
    }

    /// Sends what the database layer notices while it waits (another connection holding a
    /// lock: said within about two seconds, with how long the wait goes on) to `observer`,
    /// as [`crate::event::Event::Log`] warnings, for every command: `assess` and `plan` as
    /// well as runs.
    #[must_use]
    pub fn with_notices(mut self, observer: Arc<dyn crate::event::Observer>) -> Self {
        if let Some(db) = self.db.get() {
            db.database().set_notices(notice_sink(&observer));
        }
        self.notices = Some(observer);
        self
    }

    /// The observer given to [`Rollback::with_notices`].
    pub(crate) fn notice_observer(&self) -> Option<Arc<dyn crate::event::Observer>> {
        self.notices.clone()
    }

    /// Replaces the database migrator (the one `[database]` configures, or one set before).
    #[must_use]
    pub fn with_db(mut self, db: Arc<dyn DbMigrator>) -> Self {
        if let Some(o) = &self.notices {
            db.database().set_notices(notice_sink(o));
        }
        self.db = OnceLock::from(db);
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
        if let Some(o) = &self.notices {
            m.database().set_notices(notice_sink(o));
        }
        Ok(Some(self.db.get_or_init(|| m)))
    }

    /// Replaces the backup store (the folder store under the state folder, or one set before).
    #[must_use]
    pub fn with_store(mut self, store: Arc<dyn BackupStore>) -> Self {
        self.store = OnceLock::from(store);
        self
    }

    /// Adds a production target: runs then have a `promote` step that makes the target
    /// commit's release live there, and an undo makes the earlier one live again.
    #[must_use]
    pub fn with_deployer(mut self, deployer: Arc<dyn Deployer>) -> Self {
        self.deployer = Some(deployer);
        self
    }

    /// Replaces the service verifier (the one built from `[[checks]]`, or one set before):
    /// runs verify with it, and plan a `verify` step when it names at least one check.
    #[must_use]
    pub fn with_verifier(mut self, verifier: Arc<dyn ServiceVerifier>) -> Self {
        self.verifier = OnceLock::from(verifier);
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
    pub(crate) fn existing_store(&self) -> Result<Option<Arc<dyn BackupStore>>> {
        if self.store.get().is_none() && !self.state.backups_dir().exists() {
            return Ok(None);
        }
        self.store().map(Some)
    }

    pub(crate) fn store(&self) -> Result<Arc<dyn BackupStore>> {
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

    /// Assesses a rollback to `target` (or the registry's choice). Reads only. When the
    /// database must go down, the data-loss forecast runs the downgrade on a throwaway copy
    /// and says what it would destroy ([`Assessment::data_loss`]).
    pub fn assess(&self, target: Option<&str>) -> Result<Assessment> {
        let mut a = self.assess_local(target)?;
        a.risks.extend(self.unfinished_risk());
        self.forecast_assessment(&mut a);
        a.production = self.assess_production(&a.target.commit.id);
        a.risks.extend(self.production_risks());
        Ok(a)
    }

    /// [`Rollback::assess`] without the data-loss forecast and without asking the production
    /// target (plans make both themselves).
    pub(crate) fn assess_local(&self, target: Option<&str>) -> Result<Assessment> {
        self.assess_local_unless(target, &|| None)
    }

    /// [`Rollback::assess_local`] for a run before its first step: `stop` (the run's
    /// [`crate::event::Observer::stop_waiting`]) is asked while the database is read, and
    /// `Some(why)` ends the wait at once with [`Error::Cancelled`], nothing changed.
    pub(crate) fn assess_local_unless(
        &self,
        target: Option<&str>,
        stop: &(dyn Fn() -> Option<String> + Sync),
    ) -> Result<Assessment> {
        let registry = self.registry()?;
        let mut a = assess::assess(self.vcs.as_ref(), &self.config, &registry, target)?;
        self.assess_database(&mut a, stop)?;
        self.assess_env(&mut a)?;
        let risks = self.checkout_risks(&a);
        a.risks.extend(risks);
        a.risks.extend(self.push_risk(&a));
        Ok(a)
    }

    pub(crate) fn resolve_level(a: &Assessment, level: Option<Level>) -> Level {
        level.unwrap_or(a.recommended_level)
    }

    /// Plans a rollback. Reads only. The downgrade step shows the SQL it would run where the
    /// migrator can tell (Alembic's offline mode, the native `.down.sql` files).
    pub fn plan(&self, level: Option<Level>, target: Option<&str>) -> Result<Plan> {
        self.plan_with(&RunOptions { level, target: target.map(str::to_owned), ..RunOptions::default() })
    }

    /// [`Rollback::plan`] for the level, target and scope of `opts` (`database_only`: the plan
    /// of `run --database-only`).
    pub fn plan_with(&self, opts: &RunOptions) -> Result<Plan> {
        Self::check_scope(opts)?;
        let a = self.assess_local(opts.target.as_deref())?;
        let level = Self::level_for(&a, opts);
        self.require_database(&a, level, &|| None)?;
        if opts.database_only
            && let Some(e) = self.database_only_refusal(&a)
        {
            return Err(e);
        }
        // A plan to downgrade a database that cannot be reached (or a SQLite file that is not
        // there) would show a path from a revision nobody read: say why instead.
        if level != Level::Fast
            && a.database.as_ref().is_some_and(|d| !d.reachable)
            && let Some(e) = self.database_refusals(&a, &RunOptions::default()).into_iter().next()
        {
            return Err(e);
        }
        // A migration environment that would downgrade another database than the configured one.
        if level != Level::Fast
            && a.database.as_ref().is_some_and(|d| d.reachable && d.needs_downgrade)
            && let Some(e) = self.environment_refusal(&|| None)?
        {
            return Err(e);
        }
        let mut plan = self.scoped_plan(&a, level, opts)?;
        plan.risks.extend(self.unfinished_risk());
        self.fill_previews(&mut plan, &|| None)?;
        self.forecast_plan(&mut plan);
        Ok(plan)
    }
}
