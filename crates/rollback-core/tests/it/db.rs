//! The database layer against real things: SQLite files, the PostgreSQL server
//! `scripts/pg.sh` starts, the real Alembic from PyPI, real git repositories.
//!
//! The exported `DbMigrator` suite (`rollback_core::testing::db`) runs for each of
//! {alembic, sql} × {sqlite, postgres} on the testkit's sample app; then the failure cases
//! (server down, wrong password, old `pg_dump`, corrupt snapshots, TLS) each assert the error
//! variant and that the message names the database without its password.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rollback_core::RiskCode;
use rollback_core::db::url::DbUrl;
use rollback_core::db::{self, DatabaseConfig, DbMigrator, Error, Revision, UrlDatabase};
use rollback_core::rt::block_on;
use rollback_core::secret::Secret;
use rollback_core::testing::db::{self as suite, DbSample};
use rollback_core::vcs::{self, BackendKind, CommitId};
use rollback_testkit::TestRepo;
use rollback_testkit::db::{Engine, MigrationFixture, MigratorKind as Fx, PgDatabase, SQL_DIR, pg_ca, python};

fn config(kind: &str, url: &str) -> DatabaseConfig {
    let mut c: DatabaseConfig = toml::from_str(&format!("kind = \"{kind}\"\nurl = \"{url}\"\n")).unwrap();
    c.migrations_dir = SQL_DIR.into();
    c.timeout_secs = 120;
    if kind == "alembic" {
        c.python = python();
    }
    c
}
/// The testkit's sample app (`MigrationFixture`) for one migrator, on a fresh SQLite file or
/// PostgreSQL database: what the suite migrates.
struct Sample {
    repo: TestRepo,
    fx: MigrationFixture,
    engine: Engine,
    /// Kept alive for the test; dropped (and the database with it) at the end.
    _pg: Option<PgDatabase>,
    password: Option<String>,
    migrator: Arc<dyn DbMigrator>,
}

fn sample(kind: Fx, engine: Engine) -> Box<dyn DbSample> {
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, kind);
    let (pg, url) = engine.database();
    let password = pg.as_ref().map(|p| p.server().password.clone());
    let migrator = db::open(&config(fx.kind_name(), &url), repo.path()).unwrap();
    Box::new(Sample { repo, fx, engine, _pg: pg, password, migrator })
}

impl DbSample for Sample {
    fn workdir(&self) -> &Path {
        self.repo.path()
    }

    fn migrator(&self) -> &dyn DbMigrator {
        self.migrator.as_ref()
    }

    fn commit(&self, n: usize) -> CommitId {
        CommitId::new(self.fx.commits[n].clone()).unwrap()
    }

    fn revision(&self, n: usize) -> Revision {
        Revision(self.fx.revisions[n - 1].clone())
    }

    fn migration_path(&self, n: usize) -> String {
        self.fx.migration_path(n)
    }

    fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    fn break_second_downgrade(&self) {
        self.fx.break_second_downgrade(&self.repo);
    }

    fn write_unparsable_migration(&self) -> String {
        self.fx.write_unparsable(&self.repo)
    }

    fn record_unknown_revision(&self) -> (Revision, RiskCode) {
        let d = self.migrator.database();
        let (unknown, code) = match self.fx.kind {
            Fx::Alembic => {
                block_on(d.query_scalar("UPDATE alembic_version SET version_num = 'deadbeef0000'")).unwrap();
                ("deadbeef0000", RiskCode::UnknownDbRevision)
            }
            Fx::Sql => {
                block_on(d.query_scalar(
                    "INSERT INTO forge_rollback_migrations (version, name, checksum, applied_at) VALUES (9, '0009_from_a_newer_release', 'x', CURRENT_TIMESTAMP)",
                ))
                .unwrap();
                ("0009", RiskCode::DbAheadOfCode)
            }
        };
        (Revision(unknown.into()), code)
    }

    fn detects_edited_migrations(&self) -> bool {
        // Alembic keeps no checksums.
        self.fx.kind == Fx::Sql
    }

    fn rolls_back_failed_migrations(&self) -> bool {
        // Alembic on SQLite: DDL is not transactional (documented on `db::alembic`).
        !(self.fx.kind == Fx::Alembic && self.engine == Engine::Sqlite)
    }

    fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        (self.engine == Engine::Sqlite).then(|| self.repo.path().join("app.db"))
    }
}

/// `secret` appears in no part of the error: Display, Debug, or any source.
fn assert_no_secret(err: &(dyn std::error::Error + 'static), secret: &str) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        assert!(!e.to_string().contains(secret), "password in Display: {e}");
        assert!(!format!("{e:?}").contains(secret), "password in Debug: {e:?}");
        cur = e.source();
    }
}

