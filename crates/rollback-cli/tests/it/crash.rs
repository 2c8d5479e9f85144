//! The process killed (`SIGKILL`) at every step boundary and inside the snapshot and reset
//! steps: `resume` finishes the rollback, `undo` restores the state from before, every time.

use crate::common::{Picture, failed_run, fr, fr_env, messy_repo, picture};

const POINTS: &[&str] = &[
    "before:snapshot",
    "inside:snapshot",
    "after:snapshot",
    "end:snapshot",
    "before:reset",
    "inside:reset",
    "written:reset",
    "after:reset",
    "end:reset",
    "before:remove_untracked",
    "after:remove_untracked",
    "end:remove_untracked",
    "before:clear_caches",
    "after:clear_caches",
    "end:clear_caches",
    "before:record",
    "after:record",
];

/// The state a successful rollback of `messy_repo` to v1 reaches (the repos are built
/// deterministically, so commit ids and contents match).
fn reference_after() -> Picture {
    let (r, _) = messy_repo();
    fr(&r, &["run", "--fast", "--yes", "--target", "v1"]).ok();
    picture(&r)
}

fn crash_at(point: &str) -> (rollback_testkit::TestRepo, Picture, String) {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let out = fr_env(&r, &["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", point)]);
    assert_eq!(out.code, None, "{point}: killed by a signal\n{}", out.stderr);
    let runs = fr(&r, &["runs", "list", "--json"]);
    let list = runs.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{point}");
    assert_eq!(list[0]["status"], "running", "{point}");
    assert_eq!(list[0]["interrupted"], true, "{point}");
    let id = list[0]["run_id"].as_str().unwrap().to_owned();
    // `runs show` says the same as `runs list`: nothing is running any more.
    let shown = fr(&r, &["runs", "show", &id, "--json"]).json();
    assert_eq!(shown["outcome"]["interrupted"], true, "{point}");
    let text = fr(&r, &["runs", "show", &id]);
    assert!(text.stdout.contains("status:  interrupted (the process died half-way"), "{point}: {}", text.stdout);
    // So does the incident report (it said "Status: Running").
    let report = fr(&r, &["report", &id]);
    report.ok();
    assert!(report.stdout.contains("**Status**: Interrupted"), "{point}: {}", report.stdout);
    assert!(!report.stdout.contains("unning"), "{point}: {}", report.stdout);
    assert_eq!(fr(&r, &["report", &id, "--format", "json"]).json()["interrupted"], true, "{point}");
    (r, before, id)
}

#[test]
fn resume_finishes_after_a_crash_at_every_point() {
    let expected = reference_after();
    for point in POINTS {
        let (r, _, id) = crash_at(point);
        // `plan` and `assess` say so first (they showed a plan that looked fine).
        for cmd in [&["plan", "--fast", "--target", "v1", "--json"][..], &["assess", "--target", "v1", "--json"]] {
            let j = fr(&r, cmd).ok().json();
            let risk = j["risks"].as_array().unwrap().iter().find(|x| x["code"] == "unfinished_run").cloned();
            let message = risk.as_ref().map(|x| x["message"].as_str().unwrap().to_owned()).unwrap_or_default();
            assert!(message.contains(&format!("run {id} was interrupted half-way")), "{point} {cmd:?}: {j}");
            assert!(message.contains("a new run is refused until it is finished or put back"), "{point}: {message}");
        }
        // A new run is refused while this one is unfinished.
        let blocked = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
        blocked.code(4);
        assert!(blocked.stderr.contains(&id), "{point}: {}", blocked.stderr);
        // It took the dead run's lock (with a warning naming it) before refusing.
        assert!(blocked.stderr.contains("took over a stale lock"), "{point}: {}", blocked.stderr);
        let out = fr(&r, &["resume", &id, "--json"]);
        out.ok();
        assert_eq!(out.json()["status"], "succeeded", "{point}");
        assert_eq!(picture(&r), expected, "{point}: resume reaches the rolled-back state");
    }
}

#[test]
fn undo_restores_after_a_crash_at_every_point() {
    for point in POINTS {
        let (r, before, id) = crash_at(point);
        let out = fr(&r, &["undo", &id, "--yes", "--json"]);
        out.ok();
        let j = out.json();
        assert_eq!(picture(&r), before, "{point}: undo restores the prior state");
        let list = fr(&r, &["runs", "list", "--json"]).json();
        let first = &list.as_array().unwrap()[0];
        assert_eq!(first["status"], "undone", "{point}: {j}");
    }
}

#[test]
fn crash_right_after_taking_the_lock_changes_nothing_and_the_lock_is_taken_over() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let out = fr_env(&r, &["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "after:lock")]);
    assert_eq!(out.code, None);
    assert_eq!(picture(&r), before);
    let lock = std::fs::read_to_string(r.path().join(".git/forge-rollback/lock")).unwrap();
    assert!(lock.contains("\"pid\""), "the dead holder's details stay in the file: {lock}");
    let runs = fr(&r, &["runs", "list", "--json"]).json();
    assert_eq!(runs.as_array().unwrap().len(), 0, "no run was started");
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(out.stderr.contains("[WARN] took over a stale lock: its holder (pid"), "{}", out.stderr);
}

#[test]
fn a_failed_step_exits_1_and_can_be_resumed_or_undone() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let out = failed_run(&r, "before:remove_untracked");
    let j = out.json();
    assert_eq!(j["status"], "failed");
    assert!(j["error"].as_str().unwrap().contains("injected failure"), "{j}");
    assert!(out.stderr.contains("[ERROR] step `remove_untracked` failed"), "{}", out.stderr);
    let id = j["run_id"].as_str().unwrap();
    let steps: Vec<(&str, &str)> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("snapshot", "done"),
            ("reset", "done"),
            ("remove_untracked", "failed"),
            ("clear_caches", "pending"),
            ("record", "pending")
        ]
    );
    fr(&r, &["undo", id, "--yes"]).ok();
    assert_eq!(picture(&r), before);
}

/// A run that failed before its snapshot completed changed nothing: its undo marks it undone,
/// and `runs show` and a second undo say so in words (before: "undone: by run nothing-changed",
/// and a hint to run `undo nothing-changed`).
#[test]
fn a_run_that_changed_nothing_is_marked_undone_in_words() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let out = failed_run(&r, "inside:snapshot");
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    fr(&r, &["undo", &id, "--yes"]).ok();
    assert_eq!(picture(&r), before);
    let show = fr(&r, &["runs", "show", &id]);
    assert!(
        show.ok().stdout.contains("undone:  with nothing to undo: it stopped before changing anything\n"),
        "{}",
        show.stdout
    );
    assert!(!show.stdout.contains("nothing-changed"), "{}", show.stdout);
    let again = fr(&r, &["undo", &id, "--yes"]);
    again.code(4);
    assert!(again.stderr.contains("is already undone: it stopped before changing anything"), "{}", again.stderr);
    assert!(!again.stderr.contains("nothing-changed"), "{}", again.stderr);
}
