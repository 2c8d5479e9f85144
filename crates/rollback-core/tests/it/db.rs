//! The database layer against real things: SQLite files, the PostgreSQL server
//! `scripts/pg.sh` starts, the real Alembic from PyPI, real git repositories.
//!
//! One conformance suite runs for each of {alembic, sql} × {sqlite, postgres}; then the failure
//! cases (server down, wrong password, old `pg_dump`, corrupt snapshots, TLS) each assert the
//! error variant and that the message names the database without its password.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rollback_core::db::graph::Reversibility;
use rollback_core::db::url::DbUrl;
use rollback_core::db::{self, Database, DatabaseConfig, DbDump, DbMigrator, Error, Revision, UrlDatabase};
use rollback_core::rt::block_on;
use rollback_core::secret::Secret;
use rollback_core::vcs::{self, BackendKind, CommitId};
use rollback_testkit::TestRepo;
use rollback_testkit::db::{MigrationFixture, MigratorKind as Fx, PgDatabase, SQL_DIR, pg_ca, python};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

struct Case {
    /// The work tree (the `TestRepo` itself stays outside async blocks: it is not `Sync`).
    root: PathBuf,
    fx: MigrationFixture,
    /// Kept alive for the test; dropped (and the database with it) at the end.
    pg: Option<PgDatabase>,
    password: Option<String>,
    engine: Engine,
    migrator: Arc<dyn DbMigrator>,
}

fn config(kind: &str, url: &str) -> DatabaseConfig {
    let mut c: DatabaseConfig = toml::from_str(&format!("kind = \"{kind}\"\nurl = \"{url}\"\n")).unwrap();
    c.migrations_dir = SQL_DIR.into();
    c.timeout_secs = 120;
    if kind == "alembic" {
        c.python = python();
    }
    c
}

