//! An env file edited while the app runs rolled back (a secret rotated in `.env`) is put back
//! by `undo` to its content from before the run — the release the undo returns to — but
//! never silently: the undo's output, result and report name the file, the undo's own backup
//! that keeps the edited version, and the command that brings it back.

use rollback_testkit::TestRepo;

use crate::common::{fr, state_dir};

const ENV_V1: &str = "TOKEN=v1-token\n";
const ENV_V2: &str = "TOKEN=v2-token\n";
const ROTATED: &str = "TOKEN=rotated-while-rolled-back\n";

/// v1 (marked known-good with its `.env` recorded), then v2 deployed with its own `.env`.
fn deployed() -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", ".env\n").write("app/main.py", "V = 1\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n").write(".env", ENV_V1);
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.write("app/main.py", "V = 2\n");
    r.commit_all("release v2");
    r.write(".env", ENV_V2);
    r
}

/// `run --full --target v1`; its id. The run wrote v1's recorded `.env`.
fn full_run(r: &TestRepo) -> String {
    let out = fr(r, &["run", "--full", "--yes", "--json", "--target", "v1"]);
    out.ok();
    assert_eq!(r.read(".env"), ENV_V1.as_bytes());
    out.json()["run_id"].as_str().unwrap().to_owned()
}

fn env_warnings(j: &serde_json::Value) -> Vec<String> {
    j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .filter(|w| w.contains("env file"))
        .collect()
}

#[test]
fn undo_env_edit_made_while_rolled_back_is_named_with_where_it_is_kept() {
    let r = deployed();
    let run = full_run(&r);
    r.write(".env", ROTATED);

    let out = fr(&r, &["undo", &run, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    // The undo is not refused: the env of the release it returns to is what was asked for.
    assert_eq!(j["status"], "succeeded");
    assert_eq!(r.read(".env"), ENV_V2.as_bytes());
    let undo = j["run_id"].as_str().unwrap();
    let backup = j["backup_id"].as_str().unwrap();
    let [warning] = env_warnings(&j).try_into().unwrap_or_else(|w| panic!("one env warning: {w:?}"));
    assert!(warning.contains(&format!("env file `.env` was changed since run {run} left it")), "{warning}");
    assert!(warning.contains(&format!("kept in backup {backup}, this undo's snapshot")), "{warning}");
    assert!(warning.contains(&format!("`forge-rollback undo {undo}`")), "{warning}");
    // On stderr, before the files are written back.
    let warned = out.stderr.find("[WARN] env file `.env` was changed").expect(&out.stderr);
    assert!(warned < out.stderr.find("Restoring the index").unwrap(), "{}", out.stderr);

    // The blob it names holds the rotated secret.
    let blob = warning.split("(file `").nth(1).and_then(|s| s.split('`').next()).expect(&warning);
    assert!(std::path::Path::new(blob).starts_with(state_dir(&r).join("backups/blobs")), "{warning}");
    assert_eq!(std::fs::read(blob).unwrap(), ROTATED.as_bytes());

    // The undo's incident report says it too.
    let md = fr(&r, &["report", undo]);
    md.ok();
    assert!(md.stdout.contains(&format!("env file `.env` was changed since run {run} left it")), "{}", md.stdout);

    // And undoing the undo brings the rotated secret back, with nothing to warn about.
    let back = fr(&r, &["undo", undo, "--yes", "--json"]);
    back.ok();
    assert_eq!(r.read(".env"), ROTATED.as_bytes());
    assert_eq!(env_warnings(&back.json()), Vec::<String>::new());
}

#[test]
fn undo_env_left_as_the_run_left_it_is_not_warned_about() {
    let r = deployed();
    let run = full_run(&r);
    let out = fr(&r, &["undo", &run, "--yes", "--json"]);
    out.ok();
    assert_eq!(r.read(".env"), ENV_V2.as_bytes());
    assert_eq!(env_warnings(&out.json()), Vec::<String>::new(), "{}", out.stderr);
}

/// An env file removed while rolled back comes back with the undo: said too.
#[test]
fn undo_env_file_removed_while_rolled_back_is_named() {
    let r = deployed();
    let run = full_run(&r);
    r.remove(".env");
    let out = fr(&r, &["undo", &run, "--yes", "--json"]);
    out.ok();
    assert_eq!(r.read(".env"), ENV_V2.as_bytes());
    let [warning] = env_warnings(&out.json()).try_into().unwrap_or_else(|w| panic!("one env warning: {w:?}"));
    assert!(warning.contains(&format!("env file `.env` was removed since run {run} left it")), "{warning}");
}

/// The same for the undo of an undo: what that undo left in `.env` is what its snapshot
/// restore wrote there.
#[test]
fn undo_env_edit_made_after_an_undo_is_named_by_the_undo_of_that_undo() {
    let r = deployed();
    let run = full_run(&r);
    let first = fr(&r, &["undo", &run, "--yes", "--json"]);
    first.ok();
    let undo = first.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.read(".env"), ENV_V2.as_bytes());
    r.write(".env", ROTATED);

    let out = fr(&r, &["undo", &undo, "--yes", "--json"]);
    out.ok();
    assert_eq!(r.read(".env"), ENV_V1.as_bytes(), "back to the rolled-back release's env");
    let [warning] = env_warnings(&out.json()).try_into().unwrap_or_else(|w| panic!("one env warning: {w:?}"));
    assert!(warning.contains(&format!("env file `.env` was changed since run {undo} left it")), "{warning}");
}
