//! One rollback at a time.

use std::time::{Duration, Instant};

use rollback_testkit::TestRepo;

use crate::common::{Background, command, fr, messy_repo, picture};

/// `args` started in the background and paused by a failpoint before `step`, once its journal
/// says the step has begun; writing the returned file lets it go on.
pub(crate) fn paused_before(r: &TestRepo, args: &[&str], step: &str) -> (Background, std::path::PathBuf) {
    paused_at(r, args, &[], &format!("before:{step}"), step)
}

/// `args` started in the background with `env` added, paused by the failpoint `point`, once its
/// journal says `step` has begun; writing the returned file lets it go on.
pub(crate) fn paused_at(
    r: &TestRepo,
    args: &[&str],
    env: &[(&str, &str)],
    point: &str,
    step: &str,
) -> (Background, std::path::PathBuf) {
    let release = r.path().join(".git/release-paused-run");
    let mut vars = env.to_vec();
    vars.extend([
        ("FORGE_ROLLBACK_FAILPOINT", point),
        ("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause"),
        ("FORGE_ROLLBACK_FAILPOINT_RELEASE", release.to_str().unwrap()),
    ]);
    let run = Background::spawn(r.path(), args, &vars);
    let runs = r.path().join(".git/forge-rollback/runs");
    let begun = format!("\"{step}\"");
    crate::common::wait_until(&format!("the run to begin `{step}`"), Duration::from_secs(60), || {
        std::fs::read_dir(&runs).into_iter().flatten().flatten().any(|d| {
            std::fs::read_to_string(d.path().join("journal.jsonl"))
                .is_ok_and(|j| j.lines().any(|l| l.contains("\"step_begin\"") && l.contains(&begun)))
        })
    });
    (run, release)
}

