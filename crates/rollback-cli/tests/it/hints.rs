//! The core's hints are data; the CLI renders them as commands and `--flags`.

use crate::common::{fr, fr_env, messy_repo};

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
    let failed = fr_env(
        &r,
        &["run", "--fast", "--yes", "--json", "--target", "v1"],
        &[("FORGE_ROLLBACK_FAILPOINT", "before:remove_untracked"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")],
    );
    failed.code(1);
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
}
