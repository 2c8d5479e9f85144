//! Which work tree a run belongs to, and one run at a time per repository: two clones whose
//! configs name one state folder see each other's runs but undo and resume only their own (a
//! repository moved since its run still undoes it); `resume` refuses when another branch is
//! checked out where the run stopped; a second configuration with its own state folder does
//! not let a second run in; a ref lock left by a run killed while it wrote its pin ref does
//! not stop its `resume`.

use std::path::Path;

use rollback_testkit::TestRepo;

use crate::common::{Out, fr, fr_env, picture, run_in};

/// A config file outside the work trees naming `state` as the state folder.
fn shared_config(dir: &Path, state: &Path) -> String {
    let cfg = dir.join("shared.toml");
    std::fs::write(&cfg, format!("[state]\ndir = {}\n", crate::common::toml_str(state.to_str().unwrap()))).unwrap();
    cfg.to_str().unwrap().to_owned()
}

fn with_config(dir: &Path, cfg: &str, args: &[&str]) -> Out {
    let mut all = vec!["--config", cfg];
    all.extend_from_slice(args);
    run_in(dir, &all, &[])
}

/// `run --fast --yes --json --target target` with `cfg`; its run id.
#[track_caller]
fn run_with(dir: &Path, cfg: &str, target: &str) -> String {
    let out = with_config(dir, cfg, &["run", "--fast", "--yes", "--json", "--target", target]);
    out.ok();
    out.json()["run_id"].as_str().unwrap().to_owned()
}

#[test]
fn undo_and_resume_of_another_clones_run_are_refused_with_a_shared_state_folder() {
    let blue = TestRepo::new();
    let [v1, ..] = blue.three_releases();
    let green = TestRepo::new();
    green.git(&["pull", "-q", blue.path().to_str().unwrap(), "main"]);
    let shared = tempfile::tempdir().unwrap();
    let cfg = shared_config(shared.path(), &shared.path().join("state"));
    blue.write("app/main.py", "# blue's hotfix\n").write("blue-notes.txt", "blue secret\n");
    green.write("green-notes.txt", "green's own note\n");
    let blue_before = picture(&blue);
    let blue_run = run_with(blue.path(), &cfg, &v1);
    let green_run = run_with(green.path(), &cfg, &v1);
    let green_after_run = picture(&green);

    // Both runs are listed in each clone, with where each ran.
    let list = with_config(green.path(), &cfg, &["runs", "list", "--json"]);
    list.ok();
    let runs = list.json();
    let entry = |id: &str| runs.as_array().unwrap().iter().find(|r| r["run_id"] == id).cloned().unwrap();
    let blue_path = blue.path().canonicalize().unwrap();
    assert_eq!(entry(&blue_run)["other_worktree"], true, "{runs}");
    assert_eq!(entry(&blue_run)["workdir"], blue_path.to_str().unwrap(), "{runs}");
    assert_eq!(entry(&green_run)["other_worktree"], false, "{runs}");
    let text = with_config(green.path(), &cfg, &["runs", "list"]);
    text.ok();
    assert!(text.stdout.contains(&format!("ran in another work tree: {}", blue_path.display())), "{}", text.stdout);

    // Green cannot undo or resume blue's run: nothing written here, nothing journaled there.
    for action in ["undo", "resume"] {
        let out = with_config(green.path(), &cfg, &[action, &blue_run, "--yes"]);
        out.code(4);
        assert!(out.stderr.contains(&format!("run {blue_run} ran in another work tree")), "{}", out.stderr);
        assert!(out.stderr.contains(blue_path.to_str().unwrap()), "{}", out.stderr);
        assert!(
            out.stderr.contains(green.path().canonicalize().unwrap().to_str().unwrap()),
            "names this work tree too: {}",
            out.stderr
        );
        assert_eq!(picture(&green), green_after_run, "{action} of blue's run changed green");
    }
    assert!(!green.exists("blue-notes.txt"));

    // Each clone undoes its own run.
    let out = with_config(blue.path(), &cfg, &["undo", &blue_run, "--yes"]);
    out.ok();
    assert_eq!(picture(&blue), blue_before);
    with_config(green.path(), &cfg, &["undo", &green_run, "--yes"]).ok();
    assert_eq!(green.read("green-notes.txt"), b"green's own note\n");
}

