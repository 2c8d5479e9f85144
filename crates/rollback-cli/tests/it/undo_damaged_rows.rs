//! The row-keeping undo (rows written since the run) from a damaged database backup: refused
//! before anything changes, naming the backup and the way on, like the exact restore's. Before,
//! it stopped on the blob's own error (`blob … is corrupt`, exit 1), naming no backup.

use crate::common::{fr, fr_env};
use crate::crash_full::{deployed, env, state};
use crate::full::sqlite;

#[test]
fn an_undo_keeping_rows_from_a_damaged_database_dump_is_refused_with_nothing_changed() {
    let r = deployed();
    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    // Written while rolled back: the undo would keep it, putting rows back from the dump.
    sqlite(&r, "INSERT INTO users (id, name) VALUES (3, 'linus')");
    let rolled_back = state(&r);
    let (dump_id, _) = crate::crash_full::damage_database_backup(&r, &id);

    let refused = fr_env(&r, &["undo", &id, "--yes"], &env());
    refused.code(4);
    assert!(
        refused
            .stderr
            .contains(&format!("backup {dump_id}, which the undo restores the database's rows from, is damaged")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("nothing was changed"), "{}", refused.stderr);
    assert_eq!(state(&r), rolled_back, "nothing changed");
    assert_eq!(fr(&r, &["runs", "list", "--json"]).json().as_array().unwrap().len(), 1, "no undo journaled");
}
