//! Database migrations: the [`DbMigrator`] trait.
//!
//! Declared here so the engine and its plans can name database steps; the Alembic and native
//! SQL implementations arrive with full rollback. Until then a configuration with a
//! `[database]` section is refused by `config` with a clear message, never silently skipped.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::vcs::{CommitId, VcsBackend};

/// Errors from a migrator.
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
    #[error("migration `{revision}` failed: {detail}")]
    Migration {
        /// The revision.
        revision: String,
        /// Why.
        detail: String,
    },
}

/// A schema revision (Alembic revision id or native migration number).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revision(pub String);

/// A database migrator: reads where the schema is, where a commit expects it, and moves it.
#[async_trait]
pub trait DbMigrator: Send + Sync {
    /// The revision(s) the database is at now.
    async fn current(&self) -> Result<Vec<Revision>, Error>;

    /// The head revision(s) of the migration files at `commit`, read through `vcs` without
    /// checking the commit out.
    async fn heads_at(&self, vcs: &dyn VcsBackend, commit: &CommitId) -> Result<Vec<Revision>, Error>;

    /// Downgrades the database to `target` using the migration files in the work tree as they
    /// are now (they hold the downgrade code).
    async fn downgrade(&self, target: &[Revision]) -> Result<(), Error>;
}