fn setup(kind: Fx, engine: Engine) -> (TestRepo, Case) {
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, kind);
    let (pg, url) = match engine {
        Engine::Sqlite => (None, "sqlite:///app.db".to_owned()),
        Engine::Postgres => {
            let pg = PgDatabase::new();
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let password = pg.as_ref().map(|p| p.server().password.clone());
    let migrator = db::open(&config(fx.kind_name(), &url), repo.path()).unwrap();
    let root = repo.path().to_owned();
    (repo, Case { root, fx, pg, password, engine, migrator })
}

impl Case {
    fn m(&self) -> &dyn DbMigrator {
        self.migrator.as_ref()
    }

    fn db(&self) -> &dyn Database {
        self.migrator.database()
    }

    fn rev(&self, n: usize) -> Revision {
        Revision(self.fx.revisions[n - 1].clone())
    }

    fn commit(&self, n: usize) -> CommitId {
        CommitId::new(self.fx.commits[n].clone()).unwrap()
    }

    /// The error names the database (password removed) and never shows the password.
    fn check_err(&self, err: &Error) {
        let shown = err.to_string();
        assert!(shown.contains(&self.db().describe()) || matches!(err, Error::BadMigration { .. }), "{shown}");
        if let Some(pw) = &self.password {
            assert_no_secret(err, pw);
        }
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

fn upgrade_graphs_and_downgrade(kind: Fx, engine: Engine) {
    let (repo, c) = setup(kind, engine);
    let (r1, r2, r3) = (c.rev(1), c.rev(2), c.rev(3));
    let backends = [BackendKind::Git2, BackendKind::GitCli].map(|b| (b, vcs::open(b, repo.path()).unwrap()));
    block_on(async {
        let m = c.m();
        assert_eq!(m.current().await.unwrap(), Vec::<Revision>::new(), "a new database has no revision");
        m.upgrade(std::slice::from_ref(&r1)).await.unwrap();
        assert_eq!(m.current().await.unwrap(), vec![r1.clone()]);
        let at_r1 = c.db().canonical_dump().await.unwrap();
        assert!(at_r1.contains("users") && !at_r1.contains("payments"), "{at_r1}");
        m.upgrade(&[]).await.unwrap();
        assert_eq!(m.current().await.unwrap(), vec![r3.clone()]);
        let at_r3 = c.db().canonical_dump().await.unwrap();
        assert!(at_r3.contains("payments") && at_r3.contains("on two lines"), "{at_r3}");

        let g = m.graph_worktree().await.unwrap();
        assert_eq!(g.heads(), vec![r3.clone()]);
        assert_eq!(g.migrations.len(), 3);
        let m1 = g.get(&r1).unwrap();
        assert!(matches!(m1.downgrade, Reversibility::Irreversible { .. }), "{m1:?}");
        assert!(m1.down_revisions.is_empty());
        let m2 = g.get(&r2).unwrap();
        assert_eq!(m2.downgrade, Reversibility::Reversible);
        assert_eq!(m2.down_revisions, vec![r1.clone()]);
        assert_eq!(m2.path, c.fx.migration_path(2));
        assert_eq!(m2.destructive_upgrade.len(), 1, "{m2:?}");
        assert!(
            m2.destructive_upgrade[0].starts_with("drop_column") && m2.destructive_upgrade[0].contains("legacy"),
            "{m2:?}"
        );
        assert!(g.get(&r3).unwrap().destructive_upgrade.is_empty());

        // Older commits, read through both backends without checking them out.
        for (backend, vcs) in &backends {
            let g1 = m.graph_at(vcs.as_ref(), &c.commit(1)).await.unwrap();
            assert_eq!((g1.heads(), g1.migrations.len()), (vec![r1.clone()], 1), "{backend:?}");
            let g2 = m.graph_at(vcs.as_ref(), &c.commit(2)).await.unwrap();
            assert_eq!(g2.heads(), vec![r2.clone()], "{backend:?}");
            assert_eq!(g2.get(&r2).unwrap(), m2, "{backend:?}: the same migration as in the work tree");
            let g0 = m.graph_at(vcs.as_ref(), &c.commit(0)).await.unwrap();
            assert!(g0.migrations.is_empty(), "{backend:?}");
        }

        let path = g.downgrade_path(std::slice::from_ref(&r3), std::slice::from_ref(&r1)).unwrap();
        let steps: Vec<_> =
            path.iter().map(|s| (s.revision.clone(), s.down_to.clone(), s.irreversible.clone())).collect();
        assert_eq!(steps, vec![(r3.clone(), vec![r2.clone()], None), (r2.clone(), vec![r1.clone()], None)]);
        let to_base = g.downgrade_path(std::slice::from_ref(&r3), &[]).unwrap();
        assert!(to_base[2].irreversible.is_some(), "{to_base:?}");

        let sql = m.downgrade_sql(std::slice::from_ref(&r3), std::slice::from_ref(&r1)).await.unwrap().unwrap();
        let lower = sql.to_lowercase();
        assert!(lower.contains("drop table payments"), "{sql}");
        assert!(lower.contains("drop column email"), "{sql}");
        if let Some(pw) = &c.password {
            assert!(!sql.contains(pw.as_str()));
        }
        assert_eq!(m.current().await.unwrap(), vec![r3.clone()], "the preview changed nothing");

        m.downgrade(std::slice::from_ref(&r1)).await.unwrap();
        assert_eq!(m.current().await.unwrap(), vec![r1.clone()]);
        assert_eq!(c.db().canonical_dump().await.unwrap(), at_r1, "two downgrades give back the schema and rows of r1");
    });
    assert_eq!(repo.head(), c.fx.commits[3], "nothing was checked out");
    assert!(!repo.exists("migrations/versions/__pycache__"), "Alembic wrote bytecode into the work tree");
}

fn snapshot_restore_is_exact(kind: Fx, engine: Engine) {
    let (_repo, c) = setup(kind, engine);
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (m, d) = (c.m(), c.db());
        m.upgrade(&[c.rev(2)]).await.unwrap();
        d.query_scalar("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com')").await.unwrap();
        d.query_scalar("INSERT INTO users (id, name, email) VALUES (2, 'grace', NULL)").await.unwrap();
        let before = d.canonical_dump().await.unwrap();
        assert!(before.contains("ada@example.com"), "{before}");

        let snap = dir.path().join("db.snapshot");
        let info = d.snapshot(&snap).await.unwrap();
        let (engine_name, format) = match c.engine {
            Engine::Sqlite => ("sqlite", db::database::FORMAT_SQLITE),
            Engine::Postgres => ("postgres", db::database::FORMAT_PG),
        };
        assert_eq!((info.engine.as_str(), info.format.as_str()), (engine_name, format));
        assert_eq!(info.size, std::fs::metadata(&snap).unwrap().len());
        assert!(info.size > 0 && !info.server_version.is_empty(), "{info:?}");
        let again = d.snapshot(&snap).await.unwrap_err();
        assert!(matches!(again, Error::Snapshot { .. }), "{again}");
        c.check_err(&again);

        // Rows and schema change; a later migration adds a table; a table appears by hand.
        m.upgrade(&[]).await.unwrap();
        d.query_scalar("UPDATE users SET name = 'changed' WHERE id = 1").await.unwrap();
        d.query_scalar("DELETE FROM users WHERE id = 2").await.unwrap();
        d.query_scalar("INSERT INTO users (id, name) VALUES (3, 'new')").await.unwrap();
        d.query_scalar("CREATE TABLE scratch (x INTEGER)").await.unwrap();
        if c.engine == Engine::Postgres {
            d.query_scalar("CREATE SCHEMA extra").await.unwrap();
            d.query_scalar("CREATE TABLE extra.later (x INTEGER)").await.unwrap();
            d.query_scalar("COMMENT ON SCHEMA public IS 'changed after the snapshot'").await.unwrap();
        } else {
            // Stale WAL and shared-memory files must not be replayed onto the restored file.
            std::fs::write(c.root.join("app.db-wal"), b"stale").unwrap();
            std::fs::write(c.root.join("app.db-shm"), b"stale").unwrap();
        }
        let changed = d.canonical_dump().await.unwrap();
        assert_ne!(changed, before);
        assert!(changed.contains("payments") && changed.contains("scratch"));

        d.restore(&snap, &info).await.unwrap();
        let after = d.canonical_dump().await.unwrap();
        assert_eq!(after, before, "the restore is exact");
        assert!(!after.contains("payments") && !after.contains("scratch") && !after.contains("extra"), "{after}");
        assert_eq!(m.current().await.unwrap(), vec![c.rev(2)]);
        if c.engine == Engine::Sqlite {
            assert!(!c.root.join("app.db-wal").exists() && !c.root.join("app.db-shm").exists());
        } else {
            // The public schema is back with its default comment and grants.
            let pg = c.pg.as_ref().unwrap();
            assert_eq!(
                pg.psql("SELECT obj_description('public'::regnamespace, 'pg_namespace')"),
                "standard public schema"
            );
            assert_eq!(pg.psql("SELECT has_schema_privilege('public', 'public', 'USAGE')"), "t");
        }
        // And the restored database migrates on as before.
        m.upgrade(&[]).await.unwrap();
        assert_eq!(m.current().await.unwrap(), vec![c.rev(3)]);

        let other = DbDump {
            engine: if c.engine == Engine::Sqlite { "postgres".into() } else { "sqlite".into() },
            format: if c.engine == Engine::Sqlite {
                db::database::FORMAT_PG.into()
            } else {
                db::database::FORMAT_SQLITE.into()
            },
            ..info
        };
        let err = d.restore(&snap, &other).await.unwrap_err();
        assert!(matches!(err, Error::Snapshot { .. }), "{err}");
        c.check_err(&err);
    });
}

fn assess_reports_risks(kind: Fx, engine: Engine) {
    let (repo, c) = setup(kind, engine);
    let vcs = vcs::open(BackendKind::GitCli, repo.path()).unwrap();
    block_on(async {
        let m = c.m();
        m.upgrade(&[]).await.unwrap();
        let a = db::assess::assess(m, vcs.as_ref(), &c.commit(1)).await.unwrap();
        assert_eq!((a.kind.as_str(), a.reachable), (c.fx.kind_name(), true));
        assert_eq!(a.database, c.db().describe());
        assert_eq!(
            (a.current.clone(), a.code_heads.clone(), a.target_heads.clone()),
            (vec![c.rev(3)], vec![c.rev(3)], vec![c.rev(1)])
        );
        assert_eq!(a.path.iter().map(|s| s.revision.clone()).collect::<Vec<_>>(), vec![c.rev(3), c.rev(2)]);
        assert!(a.needs_downgrade);
        assert_eq!(codes(&a.risks), vec!["destructive_upgrade"], "{:?}", a.risks);
        assert!(
            a.risks[0].message.contains(c.rev(2).as_str()) && a.risks[0].message.contains("legacy"),
            "{:?}",
            a.risks
        );

        let a0 = db::assess::assess(m, vcs.as_ref(), &c.commit(0)).await.unwrap();
        assert!(a0.target_heads.is_empty());
        assert_eq!(a0.path.len(), 3);
        assert_eq!(codes(&a0.risks), vec!["irreversible_downgrade", "destructive_upgrade"], "{:?}", a0.risks);
        assert!(a0.risks[0].message.contains(c.rev(1).as_str()));

        let a3 = db::assess::assess(m, vcs.as_ref(), &c.commit(3)).await.unwrap();
        assert!(!a3.needs_downgrade && a3.path.is_empty() && a3.risks.is_empty(), "{a3:?}");

        // An applied migration whose file changed since.
        let p = c.root.join(c.fx.migration_path(3));
        let mut text = std::fs::read(&p).unwrap();
        text.extend_from_slice(b"\n-- edited after it was applied\n");
        std::fs::write(&p, text).unwrap();
        let edited = db::assess::assess(m, vcs.as_ref(), &c.commit(3)).await.unwrap();
        if c.fx.kind == Fx::Sql {
            assert_eq!(codes(&edited.risks), vec!["edited_migration"], "{:?}", edited.risks);
            assert!(edited.risks[0].message.contains("0003"));
        } else {
            // Alembic keeps no checksums.
            assert!(edited.risks.is_empty(), "{:?}", edited.risks);
        }
    });
}

fn failed_downgrade_stops_at_the_failing_revision(kind: Fx, engine: Engine) {
    let (repo, c) = setup(kind, engine);
    block_on(c.m().upgrade(&[])).unwrap();
    c.fx.break_second_downgrade(&repo);
    block_on(async {
        let m = c.m();
        let err = m.downgrade(&[c.rev(1)]).await.unwrap_err();
        match &err {
            Error::Migration { revision, detail, database } => {
                assert_eq!(revision, c.rev(2).as_str(), "{err}");
                assert!(detail.contains("boom"), "{detail}");
                assert_eq!(database, &c.db().describe());
            }
            other => panic!("expected a migration error, got {other:?}"),
        }
        c.check_err(&err);
        // Migration 3 was undone in its own step; migration 2 is still recorded.
        assert_eq!(m.current().await.unwrap(), vec![c.rev(2)]);
        let dump = c.db().canonical_dump().await.unwrap();
        assert!(!dump.contains("payments"), "{dump}");
        // The failed migration was rolled back whole, except under Alembic on SQLite, whose
        // DDL is not transactional (documented on `db::alembic`).
        if !(c.fx.kind == Fx::Alembic && c.engine == Engine::Sqlite) {
            assert!(!dump.contains("legacy"), "the failed migration's first statement stayed: {dump}");
            assert!(dump.contains("email"), "{dump}");
        }
    });
}

fn unparsable_migration_file(kind: Fx, engine: Engine) {
    let (repo, c) = setup(kind, engine);
    let vcs = vcs::open(BackendKind::Git2, repo.path()).unwrap();
    block_on(c.m().upgrade(&[])).unwrap();
    let before = block_on(c.db().canonical_dump()).unwrap();
    let path = c.fx.write_unparsable(&repo);
    block_on(async {
        let m = c.m();
        let err = m.graph_worktree().await.unwrap_err();
        assert!(matches!(&err, Error::BadMigration { path: p, .. } if *p == path), "{err}");
        assert!(err.to_string().contains(&path), "{err}");
        c.check_err(&err);
        let err = m.downgrade(&[c.rev(1)]).await.unwrap_err();
        assert!(matches!(err, Error::BadMigration { .. }), "{err}");
        let err = db::assess::assess(m, vcs.as_ref(), &c.commit(1)).await.unwrap_err();
        assert!(matches!(err, Error::BadMigration { .. }), "{err}");
        assert_eq!(c.db().canonical_dump().await.unwrap(), before, "nothing ran");
        // Committed files are read as committed: the old commits still parse.
        assert_eq!(m.graph_at(vcs.as_ref(), &c.commit(3)).await.unwrap().migrations.len(), 3);
    });
}

fn unknown_revision_in_the_database(kind: Fx, engine: Engine) {
    let (repo, c) = setup(kind, engine);
    let vcs = vcs::open(BackendKind::GitCli, repo.path()).unwrap();
    block_on(async {
        let (m, d) = (c.m(), c.db());
        m.upgrade(&[]).await.unwrap();
        let (unknown, code) = match c.fx.kind {
            Fx::Alembic => {
                d.query_scalar("UPDATE alembic_version SET version_num = 'deadbeef0000'").await.unwrap();
                ("deadbeef0000", "unknown_db_revision")
            }
            Fx::Sql => {
                d.query_scalar(
                    "INSERT INTO forge_rollback_migrations (version, name, checksum, applied_at) VALUES (9, '0009_from_a_newer_release', 'x', CURRENT_TIMESTAMP)",
                )
                .await
                .unwrap();
                ("0009", "db_ahead_of_code")
            }
        };
        assert_eq!(m.current().await.unwrap(), vec![Revision(unknown.into())]);
        let err = m.downgrade(&[c.rev(1)]).await.unwrap_err();
        assert!(matches!(&err, Error::UnknownRevision { revision, .. } if revision == unknown), "{err}");
        c.check_err(&err);
        let a = db::assess::assess(m, vcs.as_ref(), &c.commit(1)).await.unwrap();
        assert_eq!(codes(&a.risks), vec![code], "{:?}", a.risks);
        assert!(a.path.is_empty());
    });
}

macro_rules! conformance {
    ($($name:ident => ($kind:expr, $engine:expr);)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn upgrade_graphs_and_downgrade() {
                super::upgrade_graphs_and_downgrade($kind, $engine);
            }

            #[test]
            fn snapshot_restore_is_exact() {
                super::snapshot_restore_is_exact($kind, $engine);
            }

            #[test]
            fn assess_reports_risks() {
                super::assess_reports_risks($kind, $engine);
            }

            #[test]
            fn failed_downgrade_stops_at_the_failing_revision() {
                super::failed_downgrade_stops_at_the_failing_revision($kind, $engine);
            }

            #[test]
            fn unparsable_migration_file() {
                super::unparsable_migration_file($kind, $engine);
            }

            #[test]
            fn unknown_revision_in_the_database() {
                super::unknown_revision_in_the_database($kind, $engine);
            }
        }
    )*};
}

conformance! {
    alembic_sqlite => (Fx::Alembic, Engine::Sqlite);
    alembic_postgres => (Fx::Alembic, Engine::Postgres);
    sql_sqlite => (Fx::Sql, Engine::Sqlite);
    sql_postgres => (Fx::Sql, Engine::Postgres);
}

fn database(url: &str, workdir: &Path, pg_dump: &str) -> UrlDatabase {
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
fn real_pg_dump() -> String {
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
