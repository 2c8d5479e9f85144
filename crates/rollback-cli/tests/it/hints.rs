//! The core's hints are data; the CLI renders them as commands and `--flags`.

use crate::common::{failed_run, fr, messy_repo};

#[test]
fn a_refusal_names_cli_commands_and_flags() {
    let (r, _) = messy_repo();
    // No target and no registry: the hint names the flag and the command.
    let out = fr(&r, &["run", "--fast", "--yes"]);
    out.code(2);
    assert!(
        out.stderr.contains(
            "hint: pass `--target REV`, or mark a verified release with `forge-rollback known-good mark REV`"
        ),
        "{}",
        out.stderr
    );

    // A failed run: the log line, the error and the next run's refusal say `resume RUN` /
    // `undo RUN` as commands.
    let failed = failed_run(&r, "before:remove_untracked");
    let id = failed.json()["run_id"].as_str().unwrap().to_owned();
    assert!(
        failed.stderr.contains(&format!(
            "[ERROR] Run {id} FAILED; `forge-rollback resume {id}` finishes it, `forge-rollback undo {id}` puts everything back"
        )),
        "{}",
        failed.stderr
    );
    let refused = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    refused.code(4);
    assert!(refused.stderr.contains(&format!("run {id} failed half-way")), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "hint: finish it with `forge-rollback resume {id}` or put everything back with `forge-rollback undo {id}`"
        )),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("undo(\""), "no Python words: {}", refused.stderr);
    // Finished, it has nothing left to resume, and says how it ended.
    fr(&r, &["resume", &id, "--yes"]).ok();
    let again = fr(&r, &["resume", &id, "--yes"]);
    again.code(4);
    assert!(
        again.stderr.contains(&format!("run {id} ended `succeeded`: there is nothing to resume")),
        "{}",
        again.stderr
    );
}

/// A git command that takes `.git/index.lock` while the run is under way (here: made just
/// before the reset) fails the reset, and the hints say to remove it (not only "resume"),
/// after which resume finishes the run. (A lock file there before the run starts is waited
/// for, then refused: `lock::a_git_still_writing_the_repository_is_waited_for_then_refused`.)
#[test]
fn a_stale_index_lock_is_named_and_resume_finishes_once_it_is_gone() {
    for backend in crate::shapes::BACKENDS {
        let (_dir, cfg) = crate::shapes::config(backend);
        let fr = |r: &rollback_testkit::TestRepo, args: &[&str]| crate::shapes::fr(r, &cfg, args, &[]);
        let (r, _) = messy_repo();
        let (paused, release) = crate::lock::paused_before(
            &r,
            &["--config", &cfg, "run", "--fast", "--yes", "--json", "--target", "v1"],
            "reset",
        );
        let lock = r.path().join(".git/index.lock");
        std::fs::write(&lock, "").unwrap();
        std::fs::write(&release, "").unwrap();
        let failed = paused.wait(std::time::Duration::from_secs(120));
        failed.code(1);
        let id = failed.json()["run_id"].as_str().unwrap().to_owned();
        assert!(
            failed.stderr.contains("hint: another git command is running here, or a killed one left `index.lock` in the git folder: once none runs, remove that file, then try again (`resume` a run that failed on it)"),
            "{backend}: {}",
            failed.stderr
        );
        assert!(failed.stderr.contains(&format!("`forge-rollback resume {id}` finishes it")), "{}", failed.stderr);
        std::fs::remove_file(&lock).unwrap();
        std::fs::remove_file(&release).unwrap();
        let out = fr(&r, &["resume", &id, "--json"]);
        out.ok();
        assert_eq!(out.json()["status"], "succeeded", "{backend}");
    }
}
