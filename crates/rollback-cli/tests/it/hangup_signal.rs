//! SIGHUP (the operator's SSH session or terminal dropped) in the middle of a rollback: the
//! rollback finishes, as under `nohup`, instead of dying half-way through a step with the run
//! left `interrupted`. And the partial backup files such a death leaves behind are removed by
//! the next run.

use std::process::Command;
use std::time::Duration;

use crate::common::messy_repo;
use crate::lock::paused_before;
use crate::manual::only_run;

#[test]
fn sighup_in_the_middle_of_a_step_lets_the_run_finish() {
    let (r, ids) = messy_repo();
    let (run, release) = paused_before(&r, &["run", "--fast", "--yes", "--target", "v1"], "reset");
    let status = Command::new("kill").args(["-HUP", &run.child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -HUP failed");
    // A hangup left at its default action has ended the process by now (the kernel marks the
    // whole process to die as the signal is sent); ignored, the run goes on once let go.
    std::fs::write(&release, "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(r.head(), ids[0], "the reset did not run");
    let run = only_run(&r);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_ne!(run["interrupted"], true, "{run:#}");
}

/// The next run removes what a dead run was copying into the store (`.incoming.tmp-PID-N`,
/// the partial copy of a large file), not what a live process is writing.
#[test]
fn a_run_removes_the_partial_blobs_a_dead_run_left() {
    let (r, ids) = messy_repo();
    let blobs = r.path().join(".git/forge-rollback/backups/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    // A process that has exited (and was reaped): its id names no process now.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = blobs.join(format!(".incoming.tmp-{}-0", gone.id()));
    let live = blobs.join(format!(".incoming.tmp-{}-0", std::process::id()));
    std::fs::write(&dead, vec![b'x'; 4096]).unwrap();
    std::fs::write(&live, b"being written").unwrap();
    let run_id = crate::common::rollback(&r, "v1");
    assert_eq!(r.head(), ids[0]);
    assert!(!dead.exists(), "the dead run's partial blob is still there");
    assert!(live.exists(), "a live process's temp file was removed");
    let log = std::fs::read_to_string(r.path().join(".git/forge-rollback/runs").join(&run_id).join("run.log")).unwrap();
    assert!(log.contains("removed 4096 byte(s) of partial backup files"), "{log}");
}
