//! A connection to the configured database: SQLite (rusqlite, bundled) or PostgreSQL
//! (tokio-postgres), revision table reads, scalar queries, snapshots and restores.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Result;
use super::url::DbUrl;

/// What a snapshot wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbDump {
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// `sqlite-backup` (a SQLite database file from the online backup API) or `pg-custom`
    /// (`pg_dump -Fc`).
    pub format: String,
    /// Bytes written.
    pub size: u64,
    /// The server's version (PostgreSQL) or the SQLite library's.
    pub server_version: String,
}

/// The database a migrator works on.
#[derive(Clone, Debug)]
pub struct Database {
    url: DbUrl,
    timeout_secs: u64,
    pg_dump: String,
    pg_restore: String,
}

impl Database {
    /// A database at `url`; connects lazily.
    pub fn new(url: DbUrl, timeout_secs: u64, pg_dump: String, pg_restore: String) -> Self {
        Self { url, timeout_secs, pg_dump, pg_restore }
    }

    /// The URL.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The database for messages, password removed.
    pub fn describe(&self) -> String {
        self.url.redacted()
    }

    /// Connects and returns the server version: fails with [`super::Error::Unreachable`] when
    /// the database cannot be reached (wrong credentials included).
    pub async fn ping(&self) -> Result<String> {
        let _ = (self.timeout_secs, &self.pg_dump, &self.pg_restore);
        todo!("db helper")
    }

    /// Runs `sql` and returns the first column of the first row as text (`None`: no row or
    /// NULL). For `sql` verification checks.
    pub async fn query_scalar(&self, sql: &str) -> Result<Option<String>> {
        let _ = sql;
        todo!("db helper")
    }

    /// Writes a consistent snapshot of the whole database to `dest` (a new file): SQLite
    /// through the online backup API followed by `PRAGMA integrity_check` on the copy;
    /// PostgreSQL through `pg_dump -Fc`, refusing a client older than the server.
    pub async fn snapshot(&self, dest: &Path) -> Result<DbDump> {
        let _ = dest;
        todo!("db helper")
    }

    /// Puts the database back exactly as the snapshot at `src` recorded (schema and rows).
    /// SQLite: the file is replaced atomically and stale `-wal`/`-shm` files are removed;
    /// PostgreSQL: `pg_restore --clean --if-exists` into the same database, in one
    /// transaction.
    pub async fn restore(&self, src: &Path, dump: &DbDump) -> Result<()> {
        let _ = (src, dump);
        todo!("db helper")
    }

    /// A canonical text dump of schema and rows (sorted), for comparing two states exactly.
    pub async fn canonical_dump(&self) -> Result<String> {
        todo!("db helper")
    }
}
