//! The [`DbMigrator`] conformance suite.
//!
//! Every case migrates a fresh copy of one sample app, set up by the implementer for their
//! migrator ([`DbSample`]): a git repository whose commits are four releases, and an empty
//! database. The releases' migrations do, in the migrator's own format:
//! - v0: no database;
//! - v1: migration 1 creates `users (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL,
//!   legacy VARCHAR(50))` and an index `ix_users_name` on `name`; its downgrade is
//!   irreversible (it cannot run);
//! - v2: migration 2 adds `users.email VARCHAR(200)` and drops `users.legacy` (a destructive
//!   upgrade the migrator must see); its downgrade adds `legacy` back and drops `email`;
//! - v3: migration 3 creates `payments (id INTEGER PRIMARY KEY, amount_cents INTEGER NOT NULL,
//!   note TEXT)` with three rows, one of whose notes reads `it's "quoted"` and, on a second
//!   line, `and on two lines`; its downgrade drops the table.
//!
//! The work tree ignores the database's files. The cases upgrade, read the migration graph of
//! the work tree and of older commits (through both of rollback-core's VCS backends), preview
//! and run downgrades, snapshot and restore the database, assess a rollback's risks, and check
//! that every error names the database and never its password.
//!
//! rollback-core runs the suite for its `alembic` and `sql` migrators, each on SQLite and on
//! PostgreSQL (`tests/it/db.rs`, which shows a whole [`DbSample`]):
//!
//! ```no_run
//! # use rollback_core::testing::db::DbSample;
//! # fn my_sample() -> Box<dyn DbSample> { unimplemented!() }
//! // `my_sample` writes the four releases into a new temp repository, creates an empty
//! // database and opens the migrator under test on it.
//! rollback_core::testing::db::run_all(&my_sample);
//! ```

use std::path::{Path, PathBuf};

use super::Case;
use crate::db::graph::Reversibility;
use crate::db::{self, Database, DbDump, DbMigrator, Error, Revision};
use crate::model::RiskCode;
use crate::rt::block_on;
use crate::vcs::{self, BackendKind, CommitId};

/// One fresh copy of the sample app (see the [module](self) documentation) with the migrator
/// under test opened on an empty database. Dropping it removes the copy and its database.
pub trait DbSample {
    /// The work tree (a git repository; HEAD is release v3).
    fn workdir(&self) -> &Path;

    /// The migrator under test, opened on the work tree and the sample's database.
    fn migrator(&self) -> &dyn DbMigrator;

    /// Release `n`'s commit, `n` in `0..=3`.
    fn commit(&self, n: usize) -> CommitId;

    /// The revision migration `n` (`1..=3`) records in the database.
    fn revision(&self, n: usize) -> Revision;

    /// Migration `n`'s file (`1..=3`), relative to the work tree, as the migrator reports it
    /// in [`Migration::path`](crate::db::Migration::path).
    fn migration_path(&self, n: usize) -> String;

    /// The database's password: it must appear in no error and no SQL preview.
    fn password(&self) -> Option<&str> {
        None
    }

    /// Rewrites migration 2's downgrade in the work tree (not committed) so that it adds
    /// `users.legacy` back, then fails with an error whose text contains `boom`.
    fn break_second_downgrade(&self);

    /// Adds a migration file the migrator cannot parse to the work tree (not committed);
    /// returns its path relative to the work tree.
    fn write_unparsable_migration(&self) -> String;

    /// Makes the database, migrated to v3, record a revision no migration file defines, the
    /// way the migrator stores revisions. Returns that revision and the risk code a rollback
    /// assessment gives it (`unknown_db_revision`, or `db_ahead_of_code` for a migrator that
    /// knows it comes from a newer release).
    fn record_unknown_revision(&self) -> (Revision, RiskCode);

    /// Whether the migrator keeps checksums of applied migrations, so that a migration file
    /// edited after it ran is an `edited_migration` risk.
    fn detects_edited_migrations(&self) -> bool;

