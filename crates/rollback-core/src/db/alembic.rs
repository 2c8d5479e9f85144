//! The Alembic migrator: the project's real Alembic (`alembic -c alembic.ini`, started by
//! `alembic_driver`),
//! revisions read from the database's `alembic_version` table, the revision graph parsed from
//! the migration files (at HEAD from the tree, at other commits through the VCS backend).
//!
//! Alembic runs with the work tree as its working directory and a clean environment (see
//! `process`): `PATH`, `HOME`, locale and TLS variables, `PYTHONDONTWRITEBYTECODE=1` (no
//! `__pycache__` left in the tree), and the database URL in **`DATABASE_URL`** — plus in the
//! variable named by `database.url_env` when that is set — never in argv. The project's
//! `env.py` must connect with that variable (most do:
//! `os.environ.get("DATABASE_URL")`); after every step the version table is read back through
//! our own connection, so an `env.py` that migrated some other database is caught.
//!
//! A downgrade runs one revision per Alembic call (`alembic downgrade <rev>@<parent>`), so a
//! failure names the revision and the database is left at the revision before it: on
//! PostgreSQL the failed migration is rolled back whole (transactional DDL); on SQLite Alembic
//! does not run DDL in a transaction, so statements of the failed migration that ran before the
//! error stay applied (restore the snapshot).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::config::DatabaseConfig;
use super::graph::MigrationGraph;
use super::migration_files::Source;
use super::{
    DbMigrator, Error, Result, Revision, UrlDatabase, alembic_driver, postgres, process, python_source, sqlite,
};
use crate::vcs::{CommitId, VcsBackend};

/// The environment variable Alembic's `env.py` gets the database URL from.
pub const URL_ENV: &str = "DATABASE_URL";

/// The table Alembic records the applied revisions in.
pub const VERSION_TABLE: &str = "alembic_version";

/// The project's Alembic.
#[derive(Clone)]
pub struct AlembicMigrator {
    db: UrlDatabase,
    workdir: PathBuf,
    python: String,
    alembic_ini: PathBuf,
    versions_dir: Option<PathBuf>,
    url_env: Option<String>,
    /// Works on a throwaway copy (the forecast): before it migrates anything it proves that
    /// `env.py` connects to the copy, not to whatever `alembic.ini` names.
    scratch: bool,
    /// The live database's URL and the folder of the real `alembic.ini`, also in a copy's
    /// migrator: an ini naming the live database is pointed at the handed one (see
    /// `alembic_driver`).
    live_url: crate::secret::Secret,
    live_dir: PathBuf,
}

impl AlembicMigrator {
    /// A migrator for the work tree at `workdir`, with `config`'s Python, `alembic.ini` and
    /// versions folder.
    pub fn new(db: UrlDatabase, workdir: &Path, config: &DatabaseConfig) -> Self {
        let ini = workdir.join(&config.alembic_ini);
        Self {
            live_url: db.url().for_child(),
            live_dir: ini.parent().unwrap_or(workdir).to_path_buf(),
            db,
            workdir: workdir.to_owned(),
            python: config.python.clone(),
            alembic_ini: config.alembic_ini.clone(),
            versions_dir: config.versions_dir.clone(),
            url_env: config.url_env.clone(),
            scratch: false,
        }
    }

    fn graph_from(&self, src: &Source<'_>) -> Result<MigrationGraph> {
        let dirs = match &self.versions_dir {
            Some(d) => vec![d.clone()],
            None => match src.read(&self.alembic_ini)? {
                Some(ini) => python_source::versions_dirs(&self.alembic_ini, &ini)?,
                // A commit from before the project used Alembic has no migrations.
                None if matches!(src, Source::Commit { .. }) => return Ok(MigrationGraph::default()),
                None => {
                    return Err(Error::Config(format!(
                        "`{}` does not exist in the work tree (set `database.alembic_ini`)",
                        self.alembic_ini.display()
                    )));
                }
            },
        };
        let mut graph = MigrationGraph::default();
        for dir in dirs {
            for f in src.list(&dir, &python_source::is_revision_file)? {
                graph.migrations.push(python_source::parse_revision_file(&f.path, &f.bytes)?);
            }
        }
        graph.check()?;
        Ok(graph)
    }

    /// Runs Alembic's command line (`python -c DRIVER -c <ini> <args>`, see
    /// `alembic_driver`); fails with the stderr tail.
    async fn alembic(&self, args: &[&str]) -> std::result::Result<process::Output, String> {
        self.alembic_waiting(args, Duration::ZERO).await
    }

