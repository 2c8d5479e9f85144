//! A locked SQLite database through the binary: a warning line while the command waits, and
//! the refusal names the lock (issue 12, case 7).

use rollback_testkit::TestRepo;
use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};

use crate::common::fr;

#[test]
fn plan_full_says_the_database_is_locked_and_refuses_naming_the_lock() {
    let r = TestRepo::new();
    let _fx = MigrationFixture::new(&r, MigratorKind::Sql);
    crate::common::migrate_sqlite(&r);
    r.write(
        "forge-rollback.toml",
        format!(
            "[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\ntimeout_secs = 3\n"
        ),
    );
    let holder = rusqlite::Connection::open(r.path().join("app.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = fr(&r, &["plan", "--full", "--target", "v2"]);
    out.code(4);
    assert!(
        out.stderr.contains("[WARN] database `sqlite:///")
            && out.stderr.contains(
                "is locked by another connection; still waiting for it, up to 1s more (database.timeout_secs)"
            ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("cannot be reached: a full rollback needs it (database `sqlite:///"), "{}", out.stderr);
    assert!(out.stderr.contains("is locked by another connection: still locked after 3s"), "{}", out.stderr);
    drop(holder);
    fr(&r, &["plan", "--full", "--target", "v2"]).ok();
}