fn codes(risks: &[rollback_core::assess::Risk]) -> Vec<&str> {
    risks.iter().map(|r| r.code.as_str()).collect()
}
macro_rules! conformance {
    ($($name:ident => ($kind:expr, $engine:expr);)*) => {
        $(
            mod $name {
                use super::*;

                fn make() -> Box<dyn DbSample> {
                    sample($kind, $engine)
                }

                #[test]
                fn upgrade_graphs_and_downgrade() {
                    suite::upgrade_graphs_and_downgrade(&make);
                }

                #[test]
                fn snapshot_restore_is_exact() {
                    suite::snapshot_restore_is_exact(&make);
                }

                #[test]
                fn assess_reports_risks() {
                    suite::assess_reports_risks(&make);
                }

                #[test]
                fn failed_downgrade_stops_at_the_failing_revision() {
                    suite::failed_downgrade_stops_at_the_failing_revision(&make);
                }

                #[test]
                fn unparsable_migration_file() {
                    suite::unparsable_migration_file(&make);
                }

                #[test]
                fn unknown_revision_in_the_database() {
                    suite::unknown_revision_in_the_database(&make);
                }
            }
        )*

        /// A case added to the suite gets a test here too.
        #[test]
        fn every_case_of_the_suite_is_run() {
            let here = [
                "upgrade_graphs_and_downgrade",
                "snapshot_restore_is_exact",
                "assess_reports_risks",
                "failed_downgrade_stops_at_the_failing_revision",
                "unparsable_migration_file",
                "unknown_revision_in_the_database",
            ];
            let suite: Vec<&str> = suite::CASES.iter().map(|c| c.name).collect();
            assert_eq!(here.as_slice(), suite.as_slice());
        }
    };
}

conformance! {
    alembic_sqlite => (Fx::Alembic, Engine::Sqlite);
    alembic_postgres => (Fx::Alembic, Engine::Postgres);
    sql_sqlite => (Fx::Sql, Engine::Sqlite);
    sql_postgres => (Fx::Sql, Engine::Postgres);
}

pub(crate) fn database(url: &str, workdir: &Path, pg_dump: &str) -> UrlDatabase {
    UrlDatabase::new(DbUrl::parse(&Secret::new(url), workdir).unwrap(), 60, pg_dump.into(), "pg_restore".into())
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn pg_server_down_is_unreachable_and_assess_says_so() {
    let secret = "s3cret-pw-for-down";
    let url = format!("postgresql://forge:{secret}@127.0.0.1:{}/app", closed_port());
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, Fx::Sql);
    let migrator = db::open(&config("sql", &url), repo.path()).unwrap();
    let d = migrator.database();
    assert_eq!(d.describe(), url.replace(secret, "***"));
    let dump_path = repo.path().join("x.dump");
    let vcs = vcs::open(BackendKind::GitCli, repo.path()).unwrap();
    block_on(async {
        let errs = vec![
            d.ping().await.unwrap_err(),
            d.canonical_dump().await.unwrap_err(),
            d.snapshot(&dump_path).await.unwrap_err(),
            migrator.current().await.unwrap_err(),
            migrator.downgrade(&[]).await.unwrap_err(),
        ];
        for err in &errs {
            assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
            assert!(err.to_string().contains(&d.describe()), "{err}");
            assert!(err.hint().is_some());
            assert_no_secret(err, secret);
        }
        assert!(errs[0].to_string().to_lowercase().contains("refused"), "{}", errs[0]);
        let a = db::assess::assess(migrator.as_ref(), vcs.as_ref(), &CommitId::new(fx.commits[1].clone()).unwrap())
            .await
            .unwrap();
        assert!(!a.reachable);
        assert_eq!(codes(&a.risks), vec!["db_unreachable", "destructive_upgrade"], "{:?}", a.risks);
        assert_eq!(a.path.len(), 2, "the path assumes the database is at the code's heads");
        assert!(!a.risks[0].message.contains(secret));
        assert!(!serde_json::to_string(&a).unwrap().contains(secret));
    });
}

#[test]
fn pg_wrong_password_is_unreachable() {
    let pg = PgDatabase::new();
    let s = pg.server();
    let wrong = "wrong-password-xyz";
    let url = s.url_with(&s.user, wrong, pg.name());
    let d = database(&url, Path::new("/"), "pg_dump");
    block_on(async {
        let err = d.ping().await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("password authentication failed"), "{err}");
        assert!(err.to_string().contains(&d.describe()) && d.describe().contains("***"), "{err}");
        assert_no_secret(&err, wrong);
        assert_no_secret(&err, &s.password);
        // The right password works: the failure above was the credentials.
        let ok = database(&pg.url(), Path::new("/"), "pg_dump");
        assert!(ok.ping().await.unwrap().starts_with(char::is_numeric));
    });
}

