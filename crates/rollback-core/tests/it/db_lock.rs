//! A database another connection holds locked: said within about two seconds through the
//! notice channel (a warning event, for every command), and the final error names the lock.
//! No timed assertions: a short `timeout_secs` keeps the tests short, and only what is said is
//! checked.

use std::sync::Arc;

use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{Level, Rollback};
use rollback_testkit::TestRepo;
use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};

fn deployed(timeout: u64) -> (TestRepo, Config) {
    let repo = TestRepo::new();
    let _fx = MigrationFixture::new(&repo, MigratorKind::Sql);
    let text = format!(
        "[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\ntimeout_secs = {timeout}\n"
    );
    let config = Config::parse(&text, None).unwrap();
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, repo.path()).unwrap(), config.clone()).unwrap();
    rb.upgrade_database(&[]).unwrap();
    (repo, config)
}

/// Another connection holding `BEGIN EXCLUSIVE` until dropped.
fn hold_exclusive(repo: &TestRepo) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(repo.path().join("app.db")).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    c
}

#[test]
fn a_locked_sqlite_database_is_said_while_waiting_and_named_as_the_cause() {
    let (repo, config) = deployed(3);
    let recorder = Arc::new(Recorder::default());
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, repo.path()).unwrap(), config)
        .unwrap()
        .with_notices(recorder.clone());
    let holder = hold_exclusive(&repo);

    let err = rb.plan(Some(Level::Full), Some("v2")).unwrap_err();
    let text = err.chain();
    assert!(text.contains("is locked by another connection: still locked after 3s"), "{text}");
    let said = recorder.messages();
    assert_eq!(
        said.iter()
            .filter(|m| m.contains("is locked by another connection; still waiting for it, up to 1s more"))
            .count(),
        1,
        "{said:?}"
    );
    assert!(said.iter().all(|m| m.starts_with("WARN ")), "{said:?}");

    // Once the lock is released the same call goes through, and nothing more is said.
    drop(holder);
    let plan = rb.plan(Some(Level::Full), Some("v2")).unwrap();
    assert_eq!(plan.level, Some(Level::Full));
    assert_eq!(recorder.messages().len(), said.len());
}

#[test]
fn the_notice_reaches_a_database_given_before_or_after_the_observer() {
    // `with_notices` after the database was opened: the sink is set on it too.
    let (repo, config) = deployed(3);
    let recorder = Arc::new(Recorder::default());
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, repo.path()).unwrap(), config).unwrap();
    let db = rb.db().unwrap().unwrap().clone();
    let rb = rb.with_db(db).with_notices(recorder.clone());
    let _holder = hold_exclusive(&repo);
    let a = rb.assess(Some("v2")).unwrap();
    let risk = a.risks.iter().find(|r| r.code.as_str() == "db_unreachable").expect("a db_unreachable risk");
    assert!(risk.message.contains("locked by another connection"), "{}", risk.message);
    assert!(recorder.messages().iter().any(|m| m.contains("still waiting for it")), "{:?}", recorder.messages());
}

#[test]
fn a_sqlite_writer_mid_transaction_is_said_when_the_native_downgrade_needs_the_write_lock() {
    use rollback_core::rt::block_on;
    let (repo, config) = deployed(3);
    let recorder = Arc::new(Recorder::default());
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, repo.path()).unwrap(), config)
        .unwrap()
        .with_notices(recorder.clone());
    let db = rb.db().unwrap().unwrap().clone();
    let before = block_on(db.current()).unwrap();
    // An app's write transaction: readers go on, a second writer waits.
    let writer = rusqlite::Connection::open(repo.path().join("app.db")).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO users (id, name, email) VALUES (9, 'w', 'w@x');").unwrap();
    let to = [rollback_core::db::Revision("0002".into())];
    let err = block_on(db.downgrade(&to)).unwrap_err();
    assert!(err.to_string().contains("is locked by another connection: still locked after 3s"), "{err}");
    let said = recorder.messages();
    assert_eq!(said.iter().filter(|m| m.contains("still waiting for it, up to 1s more")).count(), 1, "{said:?}");
    assert_eq!(block_on(db.current()).unwrap(), before, "nothing was downgraded");
    writer.execute_batch("COMMIT").unwrap();
    drop(writer);
    block_on(db.downgrade(&to)).unwrap();
    assert_eq!(block_on(db.current()).unwrap(), to);
}

/// A session that holds `LOCK TABLE payments IN ACCESS SHARE MODE` (an app's long read
/// transaction) until killed.
struct PgLockHolder {
    child: std::process::Child,
    server: rollback_testkit::db::PgParts,
    dbname: String,
}

