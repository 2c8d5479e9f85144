//! The `[database]` section of the configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Which migrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigratorKind {
    /// The project's Alembic.
    Alembic,
    /// forge-rollback's native SQL migrator.
    Sql,
}

/// `[database]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `alembic` or `sql`.
    pub kind: MigratorKind,
    /// `sqlite:///app.db` (relative to the work tree), `sqlite:////abs/app.db`,
    /// `postgresql://user:password@host:5432/db`. Never printed with its password.
    #[serde(default)]
    pub url: Option<Secret>,
    /// Read the URL from this environment variable instead (e.g. `DATABASE_URL`).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Alembic: the Python interpreter that has Alembic installed.
    #[serde(default = "default_python")]
    pub python: String,
    /// Alembic: `alembic.ini`, relative to the work tree.
    #[serde(default = "default_alembic_ini")]
    pub alembic_ini: PathBuf,
    /// Alembic: the versions folder, relative to the work tree (default: `script_location` of
    /// `alembic.ini` + `/versions`).
    #[serde(default)]
    pub versions_dir: Option<PathBuf>,
    /// Native SQL: the folder of `NNNN_name.up.sql` / `NNNN_name.down.sql` files.
    #[serde(default = "default_migrations_dir")]
    pub migrations_dir: PathBuf,
    /// Native SQL: the tracking table.
    #[serde(default = "default_table")]
    pub table: String,
    /// Longest a migration run, a dump or a restore may take, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// `pg_dump` program.
    #[serde(default = "default_pg_dump")]
    pub pg_dump: String,
    /// `pg_restore` program.
    #[serde(default = "default_pg_restore")]
    pub pg_restore: String,
}

fn default_python() -> String {
    "python3".into()
}
fn default_alembic_ini() -> PathBuf {
    PathBuf::from("alembic.ini")
}
fn default_migrations_dir() -> PathBuf {
    PathBuf::from("migrations")
}
fn default_table() -> String {
    "forge_rollback_migrations".into()
}
fn default_timeout() -> u64 {
    300
}
fn default_pg_dump() -> String {
    "pg_dump".into()
}
fn default_pg_restore() -> String {
    "pg_restore".into()
}

impl DatabaseConfig {
    /// Checks values that parse but make no sense; `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        todo!("db helper")
    }
}
