//! A full run whose downgrade waited out a lock the app held (for all of
//! `database.timeout_secs`): the hint says to find what holds the lock, not to fix the
//! migration, with nothing wrong with it.

use std::time::Duration;

use rollback_testkit::db::SQL_DIR;

use crate::crash_full::{deployed, env};

#[test]
fn a_downgrade_that_waited_out_a_lock_hints_at_the_lock_not_the_migration() {
    let r = deployed();
    r.write(
        "forge-rollback.toml",
        format!(
            "[database]\nkind = \"sql\"\nurl_env = \"APP_DATABASE_URL\"\nmigrations_dir = \"{SQL_DIR}\"\ntimeout_secs = 2\n"
        ),
    );
    // Paused once its checks passed, before the downgrade: the app takes the write lock then (reads go on).
    let args = ["run", "--full", "--yes", "--target", "v1"];
    let (run, release) = crate::lock::paused_at(&r, &args, &env(), "before:downgrade", "downgrade");
    let holder = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(&release, "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    drop(holder);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("is locked by another connection"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: find what holds the lock"), "{}", out.stderr);
    assert!(!out.stderr.contains("fix the migration"), "{}", out.stderr);
}