/// The newest `pg_dump` installed (the one matching the server).
pub(crate) fn real_pg_dump() -> String {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pg_dump"))
        .filter(|p| p.exists())
        .collect();
    bins.sort();
    bins.pop().map_or_else(|| "pg_dump".into(), |p| p.display().to_string())
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn pg_dump_older_than_the_server_is_refused() {
    let pg = PgDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let fake = script(
        dir.path(),
        "pg_dump",
        "if [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 9.6.0'; exit 0; fi\nexit 1\n",
    );
    let d = database(&pg.url(), dir.path(), &fake);
    let dest = dir.path().join("snap.dump");
    block_on(async {
        let err = d.snapshot(&dest).await.unwrap_err();
        match &err {
            Error::ClientTooOld { tool, client, server, database } => {
                assert_eq!((tool.as_str(), client.as_str()), ("pg_dump", "9.6.0"));
                assert!(server.starts_with(char::is_numeric), "{server}");
                assert_eq!(database, &d.describe());
            }
            other => panic!("expected ClientTooOld, got {other:?}"),
        }
        assert!(err.hint().unwrap().contains("pg_dump"));
        assert_no_secret(&err, &pg.server().password);
        assert!(!dest.exists());
    });
}

#[test]
fn pg_password_goes_to_pg_dump_through_the_environment_only() {
    let pg = PgDatabase::new();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'x')");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("seen");
    let wrapper = script(
        dir.path(),
        "pg_dump",
        &format!(
            "echo \"argv: $*\" >> '{log}'\n[ -n \"$PGPASSWORD\" ] && echo 'PGPASSWORD set' >> '{log}'\nexec '{}' \"$@\"\n",
            real_pg_dump(),
            log = log.display()
        ),
    );
    let d = database(&pg.url(), dir.path(), &wrapper);
    block_on(async {
        let snap = dir.path().join("snap.dump");
        let info = d.snapshot(&snap).await.unwrap();
        assert_eq!(info.format, db::database::FORMAT_PG);
    });
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(seen.contains("PGPASSWORD set") && seen.contains("--format=custom"), "{seen}");
    assert!(!seen.contains(&pg.server().password), "the password reached argv: {seen}");
}

#[test]
fn pg_failed_restore_changes_nothing() {
    let pg = PgDatabase::new();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g");
    let dir = tempfile::tempdir().unwrap();
    let d = database(&pg.url(), dir.path(), "pg_dump");
    block_on(async {
        let snap = dir.path().join("snap.dump");
        let info = d.snapshot(&snap).await.unwrap();
        d.query_scalar("CREATE TABLE later (x int)").await.unwrap();
        let before = d.canonical_dump().await.unwrap();
        // Cut the archive in the middle of its data: pg_restore fails part-way.
        let bytes = std::fs::read(&snap).unwrap();
        std::fs::write(&snap, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let err = d.restore(&snap, &info).await.unwrap_err();
        assert!(matches!(err, Error::Snapshot { .. }), "{err:?}");
        assert!(err.to_string().contains(&d.describe()), "{err}");
        assert_no_secret(&err, &pg.server().password);
        assert_eq!(d.canonical_dump().await.unwrap(), before, "a failed restore must leave the database as it was");
    });
}

#[test]
fn pg_tls_modes() {
    let pg = PgDatabase::new();
    let s = pg.server();
    let base = s.url_with(&s.user, &s.password, pg.name());
    let sep = if base.contains('?') { '&' } else { '?' };
    let ssl_in_use = "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let ca = pg_ca().display().to_string();
    block_on(async {
        for (query, expect) in [
            ("sslmode=disable".to_owned(), "false"),
            ("sslmode=prefer".to_owned(), "true"),
            ("sslmode=require".to_owned(), "true"),
            (format!("sslmode=verify-ca&sslrootcert={ca}"), "true"),
        ] {
            let d = database(&format!("{base}{sep}{query}"), Path::new("/"), "pg_dump");
            assert_eq!(d.query_scalar(ssl_in_use).await.unwrap().as_deref(), Some(expect), "{query}");
        }
        // verify-full checks the name: the certificate is for localhost and 127.0.0.1.
        let full = base.replace(&format!("@{}:", s.host), "@localhost:");
        let d = database(&format!("{full}{sep}sslmode=verify-full&sslrootcert={ca}"), Path::new("/"), "pg_dump");
        assert_eq!(d.query_scalar(ssl_in_use).await.unwrap().as_deref(), Some("true"));
        // A certificate no trusted root signed is refused.
        let d = database(&format!("{full}{sep}sslmode=verify-full&sslrootcert=system"), Path::new("/"), "pg_dump");
        let err = d.ping().await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
        assert_no_secret(&err, &s.password);
        // pg_dump gets the TLS settings too (PGSSLMODE/PGSSLROOTCERT).
        let dir = tempfile::tempdir().unwrap();
        let d = database(&format!("{full}{sep}sslmode=verify-full&sslrootcert={ca}"), dir.path(), &real_pg_dump());
        d.snapshot(&dir.path().join("tls.dump")).await.unwrap();
    });
}

/// A SQLite database whose index disagrees with its table: `PRAGMA integrity_check` fails,
/// every page still reads.
fn corrupt_sqlite(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (x INTEGER, y INTEGER);
         CREATE INDEX ix ON t (x);
         INSERT INTO t VALUES (1, 30), (2, 20), (3, 10);
         PRAGMA writable_schema = ON;
         UPDATE sqlite_master SET sql = 'CREATE INDEX ix ON t (y)' WHERE name = 'ix';
         PRAGMA writable_schema = OFF;",
    )
    .unwrap();
}