    /// `alembic <args>` on PostgreSQL with a short `lock_timeout` first (through `PGOPTIONS`,
    /// which libpq drivers read): when the migration waited too long for a lock another
    /// session holds, the notice is sent and the command runs once more, waiting for the rest of
    /// the timeout; still locked then, [`Error::Locked`]. Transactional DDL rolled the failed
    /// attempt back whole. Each attempt's process is given `database.timeout_secs` plus its
    /// lock wait. On SQLite (or a driver that ignores `PGOPTIONS`) it is `alembic`.
    async fn alembic_lock_aware(&self, args: &[&str]) -> Result<std::result::Result<process::Output, String>> {
        if !matches!(self.db.url(), super::url::DbUrl::Postgres { .. }) {
            return Ok(self.alembic(args).await);
        }
        let timeout = self.db.timeout();
        let first = timeout.min(sqlite::LOCK_NOTICE_AFTER);
        let out = self.alembic_waiting(args, first).await;
        let locked = |r: &std::result::Result<process::Output, String>| {
            r.as_ref().is_err_and(|e| e.contains("LockNotAvailable") || e.contains("due to lock timeout"))
        };
        if !locked(&out) {
            return Ok(out);
        }
        let rest = timeout.saturating_sub(first);
        let gave_up = Error::Locked { database: self.db.describe(), waited_secs: timeout.as_secs() };
        if rest.is_zero() {
            return Err(gave_up);
        }
        if let Some(sink) = self.db.notice_sink() {
            sink(&super::DbNotice::Locked { database: self.db.describe(), waiting_secs: rest.as_secs() });
        }
        let out = self.alembic_waiting(args, rest).await;
        if locked(&out) { Err(gave_up) } else { Ok(out) }
    }

    /// [`Self::alembic`] waiting up to `lock_wait` for a lock (see [`Self::python_alembic`]).
    async fn alembic_waiting(
        &self,
        args: &[&str],
        lock_wait: Duration,
    ) -> std::result::Result<process::Output, String> {
        self.python_alembic(&["-c", &alembic_driver::driver()], args, lock_wait).await
    }

    /// Runs `python <lead> -c <ini> <args>` the way Alembic runs (folder, environment, URL in
    /// the environment, deadline); fails with the stderr tail. A non-zero `lock_wait` is
    /// PostgreSQL's `lock_timeout` (through `PGOPTIONS`, which libpq drivers read), and the
    /// process is given `database.timeout_secs` plus that wait, so that a slow start (Python,
    /// an `env.py`'s imports) does not eat into the wait and a lock is not reported as a hang.
    pub(super) async fn python_alembic(
        &self,
        lead: &[&str],
        args: &[&str],
        lock_wait: Duration,
    ) -> std::result::Result<process::Output, String> {
        let url = self.db.url().for_child();
        let mut env: Vec<(&str, &str)> = vec![
            (URL_ENV, url.expose()),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("PYTHONUNBUFFERED", "1"),
            ("PYTHONIOENCODING", "utf-8"),
        ];
        if let Some(var) = self.url_env.as_deref().filter(|v| *v != URL_ENV) {
            env.push((var, url.expose()));
        }
        let live_dir = self.live_dir.to_string_lossy();
        env.push(("FORGE_ROLLBACK_LIVE_URL", self.live_url.expose()));
        env.push(("FORGE_ROLLBACK_LIVE_DIR", &live_dir));
        let options = format!("-c lock_timeout={}", lock_wait.as_millis().max(1));
        if !lock_wait.is_zero() {
            env.push(("PGOPTIONS", &options));
        }
        // Alembic runs in the folder of its `alembic.ini`, as its users run it: a stock
        // `env.py` reads `sqlalchemy.url = sqlite:///app.db` relative to there.
        let ini = self.workdir.join(&self.alembic_ini);
        let run_in = self.run_in();
        let mut argv: Vec<&std::ffi::OsStr> = lead.iter().map(std::ffi::OsStr::new).collect();
        argv.extend(["-c".as_ref(), ini.as_os_str()]);
        argv.extend(args.iter().map(std::ffi::OsStr::new));
        // A relative interpreter path (`.venv/bin/python`) is the work tree's.
        let python = if self.python.contains('/') && !Path::new(&self.python).is_absolute() {
            self.workdir.join(&self.python).to_string_lossy().into_owned()
        } else {
            self.python.clone()
        };
        let cmd = process::command(&python, argv, Some(&run_in), &env);
        let out = process::output_waiting(&self.python, cmd, self.db.timeout(), lock_wait)
            .await
            .map_err(|e| self.db.url().redact_in(&e.to_string()))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "`{} -m alembic {}` failed ({}): {}",
                self.python,
                args.join(" "),
                process::describe_status(out.status),
                failure(&out, &|s| self.db.url().redact_in(s))
            ))
        }
    }

    /// The folder Alembic runs in: that of `alembic.ini`.
    pub(super) fn run_in(&self) -> PathBuf {
        let ini = self.workdir.join(&self.alembic_ini);
        ini.parent().unwrap_or(&self.workdir).to_path_buf()
    }

    /// The database it migrates.
    pub(super) fn url_database(&self) -> &UrlDatabase {
        &self.db
    }

    /// Proves that Alembic's `env.py` connects to this (scratch) database: a revision only this
    /// database holds is added to its version table, and `alembic current` must fail to locate
    /// it. An `env.py` that ignores `$DATABASE_URL` (the stock one reads `alembic.ini`) would
    /// otherwise run the forecast's downgrade on another database, perhaps the live one.
    async fn probe_scratch(&self) -> Result<()> {
        const PROBE: &str = "forge_rollback_probe";
        self.db.query_scalar(&format!("INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{PROBE}')")).await?;
        let seen = self.alembic(&["current"]).await;
        self.db.query_scalar(&format!("DELETE FROM {VERSION_TABLE} WHERE version_num = '{PROBE}'")).await?;
        match seen {
            Err(detail) if detail.contains(PROBE) => Ok(()),
            Err(detail) => Err(Error::Config(format!("`alembic current` failed on the copy: {detail}"))),
            Ok(_) => Err(Error::Config(format!(
                "env.py does not connect to the database in ${URL_ENV}: Alembic did not see the copy's version table, so a downgrade there would change another database"
            ))),
        }
    }

    fn migration_err(&self, revision: &str, detail: String) -> Error {
        Error::Migration { database: self.db.describe(), revision: revision.to_owned(), detail }
    }
}