    /// Whether a migration that fails half-way is rolled back whole (`false` where the
    /// database's DDL is not transactional for this migrator, as Alembic's on SQLite).
    fn rolls_back_failed_migrations(&self) -> bool {
        true
    }

    /// The database file of a SQLite sample (`None`: another database): the suite checks
    /// that a restore leaves no stale `-wal` file and that dumps name the right engine.
    fn sqlite_file(&self) -> Option<PathBuf> {
        None
    }
}

/// Makes a fresh [`DbSample`]: each case calls it once.
pub type MakeSample = dyn Fn() -> Box<dyn DbSample>;

/// Every case of the suite, in order.
pub const CASES: &[Case<MakeSample>] = &[
    Case { name: "upgrade_graphs_and_downgrade", run: upgrade_graphs_and_downgrade },
    Case { name: "snapshot_restore_is_exact", run: snapshot_restore_is_exact },
    Case { name: "assess_reports_risks", run: assess_reports_risks },
    Case {
        name: "failed_downgrade_stops_at_the_failing_revision",
        run: failed_downgrade_stops_at_the_failing_revision,
    },
    Case { name: "unparsable_migration_file", run: unparsable_migration_file },
    Case { name: "unknown_revision_in_the_database", run: unknown_revision_in_the_database },
];

/// Runs every case on fresh samples; panics naming each case that failed.
pub fn run_all(make: &MakeSample) {
    super::run_cases("DbMigrator", CASES, make);
}

/// What the cases need to know of a sample, gathered up front: a `DbSample` may hold things
/// that cannot cross into the runtime's threads (a temp repository), its migrator can.
struct Ctx<'a> {
    m: &'a dyn DbMigrator,
    root: PathBuf,
    /// `Some(file)` on SQLite, `None` on PostgreSQL.
    sqlite_file: Option<PathBuf>,
    password: Option<String>,
    revs: [Revision; 3],
    commits: [CommitId; 4],
}

impl<'a> Ctx<'a> {
    fn of(sample: &'a dyn DbSample) -> Self {
        let m = sample.migrator();
        let sqlite_file = sample.sqlite_file();
        Self {
            m,
            root: sample.workdir().to_path_buf(),
            sqlite_file,
            password: sample.password().map(str::to_owned),
            revs: [1, 2, 3].map(|n| sample.revision(n)),
            commits: [0, 1, 2, 3].map(|n| sample.commit(n)),
        }
    }

    fn db(&self) -> &dyn Database {
        self.m.database()
    }

    fn rev(&self, n: usize) -> Revision {
        self.revs[n - 1].clone()
    }