impl PgLockHolder {
    fn take(pg: &rollback_testkit::db::PgDatabase, table: &str) -> Self {
        let s = pg.server();
        let child = std::process::Command::new("psql")
            .args(["-X", "-q", "-c", &format!("BEGIN; LOCK TABLE {table} IN ACCESS SHARE MODE; SELECT pg_sleep(120);")])
            .env("PGHOST", &s.host)
            .env("PGPORT", s.port.to_string())
            .env("PGUSER", &s.user)
            .env("PGPASSWORD", &s.password)
            .env("PGDATABASE", pg.name())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql");
        // Killed, ended and waited for when dropped, whatever happens next.
        let holder = Self { child, server: s.clone(), dbname: pg.name().to_owned() };
        let held = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '{table}' AND l.mode = 'AccessShareLock' AND l.granted AND l.pid <> pg_backend_pid()"
        );
        // Wait (a bounded number of polls) until the lock is really held.
        for _ in 0..200 {
            if pg.psql(&held) == "1" {
                return holder;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the test session never got its lock on {table}");
    }
}

impl Drop for PgLockHolder {
    fn drop(&mut self) {
        // The server notices a vanished client only when it next writes to it: end the
        // session itself, so the lock goes now.
        self.server.psql(
            &self.dbname,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(120)%'",
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_postgres_table_locked_by_the_app_is_said_and_named_by_the_native_downgrade() {
    postgres_table_locked(MigratorKind::Sql, None, 3, |_| {});
}

#[test]
fn a_postgres_table_locked_by_the_app_is_said_and_named_by_the_alembic_downgrade() {
    postgres_table_locked(MigratorKind::Alembic, None, 3, |_| {});
}

#[test]
fn an_alembic_slow_to_start_meets_the_lock_and_is_not_mistaken_for_a_hang() {
    // Each downgrade process spends 2.5 s before Python starts (an `env.py` importing a large
    // app, a loaded machine): 2.5 s of the 3 s the retry may wait for the lock. Its lock wait
    // is counted apart from `timeout_secs`, so the lock is still what is reported, not "timed
    // out and was killed".
    let dir = tempfile::tempdir().unwrap();
    let python = slow_python(dir.path(), "sleep 2.5");
    postgres_table_locked(MigratorKind::Alembic, Some(&python), 5, |_| {});
}

#[test]
fn a_native_downgrade_slow_before_the_locked_table_is_still_said_locked() {
    // 2.5 s of work before the statement that needs the locked table: the lock wait is
    // counted apart from `timeout_secs`, so the retry's 3 s wait ends in "locked", not in
    // "timed out".
    postgres_table_locked(MigratorKind::Sql, None, 5, |repo| {
        repo.write(format!("{SQL_DIR}/0003_add_payments.down.sql"), "SELECT pg_sleep(2.5);\nDROP TABLE payments;\n");
    });
}

#[test]
fn a_hung_alembic_downgrade_is_killed_after_the_timeout_plus_its_lock_wait() {
    use rollback_core::rt::block_on;
    let dir = tempfile::tempdir().unwrap();
    let python = slow_python(dir.path(), "exec sleep 60");
    let (fx, _pg, rb, _repo) = pg_deployed(MigratorKind::Alembic, Some(&python), 3);
    let db = rb.db().unwrap().unwrap().clone();
    let to = [rollback_core::db::Revision(fx.revisions[1].clone())];
    let err = block_on(db.downgrade(&to)).unwrap_err().to_string();
    assert!(
        err.contains("timed out after 5s (database.timeout_secs 3s, plus up to 2s waiting for a lock) and was killed"),
        "{err}"
    );
    assert_eq!(block_on(db.current()).unwrap(), [rollback_core::db::Revision(fx.revisions[2].clone())]);
}

/// An interpreter that runs `before` (shell) first when it is started for `alembic downgrade`,
/// then the test interpreter.
fn slow_python(dir: &std::path::Path, before: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("slow-python");
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = downgrade ] && {{ {before}; break; }}; done\nexec '{}' \"$@\"\n",
        rollback_testkit::db::python()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

/// A repository migrated to its last revision on a fresh PostgreSQL database, with
/// `timeout_secs = timeout` and `python` (the test interpreter by default).
fn pg_deployed(
    kind: MigratorKind,
    python: Option<&str>,
    timeout: u64,
) -> (MigrationFixture, rollback_testkit::db::PgDatabase, Rollback, TestRepo) {
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, kind);
    let pg = rollback_testkit::db::PgDatabase::new();
    let text = format!(
        "[database]\nkind = \"{}\"\nurl = \"{}\"\nmigrations_dir = \"{SQL_DIR}\"\npython = \"{}\"\ntimeout_secs = {timeout}\n",
        fx.kind_name(),
        pg.url(),
        python.map_or_else(rollback_testkit::db::python, str::to_owned)
    );
    let rb = Rollback::with_backend(
        vcs::open(BackendKind::GitCli, repo.path()).unwrap(),
        Config::parse(&text, None).unwrap(),
    )
    .unwrap();
    rb.upgrade_database(&[]).unwrap();
    (fx, pg, rb, repo)
}

/// The downgrade from v3 to v2 while the app's session holds `payments` (after `prepare`
/// changed the work tree): said after 2 s, named as locked after `timeout`, nothing changed.
fn postgres_table_locked(kind: MigratorKind, python: Option<&str>, timeout: u64, prepare: impl FnOnce(&TestRepo)) {
    use rollback_core::rt::block_on;
    let (fx, pg, rb, repo) = pg_deployed(kind, python, timeout);
    prepare(&repo);
    let recorder = Arc::new(Recorder::default());
    let rb = rb.with_notices(recorder.clone());
    let db = rb.db().unwrap().unwrap().clone();

    let holder = PgLockHolder::take(&pg, "payments");
    let to = [rollback_core::db::Revision(fx.revisions[1].clone())];
    let err = block_on(db.downgrade(&to)).unwrap_err();
    let locked = format!("is locked by another connection: still locked after {timeout}s");
    assert!(err.to_string().contains(&locked), "{err}");
    assert!(err.hint().unwrap().contains("pg_locks"), "{:?}", err.hint());
    let said = recorder.messages();
    let waiting = format!("still waiting for it, up to {}s more", timeout - 2);
    assert_eq!(said.iter().filter(|m| m.contains(&waiting)).count(), 1, "{said:?}");
    // Nothing changed: the failed migration was rolled back whole.
    assert_eq!(block_on(db.current()).unwrap(), [rollback_core::db::Revision(fx.revisions[2].clone())]);

    drop(holder);
    block_on(db.downgrade(&to)).unwrap();
    assert_eq!(block_on(db.current()).unwrap(), to);
}
