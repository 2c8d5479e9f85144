//! The native SQL migrator: `NNNN_name.up.sql` / `NNNN_name.down.sql` files, a tracking table
//! with checksums, each migration in its own transaction, a PostgreSQL advisory lock.
//!
//! - The graph is linear, ordered by number; the revision is the number as written (`0003`).
//! - The tracking table (`database.table`) has `version`, `name`, `checksum` (BLAKE3 of the
//!   `.up.sql` file, hex) and `applied_at`. A migration applied with other content than its
//!   file has now is reported by [`DbMigrator::edited_migrations`].
//! - Each migration runs with its tracking-table row in one transaction (`BEGIN IMMEDIATE` on
//!   SQLite): a failing migration leaves the database at the migration before it, exactly.
//!   Files must not contain their own `BEGIN`/`COMMIT`.
//! - On SQLite foreign keys are off while a migration runs, as SQLite's own tools run it
//!   (`database.sqlite_foreign_keys` turns them on); the references it leaves broken are said in
//!   a warning ([`DbMigrator::take_warnings`]; see `sqlite_migration`).
//! - On PostgreSQL a session advisory lock (keyed on the table name) is held for a whole
//!   upgrade or downgrade, so two runs cannot interleave.
//! - A migration whose `.down.sql` is missing or empty is irreversible: a downgrade through it
//!   is refused before anything runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::config::{DatabaseConfig, is_identifier};
use super::graph::{Migration, MigrationGraph, Reversibility};
use super::migration_files::{File, Source};
use super::url::DbUrl;
use super::{DbMigrator, Error, Result, Revision, StopCheck, UrlDatabase, postgres, sqlite, sqlite_migration};
use crate::vcs::{CommitId, VcsBackend};

/// One migration's files.
#[derive(Clone, Debug)]
struct SqlMigration {
    number: u64,
    revision: String,
    /// `0003_add_payments`.
    name: String,
    up_path: String,
    up: Vec<u8>,
    down_path: String,
    down: Option<Vec<u8>>,
}

impl SqlMigration {
    fn checksum(&self) -> String {
        blake3::hash(&self.up).to_hex().to_string()
    }

    fn up_sql(&self) -> Result<&str> {
        std::str::from_utf8(&self.up)
            .map_err(|_| Error::BadMigration { path: self.up_path.clone(), detail: "not UTF-8 text".into() })
    }

    /// The `.down.sql` text, or why there is none to run.
    fn down_sql(&self) -> std::result::Result<&str, String> {
        let Some(down) = &self.down else {
            return Err(format!("there is no `{}`", self.down_path));
        };
        let text = std::str::from_utf8(down).map_err(|_| format!("`{}` is not UTF-8 text", self.down_path))?;
        if strip_sql_comments(text).trim().is_empty() {
            return Err(format!("`{}` is empty", self.down_path));
        }
        Ok(text)
    }

    fn to_migration(&self, parent: Option<&SqlMigration>) -> Migration {
        Migration {
            revision: Revision(self.revision.clone()),
            down_revisions: parent.map(|p| Revision(p.revision.clone())).into_iter().collect(),
            branch_labels: Vec::new(),
            description: self.name.clone(),
            path: self.up_path.clone(),
            downgrade: match self.down_sql() {
                Ok(_) => Reversibility::Reversible,
                Err(reason) => Reversibility::Irreversible { reason },
            },
            destructive_upgrade: std::str::from_utf8(&self.up).map(destructive_statements).unwrap_or_default(),
        }
    }
}

/// `-- ...` line comments removed (enough to tell an empty file from a real one).
fn strip_sql_comments(text: &str) -> String {
    text.lines().map(|l| l.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// `DROP TABLE x` / `DROP COLUMN y` in an up migration.
fn destructive_statements(text: &str) -> Vec<String> {
    let stripped = strip_sql_comments(text);
    let words: Vec<&str> = stripped
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',' || c == '(')
        .filter(|w| !w.is_empty())
        .collect();
    let is = |i: usize, w: &str| words.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    let mut out = Vec::new();
    for i in 0..words.len() {
        if !is(i, "DROP") {
            continue;
        }
        let what = if is(i + 1, "TABLE") {
            "drop_table"
        } else if is(i + 1, "COLUMN") {
            "drop_column"
        } else {
            continue;
        };
        let mut j = i + 2;
        if is(j, "IF") && is(j + 1, "EXISTS") {
            j += 2;
        }
        let name = words.get(j).map(|w| w.trim_matches('"')).unwrap_or_default();
        out.push(if name.is_empty() { what.to_owned() } else { format!("{what} {name}") });
    }
    out
}

/// Files the migrator looks at (a misnamed one is then an error, not skipped).
fn is_sql_file(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".sql")
}

