//! State folders written by an older forge-rollback (commit aae7e0d, where a step's result in
//! the journal was a free JSON map) still load, resume and undo with today's binary.
//!
//! Each folder under `tests/fixtures/old_journal/` is what one real run of that binary left
//! behind, kept as plain files:
//! - `worktree/`: the work tree after the run (a `.gitignore` is stored as `.gitignore.stored`
//!   so that it does not apply to this repository);
//! - `gitdir/`: its `.git` folder without hooks, reflogs and the state folder;
//! - `state/`: the state folder (`.git/forge-rollback`): journals, logs, reports, the lock file,
//!   the backup store's blobs and manifests;
//! - `meta.json`: how the run was made (command, failpoint, exit code), its run id(s), the
//!   folder it ran in, and the file modes and empty folders git cannot keep;
//! - `expect.json`: pictures (files with modes, HEAD, branch, `git status`, the database's
//!   revision and dump) of the state before the run and, where a test needs one, of the state
//!   that old binary reached from the fixture (after resuming it, or before undoing an undo).
//!
//! The tests lay a fixture out in a new temp dir, never the folder it was made in: journals,
//! manifests, logs and reports hold that old absolute path, and nothing may depend on it.
//!
//! Regenerate (only when the fixtures must change; the tests only read them):
//! `crates/rollback-cli/tests/fixtures/old_journal/make.sh [path/to/forge-rollback]`, which runs
//! the ignored test [`regenerate_old_journal_fixtures`] with `OLD_JOURNAL_BIN` set.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};
use rollback_testkit::{TestRepo, clean_git_env};
use serde_json::{Value, json};

use crate::common::Out;

mod fixture;
mod make;

use fixture::*;

/// The fixtures' folder.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old_journal")
}

/// Commits of the full-rollback scenarios (`MigrationFixture`, native SQL migrations), the
/// same every time the history is built (fixed names, dates and contents).
const FULL_V1: &str = "7ea0cb6b4bc6d893707d7147f1f71951da4ce1d0";
const FULL_V3: &str = "70b94eade65dda73397e68f17fbeff34af64efd1";
/// Commits of the fast-rollback scenario (`TestRepo::three_releases`).
const FAST_V1: &str = "d945f9317f7597f8dcd802cb7554d60fcb93e8a5";
const FAST_V3: &str = "08c59ef3df098785295b9d450a3f29591172f43d";

/// The configuration of the full-rollback scenarios: SQLite through the native migrator, and
/// a restart and two checks that need no service, so that every step kind that runs without
/// one is in the journal.
const FULL_CONFIG: &str = r#"[database]
kind = "sql"
url = "sqlite:///app.db"
migrations_dir = "db/migrations"

[[checks]]
name = "schema"
kind = "db-revision"

[[checks]]
name = "readme"
kind = "command"
argv = ["test", "-f", "README.md"]

[[restart]]
name = "app"
argv = ["true"]
ready = "schema"
"#;

/// The v3 `payments` rows (migration 3), as the canonical dump shows them.
const PAYMENT_ROWS: &[&str] = &["(1, 1250, 'first')", "(2, 990, 'it''s \"quoted\"\nand on two lines')", "(3, 5, NULL)"];

// ----- the scenarios --------------------------------------------------------------------------

