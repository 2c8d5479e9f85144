//! Database migrations: the [`DbMigrator`] trait, its two implementations, and database
//! snapshots.
//!
//! - [`config`]: the `[database]` section;
//! - [`url`]: database URLs, shown without their password;
//! - [`database`]: a connection to SQLite or PostgreSQL: revision table reads, scalar queries,
//!   snapshots (SQLite online backup API, `pg_dump -Fc`) and restores;
//! - [`graph`]: a migration graph and the downgrade path between two sets of heads;
//! - [`alembic`]: the project's real Alembic, driven through `python -m alembic`;
//! - [`sql`]: the native migrator (`NNNN_name.up.sql` / `.down.sql`, a checksummed tracking
//!   table);
//! - [`assess`]: what a rollback would do to the schema, and its risks.

// "SQLite" and "PostgreSQL" are product names, not code: they stay without backticks.
#![allow(clippy::doc_markdown)]

pub mod alembic;
mod alembic_driver;
pub mod assess;
pub mod config;
pub mod database;
mod env_probe;
pub mod forecast;
mod foreign_sqlite;
pub mod graph;
mod migration_files;
pub mod notice;
mod postgres;
mod process;
mod python_source;
pub mod rows;
pub mod scratch;
pub mod sql;
mod sqlite;
mod sqlite_migration;
mod tls;
pub mod url;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::vcs::{CommitId, VcsBackend};

pub use self::assess::DbAssessment;
pub use self::config::{DatabaseConfig, MigratorKind};
pub use self::database::{Database, DbDump, UrlDatabase};
pub use self::graph::{Migration, MigrationGraph, Reversibility};
pub use self::notice::{DbNotice, NoticeSink};
pub use self::scratch::ScratchCopy;

