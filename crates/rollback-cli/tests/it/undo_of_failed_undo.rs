//! An undo whose upgrade failed (code already forward, the schema not), undone in turn, keeps
//! the rows written since it: the database is compared with what that undo's own dump held, and
//! with rows written since, goes back by migration, not by restoring that dump over them.

use crate::common::fr_env;
use crate::crash_full::{deployed, env};
use crate::full::sqlite;

#[test]
fn the_undo_of_an_undo_whose_upgrade_failed_keeps_rows_written_since() {
    let r = deployed();
    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let run_id = run.json()["run_id"].as_str().unwrap().to_owned();
    let rolled_back_head = r.head();
    // Rolled back: linus registers.
    sqlite(&r, "INSERT INTO users (id, name, legacy) VALUES (3, 'linus', 'L-3')");

    // The undo keeps his row (upgrade, then put-back), but its upgrade fails.
    let mut failing = env().to_vec();
    failing.extend([
        ("FORGE_ROLLBACK_FAILPOINT", "before:upgrade_database"),
        ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error"),
    ]);
    let undo = fr_env(&r, &["undo", &run_id, "--yes", "--json"], &failing);
    undo.code(1);
    let undo_id = undo.json()["run_id"].as_str().unwrap().to_owned();
    assert_ne!(r.head(), rolled_back_head, "the failed undo had moved the code forward");

    // The app, still on the old schema, takes another sign-up.
    sqlite(&r, "INSERT INTO users (id, name, legacy) VALUES (4, 'barbara', 'B-4')");

    // Undoing the failed undo: code and database back to the rolled-back state, barbara kept.
    let again = fr_env(&r, &["undo", &undo_id, "--yes", "--json"], &env());
    again.ok();
    assert_eq!(r.head(), rolled_back_head);
    assert!(!again.stderr.contains("Restoring database"), "no restore over the rows:\n{}", again.stderr);
    assert_eq!(
        sqlite(&r, "SELECT id, name, legacy FROM users WHERE id >= 3"),
        "[(3, 'linus', 'L-3'), (4, 'barbara', 'B-4')]\n"
    );
}