/// Why Alembic failed: the tail of its standard error, plus the `FAILED: ...` lines it printed
/// on standard output that the tail does not hold. Alembic prints its own failures (an unknown
/// revision, a bad configuration) there; they reach standard error too only when `env.py`
/// sets up logging to it.
fn failure(out: &process::Output, redact: &dyn Fn(&str) -> String) -> String {
    let err = process::tail(&out.stderr, redact);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<String> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.strip_prefix("FAILED:").is_some_and(|what| !err.contains(what.trim())))
        .map(redact)
        .collect();
    match (err.is_empty(), failed.is_empty()) {
        (_, true) => err,
        (true, false) => failed.join("; "),
        (false, false) => format!("{err}; {}", failed.join("; ")),
    }
}

/// The revisions in Alembic's version table (empty when it does not exist yet).
pub(crate) async fn read_version_table(db: &UrlDatabase, table: &'static str) -> Result<Vec<Revision>> {
    let mut revs = match db.url() {
        super::url::DbUrl::Sqlite { .. } => {
            if db.sqlite_missing() {
                return Ok(Vec::new());
            }
            db.with_sqlite(sqlite::Mode::ReadOnly, move |c, database| {
                let err = sqlite::query_err(database);
                if !sqlite::table_exists(&c.conn, table).map_err(&err)? {
                    return Ok(Vec::new());
                }
                let mut stmt = c.conn.prepare(&format!("SELECT version_num FROM {table}")).map_err(&err)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(&err)?;
                rows.map(|r| r.map(Revision)).collect::<rusqlite::Result<Vec<_>>>().map_err(&err)
            })
            .await?
        }
        super::url::DbUrl::Postgres { .. } => {
            let pg = db.pg();
            let client = pg.connect().await?;
            pg.within("reading the version table", async {
                let exists = postgres::scalar(&client, &format!("SELECT to_regclass('{table}') IS NOT NULL"))
                    .await
                    .map_err(|e| pg.query_err(&e))?;
                if exists.as_deref() != Some("t") {
                    return Ok(Vec::new());
                }
                let rows = postgres::rows(&client, &format!("SELECT version_num FROM {table}"))
                    .await
                    .map_err(|e| pg.query_err(&e))?;
                Ok(rows.into_iter().map(|r| Revision(r[0].clone())).collect())
            })
            .await?
        }
    };
    revs.sort();
    Ok(revs)
}

/// The last `Running upgrade a -> b` Alembic logged: the migration that was running.
fn last_running(stderr: &str, verb: &str) -> Option<String> {
    let marker = format!("Running {verb} ");
    stderr.lines().rev().find_map(|l| {
        let rest = &l[l.find(&marker)? + marker.len()..];
        let to = rest.split_once("->")?.1;
        Some(to.split(',').next()?.trim().to_owned())
    })
}