/// Errors from a migrator or a database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be reached; `database` never contains a password.
    #[error("database `{database}` is unreachable: {detail}")]
    Unreachable {
        /// The database, password removed.
        database: String,
        /// Why.
        detail: String,
    },
    /// A migration failed.
    #[error("migration `{revision}` failed on `{database}`: {detail}")]
    Migration {
        /// The database, password removed.
        database: String,
        /// The revision.
        revision: String,
        /// Why.
        detail: String,
    },
    /// A query or statement failed.
    #[error("query on `{database}` failed: {detail}")]
    Query {
        /// The database, password removed.
        database: String,
        /// Why.
        detail: String,
    },
    /// Migration files that cannot be read or understood.
    #[error("migration file `{path}` is invalid: {detail}")]
    BadMigration {
        /// The file, relative to the work tree.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The database is at a revision the migration files do not have.
    #[error("database `{database}` is at revision `{revision}`, which no migration file defines")]
    UnknownRevision {
        /// The database, password removed.
        database: String,
        /// The revision.
        revision: String,
    },
    /// No path from the current revisions down to the target's.
    #[error("no downgrade path on `{database}` from {from} to {to}: {detail}")]
    NoPath {
        /// The database, password removed.
        database: String,
        /// Current revisions.
        from: String,
        /// Target revisions.
        to: String,
        /// Why.
        detail: String,
    },
    /// A snapshot or restore failed (including an integrity check that failed).
    #[error("snapshot of `{database}` failed: {detail}")]
    Snapshot {
        /// The database, password removed.
        database: String,
        /// Why.
        detail: String,
    },
    /// `pg_dump`/`pg_restore` older than the server.
    #[error("`{tool}` {client} is older than the PostgreSQL server {server} of `{database}`")]
    ClientTooOld {
        /// `pg_dump` or `pg_restore`.
        tool: String,
        /// The client's version.
        client: String,
        /// The server's version.
        server: String,
        /// The database, password removed.
        database: String,
    },
    /// A program (`python`, `pg_dump`, ...) could not be started or timed out.
    #[error("`{program}` failed: {detail}")]
    Program {
        /// The program.
        program: String,
        /// Why (stderr tail, secrets removed).
        detail: String,
    },
    /// Another connection held a lock on the database for the whole wait.
    #[error(
        "database `{database}` is locked by another connection: still locked after {waited_secs}s (database.timeout_secs)"
    )]
    Locked {
        /// The database, password removed.
        database: String,
        /// How long it waited, in seconds.
        waited_secs: u64,
    },
    /// A restore that must only replace a database nobody wrote to found it written since:
    /// checked under the lock the restore then writes under, nothing restored.
    #[error(
        "database `{database}` was written to since {since}: restoring the snapshot now would overwrite those writes; nothing was restored"
    )]
    ChangedSince {
        /// The database, password removed.
        database: String,
        /// Since when (`the run`, `the undo began`).
        since: String,
    },
    /// A PostgreSQL restore found logical-replication subscriptions in the database, checked
    /// before it changed anything: dropping one that owns a replication slot cannot happen in
    /// the restore's transaction, and dropping it without its slot would leave the slot on the
    /// publisher, holding WAL there.
    #[error(
        "database `{database}` has the logical replication subscription(s) {}: a restore cannot drop and re-create them inside its transaction (each may own a replication slot on its publisher); nothing was restored",
        quoted(names)
    )]
    Subscribed {
        /// The database, password removed.
        database: String,
        /// The subscriptions' names.
        names: Vec<String>,
    },
    /// The migration environment (Alembic's `env.py`) would connect to another database than
    /// the configured one.
    #[error(
        "the migration environment would not use the configured database: {what} connects to `{env}`, forge-rollback is configured for `{configured}`"
    )]
    EnvElsewhere {
        /// The configured database, password removed.
        configured: String,
        /// Where the environment would connect, password removed.
        env: String,
        /// Which environment (`alembic.ini`'s `env.py`).
        what: String,
    },
    /// This process has the SQLite database file open through another SQLite than the
    /// engine's (the app's, when the Python module runs inside it): neither sees the other's
    /// locks, so the engine neither reads nor changes it.
    #[error(
        "this process has the SQLite database `{path}` open through another SQLite (Python's sqlite3, SQLAlchemy): forge-rollback's own SQLite cannot see its locks, and changing or reading the database from inside this process could corrupt it"
    )]
    OpenInProcess {
        /// The database, password removed.
        database: String,
        /// The database file, absolute.
        path: String,
    },
    /// A SQLite database with a hot journal (left by a process killed inside a write
    /// transaction) that could not be rolled back: SQLite reads nothing until it is.
    #[error(
        "database `{database}` has a hot journal `{journal}` left by a process killed mid-transaction, and it could not be rolled back: {detail}"
    )]
    HotJournal {
        /// The database, password removed.
        database: String,
        /// The journal file.
        journal: String,
        /// Why the roll-back failed.
        detail: String,
    },
    /// The configuration is unusable (bad URL, missing file, ...).
    #[error("database config: {0}")]
    Config(String),
    /// `database.url_env` names a variable that gives no URL (unset, empty or not UTF-8).
    #[error("database config: {0}")]
    UrlEnv(crate::secret::EnvError),
    /// An upgrade stopped between two migrations because its caller asked it to
    /// ([`DbMigrator::upgrade_unless`]); the migrations applied before stay.
    #[error("the upgrade of `{database}` stopped between two migrations: {why}")]
    Stopped {
        /// The database, password removed.
        database: String,
        /// Why the caller asked (`the asyncio task awaiting it was cancelled`, ...).
        why: String,
    },
    /// Migration files could not be read from a commit.
    #[error("cannot read the migration files of commit `{commit}`")]
    Vcs {
        /// The commit, short.
        commit: String,
        /// The backend's error.
        #[source]
        source: crate::vcs::Error,
    },
}