#[test]
fn a_second_run_exits_with_the_lock_code_and_names_the_holder() {
    let (r, _) = messy_repo();
    let release = r.path().join(".git/release-first-run");
    let first = command(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"])
        .env("FORGE_ROLLBACK_FAILPOINT", "after:lock")
        .env("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
        .env("FORGE_ROLLBACK_FAILPOINT_RELEASE", &release)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock and has written its details.
    let lock = r.path().join(".git/forge-rollback/lock");
    let start = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")) {
        assert!(start.elapsed() < Duration::from_secs(60), "first run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = picture(&r);
    for args in [&["run", "--fast", "--yes", "--target", "v1"][..], &["undo", "20250101-000000-abcdef", "--yes"][..]] {
        let second = fr(&r, args);
        if args[0] == "run" {
            second.code(3);
            assert!(
                second.stderr.contains(&format!("another rollback is running: pid {}", first.id())),
                "{}",
                second.stderr
            );
            assert!(second.stderr.contains("hint: wait for it to finish"), "{}", second.stderr);
        } else {
            // An unknown run is reported before the lock is even tried.
            second.code(2);
        }
    }
    let unlock = fr(&r, &["unlock"]);
    unlock.code(3);
    assert_eq!(picture(&r), before, "the refused runs changed nothing");
    std::fs::write(&release, "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["status"], "succeeded");
    assert!(!lock.exists(), "released and removed");
}

#[test]
fn unlock_removes_a_dead_holders_file() {
    let (r, _) = messy_repo();
    let out = crate::common::fr_env(
        &r,
        &["run", "--fast", "--yes", "--target", "v1"],
        &[("FORGE_ROLLBACK_FAILPOINT", "after:lock")],
    );
    assert_eq!(out.code, None);
    let un = fr(&r, &["unlock"]);
    un.ok();
    assert!(un.stdout.starts_with("removed the lock left by pid "), "{}", un.stdout);
    assert!(!r.path().join(".git/forge-rollback/lock").exists());
    let none = fr(&r, &["unlock", "--json"]);
    none.ok();
    assert_eq!(none.json(), serde_json::json!({"removed": null, "removed_file": false}));
    // A holder killed before it wrote its details leaves an empty file: removed, and said.
    std::fs::write(r.path().join(".git/forge-rollback/lock"), b"").unwrap();
    let un = fr(&r, &["unlock"]);
    un.ok();
    assert!(un.stdout.starts_with("removed a lock file that names no holder"), "{}", un.stdout);
    assert!(!r.path().join(".git/forge-rollback/lock").exists());
}

/// A run paused half-way is journaled `running` and holds the lock: a second run is told who
/// holds the lock (exit 3), never that the live run "was interrupted" and should be resumed or
/// undone (exit 4), whether it asks first (no `--yes`) or not.
#[test]
fn a_second_run_during_a_live_run_is_told_the_holder_not_to_resume_it() {
    let (r, _) = messy_repo();
    let (first, release) = paused_before(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"], "reset");
    let runs = r.path().join(".git/forge-rollback/runs");
    let run_id = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().file_name().into_string().unwrap();
    let before = picture(&r);
    let holder = format!("another rollback is running: pid {}", first.child.id());
    for args in [
        &["run", "--fast", "--target", "v1"][..],
        &["run", "--fast", "--yes", "--target", "v1"][..],
        &["undo", run_id.as_str(), "--yes"][..],
        &["resume", run_id.as_str()][..],
    ] {
        let second = fr(&r, args);
        second.code(3);
        assert!(second.stderr.contains(&holder), "{args:?}: {}", second.stderr);
        assert!(!second.stderr.contains("half-way"), "{args:?}: {}", second.stderr);
    }
    assert_eq!(picture(&r), before, "the refused runs changed nothing");
    std::fs::write(&release, "").unwrap();
    let out = first.wait(Duration::from_secs(120));
    out.ok();
    assert_eq!(out.json()["status"], "succeeded");
}

/// A live run that has already moved HEAD onto the only known-good commit: a second `run`
/// with no `--target` finds no target in the registry, but is told who holds the lock (exit 3),
/// not that there is no target (exit 2), with `--yes` or without.
#[test]
fn a_second_run_without_a_target_during_a_live_run_is_told_the_holder() {
    let (r, _) = messy_repo();
    fr(&r, &["known-good", "mark", "v1"]).ok();
    let (first, release) = paused_before(&r, &["run", "--fast", "--yes", "--json"], "remove_untracked");
    assert_eq!(r.git(&["rev-parse", "HEAD"]), r.git(&["rev-parse", "v1^{commit}"]), "HEAD is on the only target");
    let holder = format!("another rollback is running: pid {}", first.child.id());
    for args in [&["run", "--fast", "--yes"][..], &["run", "--fast"][..]] {
        let second = fr(&r, args);
        second.code(3);
        assert!(second.stderr.contains(&holder), "{args:?}: {}", second.stderr);
    }
    std::fs::write(&release, "").unwrap();
    let out = first.wait(Duration::from_secs(120));
    out.ok();
    assert_eq!(out.json()["status"], "succeeded");
    // With the lock free, the same command says what is wrong: no target left.
    let alone = fr(&r, &["run", "--fast", "--yes"]);
    alone.code(2);
    assert!(alone.stderr.contains("no rollback target"), "{}", alone.stderr);
}

/// Ctrl-C (SIGINT) once a run has begun stops it at its next step boundary instead of killing
/// it half-way: journaled `cancelled` (exit 5), the lock released, and undone like any run.
#[test]
fn sigint_during_a_run_stops_it_at_the_next_step_as_cancelled() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let (run, release) = paused_before(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"], "reset");
    run.interrupt("INT");
    std::fs::write(&release, "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    out.code(5);
    let j = out.json();
    assert_eq!(j["status"], "cancelled", "{}", out.stderr);
    let steps: Vec<(&str, &str)> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert!(steps.contains(&("reset", "done")) && steps.contains(&("remove_untracked", "pending")), "{steps:?}");
    assert!(!r.path().join(".git/forge-rollback/lock").exists());
    let run_id = j["run_id"].as_str().unwrap();
    fr(&r, &["undo", run_id, "--yes"]).ok();
    assert_eq!(picture(&r), before);
}

/// A run cancelled (SIGINT) after its snapshot and before anything changed can still be
/// resumed, as documented for a cancelled run: it captures the tree again and rolls back.
#[test]
fn a_run_cancelled_before_it_changed_anything_can_be_resumed() {
    let (r, _) = messy_repo();
    let (run, release) =
        paused_at(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[], "end:snapshot", "snapshot");
    run.interrupt("INT");
    std::fs::write(&release, "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    out.code(5);
    let run_id = out.json()["run_id"].as_str().unwrap().to_owned();
    let resumed = fr(&r, &["resume", &run_id, "--yes", "--json"]);
    resumed.ok();
    assert_eq!(resumed.json()["status"], "succeeded", "{}", resumed.stderr);
    assert_eq!(r.head(), r.git(&["rev-parse", "v1"]).trim());
}

/// A run that failed having changed nothing (its snapshot could not be taken) says so, and
/// blocks no new run: there is nothing to finish or put back.
#[test]
fn a_run_that_failed_having_changed_nothing_blocks_no_new_run() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let failed = crate::common::failed_run(&r, "inside:snapshot");
    let id = failed.json()["run_id"].as_str().unwrap().to_owned();
    assert!(
        failed.stderr.contains(&format!(
            "[ERROR] Run {id} FAILED, having changed nothing; `forge-rollback resume {id}` tries again"
        )),
        "{}",
        failed.stderr
    );
    assert_eq!(picture(&r), before);
    let next = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    next.ok();
    let next_id = next.json()["run_id"].as_str().unwrap().to_owned();
    // `runs list --json` says which changed something (the fleet module reads it).
    let runs = fr(&r, &["runs", "list", "--json"]).json();
    let changed: Vec<(&str, bool)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["run_id"].as_str().unwrap(), x["changed_something"].as_bool().unwrap()))
        .collect();
    assert_eq!(changed, [(id.as_str(), false), (next_id.as_str(), true)]);
    crate::common::undo(&r, &next_id);
    assert_eq!(picture(&r), before);
}

/// `.git/index.lock` in place when a run starts: a git is writing the repository (a `reset
/// --hard` that outlived a run killed with `kill -9`, or the operator's own). The run waits for
/// it, saying so; when it goes the run goes on, and when it stays the run is refused with the
/// lock's exit code, naming the file, with nothing changed.
#[test]
fn a_git_still_writing_the_repository_is_waited_for_then_refused() {
    let (r, _) = messy_repo();
    let index_lock = r.path().join(".git/index.lock");
    std::fs::write(&index_lock, "").unwrap();
    let before = picture(&r);
    let refused = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    refused.code(3);
    assert!(
        refused.stderr.contains(&format!("a git process is writing the repository: `{}` exists", index_lock.display())),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("waiting for a git process that is writing the repository"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("if no git process is running, a crash left the file: remove"),
        "{}",
        refused.stderr
    );
    assert_eq!(picture(&r), before, "nothing changed");
    assert_eq!(fr(&r, &["runs", "list", "--json"]).json(), serde_json::json!([]), "no run journaled");

    // The git finishes while the run waits: the run goes on.
    let run = Background::spawn(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    crate::common::wait_until("the run to say it waits", Duration::from_secs(60), || {
        run.stderr_so_far().contains("waiting for a git process")
    });
    std::fs::remove_file(&index_lock).unwrap();
    let out = run.wait(Duration::from_secs(120));
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
}

/// A ref lock left in place (`.git/refs/heads/main.lock` or `.git/HEAD.lock`, by a killed git):
/// `git reset --hard` wrote the work tree and the index, then failed on the ref, leaving the
/// files at the target and HEAD where it was. It is waited for and refused like `index.lock`,
/// with nothing changed; once it is gone the run goes ahead.
#[test]
fn a_ref_lock_left_in_place_is_refused_before_anything_changes() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    for lock in ["refs/heads/main.lock", "HEAD.lock"] {
        let lock = r.path().join(".git").join(lock);
        std::fs::write(&lock, "").unwrap();
        let refused = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
        refused.code(3);
        assert!(
            refused.stderr.contains(&format!("a git process is writing the repository: `{}` exists", lock.display())),
            "{}",
            refused.stderr
        );
        assert_eq!(picture(&r), before, "nothing changed");
        std::fs::remove_file(&lock).unwrap();
    }
    assert_eq!(fr(&r, &["runs", "list", "--json"]).json(), serde_json::json!([]), "no run journaled");
    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    assert_eq!(r.head(), r.git(&["rev-parse", "v1"]));
}

/// Ctrl-C at a terminal signals the whole foreground process group, the `git reset --hard`
/// forge-rollback started included. git now runs in a process group of its own: it finishes
/// writing the work tree, and the run stops at the next step boundary (exit 5, `cancelled`),
/// where before git died half-way and the run failed (exit 1) on a half-written tree.
/// A smudge filter on `app/main.py`, the file a rollback to v1 rewrites, that runs `before`
/// (a shell snippet: say that git runs it) and then takes `secs` seconds, so that whatever the
/// test does next happens while git writes the work tree.
pub(crate) fn slow_filter(r: &TestRepo, before: &str, secs: u32) {
    r.git(&["config", "filter.slow.smudge", &format!("{before}; sleep {secs}; cat")]);
    r.git(&["config", "filter.slow.clean", "cat"]);
    std::fs::write(r.path().join(".git/info/attributes"), "app/main.py filter=slow\n").unwrap();
}

#[test]
fn ctrl_c_at_the_terminal_lets_the_reset_finish_and_stops_at_the_step_boundary() {
    use std::os::unix::process::CommandExt as _;
    let (r, _) = messy_repo();
    let before = picture(&r);
    // A smudge filter on the file the reset writes: it says when git runs it, then takes its
    // time, so the signal arrives while git is writing the work tree.
    let started = r.path().join(".git/filter-started");
    slow_filter(&r, &format!("touch '{}'", started.display()), 2);
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = command(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    // Its own group, as a shell's job is: the signal below must not reach the test itself.
    cmd.process_group(0)
        .stdout(std::fs::File::create(out_dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(out_dir.path().join("stderr")).unwrap());
    let mut child = cmd.spawn().unwrap();
    crate::common::wait_until("git to run the filter", Duration::from_secs(60), || started.exists());
    let group = format!("-{}", child.id());
    assert!(std::process::Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(out_dir.path().join("stdout")).unwrap();
    let stderr = std::fs::read_to_string(out_dir.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(stderr.contains("[WARN] interrupted: stopping at the next step boundary"), "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["status"], "cancelled", "{stderr}");
    let reset = j["steps"].as_array().unwrap().iter().find(|s| s["step"] == "reset").unwrap();
    assert_eq!(reset["status"], "done", "{stderr}");
    assert_eq!(r.head(), r.git(&["rev-parse", "v1"]), "the reset finished");
    assert_eq!(r.git(&["status", "--porcelain", "--untracked-files=no"]), "", "and wrote every tracked file");
    fr(&r, &["undo", j["run_id"].as_str().unwrap(), "--yes"]).ok();
    assert_eq!(picture(&r), before);
}

/// A step that hangs (a `git` filter waiting on a network that does not answer): the first
/// SIGTERM says the run stops once the step finishes; a second ends the process at once, by
/// that signal, and the run shows as `interrupted`. Once the hanging git is gone and its
/// `index.lock` removed, the undo puts everything back. The second signal used to do nothing.
#[test]
fn a_second_signal_stops_a_hanging_step_at_once() {
    use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
    let (r, _) = messy_repo();
    let before = picture(&r);
    let group_file = r.path().join(".git/filter-group");
    // The filter writes its process group (the `git` the run started, in a group of its own).
    slow_filter(&r, &format!("cut -d' ' -f5 /proc/$$/stat > '{}'", group_file.display()), 60);
    let out_dir = tempfile::tempdir().unwrap();
    let stderr_path = out_dir.path().join("stderr");
    let mut cmd = command(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    cmd.process_group(0).stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut child = cmd.spawn().unwrap();
    let group = || std::fs::read_to_string(&group_file).unwrap_or_default().trim().to_owned();
    crate::common::wait_until("git to run the filter", Duration::from_secs(60), || !group().is_empty());
    let term = || {
        assert!(
            std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success()
        );
    };
    term();
    crate::common::wait_until("the notice", Duration::from_secs(60), || {
        std::fs::read_to_string(&stderr_path).unwrap().contains("stopping at the next step boundary")
    });
    term();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {stderr}");
    // The operator stops the hanging git too, and removes the lock it leaves.
    assert!(
        std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", group())]).status().unwrap().success()
    );
    crate::common::wait_until("the filter's group to end", Duration::from_secs(60), || {
        !std::process::Command::new("kill").args(["-0", "--", &format!("-{}", group())]).status().unwrap().success()
    });
    std::fs::remove_file(r.path().join(".git/index.lock")).unwrap();
    let runs = fr(&r, &["runs", "list", "--json"]);
    runs.ok();
    assert!(runs.stdout.contains("\"interrupted\""), "{}", runs.stdout);
    let run_id =
        std::fs::read_dir(r.path().join(".git/forge-rollback/runs")).unwrap().flatten().next().unwrap().file_name();
    std::fs::remove_file(r.path().join(".git/info/attributes")).unwrap();
    fr(&r, &["undo", run_id.to_str().unwrap(), "--yes"]).ok();
    assert_eq!(picture(&r), before);
}

/// While a live run's `git reset` writes the tree (holding `index.lock`), a second run is told
/// at once which run holds the lock (not, 10 s later, that a git is writing), and a dry run
/// shows its plan without waiting.
#[test]
fn a_second_run_during_a_live_reset_names_the_run_and_a_dry_run_does_not_wait() {
    let (r, _) = messy_repo();
    let started = r.path().join(".git/filter-started");
    slow_filter(&r, &format!("touch '{}'", started.display()), 5);
    let first = Background::spawn(r.path(), &["run", "--fast", "--yes", "--target", "v1"], &[]);
    crate::common::wait_until("git to run the filter", Duration::from_secs(60), || started.exists());
    assert!(r.path().join(".git/index.lock").exists());
    let second = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    second.code(3);
    assert!(second.stderr.contains("another rollback is running"), "{}", second.stderr);
    assert!(!second.stderr.contains("waiting for a git process"), "{}", second.stderr);
    let dry = fr(&r, &["run", "--fast", "--dry-run", "--json", "--target", "v2"]);
    assert!(!dry.stderr.contains("waiting for a git process"), "{}", dry.stderr);
    first.wait(Duration::from_secs(60)).ok();
}

/// A run killed with `kill -9` during its reset leaves its `git reset` running. An undo started
/// at once waits for that git (it holds `index.lock`) before it reads HEAD, then puts back the
/// state from before the run. It used to read HEAD before the wait and refuse after it: "HEAD
/// moved while the undo was being confirmed" (exit 4), with `--yes`.
#[test]
fn an_undo_right_after_a_kill_waits_for_the_orphan_git_reset() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let started = r.path().join(".git/filter-started");
    slow_filter(&r, &format!("touch '{}'", started.display()), 2);
    let mut run = command(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::common::wait_until("git to run the filter", Duration::from_secs(60), || started.exists());
    // SIGKILL to the run alone: the `git reset` it started goes on writing.
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(r.path().join(".git/index.lock").exists(), "the orphan git is still writing");
    let runs: Vec<_> = std::fs::read_dir(r.path().join(".git/forge-rollback/runs")).unwrap().flatten().collect();
    assert_eq!(runs.len(), 1);
    let run_id = runs[0].file_name().into_string().unwrap();
    let undo = fr(&r, &["undo", &run_id, "--yes", "--json"]);
    undo.ok();
    assert!(!undo.stderr.contains("HEAD moved"), "{}", undo.stderr);
    assert_eq!(picture(&r), before);
}

/// `backups prune` decides what to keep under the run lock: a rollback that starts while it
/// reads the runs is refused (exit 3, naming the prune), so it can never fail after that
/// reading and lose the snapshot it is undone from.
#[test]
fn backups_prune_holds_the_lock_while_it_decides() {
    let (r, _) = messy_repo();
    let first = crate::common::rollback(&r, "v1");
    crate::common::undo(&r, &first);
    let release = r.path().join(".git/release-prune");
    let prune = Background::spawn(
        r.path(),
        &["backups", "prune", "--keep", "0", "--json"],
        &[
            ("FORGE_ROLLBACK_FAILPOINT", "before:prune"),
            ("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause"),
            ("FORGE_ROLLBACK_FAILPOINT_RELEASE", release.to_str().unwrap()),
        ],
    );
    // Paused where it is about to read the runs (`before:prune`).
    let paused = r.path().join(".git/release-prune.reached");
    crate::common::wait_until("prune to reach `before:prune`", Duration::from_secs(60), || paused.exists());
    let before = picture(&r);
    let refused = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    refused.code(3);
    assert!(refused.stderr.contains("another rollback is running"), "{}", refused.stderr);
    assert_eq!(picture(&r), before, "the refused run changed nothing");
    std::fs::write(&release, "").unwrap();
    let pruned = prune.wait(Duration::from_secs(60));
    pruned.ok();
    assert_eq!(pruned.json()["kept_snapshots"], 0, "{}", pruned.stdout);
    // The lock is free again: the next rollback runs, and its own snapshot lets it be undone.
    let next = crate::common::rollback(&r, "v1");
    crate::common::undo(&r, &next);
}

/// Ctrl-C while the checks run, and they fail: the run stops at the boundary after them,
/// `cancelled` (exit 5; it was 6, the code of a run whose steps all ran). Its `resume` keeps
/// their verdict: `verification_failed`, and `on_failure = "undo"` undoes it. The resume used
/// to run only `record` and journal the run `succeeded`, never undone.
#[test]
fn a_resume_after_failed_checks_keeps_their_verdict() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rollback.toml");
    std::fs::write(
        &cfg,
        "[verify]\non_failure = \"undo\"\n\n[[checks]]\nname = \"api\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", \"echo down >&2; exit 1\"]\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let (run, release) = paused_at(
        &r,
        &["--config", cfg, "run", "--fast", "--yes", "--json", "--target", "v1"],
        &[],
        "end:verify",
        "verify",
    );
    run.interrupt("INT");
    std::fs::write(&release, "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    out.code(5);
    let j = out.json();
    assert_eq!(j["status"], "cancelled", "{}", out.stderr);
    assert_eq!(j["verification"]["passed"], false, "{}", out.stdout);
    let run_id = j["run_id"].as_str().unwrap().to_owned();

    let resumed = fr(&r, &["--config", cfg, "resume", &run_id, "--yes", "--json"]);
    resumed.code(6);
    let j = resumed.json();
    assert_eq!(j["status"], "verification_failed", "{}", resumed.stderr);
    assert!(j["undone_by"].is_string(), "on_failure = \"undo\" applies: {}", resumed.stdout);
    assert_eq!(picture(&r), before);
    let runs = fr(&r, &["runs", "list", "--json"]).json();
    let this = runs.as_array().unwrap().iter().find(|x| x["run_id"] == run_id.as_str()).unwrap();
    assert_ne!(this["status"], "succeeded", "{runs}");
}

/// The report of a run that another process is still running: it is `running`, its step under
/// way too (not `interrupted`), and it advises neither `resume` nor `undo` — dangerous advice
/// about a live run.
#[test]
fn the_report_of_a_live_run_advises_no_resume_nor_undo() {
    let (r, _) = messy_repo();
    let (live, release) = paused_before(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"], "reset");
    let id = fr(&r, &["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    let md = fr(&r, &["report", &id]);
    md.ok();
    assert!(!md.stdout.contains("interrupted") && !md.stdout.contains("Settle the failed run"), "{}", md.stdout);
    let json = fr(&r, &["report", &id, "--json"]).json();
    assert_eq!(json["status"], "running");
    assert_eq!(json["interrupted"], false);
    assert!(json["commands"]["resume"].is_null() && json["commands"]["undo"].is_null(), "{json}");
    let reset = json["steps"].as_array().unwrap().iter().find(|s| s["step"] == "reset").unwrap();
    assert_eq!(reset["status"], "running", "{json}");
    std::fs::write(&release, "").unwrap();
    live.wait(Duration::from_secs(120)).ok();
    // Once it is over, its report is that of a finished run.
    let json = fr(&r, &["report", &id, "--json"]).json();
    assert_eq!(json["status"], "succeeded");
    assert_eq!(json["steps"].as_array().unwrap().iter().find(|s| s["step"] == "reset").unwrap()["status"], "done");
}
