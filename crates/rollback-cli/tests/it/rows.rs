//! Rows through the binary: `plan --full --json` carries the forecast, an undo that cannot keep
//! the writes made since its run is refused with exit 4 and the way out, and
//! `undo --restore-snapshot` keeps the database in a file of the state folder and says where.

use crate::common::{fr_env, state_dir};
use crate::crash_full::{deployed, env, state};
use crate::full::sqlite;

#[test]
fn plan_json_forecast_refused_undo_then_restore_snapshot() {
    let r = deployed();
    sqlite(&r, "INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    let before = state(&r);
    let plan = fr_env(&r, &["plan", "--full", "--target", "v1", "--json"], &env());
    plan.ok();
    assert_eq!(
        plan.json()["data_loss"],
        serde_json::json!([
            { "table": "payments", "column": null, "rows": 3, "kind": "dropped" },
            { "table": "users", "column": "email", "rows": 1, "kind": "dropped" },
        ])
    );
    let run = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();

    // grace left while rolled back: her address has no row to go back to.
    sqlite(&r, "DELETE FROM users WHERE id = 2");
    let rolled = state(&r);
    let out = fr_env(&r, &["undo", &id, "--yes"], &env());
    out.code(4);
    assert!(out.stderr.contains("users.email: 1 value(s) belong to rows deleted since the run"), "{}", out.stderr);
    assert!(out.stderr.contains("--restore-snapshot"), "{}", out.stderr);
    assert_eq!(state(&r), rolled, "refused: nothing changed");

    let out = fr_env(&r, &["undo", &id, "--yes", "--restore-snapshot", "--json"], &env());
    out.ok();
    let dumps = state_dir(&r).join("dumps");
    let files: Vec<_> = std::fs::read_dir(&dumps).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(out.stderr.contains(&files[0].display().to_string()), "the path is printed:\n{}", out.stderr);
    assert_eq!(state(&r), before, "the snapshot is back exactly");
}
