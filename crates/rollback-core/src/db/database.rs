//! A connection to the configured database: SQLite (rusqlite, bundled) or PostgreSQL
//! (tokio-postgres), revision table reads, scalar queries, snapshots and restores.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::url::DbUrl;
use async_trait::async_trait;

use super::notice::{NoticeSink, Notices};
use super::{Error, Result, postgres, sqlite};

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

/// A SQLite file or a PostgreSQL database at a URL: the [`Database`] both built-in
/// migrators work on.
#[derive(Clone, Debug)]
pub struct UrlDatabase {
    url: DbUrl,
    timeout_secs: u64,
    pg_dump: String,
    pg_restore: String,
    notices: Notices,
}

impl UrlDatabase {
    /// A database at `url`; connects lazily.
    pub fn new(url: DbUrl, timeout_secs: u64, pg_dump: String, pg_restore: String) -> Self {
        Self { url, timeout_secs, pg_dump, pg_restore, notices: Notices::default() }
    }

    /// The URL.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The same settings (timeout, `pg_dump`, `pg_restore`, notice sink) for another
    /// database.
    #[must_use]
    pub fn with_url(&self, url: DbUrl) -> Self {
        Self { url, ..self.clone() }
    }

    pub(crate) fn notice_sink(&self) -> Option<NoticeSink> {
        self.notices.get()
    }

    pub(crate) fn pg_dump(&self) -> &str {
        &self.pg_dump
    }

    pub(crate) fn pg_restore(&self) -> &str {
        &self.pg_restore
    }

    /// The database for messages, password removed.
    pub fn describe(&self) -> String {
        self.url.redacted()
    }

