//! The row-keeping undo through the binary, on SQLite: putting back what the downgrade dropped
//! fires none of the upgraded schema's triggers. Before, an AFTER INSERT trigger keeping a
//! running total counted the payments put back a second time, and an AFTER UPDATE trigger
//! audited updates nobody made (the values of `users.email` written back). The triggers are
//! there afterwards, `sqlite_schema` as it was, and fire for the app's next writes.

use rollback_testkit::db::SQL_DIR;

use crate::common::{fr_env, migrate_sqlite};
use crate::crash_full::{deployed, env};
use crate::full::sqlite;

const UP: &str = "CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE audit (what TEXT);
CREATE TRIGGER pay_ins AFTER INSERT ON payments
  BEGIN UPDATE counters SET n = n + NEW.amount_cents WHERE name = 'payments'; END;
CREATE TRIGGER users_upd AFTER UPDATE ON users
  BEGIN INSERT INTO audit VALUES ('user ' || NEW.id || ' updated'); END;
";

#[test]
fn undo_put_back_fires_no_trigger() {
    let r = deployed();
    let (up, down) = (format!("{SQL_DIR}/0004_totals.up.sql"), format!("{SQL_DIR}/0004_totals.down.sql"));
    r.write(&up, UP)
        .write(&down, "DROP TRIGGER users_upd;\nDROP TRIGGER pay_ins;\nDROP TABLE audit;\nDROP TABLE counters;\n");
    r.git(&["add", &up, &down]);
    r.git(&["commit", "-qm", "v4: running totals"]);
    migrate_sqlite(&r);
    // The payments the upgrade seeds again are there already; this one is put back.
    sqlite(&r, "INSERT INTO payments (id, amount_cents) VALUES (4, 700)");
    sqlite(&r, "INSERT INTO counters SELECT 'payments', sum(amount_cents) FROM payments");
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    sqlite(&r, "DELETE FROM audit");
    let total = sqlite(&r, "SELECT n FROM counters");
    let schema = "SELECT type, name, tbl_name, sql FROM sqlite_schema";
    let before = sqlite(&r, schema);
    assert!(before.contains("pay_ins") && before.contains("users_upd"), "{before}");

    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    sqlite(&r, "INSERT INTO users (id, name) VALUES (3, 'written while rolled back')");
    let undo = fr_env(&r, &["undo", &id, "--yes"], &env());
    undo.ok();
    assert!(undo.stderr.contains("put back"), "{}", undo.stderr);

    assert_eq!(sqlite(&r, "SELECT n FROM counters"), total, "the running total counts each payment once");
    assert_eq!(sqlite(&r, "SELECT count(*) FROM audit"), "[(0,)]\n", "no audit of an update nobody made");
    assert_eq!(sqlite(&r, "SELECT id, email FROM users WHERE id = 2"), "[(2, 'grace@example.com')]\n");
    assert_eq!(sqlite(&r, schema), before, "the triggers are back, exactly");
    sqlite(&r, "UPDATE users SET name = 'linus' WHERE id = 3");
    assert_eq!(sqlite(&r, "SELECT what FROM audit"), "[('user 3 updated',)]\n", "they fire for the app again");
}
