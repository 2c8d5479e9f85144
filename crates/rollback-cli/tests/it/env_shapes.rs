//! Env files in shapes the plain case does not have (ENV round): a configured env file git
//! tracks, with local edits when the run starts; a recorded env file the configuration no
//! longer names; a folder where `[env] files` names a file. Each keeps every version of every
//! file in a backup, and says what it leaves.

use rollback_testkit::TestRepo;

use crate::common::{fr, fr_env, state_dir};

const LOCAL: &str = "V=2\nHOTFIX=1\n";

/// `.env` tracked by git: v1 (marked known-good, its `.env` recorded), then v2, deployed with
/// an uncommitted edit of `.env` (a template patched on the server).
fn tracked_env_with_local_edits() -> TestRepo {
    let r = TestRepo::new();
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n").write(".gitignore", "forge-rollback.toml\n");
    r.write("app.py", "print(1)\n").write(".env", "V=1\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.write("app.py", "print(2)\n").write(".env", "V=2\n");
    r.commit_all("v2");
    r.write(".env", LOCAL);
    r
}

fn warnings(j: &serde_json::Value) -> Vec<String> {
    j["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

/// ENV-TRACKED-DIRTY-NOWARN: the secret rotated in the tracked `.env` while rolled back is
/// named by the undo (it puts back the edit from before the run), as for an untracked one.
#[test]
fn a_tracked_env_file_edited_while_rolled_back_is_named_by_the_undo() {
    let r = tracked_env_with_local_edits();
    let out = fr(&r, &["run", "--full", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let run = out.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.read(".env"), b"V=1\n", "the record's");
    r.write(".env", "V=1\nROTATED=1\n");

    let out = fr(&r, &["undo", &run, "--yes", "--json"]);
    out.ok();
    assert_eq!(r.read(".env"), LOCAL.as_bytes(), "the edit from before the run");
    let named: Vec<String> =
        warnings(&out.json()).into_iter().filter(|w| w.contains("env file `.env` was changed since run")).collect();
    assert_eq!(named.len(), 1, "{}", out.stderr);
    let undo = out.json()["run_id"].as_str().unwrap().to_owned();
    fr(&r, &["undo", &undo, "--yes", "--json"]).ok();
    assert_eq!(r.read(".env"), b"V=1\nROTATED=1\n", "undoing the undo brings the rotation back");
}

/// ENV-TRACKED-DIRTY-RESUME-LOST: a run killed between its reset and `restore_env`; the
/// operator edits the tracked `.env`. The resume captures it again before `restore_env`
/// writes over it, and `undo` gives that edit back.
#[test]
fn a_tracked_env_file_edited_after_a_crash_is_captured_again_by_the_resume() {
    let r = tracked_env_with_local_edits();
    let out = fr_env(
        &r,
        &["run", "--full", "--yes", "--json", "--target", "v1"],
        &[("FORGE_ROLLBACK_FAILPOINT", "before:restore_env")],
    );
    assert_eq!(out.code, None, "killed\n{}", out.stderr);
    let run = fr(&r, &["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    r.write(".env", "V=1\nAFTER_THE_CRASH=1\n");

    let out = fr(&r, &["resume", &run, "--yes", "--json"]);
    out.ok();
    assert_eq!(r.read(".env"), b"V=1\n", "the record's");
    fr(&r, &["undo", &run, "--yes", "--json"]).ok();
    assert_eq!(r.read(".env"), b"V=1\nAFTER_THE_CRASH=1\n", "the edit made after the crash");
}

/// ENV-RECORD-UNCONFIGURED-FILE-LOST: v1's record holds `old.env` (and `local.env` as
/// absent); the configuration then names `.env` only. The run's snapshot holds only what the
/// configuration names, so the run leaves the two others as they are, saying so, and `undo`
/// puts back exactly the state from before the run.
#[test]
fn a_recorded_env_file_the_configuration_no_longer_names_is_left_as_it_is() {
    let r = TestRepo::new();
    r.write(".gitignore", "*.env\n.env\nforge-rollback.toml\n").write("app.py", "print(1)\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\", \"old.env\", \"local.env\"]\n");
    r.write(".env", "E=1\n").write("old.env", "O=recorded\n");
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.write("app.py", "print(2)\n");
    r.commit_all("v2");
    r.write(".env", "E=2\n").write("old.env", "O=live, in no other copy\n").write("local.env", "PRECIOUS=1\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n");
    let before = crate::common::picture(&r);

    let out = fr(&r, &["run", "--full", "--yes", "--json", "--target", "v1"]);
    out.ok();
    assert_eq!(r.read(".env"), b"E=1\n", "the configured file is restored");
    assert_eq!(r.read("old.env"), b"O=live, in no other copy\n");
    assert_eq!(r.read("local.env"), b"PRECIOUS=1\n");
    let w = warnings(&out.json());
    for file in ["old.env", "local.env"] {
        assert!(
            w.iter().any(|w| w.contains(&format!("env file `{file}` left as it is")) && w.contains("`[env] files`")),
            "{file}: {w:?}"
        );
    }
    let run = out.json()["run_id"].as_str().unwrap().to_owned();
    fr(&r, &["undo", &run, "--yes", "--json"]).ok();
    assert_eq!(crate::common::picture(&r), before);
}

/// ENV-FOLDER-RECORD-MIDRUN-FAIL: `known-good mark` with a folder where `[env] files` names
/// `.env` records no env, and says why; the full run then leaves `.env` as it is.
#[test]
fn a_folder_at_an_env_path_is_not_recorded_and_mark_says_so() {
    let r = TestRepo::new();
    r.write(".gitignore", ".env\nforge-rollback.toml\n").write("app.py", "print(1)\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n");
    r.commit_all("v1");
    r.write(".env/app", "K=1\n");
    let out = fr(&r, &["known-good", "mark", "HEAD"]);
    out.ok();
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("`.env` not recorded: it is a folder"), "{said}");
    assert!(!said.contains("recorded env files"), "{said}");
    let runs = state_dir(&r).join("runs");
    assert!(!runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(), "mark makes no run");
}

/// ENV-EMPTY-FOLDER-NOT-UNDONE: an empty folder where the recorded `.env` goes. The run's
/// snapshot holds no entry for it, so the restore leaves it (it replaced it with the recorded
/// file, and `undo` then left that file where the folder was), saying why.
#[test]
fn an_empty_folder_where_the_recorded_env_file_goes_is_left_and_named() {
    let r = TestRepo::new();
    r.write(".gitignore", ".env\nforge-rollback.toml\n").write("app.py", "print(1)\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write(".env", "K=1\n");
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.write("app.py", "print(2)\n");
    r.commit_all("v2");
    std::fs::remove_file(r.path().join(".env")).unwrap();
    std::fs::create_dir(r.path().join(".env")).unwrap();

    let out = fr(&r, &["run", "--full", "--yes", "--json", "--target", "v1"]);
    out.ok();
    assert!(
        warnings(&out.json())
            .iter()
            .any(|w| w.contains("env file `.env` left as it is") && w.contains("it is a folder")),
        "{}",
        out.stderr
    );
    assert!(r.path().join(".env").is_dir());
    let run = out.json()["run_id"].as_str().unwrap().to_owned();
    fr(&r, &["undo", &run, "--yes", "--json"]).ok();
    assert!(r.path().join(".env").is_dir(), "the empty folder is still there");
}
