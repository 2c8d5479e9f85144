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