impl Error {
    /// What the operator can do.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::ClientTooOld { .. } => Some(
                "install a PostgreSQL client at least as new as the server, or point `database.pg_dump` and `database.pg_restore` at one"
                    .into(),
            ),
            Error::Unreachable { .. } => Some("check that the database is up and the URL and credentials are right".into()),
            Error::EnvElsewhere { .. } => Some(format!(
                "make env.py connect with the URL forge-rollback hands it in ${}, e.g. `url = os.environ.get(\"{}\") or config.get_main_option(\"sqlalchemy.url\")`, or point `sqlalchemy.url` and `database.url` at the same database",
                alembic::URL_ENV,
                alembic::URL_ENV
            )),
            Error::UrlEnv(crate::secret::EnvError { var, .. }) => Some(format!(
                "set `{var}` to the database URL in the environment of the process that runs the rollback (where the app gets it from: its service's environment, the platform's variables), or name the variable that holds it in `database.url_env`"
            )),
            Error::OpenInProcess { .. } => Some(
                "run the rollback from another process (the `forge-rollback` command the wheel installs, e.g. `subprocess.run([\"forge-rollback\", \"run\", \"--full\", \"--yes\", ...])`), or close this process's connections to the database first (SQLAlchemy: `engine.dispose()`)"
                    .into(),
            ),
            Error::HotJournal { journal, .. } => Some(format!(
                "the journal holds what the killed transaction overwrote: keep `{journal}` next to the database (deleting it corrupts the database) and open the database once read-write as the user who owns it and its folder (`sqlite3 '{}' 'PRAGMA integrity_check'` rolls the journal back), then run again",
                journal.strip_suffix("-journal").or_else(|| journal.strip_suffix("-wal")).unwrap_or(journal)
            )),
            Error::Subscribed { names, .. } => Some(format!("{}, then run again", detach_subscriptions(names))),
            Error::Locked { .. } => Some(
                "find what holds the lock (a migration or a long transaction of the app: `fuser` on a SQLite file, `pg_locks` on PostgreSQL), let it finish or stop it, then run again"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// How to take the subscriptions `names` out of the way of a restore ([`Error::Subscribed`]),
/// and what the restore then does with them.
pub(crate) fn detach_subscriptions(names: &[String]) -> String {
    let name = names.first().map_or("NAME", String::as_str);
    let name = format!("\"{}\"", name.replace('"', "\"\""));
    format!(
        "detach and drop each subscription first, keeping its slot on the publisher (`ALTER SUBSCRIPTION {name} DISABLE; ALTER SUBSCRIPTION {name} SET (slot_name = NONE); DROP SUBSCRIPTION {name};`); the restore re-creates those the snapshot holds, disabled (`ALTER SUBSCRIPTION {name} ENABLE` after it; drop a slot on the publisher that nothing uses any more)"
    )
}

/// `a`, `b`: names as messages show them.
fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Result of a database call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The condition of a guarded restore ([`Database::restore_unchanged`]): the database must still
/// have the fingerprint `expect` ([`Database::fingerprint`]) when the restore takes its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchanged {
    /// The fingerprint the database must still have.
    pub expect: String,
    /// Since when it must be unchanged, for the error (`run 20261205-…`).
    pub since: String,
}

/// The fingerprint of a database from its digest text ([`Database::fingerprint`]): one formula
/// wherever a fingerprint is taken, so that a restore's check under its lock compares like
/// with like.
pub(crate) fn fingerprint_of(digest: &str) -> String {
    blake3::hash(digest.as_bytes()).to_hex().to_string()
}

/// A schema revision (Alembic revision id or native migration number).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub String);

impl Revision {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One migration a downgrade undoes, with what is known about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DowngradeStep {
    /// The revision undone.
    pub revision: Revision,
    /// The revision(s) the schema is at afterwards.
    pub down_to: Vec<Revision>,
    /// The migration's message / file name.
    pub description: String,
    /// The migration file, relative to the work tree.
    pub path: String,
    /// `Some(reason)` when its downgrade cannot restore data (or cannot run at all).
    pub irreversible: Option<String>,
}

/// A database migrator: reads where the schema is, where a commit expects it, and moves it.
#[async_trait]
pub trait DbMigrator: Send + Sync {
    /// `alembic` or `sql`.
    fn kind(&self) -> &'static str;

    /// The database it migrates.
    fn database(&self) -> &dyn Database;

    /// The database as a SQLite file or PostgreSQL URL, when it is one: what the data-loss
    /// forecast and the row-preserving undo copy and compare. `None` for other databases.
    fn url_database(&self) -> Option<&UrlDatabase> {
        None
    }

    /// The same migrator (same settings) working on `db` instead, with the migration files of
    /// the work tree at `workdir` (`None`: the same work tree): a throwaway copy for the
    /// forecast and the undo's rehearsal. `None` when this migrator cannot be pointed
    /// elsewhere.
    fn on_database(&self, _db: UrlDatabase, _workdir: Option<&Path>) -> Option<Arc<dyn DbMigrator>> {
        None
    }

