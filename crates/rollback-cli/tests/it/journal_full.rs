//! The disk fills up as a run appends a record to its journal (a failpoint makes that one
//! append fail with "No space left on device"). The run has begun: the error names it and says
//! to `resume` or `undo` it, and the run is journaled `failed` when the journal takes that
//! record. It used to say "the disk is full: free space, then try again", naming no run, and
//! trying again was refused (the run left `interrupted`).

use crate::common::{fr, fr_env, journal, messy_repo};
use crate::manual::only_run;

/// `run --fast --yes --target v1` in a messy repository, the journal appends at `points`
/// failing as on a full disk.
fn run_with_failing(points: &str) -> (rollback_testkit::TestRepo, crate::common::Out) {
    let (r, _) = messy_repo();
    let env = [("FORGE_ROLLBACK_FAILPOINT", points), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "enospc")];
    let out = fr_env(&r, &["run", "--fast", "--yes", "--target", "v1"], &env);
    (r, out)
}

/// The hint names the run's `resume` and `undo`, and never says to try again.
#[track_caller]
fn assert_names_the_run(out: &crate::common::Out, run_id: &str) {
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("run {run_id} stopped half-way")), "{}", out.stderr);
    assert!(out.stderr.contains("No space left on device"), "{}", out.stderr);
    let hint = out.stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_default();
    assert!(
        hint.contains(&format!("forge-rollback resume {run_id}"))
            && hint.contains(&format!("forge-rollback undo {run_id}")),
        "{}",
        out.stderr
    );
    assert!(!hint.contains("try again"), "{}", out.stderr);
}

#[test]
fn a_journal_append_failing_after_the_reset_names_the_run_and_journals_it_failed() {
    let (r, out) = run_with_failing("journal:step_end:reset");
    let run = only_run(&r);
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert_names_the_run(&out, &run_id);
    // The failure was journaled as a failed step's is: `failed`, not `interrupted`.
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_ne!(run["interrupted"], true, "{run:#}");
    let failed: Vec<_> = journal(&r, &run_id).into_iter().filter(|x| x["record"] == "step_failed").collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["step"], "reset");
    // What the hint says works.
    let resume = fr(&r, &["resume", &run_id, "--yes", "--json"]);
    resume.ok();
    assert_eq!(resume.json()["status"], "succeeded", "{}", resume.stdout);
}

/// The failed record cannot be journaled either (the disk stays full): the run stays
/// `interrupted`, and the error still names it; `undo` puts everything back.
#[test]
fn a_journal_that_takes_no_more_records_still_names_the_run() {
    let (r, out) = run_with_failing("journal:step_end:reset,journal:step_failed,journal:finished");
    let run = only_run(&r);
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert_names_the_run(&out, &run_id);
    assert_eq!(run["interrupted"], true, "{run:#}");
    fr(&r, &["undo", &run_id, "--yes"]).ok();
    assert_eq!(r.read("app/main.py"), b"# hotfix in progress\n");
}