/// `0003_add_payments.up.sql` → `(3, "0003", "0003_add_payments", true)`.
fn parse_name(file: &str) -> Option<(u64, String, String, bool)> {
    let (stem, up) =
        if let Some(s) = file.strip_suffix(".up.sql") { (s, true) } else { (file.strip_suffix(".down.sql")?, false) };
    let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = stem.split_at(digits);
    let label = rest.strip_prefix('_')?;
    if num.is_empty() || label.is_empty() {
        return None;
    }
    Some((num.parse().ok()?, num.to_owned(), stem.to_owned(), up))
}

/// Reads and pairs the migration files.
fn load(files: Vec<File>) -> Result<Vec<SqlMigration>> {
    let mut ups: Vec<SqlMigration> = Vec::new();
    let mut downs: Vec<(String, File)> = Vec::new();
    for f in files {
        let name = Path::new(&f.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some((number, revision, stem, up)) = parse_name(&name) else {
            return Err(Error::BadMigration {
                path: f.path,
                detail: "not named like a migration (`NNNN_name.up.sql` or `NNNN_name.down.sql`)".into(),
            });
        };
        if up {
            if let Some(other) = ups.iter().find(|m| m.number == number) {
                return Err(Error::BadMigration {
                    path: f.path,
                    detail: format!("migration number {number} is also used by `{}`", other.up_path),
                });
            }
            let down_path = f.path.replace(".up.sql", ".down.sql");
            ups.push(SqlMigration {
                number,
                revision,
                name: stem,
                up_path: f.path,
                up: f.bytes,
                down_path,
                down: None,
            });
        } else {
            downs.push((stem, f));
        }
    }
    for (stem, f) in downs {
        match ups.iter_mut().find(|m| m.name == stem) {
            Some(m) => m.down = Some(f.bytes),
            None => {
                return Err(Error::BadMigration {
                    path: f.path,
                    detail: format!("there is no `{stem}.up.sql` for this down migration"),
                });
            }
        }
    }
    ups.sort_by_key(|m| m.number);
    Ok(ups)
}

fn graph_of(migrations: &[SqlMigration]) -> MigrationGraph {
    MigrationGraph {
        migrations: migrations
            .iter()
            .enumerate()
            .map(|(i, m)| m.to_migration(i.checked_sub(1).and_then(|p| migrations.get(p))))
            .collect(),
    }
}

/// One row of the tracking table.
#[derive(Clone, Debug)]
struct Applied {
    version: i64,
    name: String,
    checksum: String,
}

impl Applied {
    fn revision(&self) -> Revision {
        let digits: String = self.name.chars().take_while(char::is_ascii_digit).collect();
        Revision(if digits.is_empty() { self.version.to_string() } else { digits })
    }
}

/// The failure of a migration statement that waited for a lock another session holds for
/// longer than `lock_timeout` (SQLSTATE 55P03): retried once after the notice.
const LOCKED: &str = "forge-rollback: lock_timeout";

/// forge-rollback's native SQL migrator.
#[derive(Clone)]
pub struct SqlMigrator {
    db: UrlDatabase,
    workdir: PathBuf,
    dir: PathBuf,
    table: String,
    /// Works on a throwaway copy (the forecast): crash-test failpoints are not for it.
    scratch: bool,
    /// SQLite: migrations run with foreign keys enforced (`database.sqlite_foreign_keys`).
    foreign_keys: bool,
    /// What the migrations run left for the operator to know, until taken
    /// ([`DbMigrator::take_warnings`]); each copy of the database has its own.
    warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SqlMigrator {
    /// A migrator for the folder `config.migrations_dir` of the work tree at `workdir`, with
    /// the tracking table `config.table`.
    pub fn new(db: UrlDatabase, workdir: &Path, config: &DatabaseConfig) -> Result<Self> {
        if !is_identifier(&config.table) {
            return Err(Error::Config(format!("`{}` is not a plain SQL identifier (database.table)", config.table)));
        }
        Ok(Self {
            db,
            workdir: workdir.to_owned(),
            dir: config.migrations_dir.clone(),
            table: config.table.clone(),
            scratch: false,
            foreign_keys: config.sqlite_foreign_keys,
            warnings: Arc::default(),
        })
    }

    fn load_worktree(&self) -> Result<Vec<SqlMigration>> {
        load(Source::Worktree(&self.workdir).list(&self.dir, &is_sql_file)?)
    }

    fn create_table_sql(&self) -> String {
        let t = &self.table;
        match self.db.url() {
            DbUrl::Sqlite { .. } => format!(
                "CREATE TABLE IF NOT EXISTS {t} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
            ),
            DbUrl::Postgres { .. } => format!(
                "CREATE TABLE IF NOT EXISTS {t} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            ),
        }
    }

    /// The advisory lock key: stable per table name.
    fn lock_key(&self) -> i64 {
        let h = blake3::hash(format!("forge-rollback:{}", self.table).as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        i64::from_le_bytes(b)
    }

    /// Rows of the tracking table, by version (empty when it does not exist yet).
    async fn applied(&self) -> Result<Vec<Applied>> {
        let table = self.table.clone();
        match self.db.url() {
            DbUrl::Sqlite { .. } => {
                if self.db.sqlite_missing() {
                    return Ok(Vec::new());
                }
                self.db
                    .with_sqlite(sqlite::Mode::ReadOnly, move |c, database| {
                        let err = sqlite::query_err(database);
                        if !sqlite::table_exists(&c.conn, &table).map_err(&err)? {
                            return Ok(Vec::new());
                        }
                        let mut stmt = c
                            .conn
                            .prepare(&format!("SELECT version, name, checksum FROM {table} ORDER BY version"))
                            .map_err(&err)?;
                        let rows = stmt
                            .query_map([], |r| Ok(Applied { version: r.get(0)?, name: r.get(1)?, checksum: r.get(2)? }))
                            .map_err(&err)?;
                        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&err)
                    })
                    .await
            }
            DbUrl::Postgres { .. } => {
                let pg = self.db.pg();
                let client = pg.connect().await?;
                pg.within("reading the tracking table", async {
                    let exists = postgres::scalar(&client, &format!("SELECT to_regclass('{table}') IS NOT NULL"))
                        .await
                        .map_err(|e| pg.query_err(&e))?;
                    if exists.as_deref() != Some("t") {
                        return Ok(Vec::new());
                    }
                    let rows = postgres::rows(
                        &client,
                        &format!("SELECT version, name, checksum FROM {table} ORDER BY version"),
                    )
                    .await
                    .map_err(|e| pg.query_err(&e))?;
                    rows.into_iter()
                        .map(|r| {
                            let version = r[0].parse().map_err(|_| Error::Query {
                                database: self.db.describe(),
                                detail: format!("bad version `{}` in `{table}`", r[0]),
                            })?;
                            Ok(Applied { version, name: r[1].clone(), checksum: r[2].clone() })
                        })
                        .collect()
                })
                .await
            }
        }
    }

    fn migration_err(&self, revision: &str, detail: &str) -> Error {
        Error::Migration {
            database: self.db.describe(),
            revision: revision.to_owned(),
            detail: self.db.url().redact_in(detail),
        }
    }

    /// Runs `steps` (each `(migration, apply)`: `true` = up and record, `false` = down and
    /// forget), each in its own transaction, under the lock; `stop` (an upgrade's) is asked
    /// before each ([`DbMigrator::upgrade_unless`]).
    async fn run(&self, steps: Vec<(SqlMigration, bool)>, stop: Option<StopCheck>) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let create = self.create_table_sql();
        let table = self.table.clone();
        let scratch = self.scratch;
        match self.db.url() {
            DbUrl::Sqlite { .. } => {
                let (enforced, warnings) = (self.foreign_keys, self.warnings.clone());
                let result = self
                    .db
                    .with_sqlite(sqlite::Mode::Create, move |c, database| {
                        // Outside any transaction: the setting cannot change inside one.
                        sqlite_migration::enforce_foreign_keys(&c.conn, enforced)
                            .map_err(sqlite::query_err(database))?;
                        c.conn.execute_batch(&create).map_err(sqlite::query_err(database))?;
                        for (m, up) in steps {
                            if let Some(why) = stop.as_ref().and_then(|stop| stop()) {
                                return Err(Error::Stopped { database: database.to_owned(), why });
                            }
                            match c.begin_immediate(database) {
                                Ok(()) => {}
                                Err(Error::Query { detail, .. }) => {
                                    return Err(Error::Migration {
                                        database: database.to_owned(),
                                        revision: m.revision.clone(),
                                        detail: format!("BEGIN IMMEDIATE: {detail}"),
                                    });
                                }
                                Err(e) => return Err(e),
                            }
                            let run = |tx: &rusqlite::Connection| -> std::result::Result<Option<String>, String> {
                                // Not enforced, the references it breaks are counted, not refused.
                                let before = (!enforced).then(|| sqlite_migration::broken_references(tx));
                                if up {
                                    let sql = m.up_sql().map_err(|e| e.to_string())?;
                                    tx.execute_batch(sql).map_err(|e| format!("{}: {e}", m.up_path))?;
                                    tx.execute(
                                        &format!("INSERT INTO {table} (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"),
                                        rusqlite::params![i64::try_from(m.number).unwrap_or(i64::MAX), m.name, m.checksum()],
                                    )
                                    .map_err(|e| format!("recording it in `{table}`: {e}"))?;
                                } else {
                                    let sql = m.down_sql()?;
                                    tx.execute_batch(sql).map_err(|e| format!("{}: {e}", m.down_path))?;
                                    tx.execute(&format!("DELETE FROM {table} WHERE version = ?1"), [i64::try_from(m.number).unwrap_or(i64::MAX)])
                                        .map_err(|e| format!("forgetting it in `{table}`: {e}"))?;
                                }
                                let left = before.and_then(|before| {
                                    let (what, path) = if up { ("upgrade", &m.up_path) } else { ("downgrade", &m.down_path) };
                                    let what = format!("migration {}'s {what} (`{path}`)", m.revision);
                                    sqlite_migration::warning(&what, &before, &sqlite_migration::broken_references(tx))
                                });
                                tx.execute_batch("COMMIT").map_err(|e| format!("COMMIT: {e}"))?;
                                Ok(left)
                            };
                            match run(&c.conn) {
                                Ok(left) => {
                                    if let (Some(w), Ok(mut all)) = (left, warnings.lock()) {
                                        all.push(w);
                                    }
                                }
                                Err(detail) => {
                                    let _ = c.conn.execute_batch("ROLLBACK");
                                    return Err(Error::Migration { database: database.to_owned(), revision: m.revision.clone(), detail });
                                }
                            }
                            // Crash tests: a kill between two committed downgrades; cancel
                            // tests: a pause between two committed upgrades.
                            let point = if up { "between:upgrades" } else { "between:downgrades" };
                            if !scratch && let Err(e) = crate::failpoint::hit(point) {
                                return Err(Error::Migration {
                                    database: database.to_owned(),
                                    revision: m.revision.clone(),
                                    detail: e.to_string(),
                                });
                            }
                        }
                        Ok(())
                    })
                    .await;
                result.map_err(|e| match e {
                    Error::Migration { revision, detail, .. } => self.migration_err(&revision, &detail),
                    other => other,
                })
            }
            DbUrl::Postgres { .. } => {
                let pg = self.db.pg();
                let client = pg.connect().await?;
                let key = self.lock_key();
                pg.within("taking the migration lock", async {
                    client.batch_execute(&format!("SELECT pg_advisory_lock({key})")).await.map_err(|e| pg.query_err(&e))
                })
                .await?;
                let result = async {
                    pg.within("creating the tracking table", async {
                        client.batch_execute(&create).await.map_err(|e| pg.query_err(&e))
                    })
                    .await?;
                    for (m, up) in steps {
                        if let Some(why) = stop.as_ref().and_then(|stop| stop()) {
                            return Err(Error::Stopped { database: self.db.describe(), why });
                        }
                        let work = || async {
                            let sql = if up { m.up_sql().map_err(|e| e.to_string())? } else { m.down_sql()? };
                            let path = if up { &m.up_path } else { &m.down_path };
                            client.batch_execute("BEGIN").await.map_err(|e| postgres::error_detail(&e))?;
                            client.batch_execute(sql).await.map_err(|e| {
                                if postgres::is_lock_timeout(&e) {
                                    LOCKED.to_owned()
                                } else {
                                    format!("{path}: {}", postgres::error_detail(&e))
                                }
                            })?;
                            let version = i64::try_from(m.number).unwrap_or(i64::MAX);
                            if up {
                                client
                                    .execute(
                                        &format!("INSERT INTO {table} (version, name, checksum) VALUES ($1, $2, $3)"),
                                        &[&version, &m.name, &m.checksum()],
                                    )
                                    .await
                                    .map_err(|e| {
                                        format!("recording it in `{table}`: {}", postgres::error_detail(&e))
                                    })?;
                            } else {
                                client
                                        .execute(&format!("DELETE FROM {table} WHERE version = $1"), &[&version])
                                        .await
                                        .map_err(|e| {
                                            format!("forgetting it in `{table}`: {}", postgres::error_detail(&e))
                                        })?;
                            }
                            client
                                .batch_execute("COMMIT")
                                .await
                                .map_err(|e| format!("COMMIT: {}", postgres::error_detail(&e)))
                        };
                        let attempt = |lock_wait: std::time::Duration| {
                            let work = work();
                            let client = &client;
                            async move {
                                let ms = lock_wait.as_millis().max(1);
                                client
                                    .batch_execute(&format!("SET lock_timeout = {ms}"))
                                    .await
                                    .map_err(|e| postgres::error_detail(&e))?;
                                // The lock wait is not the migration's work: a slow
                                // statement before the locked one must not turn the lock
                                // into a timeout.
                                match tokio::time::timeout(self.db.timeout() + lock_wait, work).await {
                                    Ok(r) => r,
                                    Err(_) => Err(format!(
                                        "timed out after {}",
                                        super::process::time_limit(self.db.timeout(), lock_wait)
                                    )),
                                }
                            }
                        };
                        // A lock another session holds on a table the migration needs is said
                        // after a short wait, then waited for the rest of the timeout.
                        let timeout = self.db.timeout();
                        let first = timeout.min(super::sqlite::LOCK_NOTICE_AFTER);
                        let mut outcome = attempt(first).await;
                        if outcome.as_ref().err().map(String::as_str) == Some(LOCKED) {
                            let _ = client.batch_execute("ROLLBACK").await;
                            let rest = timeout.saturating_sub(first);
                            if !rest.is_zero() {
                                if let Some(sink) = self.db.notice_sink() {
                                    sink(&super::DbNotice::Locked {
                                        database: self.db.describe(),
                                        waiting_secs: rest.as_secs(),
                                    });
                                }
                                outcome = attempt(rest).await;
                            }
                            if outcome.as_ref().err().map(String::as_str) == Some(LOCKED) {
                                let _ = client.batch_execute("ROLLBACK").await;
                                return Err(Error::Locked {
                                    database: self.db.describe(),
                                    waited_secs: timeout.as_secs(),
                                });
                            }
                        }
                        if let Err(detail) = outcome {
                            let _ = client.batch_execute("ROLLBACK").await;
                            return Err(self.migration_err(&m.revision, &detail));
                        }
                    }
                    Ok(())
                }
                .await;
                let _ = client.batch_execute(&format!("SELECT pg_advisory_unlock({key})")).await;
                result
            }
        }
    }
}

#[async_trait]
impl DbMigrator for SqlMigrator {
    fn kind(&self) -> &'static str {
        "sql"
    }

    fn failed_migration_rolls_back_whole(&self) -> bool {
        // One transaction per migration, on SQLite and PostgreSQL alike.
        true
    }

    fn database(&self) -> &dyn super::Database {
        &self.db
    }

    fn url_database(&self) -> Option<&UrlDatabase> {
        Some(&self.db)
    }

    fn on_database(&self, db: UrlDatabase, workdir: Option<&Path>) -> Option<std::sync::Arc<dyn DbMigrator>> {
        let workdir = workdir.map_or_else(|| self.workdir.clone(), Path::to_path_buf);
        Some(std::sync::Arc::new(Self { db, workdir, scratch: true, warnings: Arc::default(), ..self.clone() }))
    }

    fn bookkeeping_tables(&self) -> Vec<String> {
        vec![self.table.clone()]
    }

    fn take_warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default()
    }

    async fn current(&self) -> Result<Vec<Revision>> {
        Ok(self.applied().await?.last().map(Applied::revision).into_iter().collect())
    }

    async fn graph_worktree(&self) -> Result<MigrationGraph> {
        Ok(graph_of(&self.load_worktree()?))
    }

    async fn graph_at(&self, vcs: &dyn VcsBackend, commit: &CommitId) -> Result<MigrationGraph> {
        let files = Source::Commit { vcs, commit }.list(&self.dir, &is_sql_file)?;
        Ok(graph_of(&load(files)?))
    }

    async fn downgrade_sql(&self, from: &[Revision], to: &[Revision]) -> Result<Option<String>> {
        let migrations = self.load_worktree()?;
        let steps = graph_of(&migrations).downgrade_path_on(&self.db.describe(), from, to)?;
        let mut out = String::new();
        for step in steps {
            let Some(m) = migrations.iter().find(|m| m.revision == step.revision.0) else { continue };
            match m.down_sql() {
                Ok(sql) => {
                    let _ = write!(out, "-- {}\n{}", m.down_path, sql);
                    if !sql.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Err(why) => {
                    let _ = writeln!(out, "-- {}: cannot be undone: {why}", m.name);
                }
            }
        }
        Ok(Some(out))
    }

    async fn downgrade(&self, to: &[Revision]) -> Result<()> {
        let migrations = self.load_worktree()?;
        let current = self.current().await?;
        let steps = graph_of(&migrations).downgrade_path_on(&self.db.describe(), &current, to)?;
        let mut run = Vec::with_capacity(steps.len());
        for step in &steps {
            let Some(m) = migrations.iter().find(|m| m.revision == step.revision.0) else {
                return Err(Error::UnknownRevision { database: self.db.describe(), revision: step.revision.0.clone() });
            };
            if let Err(why) = m.down_sql() {
                return Err(self.migration_err(&m.revision, &format!("cannot be undone: {why}; nothing was changed")));
            }
            run.push((m.clone(), false));
        }
        self.run(run, None).await
    }

    async fn upgrade(&self, to: &[Revision]) -> Result<()> {
        self.upgrade_unless(to, &(Arc::new(|| None) as StopCheck)).await
    }

    async fn upgrade_unless(&self, to: &[Revision], stop: &StopCheck) -> Result<()> {
        let migrations = self.load_worktree()?;
        let applied = self.applied().await?;
        let target = match to {
            [] => migrations.last().map_or(0, |m| m.number),
            [one] => {
                migrations.iter().find(|m| m.revision == one.0).map(|m| m.number).ok_or_else(|| Error::NoPath {
                    database: self.db.describe(),
                    from: applied.last().map_or_else(|| "base".into(), |a| a.revision().0),
                    to: one.0.clone(),
                    detail: "no migration file has this number".into(),
                })?
            }
            _ => return Err(Error::Config("the SQL migrator's graph is linear: upgrade to one revision".into())),
        };
        let top = applied.last().map_or(0, |a| a.version);
        let mut run = Vec::new();
        for m in migrations.iter().filter(|m| m.number <= target) {
            let number = i64::try_from(m.number).unwrap_or(i64::MAX);
            if applied.iter().any(|a| a.version == number) {
                continue;
            }
            if number < top {
                return Err(self.migration_err(
                    &m.revision,
                    &format!(
                        "`{}` was never applied but a later migration was; apply it by hand or renumber it",
                        m.up_path
                    ),
                ));
            }
            run.push((m.clone(), true));
        }
        self.run(run, Some(stop.clone())).await
    }

    async fn edited_migrations(&self) -> Result<Vec<Revision>> {
        let migrations = self.load_worktree()?;
        let applied = self.applied().await?;
        Ok(applied
            .iter()
            .filter(|a| {
                migrations.iter().any(|m| i64::try_from(m.number).ok() == Some(a.version) && m.checksum() != a.checksum)
            })
            .map(Applied::revision)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("0003_add_payments.up.sql"), Some((3, "0003".into(), "0003_add_payments".into(), true)));
        assert_eq!(parse_name("12_x.down.sql"), Some((12, "12".into(), "12_x".into(), false)));
        assert_eq!(parse_name("0003-add.up.sql"), None);
        assert_eq!(parse_name("add.up.sql"), None);
        assert_eq!(parse_name("0003_.up.sql"), None);
        assert_eq!(parse_name("0003_x.sql"), None);
    }

    #[test]
    fn destructive() {
        let up = "-- DROP TABLE in a comment does not count\nALTER TABLE users ADD COLUMN email TEXT;\nALTER TABLE users DROP COLUMN legacy;\ndrop table if exists \"old\";";
        assert_eq!(destructive_statements(up), vec!["drop_column legacy", "drop_table old"]);
        assert!(destructive_statements("CREATE TABLE t (id int);").is_empty());
    }
}
