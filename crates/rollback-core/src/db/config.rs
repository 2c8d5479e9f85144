//! The `[database]` section of the configuration.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::url::DbUrl;
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
    /// Native SQL on SQLite: run migrations with foreign keys enforced (`PRAGMA foreign_keys =
    /// ON`). Off by default, as SQLite, its `sqlite3` shell, Python's `sqlite3` and Alembic run
    /// them: a table rebuilt by a migration then neither cascades into nor refuses on the
    /// tables that reference it.
    #[serde(default)]
    pub sqlite_foreign_keys: bool,
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
        let err = |key: &str, msg: String| Err((format!("database.{key}"), msg));
        match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => return err("url", "set either `url` or `url_env`, not both".into()),
            (None, None) => {
                return err("url", "set `url` (or `url_env`, the environment variable that holds it)".into());
            }
            (Some(url), None) => {
                // Parsed against a placeholder folder: only the syntax is checked here.
                if let Err(e) = DbUrl::parse(url, Path::new("/")) {
                    return err("url", e);
                }
            }
            (None, Some(var)) => {
                if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return err("url_env", format!("`{var}` is not an environment variable name"));
                }
            }
        }
        if self.timeout_secs == 0 {
            return err("timeout_secs", "must be at least 1".into());
        }
        for (key, prog) in [("pg_dump", &self.pg_dump), ("pg_restore", &self.pg_restore)] {
            if prog.trim().is_empty() {
                return err(key, "must name a program".into());
            }
        }
        match self.kind {
            MigratorKind::Alembic => {
                if self.sqlite_foreign_keys {
                    return err(
                        "sqlite_foreign_keys",
                        "only the native migrator (`kind = \"sql\"`) opens the connection its migrations run on; Alembic's runs through the project's env.py: turn foreign keys on there (a SQLAlchemy `connect` event running `PRAGMA foreign_keys = ON`)".into(),
                    );
                }
                if self.python.trim().is_empty() {
                    return err("python", "must name a Python interpreter".into());
                }
                if let Some(key) = escapes("alembic_ini", &self.alembic_ini)
                    .or_else(|| self.versions_dir.as_deref().and_then(|d| escapes("versions_dir", d)))
                {
                    return err(key, "must be a path inside the work tree (relative, no `..`)".into());
                }
            }
            MigratorKind::Sql => {
                if let Some(key) = escapes("migrations_dir", &self.migrations_dir) {
                    return err(key, "must be a path inside the work tree (relative, no `..`)".into());
                }
                if !is_identifier(&self.table) {
                    return err(
                        "table",
                        format!(
                            "`{}` is not a plain SQL identifier (letters, digits and `_`, not starting with a digit, at most 63 bytes)",
                            self.table
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The URL: `url`, or the value of the `url_env` variable.
    pub fn resolve_url(&self) -> Result<Secret, super::Error> {
        match (&self.url, &self.url_env) {
            (Some(url), None) => Ok(url.clone()),
            (None, Some(var)) => crate::secret::from_env(var).map_err(super::Error::UrlEnv),
            // `validate` refuses both and neither, naming the key.
            _ => Err(super::Error::Config("set exactly one of `database.url` and `database.url_env`".to_owned())),
        }
    }
}

/// `Some(key)` when `path` is absolute or climbs out of the work tree.
fn escapes<'a>(key: &'a str, path: &Path) -> Option<&'a str> {
    let bad = path.as_os_str().is_empty()
        || path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    bad.then_some(key)
}

/// A plain SQL identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes (PostgreSQL's limit).
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(kind: &str) -> DatabaseConfig {
        toml::from_str(&format!("kind = \"{kind}\"\nurl = \"sqlite:///app.db\"\n")).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let c = base("alembic");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            (c.python.as_str(), c.timeout_secs, c.table.as_str()),
            ("python3", 300, "forge_rollback_migrations")
        );
        assert_eq!(base("sql").validate(), Ok(()));
    }

    #[test]
    fn rejects_nonsense() {
        let key = |c: &DatabaseConfig| c.validate().unwrap_err().0;
        let mut c = base("sql");
        c.url_env = Some("DATABASE_URL".into());
        assert_eq!(key(&c), "database.url");
        c.url = None;
        assert_eq!(c.validate(), Ok(()));
        c.url_env = None;
        assert_eq!(key(&c), "database.url");
        c.url_env = Some("NOT A VAR".into());
        assert_eq!(key(&c), "database.url_env");

        let mut c = base("sql");
        c.url = Some(Secret::new("mysql://u:hunter2@h/d"));
        let (k, msg) = c.validate().unwrap_err();
        assert_eq!(k, "database.url");
        assert!(!msg.contains("hunter2"), "{msg}");

        let mut c = base("sql");
        c.timeout_secs = 0;
        assert_eq!(key(&c), "database.timeout_secs");
        let mut c = base("sql");
        c.table = "x; drop table users".into();
        assert_eq!(key(&c), "database.table");
        let mut c = base("sql");
        c.migrations_dir = "../elsewhere".into();
        assert_eq!(key(&c), "database.migrations_dir");
        let mut c = base("alembic");
        c.alembic_ini = "/etc/alembic.ini".into();
        assert_eq!(key(&c), "database.alembic_ini");
        let mut c = base("alembic");
        c.versions_dir = Some("a/../../b".into());
        assert_eq!(key(&c), "database.versions_dir");
        let mut c = base("alembic");
        c.python = " ".into();
        assert_eq!(key(&c), "database.python");
        let mut c = base("alembic");
        c.sqlite_foreign_keys = true;
        assert_eq!(key(&c), "database.sqlite_foreign_keys");
        let mut c = base("sql");
        c.sqlite_foreign_keys = true;
        assert_eq!(c.validate(), Ok(()));
        assert!(!base("sql").sqlite_foreign_keys, "off by default, as SQLite's own tools run migrations");
        // Alembic does not use the tracking table: any name passes there.
        let mut c = base("alembic");
        c.table = "weird name".into();
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("forge_rollback_migrations"));
        assert!(is_identifier("_t1"));
        assert!(!is_identifier("1t"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
        assert!(!is_identifier(&"a".repeat(64)));
    }
}
