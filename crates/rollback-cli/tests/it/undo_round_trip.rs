//! Values a data migration's downgrade changed, put back by the row-keeping undo when its own
//! upgrade rewrites them: the pair is not an exact inverse (`upper` up, `lower` down), so after
//! the undo's upgrade a row the app left alone holds `upper(lower(v))`, not the downgrade's
//! value. Before, the put-back compared with the downgrade's value, wrote nothing back and said
//! the column was put back; the name `Ken` stayed `KEN`. A value the app did change while
//! rolled back stays, and is named as not written back (warning, step, the run's report).

use rollback_testkit::db::SQL_DIR;

use crate::common::{fr, fr_env, migrate_sqlite};
use crate::crash_full::{deployed, env};
use crate::full::sqlite;

#[test]
fn undo_writes_back_values_its_own_upgrade_rewrites_and_names_those_the_app_changed() {
    let r = deployed();
    let (up, down) = (format!("{SQL_DIR}/0004_shout.up.sql"), format!("{SQL_DIR}/0004_shout.down.sql"));
    r.write(&up, "UPDATE users SET name = upper(name);\n").write(&down, "UPDATE users SET name = lower(name);\n");
    r.git(&["add", &up, &down]);
    r.git(&["commit", "-qm", "v4: names in capitals"]);
    migrate_sqlite(&r);
    // Written by the v4 app, as typed: the downgrade lowers them, the upgrade does not give
    // them back.
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (4, 'Ken', 'ken@example.com'), (6, 'Ann', NULL)");

    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(sqlite(&r, "SELECT id, name FROM users WHERE id IN (4, 6)"), "[(4, 'ken'), (6, 'ann')]\n");
    // While rolled back the app writes a row, and renames user 6.
    sqlite(&r, "INSERT INTO users (id, name) VALUES (5, 'bob')");
    sqlite(&r, "UPDATE users SET name = 'anne' WHERE id = 6");

    let undo = fr_env(&r, &["undo", &id, "--yes", "--json"], &env());
    assert_eq!(undo.code, Some(0), "{}\n{}", undo.stdout, undo.stderr);
    assert_eq!(
        sqlite(&r, "SELECT id, name, email FROM users WHERE id IN (4, 5, 6)"),
        "[(4, 'Ken', 'ken@example.com'), (5, 'BOB', None), (6, 'ANNE', None)]\n",
        "Ken is back; the app's rename stays (upgraded)\n{}",
        undo.stderr
    );
    assert!(
        undo.stderr.contains("NOT written back: users.name (1 value"),
        "the value the app changed is named:\n{}",
        undo.stderr
    );
    let undo_id = undo.json()["run_id"].as_str().unwrap().to_owned();
    let shown = fr(&r, &["report", &undo_id]);
    assert!(
        shown.stdout.contains("NOT written back (changed or deleted since): users.name (1 value"),
        "{}",
        shown.stdout
    );
    let report = fr(&r, &["report", &id]);
    assert!(
        report.stdout.contains(&format!("undo {undo_id} did NOT write back users.name (1 value")),
        "the run's Data Loss says what did not come back:\n{}",
        report.stdout
    );
}
