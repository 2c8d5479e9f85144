//! A rollback whose stderr or stdout cannot be written: stderr a log file on a full disk, a
//! pipe to a `head` that exited, a terminal that hung up. Log lines are best effort: the run
//! finishes (it used to panic at its next log line, exit 101, the run left `interrupted`
//! half-way), and the exit status is the run's.

use std::fs::OpenOptions;
use std::process::Stdio;

use crate::common::{command, fr, messy_repo};
use crate::manual::only_run;

/// `/dev/full`: every write fails with "No space left on device", as on a full disk.
fn dev_full() -> std::fs::File {
    OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full")
}

#[test]
fn run_with_stderr_on_a_full_disk_finishes() {
    let (r, ids) = messy_repo();
    let out = command(r.path(), &["run", "--fast", "--yes", "--target", "v1"])
        .stdout(Stdio::null())
        .stderr(dev_full())
        .status()
        .expect("run forge-rollback");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(r.head(), ids[0]);
    let run = only_run(&r);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_ne!(run["interrupted"], true, "{run:#}");
}

#[test]
fn undo_with_stderr_a_closed_pipe_finishes() {
    let (r, ids) = messy_repo();
    let run_id = crate::common::rollback(&r, "v1");
    let mut child = command(r.path(), &["undo", &run_id, "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forge-rollback");
    // The reader goes away before the first line: every write to stderr fails (EPIPE).
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(r.head(), ids[2], "the undo did not put HEAD back");
    let list = fr(&r, &["runs", "list", "--json"]);
    list.ok();
    let undo = list.json().as_array().unwrap().iter().find(|x| x["kind"] == "undo").cloned().unwrap();
    assert_eq!(undo["status"], "succeeded", "{undo:#}");
}

/// stdout on a full disk after the run: the run's exit status (0), and stderr says the outcome
/// could not be printed and where to read it. It used to exit 1 ("a step failed").
#[test]
fn run_with_stdout_on_a_full_disk_exits_with_the_runs_status() {
    let (r, ids) = messy_repo();
    let out = command(r.path(), &["run", "--fast", "--yes", "--target", "v1"])
        .stdout(dev_full())
        .stderr(Stdio::piped())
        .output()
        .expect("run forge-rollback");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(r.head(), ids[0]);
    let run_id = only_run(&r)["run_id"].as_str().unwrap().to_owned();
    assert!(
        stderr.contains("the outcome could not be printed on stdout")
            && stderr.contains("the run ended `succeeded`")
            && stderr.contains(&format!("runs show {run_id}")),
        "{stderr}"
    );
}