#[test]
fn undo_works_in_a_repository_moved_since_the_run_but_not_from_a_copy_beside_it() {
    let r = TestRepo::new();
    let [v1, ..] = r.three_releases();
    let outside = tempfile::tempdir().unwrap();
    let cfg = shared_config(outside.path(), &outside.path().join("state"));
    r.write("app/main.py", "# local work\n").write("notes.txt", "untracked\n");
    let before = picture(&r);
    let run = run_with(r.path(), &cfg, &v1);

    // A copy (`cp -a`) holds the run's pin ref too, but the repository it ran in is still
    // there: the run is not the copy's.
    let copy = outside.path().join("copy");
    assert!(std::process::Command::new("cp").arg("-a").arg(r.path()).arg(&copy).status().unwrap().success());
    let out = with_config(&copy, &cfg, &["undo", &run, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains("ran in another work tree"), "{}", out.stderr);

    // The repository moved (`mv`): its git folder is gone from where the run recorded it, and
    // its pin ref says the run was made in this repository.
    let moved = outside.path().join("moved");
    std::fs::rename(r.path(), &moved).unwrap();
    let out = with_config(&moved, &cfg, &["undo", &run, "--yes"]);
    std::fs::rename(&moved, r.path()).unwrap();
    out.ok();
    assert_eq!(picture(&r), before);
}

#[test]
fn resume_refuses_when_another_branch_is_checked_out_at_the_same_commit() {
    let r = TestRepo::new();
    let [_, _, v3] = r.three_releases();
    r.write("app/main.py", "# local work\n").write("notes.txt", "untracked\n");
    let before = picture(&r);
    // Killed before its reset: HEAD still at v3, on `main`.
    let out =
        fr_env(&r, &["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "before:reset")]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let list = fr(&r, &["runs", "list", "--json"]);
    let run = list.json()[0]["run_id"].as_str().unwrap().to_owned();
    r.git(&["checkout", "-q", "-b", "hotfix"]);
    let on_hotfix = picture(&r);

    let out = fr(&r, &["resume", &run, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains("HEAD is on branch `hotfix`, not on `main`"), "{}", out.stderr);
    assert!(out.stderr.contains("git switch main"), "{}", out.stderr);
    assert_eq!(picture(&r), on_hotfix, "the refused resume changed nothing");
    assert_eq!(r.git(&["rev-parse", "main"]), v3);

    // Back on `main`, the resume finishes the run, and its undo gives everything back.
    r.git(&["checkout", "-q", "main"]);
    fr(&r, &["resume", &run, "--yes"]).ok();
    assert_eq!(r.git(&["rev-parse", "main"]), r.git(&["rev-parse", "v1"]));
    fr(&r, &["undo", &run, "--yes"]).ok();
    assert_eq!(r.git(&["rev-parse", "main"]), v3);
    assert_eq!(picture(&r), before);
}

#[test]
fn undo_from_a_branch_started_after_the_run_was_killed_puts_the_runs_branch_back() {
    let r = TestRepo::new();
    let [_, _, v3] = r.three_releases();
    r.write("app/main.py", "# local work\n").write("notes.txt", "untracked\n");
    let before = picture(&r);
    let out =
        fr_env(&r, &["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "before:reset")]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let run = fr(&r, &["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    r.git(&["checkout", "-q", "-b", "hotfix"]);
    fr(&r, &["undo", &run, "--yes"]).ok();
    // The run's branch, where it was, checked out with the work from before; `hotfix` stays.
    assert_eq!(picture(&r), before);
    assert_eq!(r.git(&["rev-parse", "main"]), v3);
    assert_eq!(r.git(&["rev-parse", "hotfix"]), v3);
}

#[test]
fn a_second_run_with_its_own_state_folder_is_refused_by_the_repository_lock() {
    let r = TestRepo::new();
    r.three_releases();
    r.write("app/main.py", "# local work\n");
    let (first, release) = crate::lock::paused_before(&r, &["run", "--fast", "--yes", "--target", "v2"], "reset");
    let other = tempfile::tempdir().unwrap();
    let cfg = shared_config(other.path(), &other.path().join("state"));
    let head = r.head();
    let out = with_config(r.path(), &cfg, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(3);
    assert!(out.stderr.contains(&format!("another rollback is running: pid {}", first.child.id())), "{}", out.stderr);
    assert_eq!(r.head(), head, "the refused run moved nothing");
    let journaled = std::fs::read_dir(other.path().join("state/runs")).map_or(0, Iterator::count);
    assert_eq!(journaled, 0, "the refused run journaled nothing");
    std::fs::write(&release, "").unwrap();
    first.wait(std::time::Duration::from_secs(120)).ok();
    assert_eq!(r.head(), r.git(&["rev-parse", "v2"]));
    // The lock file is gone with its holder, and never an untracked file.
    assert!(!r.path().join(".git/forge-rollback.lock").exists());
    let run = run_with(r.path(), &cfg, "v1");
    assert!(!run.is_empty());
}

#[test]
fn resume_clears_a_stale_lock_of_the_runs_own_pin_ref() {
    let r = TestRepo::new();
    r.three_releases();
    r.write("app/main.py", "# local work\n");
    let before = picture(&r);
    // Killed in its snapshot, blobs stored: the pin ref not written yet.
    let out =
        fr_env(&r, &["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "inside:snapshot")]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let run = fr(&r, &["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    // What a kill inside libgit2's write of the ref leaves: its lock file.
    let lock = r.path().join(format!(".git/refs/forge-rollback/runs/{run}/from.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, format!("{}\n", r.head())).unwrap();

    let out = fr(&r, &["resume", &run, "--yes"]);
    out.ok();
    assert!(out.stderr.contains("from.lock`, left by a run killed while it wrote that ref"), "{}", out.stderr);
    assert!(!lock.exists());
    assert_eq!(r.head(), r.git(&["rev-parse", "v1"]));
    assert_eq!(r.git(&["rev-parse", &format!("refs/forge-rollback/runs/{run}/from")]), r.git(&["rev-parse", "v3"]));
    fr(&r, &["undo", &run, "--yes"]).ok();
    assert_eq!(picture(&r), before);
}