#[test]
fn sqlite_corrupt_snapshot_fails_its_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.db");
    corrupt_sqlite(&bad);
    let d = database("sqlite:///bad.db", dir.path(), "pg_dump");
    block_on(async {
        let dest = dir.path().join("bad.snapshot");
        let err = d.snapshot(&dest).await.unwrap_err();
        assert!(matches!(err, Error::Snapshot { .. }), "{err:?}");
        assert!(err.to_string().contains("integrity check") && err.to_string().contains(&d.describe()), "{err}");
        assert!(!dest.exists(), "a failed snapshot leaves no file");

        // A snapshot file that got corrupted is refused on restore; the live file stays.
        rusqlite::Connection::open(dir.path().join("good.db"))
            .unwrap()
            .execute_batch("CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('still here');")
            .unwrap();
        let good = database("sqlite:///good.db", dir.path(), "pg_dump");
        let snap = dir.path().join("good.snapshot");
        let info = good.snapshot(&snap).await.unwrap();
        assert_eq!(info.format, db::database::FORMAT_SQLITE);
        let before = good.canonical_dump().await.unwrap();
        std::fs::copy(&bad, &snap).unwrap();
        let err = good.restore(&snap, &info).await.unwrap_err();
        assert!(matches!(err, Error::Snapshot { .. }) && err.to_string().contains("integrity check"), "{err}");
        assert_eq!(good.canonical_dump().await.unwrap(), before);
        // Not a database at all.
        std::fs::write(&snap, b"definitely not sqlite").unwrap();
        assert!(matches!(good.restore(&snap, &info).await.unwrap_err(), Error::Snapshot { .. }));
        assert_eq!(good.canonical_dump().await.unwrap(), before);
    });
}

#[test]
fn sqlite_missing_file_is_unreachable_but_empty_for_migrators() {
    let repo = TestRepo::new();
    MigrationFixture::new(&repo, Fx::Sql);
    let m = db::open(&config("sql", "sqlite:///data/app.db"), repo.path()).unwrap();
    block_on(async {
        let err = m.database().ping().await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("data/app.db"), "{err}");
        assert!(m.current().await.unwrap().is_empty());
    });
    assert!(!repo.exists("data/app.db"), "reading must not create the file");
}

#[test]
fn open_refuses_bad_config_without_echoing_the_password() {
    let repo = TestRepo::new();
    for (url, needle) in [
        ("mysql://u:hunter2-secret@h/d", "unsupported database URL scheme"),
        ("postgresql://u:hunter2-secret@h/d?sslcert=x", "unsupported query parameter `sslcert`"),
    ] {
        let Err(err) = db::open(&config("sql", url), repo.path()) else {
            panic!("{needle}: accepted");
        };
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
        assert_no_secret(&err, "hunter2-secret");
    }
    let mut c = config("sql", "sqlite:///a.db");
    c.table = "bad name".into();
    assert!(db::open(&c, repo.path()).is_err());
}

/// A copy of a SQLite database (the forecast's, the undo's checks', a snapshot) is `0600`,
/// whatever the database's mode and the umask: SQLite would make it `0644`, readable by every
/// local user.
#[test]
fn sqlite_scratch_copy_and_snapshot_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.db");
    rusqlite::Connection::open(&live).unwrap().execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = database("sqlite:///app.db", dir.path(), "pg_dump");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    block_on(async {
        let copy = dir.path().join("copy.db");
        let scratch = d.scratch_copy_to(&copy, dir.path()).await.unwrap();
        assert_eq!(mode(&copy), 0o600);
        assert_eq!(scratch.db.canonical_dump().await.unwrap(), d.canonical_dump().await.unwrap());
        scratch.discard().await.unwrap();
        let snap = dir.path().join("snap.db");
        d.snapshot(&snap).await.unwrap();
        assert_eq!(mode(&snap), 0o600);
    });
}