    fn commit(&self, n: usize) -> CommitId {
        self.commits[n].clone()
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

fn codes(risks: &[crate::assess::Risk]) -> Vec<&str> {
    risks.iter().map(|r| r.code.as_str()).collect()
}

fn head_of(root: &Path) -> CommitId {
    vcs::open(BackendKind::Git2, root).expect("open the sample repository").head().expect("read HEAD").commit
}

/// Folders named `__pycache__` below `dir` (`.git` aside).
fn bytecode_folders(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name() != ".git" {
            if entry.file_name() == "__pycache__" {
                out.push(path);
            } else {
                out.extend(bytecode_folders(&path));
            }
        }
    }
    out
}

/// Upgrades step by step, reads the graphs of the work tree and of older commits (through
/// both VCS backends, checking nothing out), previews and runs a downgrade of two
/// migrations, and gets the schema and rows of migration 1 back.
pub fn upgrade_graphs_and_downgrade(make: &MakeSample) {
    let sample = make();
    let c = Ctx::of(sample.as_ref());
    let migration_path_2 = sample.migration_path(2);
    let (r1, r2, r3) = (c.rev(1), c.rev(2), c.rev(3));
    let backends = [BackendKind::Git2, BackendKind::GitCli]
        .map(|b| (b, vcs::open(b, &c.root).expect("open the sample repository")));
    block_on(async {
        let m = c.m;
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
        assert_eq!(m2.path, migration_path_2);
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
    assert_eq!(head_of(&c.root), c.commit(3), "nothing was checked out");
    assert_eq!(bytecode_folders(&c.root), Vec::<PathBuf>::new(), "the migrator wrote bytecode into the work tree");
}

/// A snapshot of the database restores its schema and rows exactly, over changed rows, a
/// later migration, tables (and on PostgreSQL schemas and comments) added by hand, and stale
/// SQLite WAL files; a snapshot is never overwritten, nor restored as another engine's.
pub fn snapshot_restore_is_exact(make: &MakeSample) {
    let sample = make();
    let c = Ctx::of(sample.as_ref());
    let (r2, r3) = (c.rev(2), c.rev(3));
    let dir = tempfile::tempdir().expect("create a temp dir");
    block_on(async {
        let (m, d) = (c.m, c.db());
        m.upgrade(std::slice::from_ref(&r2)).await.unwrap();
        d.query_scalar("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com')").await.unwrap();
        d.query_scalar("INSERT INTO users (id, name, email) VALUES (2, 'grace', NULL)").await.unwrap();
        let before = d.canonical_dump().await.unwrap();
        assert!(before.contains("ada@example.com"), "{before}");

        let snap = dir.path().join("db.snapshot");
        let info = d.snapshot(&snap).await.unwrap();
        let (engine_name, format) = match c.sqlite_file {
            Some(_) => ("sqlite", db::database::FORMAT_SQLITE),
            None => ("postgres", db::database::FORMAT_PG),
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
        let wal = c.sqlite_file.as_ref().map(|f| {
            ["-wal", "-shm"].map(|suffix| {
                let mut name = f.clone().into_os_string();
                name.push(suffix);
                PathBuf::from(name)
            })
        });
        if let Some(files) = &wal {
            // Stale WAL and shared-memory files must not be replayed onto the restored file.
            for f in files {
                std::fs::write(f, b"stale").unwrap();
            }
        } else {
            d.query_scalar("CREATE SCHEMA extra").await.unwrap();
            d.query_scalar("CREATE TABLE extra.later (x INTEGER)").await.unwrap();
            d.query_scalar("COMMENT ON SCHEMA public IS 'changed after the snapshot'").await.unwrap();
        }
        let changed = d.canonical_dump().await.unwrap();
        assert_ne!(changed, before);
        assert!(changed.contains("payments") && changed.contains("scratch"));

        d.restore(&snap, &info).await.unwrap();
        let after = d.canonical_dump().await.unwrap();
        assert_eq!(after, before, "the restore is exact");
        assert!(!after.contains("payments") && !after.contains("scratch") && !after.contains("extra"), "{after}");
        assert_eq!(m.current().await.unwrap(), vec![r2.clone()]);
        if let Some(files) = &wal {
            assert!(files.iter().all(|f| !f.exists()), "stale {files:?} left next to the restored file");
        } else {
            // The public schema is back with its default comment and grants.
            let comment = d.query_scalar("SELECT obj_description('public'::regnamespace, 'pg_namespace')").await;
            assert_eq!(comment.unwrap().as_deref(), Some("standard public schema"));
            let usage = d.query_scalar("SELECT has_schema_privilege('public', 'public', 'USAGE')").await;
            assert_eq!(usage.unwrap().as_deref(), Some("t"));
        }
        // And the restored database migrates on as before.
        m.upgrade(&[]).await.unwrap();
        assert_eq!(m.current().await.unwrap(), vec![r3.clone()]);

        let other = DbDump {
            engine: if c.sqlite_file.is_some() { "postgres".into() } else { "sqlite".into() },
            format: if c.sqlite_file.is_some() {
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

/// The rollback assessment of the database: current and target heads, the downgrade path,
/// and its risks (a destructive upgrade undone, an irreversible downgrade, an applied
/// migration edited since).
pub fn assess_reports_risks(make: &MakeSample) {
    let sample = make();
    let c = Ctx::of(sample.as_ref());
    let migration_path_3 = sample.migration_path(3);
    let detects_edits = sample.detects_edited_migrations();
    let kind = c.m.kind();
    let vcs = vcs::open(BackendKind::GitCli, &c.root).expect("open the sample repository");
    block_on(async {
        let m = c.m;
        m.upgrade(&[]).await.unwrap();
        let a = db::assess::assess(m, vcs.as_ref(), &c.commit(1)).await.unwrap();
        assert_eq!((a.kind.as_str(), a.reachable), (kind, true));
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
        let p = c.root.join(&migration_path_3);
        let mut text = std::fs::read(&p).unwrap();
        text.extend_from_slice(b"\n-- edited after it was applied\n");
        std::fs::write(&p, text).unwrap();
        let edited = db::assess::assess(m, vcs.as_ref(), &c.commit(3)).await.unwrap();
        if detects_edits {
            assert_eq!(codes(&edited.risks), vec!["edited_migration"], "{:?}", edited.risks);
            assert!(edited.risks[0].message.contains(c.rev(3).as_str()), "{:?}", edited.risks);
        } else {
            // A migrator that keeps no checksums reports nothing.
            assert!(edited.risks.is_empty(), "{:?}", edited.risks);
        }
    });
}

/// A downgrade whose second migration fails stops there with a `Migration` error naming the
/// revision and the database: the migration undone before it stays undone, the failed one
/// stays recorded and (where the migrator rolls failed migrations back) left no trace.
pub fn failed_downgrade_stops_at_the_failing_revision(make: &MakeSample) {
    let sample = make();
    let c = Ctx::of(sample.as_ref());
    let rolls_back = sample.rolls_back_failed_migrations();
    assert_eq!(
        c.m.failed_migration_rolls_back_whole(),
        rolls_back,
        "the migrator's failed_migration_rolls_back_whole() disagrees with what the sample knows of it"
    );
    block_on(c.m.upgrade(&[])).unwrap();
    sample.break_second_downgrade();
    block_on(async {
        let m = c.m;
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
        // The failed migration was rolled back whole, except where DDL is not transactional
        // for this migrator (Alembic on SQLite, documented on `db::alembic`).
        if rolls_back {
            assert!(!dump.contains("legacy"), "the failed migration's first statement stayed: {dump}");
            assert!(dump.contains("email"), "{dump}");
        }
    });
}

/// A migration file that does not parse is a `BadMigration` naming it, for the work tree's
/// graph, a downgrade and an assessment, and nothing runs; committed files still parse.
pub fn unparsable_migration_file(make: &MakeSample) {
    let sample = make();
    let c = Ctx::of(sample.as_ref());
    let vcs = vcs::open(BackendKind::Git2, &c.root).expect("open the sample repository");
    block_on(c.m.upgrade(&[])).unwrap();
    let before = block_on(c.db().canonical_dump()).unwrap();
    let path = sample.write_unparsable_migration();
    block_on(async {
        let m = c.m;
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

/// A database at a revision no migration file defines: `current` reports it, a downgrade is
/// refused with `UnknownRevision`, and the assessment names the risk and plans no path.
pub fn unknown_revision_in_the_database(make: &MakeSample) {
    let sample = make();
    let c = Ctx::of(sample.as_ref());
    let vcs = vcs::open(BackendKind::GitCli, &c.root).expect("open the sample repository");
    block_on(c.m.upgrade(&[])).unwrap();
    let (unknown, code) = sample.record_unknown_revision();
    block_on(async {
        let m = c.m;
        assert_eq!(m.current().await.unwrap(), vec![unknown.clone()]);
        let err = m.downgrade(&[c.rev(1)]).await.unwrap_err();
        assert!(matches!(&err, Error::UnknownRevision { revision, .. } if *revision == unknown.0), "{err}");
        c.check_err(&err);
        let a = db::assess::assess(m, vcs.as_ref(), &c.commit(1)).await.unwrap();
        assert_eq!(codes(&a.risks), vec![code.as_str()], "{:?}", a.risks);
        assert!(a.path.is_empty());
    });
}
