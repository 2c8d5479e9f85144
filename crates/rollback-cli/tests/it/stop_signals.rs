//! SIGINT and SIGTERM during the runs the operator drives step by step or picks up again:
//! `resume` and `run --manual` stop at the step boundary after the step under way (exit 5,
//! `cancelled`), as `run` does, instead of dying half-way through the step.

use std::path::Path;
use std::time::Duration;

use rexpect::process::Signal;

use crate::common::{Background, fr, messy_repo, toml_str, wait_until};
use crate::manual::{exit_code, next_step, only_run, spawn};

/// A configuration whose `[[restart]]` program touches `started`, sleeps, then touches `done`:
/// a step long enough to be interrupted, which shows whether it was let finish.
fn slow_restart(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let started = dir.join("started");
    let done = dir.join("done");
    let body = format!("touch '{}'; sleep 2; touch '{}'", started.display(), done.display());
    let cfg = dir.join("rollback.toml");
    std::fs::write(&cfg, format!("[[restart]]\nname = \"app\"\nargv = [\"sh\", \"-c\", {}]\n", toml_str(&body)))
        .unwrap();
    (cfg.display().to_string(), started, done)
}

/// SIGTERM while `resume` runs a step: the step finishes, the run stops at its boundary,
/// `cancelled`, exit 5. `resume` used to die by the signal in the middle of the step.
#[test]
fn sigterm_stops_resume_at_the_step_boundary() {
    let (r, _) = messy_repo();
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, started, done) = slow_restart(tmp.path());
    // Killed right after its reset was journaled: the restart is still to run.
    let killed = crate::common::fr_env(
        &r,
        &["--config", &cfg, "run", "--fast", "--yes", "--target", "v1"],
        &[("FORGE_ROLLBACK_FAILPOINT", "end:reset")],
    );
    assert_ne!(killed.code, Some(0), "{}", killed.stderr);
    assert!(!started.exists(), "the restart ran before the kill");
    let id = only_run(&r)["run_id"].as_str().unwrap().to_owned();

    let resume = Background::spawn(r.path(), &["--config", &cfg, "resume", &id, "--yes"], &[]);
    wait_until("the restart program to start", Duration::from_secs(60), || started.exists());
    resume.terminate();
    let out = resume.wait(Duration::from_secs(60));
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(out.stderr.contains("stopping at the next step boundary"), "{}", out.stderr);
    assert!(done.exists(), "the restart was cut off half-way");
    let run = only_run(&r);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_ne!(run["interrupted"], true, "{run:#}");
}

/// Ctrl-C while a step of a manual run runs: the step finishes, the run stops before the next
/// question, `cancelled`, exit 5. It used to kill the run half-way through the step.
#[test]
fn ctrl_c_during_a_manual_step_stops_at_the_step_boundary() {
    let (r, _) = messy_repo();
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, started, done) = slow_restart(tmp.path());
    let mut p = spawn(&r, &["--config", &cfg, "run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    loop {
        let step = next_step(&mut p);
        p.send_line("yes").unwrap();
        if step == "restart" {
            break;
        }
    }
    wait_until("the restart program to start", Duration::from_secs(60), || started.exists());
    p.process_mut().signal(Signal::SIGINT).unwrap();
    p.exp_string("stopping at the next step boundary").unwrap();
    assert_eq!(exit_code(&mut p), 5);
    assert!(done.exists(), "the restart was cut off half-way");
    let run = only_run(&r);
    assert_eq!(run["status"], "cancelled", "{run:#}");
}

/// Ctrl-C at a manual run's question: the run stops there, before the step asked about
/// (`cancelled`, exit 5), instead of waiting for an answer it no longer wants.
#[test]
fn ctrl_c_at_a_manual_question_stops_the_run_there() {
    let (r, _) = messy_repo();
    let head = r.head();
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "snapshot");
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "reset");
    p.process_mut().signal(Signal::SIGINT).unwrap();
    p.exp_string("before the step asked about").unwrap();
    assert_eq!(exit_code(&mut p), 5);
    assert_eq!(r.head(), head, "the reset ran");
    let run = only_run(&r);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    // Nobody answered for the reset: the run was cancelled by the signal, not aborted.
    let report = fr(&r, &["report", run["run_id"].as_str().unwrap()]);
    report.ok();
    assert!(report.stdout.contains("interrupted (SIGINT or SIGTERM)"), "{}", report.stdout);
    assert!(!report.stdout.contains("aborted"), "{}", report.stdout);
}