    /// The longest any one operation may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    pub(crate) fn pg(&self) -> postgres::Ctx<'_> {
        postgres::Ctx { url: &self.url, timeout: self.timeout() }
    }

    /// Runs `f` on an open SQLite connection, on the blocking pool.
    pub(crate) async fn with_sqlite<T, F>(&self, mode: sqlite::Mode, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut sqlite::Handle, &str) -> Result<T> + Send + 'static,
    {
        let DbUrl::Sqlite { path } = &self.url else {
            return Err(Error::Config("not a SQLite URL".into()));
        };
        let path = path.clone();
        let database = self.describe();
        let timeout = self.timeout();
        let notices = self.notice_sink();
        tokio::task::spawn_blocking(move || {
            let mut conn = sqlite::open(&path, mode, timeout, &database, notices.as_ref())?;
            f(&mut conn, &database)
        })
        .await
        .map_err(|e| Error::Query { database: self.describe(), detail: format!("the SQLite task failed: {e}") })?
    }

    /// [`Error::OpenInProcess`] when this process has the SQLite file open through another
    /// SQLite than the engine's (see `foreign_sqlite`); PostgreSQL never is.
    pub(crate) fn refuse_open_in_process(&self) -> Result<()> {
        match &self.url {
            DbUrl::Sqlite { path } => super::foreign_sqlite::refuse_if_open_elsewhere(path, &self.describe()),
            DbUrl::Postgres { .. } => Ok(()),
        }
    }

    /// Whether the database exists yet (a SQLite file that was never created does not;
    /// a PostgreSQL database always does once reachable).
    pub(crate) fn sqlite_missing(&self) -> bool {
        matches!(&self.url, DbUrl::Sqlite { path } if !path.exists())
    }

    /// Connects and returns the server version: fails with [`super::Error::Unreachable`] when
    /// the database cannot be reached (wrong credentials included).
    pub async fn ping(&self) -> Result<String> {
        match &self.url {
            DbUrl::Sqlite { .. } => {
                self.with_sqlite(sqlite::Mode::ReadOnly, |c, db| {
                    sqlite::version(&c.conn).map_err(sqlite::query_err(db))
                })
                .await
            }
            DbUrl::Postgres { .. } => {
                let pg = self.pg();
                let client = pg.connect().await?;
                Ok(pg.server_version(&client).await?.1)
            }
        }
    }

    /// Runs `sql` and returns the first column of the first row as text (`None`: no row or
    /// NULL). For `sql` verification checks.
    pub async fn query_scalar(&self, sql: &str) -> Result<Option<String>> {
        match &self.url {
            DbUrl::Sqlite { .. } => {
                let sql = sql.to_owned();
                self.with_sqlite(sqlite::Mode::ReadWrite, move |c, db| {
                    sqlite::query_scalar(&c.conn, &sql).map_err(sqlite::query_err(db))
                })
                .await
            }
            DbUrl::Postgres { .. } => {
                let pg = self.pg();
                let client = pg.connect().await?;
                pg.within("the query", async { postgres::scalar(&client, sql).await.map_err(|e| pg.query_err(&e)) })
                    .await
            }
        }
    }

    /// Writes a consistent snapshot of the whole database to `dest` (a new file): SQLite
    /// through the online backup API followed by `PRAGMA integrity_check` on the copy;
    /// PostgreSQL through `pg_dump -Fc` (connection settings in `PG*` variables, the password
    /// never in argv), refusing a client older than the server, then checked with
    /// `pg_restore --list`. The file appears at `dest` only once complete and checked.
    pub async fn snapshot(&self, dest: &Path) -> Result<DbDump> {
        match &self.url {
            DbUrl::Sqlite { path } => {
                let (path, dest, timeout, database) = (path.clone(), dest.to_owned(), self.timeout(), self.describe());
                let notices = self.notice_sink();
                let (size, version) = tokio::task::spawn_blocking(move || {
                    sqlite::snapshot(&path, &dest, timeout, &database, notices.as_ref())
                })
                .await
                .map_err(|e| Error::Snapshot { database: self.describe(), detail: e.to_string() })??;
                Ok(DbDump { engine: "sqlite".into(), format: FORMAT_SQLITE.into(), size, server_version: version })
            }
            DbUrl::Postgres { .. } => {
                let (server_version, size) =
                    postgres::snapshot(&self.pg(), &self.pg_dump, &self.pg_restore, dest).await?;
                Ok(DbDump { engine: "postgres".into(), format: FORMAT_PG.into(), size, server_version })
            }
        }
    }

    /// Puts the database back exactly as the snapshot at `src` recorded (schema and rows).
    /// SQLite: the snapshot is copied next to the database and integrity-checked, then written
    /// into the live database through SQLite's online backup API (its write lock waited for as
    /// any lock is, announced after 2 s; connections the app has open see the result); a file
    /// that is missing or not a SQLite database is replaced by the checked copy. PostgreSQL: in one transaction,
    /// every user schema and publication is dropped (objects created after the snapshot go
    /// too; a database with a subscription is refused, [`Error::Subscribed`]), `public` is
    /// recreated with its owner and grants, and the archive is replayed (`pg_restore -f -`,
    /// its data streamed with `COPY`); on any failure nothing changes. Needs the rights to drop
    /// and create the schemas (the owner or a superuser).
    pub async fn restore(&self, src: &Path, dump: &DbDump) -> Result<()> {
        self.restore_guarded(src, dump, None).await
    }

    /// [`UrlDatabase::restore`], but only over a database whose fingerprint is still
    /// `guard.expect`, checked under the lock the restore then writes under: no other
    /// connection commits between the check and the restore (SQLite in WAL mode: see
    /// `sqlite::restore_live`). Written since: [`Error::ChangedSince`], nothing restored.
    /// PostgreSQL takes `EXCLUSIVE` locks on every table of the user schemas in the restore's
    /// transaction before it fingerprints them (readers go on, writers wait for the commit).
    pub async fn restore_unchanged(&self, src: &Path, dump: &DbDump, guard: &super::Unchanged) -> Result<()> {
        self.restore_guarded(src, dump, Some(guard)).await
    }

    async fn restore_guarded(&self, src: &Path, dump: &DbDump, guard: Option<&super::Unchanged>) -> Result<()> {
        let expected = match &self.url {
            DbUrl::Sqlite { .. } => ("sqlite", FORMAT_SQLITE),
            DbUrl::Postgres { .. } => ("postgres", FORMAT_PG),
        };
        if (dump.engine.as_str(), dump.format.as_str()) != expected {
            return Err(Error::Snapshot {
                database: self.describe(),
                detail: format!(
                    "the snapshot is a {} `{}` dump; this database needs {} `{}`",
                    dump.engine, dump.format, expected.0, expected.1
                ),
            });
        }
        match &self.url {
            DbUrl::Sqlite { path } => {
                let (path, src, timeout, database) = (path.clone(), src.to_owned(), self.timeout(), self.describe());
                let (notices, guard) = (self.notice_sink(), guard.cloned());
                tokio::task::spawn_blocking(move || {
                    sqlite::restore(&src, &path, timeout, &database, notices.as_ref(), guard.as_ref())
                })
                .await
                .map_err(|e| Error::Snapshot { database: self.describe(), detail: e.to_string() })?
            }
            DbUrl::Postgres { .. } => {
                postgres::restore(&self.pg(), &self.pg_restore, src, postgres::RestoreInto::Live, guard).await
            }
        }
    }

    /// A canonical text dump of schema and rows (sorted), for comparing two states exactly.
    /// A SQLite file that does not exist yet dumps as the empty string.
    pub async fn canonical_dump(&self) -> Result<String> {
        match &self.url {
            DbUrl::Sqlite { .. } => {
                if self.sqlite_missing() {
                    return Ok(String::new());
                }
                self.with_sqlite(sqlite::Mode::ReadOnly, |c, db| {
                    sqlite::canonical_dump(&c.conn).map_err(sqlite::query_err(db))
                })
                .await
            }
            DbUrl::Postgres { .. } => {
                let pg = self.pg();
                let client = pg.connect().await?;
                pg.within("the canonical dump", postgres::canonical_dump(&pg, &client)).await
            }
        }
    }
}

/// [`DbDump::format`] of a SQLite snapshot.
pub const FORMAT_SQLITE: &str = "sqlite-backup";
/// [`DbDump::format`] of a PostgreSQL snapshot.
pub const FORMAT_PG: &str = "pg-custom";