    /// What the migrations run since the last call left for the operator to know, taken (the
    /// native migrator on SQLite: the references a migration left broken, as it runs them
    /// with foreign keys off). Nothing by default.
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// The migrator's own tables (the version table): never counted as data.
    fn bookkeeping_tables(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether a migration that fails part-way is rolled back whole, leaving the database
    /// at the revision before it (transactional DDL). When it is not, a failed downgrade is
    /// put back from the database snapshot.
    fn failed_migration_rolls_back_whole(&self) -> bool {
        false
    }

    /// The revision(s) the database is at now (empty: no migration applied).
    async fn current(&self) -> Result<Vec<Revision>>;

    /// The migration graph of the files in the work tree as they are now.
    async fn graph_worktree(&self) -> Result<MigrationGraph>;

    /// The migration graph of the files at `commit`, read through `vcs` without checking the
    /// commit out.
    async fn graph_at(&self, vcs: &dyn VcsBackend, commit: &CommitId) -> Result<MigrationGraph>;

    /// The SQL a downgrade from `from` to `to` would run, where it can be shown (Alembic's
    /// offline `--sql` mode; the native `.down.sql` text). `None` when it cannot.
    async fn downgrade_sql(&self, from: &[Revision], to: &[Revision]) -> Result<Option<String>>;

    /// Downgrades the database to `to` using the migration files in the work tree as they are
    /// now (they hold the downgrade code). Each migration in its own transaction where the
    /// database allows.
    async fn downgrade(&self, to: &[Revision]) -> Result<()>;

    /// Upgrades the database to `to` (all heads when empty) with the work tree's files. Used by
    /// tests, the demo and operators preparing a database; never by a rollback.
    async fn upgrade(&self, to: &[Revision]) -> Result<()>;

    /// [`DbMigrator::upgrade`], asking `stop` before each migration: `Some(why)` ends the
    /// upgrade there with [`Error::Stopped`], and the migrations applied before it stay (each
    /// was committed whole). This default asks once, before anything is applied: a migrator
    /// that applies every migration in one go (Alembic: one `alembic upgrade` process, which
    /// must not be killed half-way through a migration) has no boundary in between.
    async fn upgrade_unless(&self, to: &[Revision], stop: &StopCheck) -> Result<()> {
        if let Some(why) = stop() {
            return Err(Error::Stopped { database: self.database().describe(), why });
        }
        self.upgrade(to).await
    }

    /// Checks that the migration environment connects to the configured database (Alembic:
    /// asks its `env.py` which URL it would use, without letting it connect); fails with
    /// [`Error::EnvElsewhere`] when it would not. Migrators whose SQL forge-rollback runs
    /// itself have nothing to check.
    async fn check_environment(&self) -> Result<()> {
        Ok(())
    }

    /// Applied migrations whose file in the work tree changed since they were applied (the
    /// native migrator keeps checksums; Alembic records none, so it reports nothing).
    async fn edited_migrations(&self) -> Result<Vec<Revision>> {
        Ok(Vec::new())
    }
}

/// Asked between two migrations of an upgrade ([`DbMigrator::upgrade_unless`]): `Some(why)`
/// stops it there. Shared, as the SQLite work runs on a thread of its own.
pub type StopCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Opens the migrator the configuration names, for the work tree at `workdir`. Does not
/// connect yet.
pub fn open(config: &DatabaseConfig, workdir: &Path) -> Result<Arc<dyn DbMigrator>> {
    config.validate().map_err(|(key, msg)| Error::Config(format!("`{key}`: {msg}")))?;
    let url = config.resolve_url()?;
    let url = url::DbUrl::parse(&url, workdir).map_err(Error::Config)?;
    let db = UrlDatabase::new(url, config.timeout_secs, config.pg_dump.clone(), config.pg_restore.clone());
    Ok(match config.kind {
        MigratorKind::Alembic => Arc::new(alembic::AlembicMigrator::new(db, workdir, config)),
        MigratorKind::Sql => Arc::new(sql::SqlMigrator::new(db, workdir, config)?),
    })
}

/// Revisions for people: `a, b`, or `base` when there are none.
pub fn show_revisions(r: &[Revision]) -> String {
    if r.is_empty() { "base".to_owned() } else { r.iter().map(Revision::as_str).collect::<Vec<_>>().join(", ") }
}