/// A full rollback to v1 killed inside its reset (after the downgrade; the way cleared, HEAD
/// not moved): `resume` reaches what the old binary's resume reached; `undo` after it brings
/// back v3, its rows, `.env` and the uncommitted work.
#[test]
fn old_full_run_killed_in_its_reset_resumes_then_undoes() {
    let fx = Laid::new("full_killed_in_reset");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(ended(&journal), ["snapshot", "db_snapshot", "downgrade"]);
    assert_old_keys(&journal);
    assert_eq!(step_end(&journal, "downgrade")["from"], json!(["0003"]));
    assert_eq!(step_end(&journal, "downgrade")["to"], json!(["0001"]));
    let last = journal.last().unwrap();
    assert_eq!((&last["record"], &last["step"]), (&json!("step_begin"), &json!("reset")), "killed in the reset");
    // The old work-tree path is in the journal; this checkout is elsewhere.
    let old_workdir = journal[0]["plan"]["workdir"].as_str().unwrap();
    assert_eq!(old_workdir, fx.meta["generated_in"].as_str().unwrap());
    assert_ne!(Path::new(old_workdir), fx.repo);

    fx.check_loads(&id, "running");
    assert_eq!(fx.runs()[&id]["interrupted"], true);
    // The state the kill left: code and `.env` still v3, the database already at v1.
    assert_eq!(fx.head(), FULL_V3);
    assert_eq!(fx.read("app/main.py"), "# hotfix in progress\n");
    assert_eq!(db_state(&fx.repo).0, ["0001"]);

    // A new run is refused until this one is settled.
    let blocked = fr(&fx.repo, &["run", "--full", "--yes", "--target", "v1"]);
    blocked.code(4);
    assert!(blocked.stderr.contains(&id), "{}", blocked.stderr);
    assert!(blocked.stderr.contains("took over a stale lock"), "the killed run's lock file: {}", blocked.stderr);

    let out = fr(&fx.repo, &["resume", &id, "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j:#}");
    assert!(j["steps"].as_array().unwrap().iter().all(|s| s["status"] == "done"), "{j:#}");
    assert_eq!(fx.picture(), fx.expect["after_resume"], "resume reaches what the old binary's resume reached");
    assert_eq!(fx.head(), FULL_V1);
    assert_eq!(fx.read("app/main.py"), "def status():\n    return {\"status\": \"healthy\"}\n");
    assert_eq!(fx.read(".env"), "TOKEN=v1\n", "the env recorded with v1");
    assert!(!fx.repo.join("notes").exists(), "untracked files removed");
    let (revision, dump) = db_state(&fx.repo);
    assert_eq!(revision, ["0001"]);
    assert!(!dump.contains("payments"), "{dump}");
    let journal = fx.journal(&id);
    assert!(journal.iter().any(|r| r["record"] == "resumed"));
    // It went on from the reset: the snapshots and the downgrade journaled before the kill
    // are the ones it keeps (`step_end` wants exactly one of each).
    let begun: Vec<&str> =
        journal.iter().filter(|r| r["record"] == "step_begin").map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(begun.iter().filter(|s| **s == "snapshot" || **s == "downgrade").count(), 2, "{begun:?}");
    step_end(&journal, "snapshot");
    step_end(&journal, "db_snapshot");
    step_end(&journal, "downgrade");
    assert_eq!(journal.last().unwrap()["status"], "succeeded");
    assert_eq!(fx.runs()[&id]["status"], "succeeded");

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_before_full(&fx);
}

/// What every full scenario had before its run: v3, its three payments, `.env` and the
/// uncommitted work.
#[track_caller]
fn assert_before_full(fx: &Laid) {
    assert_eq!(fx.head(), FULL_V3);
    assert_eq!(fx.read("app/main.py"), "# hotfix in progress\n");
    assert_eq!(fx.read(".env"), "TOKEN=v3\nNEW=1\n");
    assert_eq!(fx.read("notes/incident 2025-12-10.md"), "users report 500\n");
    let (revision, dump) = db_state(&fx.repo);
    assert_eq!(revision, ["0003"]);
    for row in PAYMENT_ROWS {
        assert!(dump.contains(row), "payments row {row} is back: {dump}");
    }
}

/// A full rollback to v1 that succeeded through every step kind that needs no service:
/// `undo` brings back the exact state from before it.
#[test]
fn old_full_run_that_succeeded_undoes() {
    let fx = Laid::new("full_succeeded");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(
        ended(&journal),
        [
            "snapshot",
            "db_snapshot",
            "downgrade",
            "reset",
            "remove_untracked",
            "restore_env",
            "clear_caches",
            "restart",
            "verify",
            "record"
        ]
    );
    assert_old_keys(&journal);
    assert_eq!(step_end(&journal, "verify")["passed"], true);
    assert_eq!(step_end(&journal, "record")["head"], FULL_V1);
    assert_eq!(step_end(&journal, "clear_caches")["removed"], 1);
    fx.check_loads(&id, "succeeded");
    let md = fr(&fx.repo, &["report", &id]);
    assert!(md.stdout.contains("database moved from 0003 to 0001"), "{}", md.stdout);
    assert_eq!(fx.picture(), fx.expect["after_run"], "laid out as the old run left it");
    assert_eq!(fx.head(), FULL_V1);
    assert_eq!(fx.read(".env"), "TOKEN=v1\n");
    assert_eq!(db_state(&fx.repo).0, ["0001"]);

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j:#}");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"restore_database"), "the downgrade changed the database: {steps:?}");
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_before_full(&fx);
    assert!(fx.picture()["status"].as_array().unwrap().contains(&json!("A  app/new_staged.py")), "index restored");
    assert_eq!(fx.runs()[&id]["status"], "undone");
}

/// A fast rollback to v1 that failed at `remove_untracked` (after its reset): `undo` restores
/// the tree, HEAD and index from before it.
#[test]
fn old_fast_run_that_failed_undoes() {
    let fx = Laid::new("fast_failed");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(ended(&journal), ["snapshot", "reset"]);
    assert_old_keys(&journal);
    let failed: Vec<&Value> = journal.iter().filter(|r| r["record"] == "step_failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["step"], "remove_untracked");
    assert!(failed[0]["error"].as_str().unwrap().contains("injected failure"), "{}", failed[0]);
    fx.check_loads(&id, "failed");
    assert_eq!(fx.head(), FAST_V1);

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_eq!(fx.head(), FAST_V3);
    assert_eq!(fx.read("app/main.py"), "# hotfix in progress\n");
    assert_eq!(fx.read("app/new_staged.py"), "STAGED = 1\n");
    assert_eq!(fx.read("notes/incident/2025-12-10 draft.md"), "users report 500\n");
    assert_eq!(fx.read("notes/caf\u{e9}.txt"), "cr\u{e8}me\n");
    assert!(fx.picture()["status"].as_array().unwrap().contains(&json!("A  app/new_staged.py")), "index restored");
}

/// A full rollback whose second downgrade failed; the old binary put the database back and
/// said so in the failure's result (`database_changed: false`): `undo` restores the tree and
/// leaves the database alone.
#[test]
fn old_full_run_whose_downgrade_failed_undoes_without_touching_the_database() {
    let fx = Laid::new("full_downgrade_failed");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(ended(&journal), ["snapshot", "db_snapshot"]);
    assert_old_keys(&journal);
    let failed: Vec<&Value> = journal.iter().filter(|r| r["record"] == "step_failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["step"], "downgrade");
    assert_eq!(failed[0]["detail"], json!({ "database_changed": false }));
    fx.check_loads(&id, "failed");
    assert_eq!(db_state(&fx.repo).0, ["0003"], "the old binary restored the database");

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j:#}");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(!steps.contains(&"restore_database"), "the failure said the database is unchanged: {steps:?}");
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_before_full(&fx);
}

/// A full rollback the old binary undid: the rollback is listed as undone and refuses a second
/// undo; undoing the old undo brings back the rolled-back state.
#[test]
fn old_undo_run_is_itself_undone() {
    let fx = Laid::new("full_undone");
    let id = fx.run_id();
    let undo_id = fx.meta["undo_run_id"].as_str().unwrap().to_owned();
    let journal = fx.journal(&id);
    assert_old_keys(&journal);
    assert_eq!(journal.last().unwrap()["record"], "undone");
    assert_eq!(journal.last().unwrap()["by"], undo_id.as_str());
    let undo_journal = fx.journal(&undo_id);
    assert_eq!(
        ended(&undo_journal),
        [
            "snapshot",
            "db_snapshot",
            "restore_database",
            "reset",
            "remove_untracked",
            "restore_files",
            "restore_index",
            "restart",
            "verify",
            "record"
        ]
    );
    assert_old_keys(&undo_journal);
    assert_eq!(undo_journal[0]["plan"]["undo_of"], id.as_str());
    fx.check_loads(&id, "undone");
    fx.check_loads(&undo_id, "succeeded");
    assert_before_full(&fx);

    let again = fr(&fx.repo, &["undo", &id, "--yes"]);
    again.code(4);
    assert!(again.stderr.contains(&undo_id), "{}", again.stderr);

    let out = fr(&fx.repo, &["undo", &undo_id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(fx.picture(), fx.expect["after_run"], "the rolled-back state is back");
    assert_eq!(fx.head(), FULL_V1);
    assert_eq!(fx.read(".env"), "TOKEN=v1\n");
    assert_eq!(db_state(&fx.repo).0, ["0001"]);
}