/// The database a migrator works on, as the engine needs it: to name it, reach it, read a
/// value for `sql` checks, and snapshot and restore it exactly. [`UrlDatabase`] is the
/// SQLite/PostgreSQL implementation; a migrator for another database brings its own, with its
/// own dump format ([`DbDump::format`] names it, and only the same implementation restores it).
#[async_trait]
pub trait Database: Send + Sync {
    /// The database for messages, password removed.
    fn describe(&self) -> String;

    /// Whether it exists yet (a SQLite file that was never created does not): a database
    /// that does not exist is at no revision, not unreachable.
    fn exists(&self) -> bool {
        true
    }

    /// Connects and returns the server version; fails with [`Error::Unreachable`] when the
    /// database cannot be reached.
    async fn ping(&self) -> Result<String>;

    /// Runs `sql` and returns the first column of the first row as text (`None`: no row or
    /// NULL). For `sql` verification checks.
    async fn query_scalar(&self, sql: &str) -> Result<Option<String>>;

    /// Writes a consistent snapshot of the whole database to `dest` (a new file that appears
    /// only once complete and checked).
    async fn snapshot(&self, dest: &Path) -> Result<DbDump>;

    /// Puts the database back exactly as the snapshot at `src` recorded; on failure nothing
    /// changes.
    async fn restore(&self, src: &Path, dump: &DbDump) -> Result<()>;

    /// [`Database::restore`], but only over a database whose fingerprint is still
    /// `guard.expect` ([`Error::ChangedSince`] otherwise, nothing restored): an undo's exact
    /// restore must not overwrite rows written after it chose to restore. Implementations
    /// should check under the lock the restore writes under, as [`UrlDatabase`] does; by
    /// default the fingerprint is compared just before the restore, which leaves the time the
    /// fingerprint takes for a writer to slip in.
    async fn restore_unchanged(&self, src: &Path, dump: &DbDump, guard: &super::Unchanged) -> Result<()> {
        if self.fingerprint().await? != guard.expect {
            return Err(Error::ChangedSince { database: self.describe(), since: guard.since.clone() });
        }
        self.restore(src, dump).await
    }

    /// A canonical text dump of schema and rows, for comparing two states exactly.
    async fn canonical_dump(&self) -> Result<String>;

    /// The SQLite file or PostgreSQL database behind it, when it is one (what `rehearse`
    /// knows how to copy).
    fn url_database(&self) -> Option<&UrlDatabase> {
        None
    }

    /// Where to send notices while it works (a lock it waits for); databases that have none
    /// to send ignore it.
    fn set_notices(&self, _sink: NoticeSink) {}

    /// A short text that is the same for equal states and differs once the schema or a row
    /// changes: what a run records when it ends, for its undo to tell whether anything was
    /// written since. By default the BLAKE3 of [`Database::canonical_dump`].
    async fn fingerprint(&self) -> Result<String> {
        Ok(super::fingerprint_of(&self.canonical_dump().await?))
    }
}

#[async_trait]
impl Database for UrlDatabase {
    fn describe(&self) -> String {
        UrlDatabase::describe(self)
    }

    fn exists(&self) -> bool {
        !self.sqlite_missing()
    }

    fn url_database(&self) -> Option<&UrlDatabase> {
        Some(self)
    }

    fn set_notices(&self, sink: NoticeSink) {
        self.notices.set(sink);
    }

    async fn ping(&self) -> Result<String> {
        UrlDatabase::ping(self).await
    }

    async fn query_scalar(&self, sql: &str) -> Result<Option<String>> {
        UrlDatabase::query_scalar(self, sql).await
    }

    async fn snapshot(&self, dest: &Path) -> Result<DbDump> {
        UrlDatabase::snapshot(self, dest).await
    }

    async fn restore(&self, src: &Path, dump: &DbDump) -> Result<()> {
        UrlDatabase::restore(self, src, dump).await
    }

    async fn restore_unchanged(&self, src: &Path, dump: &DbDump, guard: &super::Unchanged) -> Result<()> {
        UrlDatabase::restore_unchanged(self, src, dump, guard).await
    }

    async fn canonical_dump(&self) -> Result<String> {
        UrlDatabase::canonical_dump(self).await
    }

    /// The BLAKE3 of the schema and, per table, the row count and an order-independent digest
    /// of the rows, computed in one pass (on PostgreSQL by the server, with the large objects'
    /// content): no table is held in memory, unlike [`Database::canonical_dump`].
    async fn fingerprint(&self) -> Result<String> {
        let text = match &self.url {
            DbUrl::Sqlite { .. } => {
                if self.sqlite_missing() {
                    String::new()
                } else {
                    self.with_sqlite(sqlite::Mode::ReadOnly, |c, db| {
                        sqlite::digest_dump(&c.conn).map_err(sqlite::query_err(db))
                    })
                    .await?
                }
            }
            DbUrl::Postgres { .. } => {
                let pg = self.pg();
                let client = pg.connect().await?;
                pg.within("the database fingerprint", postgres::digest_dump(&pg, &client)).await?
            }
        };
        Ok(super::fingerprint_of(&text))
    }
}