#[async_trait]
impl DbMigrator for AlembicMigrator {
    fn kind(&self) -> &'static str {
        "alembic"
    }

    fn failed_migration_rolls_back_whole(&self) -> bool {
        // PostgreSQL runs Alembic's DDL in its transaction; SQLite under Alembic does not.
        matches!(self.db.url(), super::url::DbUrl::Postgres { .. })
    }

    fn database(&self) -> &dyn super::Database {
        &self.db
    }

    fn url_database(&self) -> Option<&UrlDatabase> {
        Some(&self.db)
    }

    fn on_database(&self, db: UrlDatabase, workdir: Option<&Path>) -> Option<std::sync::Arc<dyn DbMigrator>> {
        // A relative interpreter (`.venv/bin/python`) stays the real work tree's.
        let python = if self.python.contains('/') && !Path::new(&self.python).is_absolute() {
            self.workdir.join(&self.python).to_string_lossy().into_owned()
        } else {
            self.python.clone()
        };
        let workdir = workdir.map_or_else(|| self.workdir.clone(), Path::to_path_buf);
        Some(std::sync::Arc::new(Self { db, workdir, python, scratch: true, ..self.clone() }))
    }

    fn bookkeeping_tables(&self) -> Vec<String> {
        vec![VERSION_TABLE.to_owned()]
    }

    async fn current(&self) -> Result<Vec<Revision>> {
        read_version_table(&self.db, VERSION_TABLE).await
    }

    async fn graph_worktree(&self) -> Result<MigrationGraph> {
        self.graph_from(&Source::Worktree(&self.workdir))
    }

    async fn graph_at(&self, vcs: &dyn VcsBackend, commit: &CommitId) -> Result<MigrationGraph> {
        self.graph_from(&Source::Commit { vcs, commit })
    }

    async fn downgrade_sql(&self, from: &[Revision], to: &[Revision]) -> Result<Option<String>> {
        let ([from], to) = (from, to) else { return Ok(None) };
        let to = match to {
            [] => "base".to_owned(),
            [one] => one.0.clone(),
            _ => return Ok(None),
        };
        if from.0 == to {
            return Ok(Some(String::new()));
        }
        let range = format!("{from}:{to}");
        match self.alembic(&["downgrade", &range, "--sql"]).await {
            Ok(out) => Ok(Some(self.db.url().redact_in(&String::from_utf8_lossy(&out.stdout)))),
            Err(detail) => Err(self.migration_err(from.as_str(), detail)),
        }
    }

    async fn downgrade(&self, to: &[Revision]) -> Result<()> {
        if self.scratch {
            self.probe_scratch().await?;
        }
        let current = self.current().await?;
        let graph = self.graph_worktree().await?;
        let steps = graph.downgrade_path_on(&self.db.describe(), &current, to)?;
        for step in steps {
            let rev = step.revision.as_str();
            let parent = graph.get(&step.revision).and_then(|m| m.down_revisions.first());
            // `<rev>@<parent>` undoes `rev` alone, even at a branch point; `<rev>@base` for a root.
            let target = format!("{rev}@{}", parent.map_or("base", Revision::as_str));
            self.alembic_lock_aware(&["downgrade", &target]).await?.map_err(|d| self.migration_err(rev, d))?;
            let now = self.current().await?;
            if now != step.down_to {
                return Err(self.migration_err(
                    rev,
                    format!(
                        "Alembic succeeded but `{VERSION_TABLE}` shows [{}] instead of [{}]: does env.py connect with ${URL_ENV}?",
                        join(&now),
                        join(&step.down_to)
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn check_environment(&self) -> Result<()> {
        super::env_probe::check(self).await
    }

    async fn upgrade(&self, to: &[Revision]) -> Result<()> {
        if self.scratch {
            self.probe_scratch().await?;
        }
        let targets: Vec<String> =
            if to.is_empty() { vec!["heads".into()] } else { to.iter().map(|r| r.0.clone()).collect() };
        for target in &targets {
            match self.alembic(&["upgrade", target]).await {
                Ok(_) => {}
                Err(detail) => {
                    let rev = last_running(&detail, "upgrade").unwrap_or_else(|| target.clone());
                    return Err(self.migration_err(&rev, detail));
                }
            }
        }
        let graph = self.graph_worktree().await?;
        let now = self.current().await?;
        let expected = if to.is_empty() { graph.heads() } else { to.to_vec() };
        let reached = graph.ancestors_or_self(&now);
        if let Some(missing) = expected.iter().find(|r| !reached.contains(*r)) {
            return Err(self.migration_err(
                missing.as_str(),
                format!(
                    "Alembic succeeded but `{VERSION_TABLE}` shows [{}]: does env.py connect with ${URL_ENV}?",
                    join(&now)
                ),
            ));
        }
        Ok(())
    }
}

fn join(revs: &[Revision]) -> String {
    revs.iter().map(Revision::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_line() {
        let log = "INFO  [alembic.runtime.migration] Running upgrade  -> 3f1a, create users\nINFO  [alembic.runtime.migration] Running upgrade 3f1a -> 7c2d, add email\nTraceback...";
        assert_eq!(last_running(log, "upgrade").as_deref(), Some("7c2d"));
        assert_eq!(last_running("nothing", "upgrade"), None);
    }
}
