//! `run --manual` driven through a real pseudo-terminal (rexpect): the operator approves,
//! inspects, skips and aborts steps, answering the prompts a person would see.

use std::process::Command;

use rexpect::session::{PtySession, spawn_command};
use rollback_testkit::{TestRepo, clean_git_env};

use crate::common::{fr, messy_repo, picture};

/// Starts the binary on a pseudo-terminal (stdin, stdout and stderr all on it).
pub(crate) fn spawn(repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forge-rollback"));
    clean_git_env(&mut cmd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FORGE_ROLLBACK") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1").env("TERM", "dumb").arg("-C").arg(repo.path()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(cmd, Some(60_000)).expect("spawn on a pty")
}

/// Waits for the next step prompt; returns the step's name.
pub(crate) fn next_step(p: &mut PtySession) -> String {
    let (_, matched) = p.exp_regex(r"Step \d+/\d+: [a-z_]+").expect("a step prompt");
    let name = matched.rsplit(' ').next().unwrap().to_owned();
    p.exp_string("Run this step? [").expect("the question");
    name
}

/// The exit code, from nix's `WaitStatus` (which rexpect does not re-export):
/// `Exited(Pid(123), 5)`.
pub(crate) fn exit_code(p: &mut PtySession) -> i32 {
    let status = format!("{:?}", p.process_mut().wait().expect("wait"));
    let code = status.strip_prefix("Exited(").and_then(|s| s.rsplit(", ").next()).and_then(|s| s.strip_suffix(')'));
    code.and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("not a normal exit: {status}"))
}

/// The one rollback in the run list (an undo may be there too).
pub(crate) fn only_run(repo: &TestRepo) -> serde_json::Value {
    let out = fr(repo, &["runs", "list", "--json"]);
    out.ok();
    let list = out.json();
    let rollbacks: Vec<serde_json::Value> =
        list.as_array().unwrap().iter().filter(|r| r["kind"] == "rollback").cloned().collect();
    assert_eq!(rollbacks.len(), 1, "{list:#}");
    rollbacks[0].clone()
}

#[test]
fn approve_inspect_and_skip_through_a_terminal() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1", "--reason", "pty test"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();

    let mut seen = Vec::new();
    loop {
        let step = next_step(&mut p);
        match step.as_str() {
            "snapshot" => {
                // Not skippable: the question does not offer `no`, and `no` is refused.
                p.send_line("no").unwrap();
                p.exp_string("cannot be skipped").unwrap();
                p.send_line("inspect").unwrap();
                p.exp_string("No backup taken yet in this run.").unwrap();
                p.send_line("yes").unwrap();
            }
            "reset" => {
                p.send_line("inspect").unwrap();
                // After the snapshot, inspect shows the backup's manifest.
                p.exp_string("Backup ").unwrap();
                p.exp_string("notes/incident/2025-12-10 draft.md").unwrap();
                p.send_line("yes").unwrap();
            }
            "remove_untracked" => {
                p.send_line("no").unwrap();
            }
            "record" => {
                p.send_line("yes").unwrap();
                seen.push(step);
                break;
            }
            _ => {
                p.send_line("yes").unwrap();
            }
        }
        seen.push(step);
    }
    p.exp_string("status:  succeeded").unwrap();
    assert_eq!(exit_code(&mut p), 0);
    assert_eq!(seen.first().map(String::as_str), Some("snapshot"));
    assert!(seen.contains(&"remove_untracked".to_owned()), "{seen:?}");

    // Skipped: the untracked note is still there; the reset ran: the code is v1's.
    assert!(r.exists("notes/incident/2025-12-10 draft.md"));
    assert_eq!(r.git(&["log", "-1", "--format=%s"]).trim(), "release v1");
    let run = only_run(&r);
    let id = run["run_id"].as_str().unwrap();
    assert_eq!(run["status"], "succeeded");
    let report = fr(&r, &["report", id]);
    report.ok();
    assert!(report.stdout.contains("- **Skipped Steps**: `remove_untracked` (by the operator)"), "{}", report.stdout);
    assert!(report.stdout.contains("**Rollback Type**: Manual"), "{}", report.stdout);
    assert!(report.stdout.contains("Operator inspected step 1/"), "{}", report.stdout);
    assert!(report.stdout.contains("Operator declined (skip) step 3/"), "{}", report.stdout);
    let journal = fr(&r, &["runs", "show", id, "--json"]).json();
    let steps = journal["outcome"]["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "remove_untracked" && s["status"] == "skipped"), "{steps:?}");

    // And it undoes exactly.
    fr(&r, &["undo", id, "--yes"]).ok();
    assert_eq!(picture(&r), before);
}

#[test]
fn abort_with_undo_puts_everything_back() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "snapshot");
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "reset");
    p.send_line("yes").unwrap();
    let third = next_step(&mut p);
    p.send_line("abort").unwrap();
    p.exp_string("Undo what this run changed so far? [yes/no]:").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("status:  cancelled").unwrap();
    assert_eq!(exit_code(&mut p), 5, "aborted before `{third}`");

    assert_eq!(picture(&r), before, "the undo put back the tree, HEAD, branch and index");
    let run = only_run(&r);
    assert_eq!(run["status"], "undone");
    let id = run["run_id"].as_str().unwrap();
    let report = fr(&r, &["report", id, "--format", "json"]).json();
    assert!(report["timeline"].to_string().contains("`, with undo"), "{report:#}");
    assert!(report["undone_by"].is_string());
}

/// Answers are read by the core's rules, the same as Python's `confirm` and `approve`: the
/// documented words, trimmed, in any ASCII case; other words (one-letter ones included) are
/// asked again and run nothing; `abort-undo` stops and undoes without a second question.
#[test]
fn answers_are_the_documented_words_in_any_case() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("  Yes  ").unwrap();
    assert_eq!(next_step(&mut p), "snapshot");
    p.send_line("y").unwrap();
    p.exp_string("`y`? answer yes (or run), inspect, abort (then asked whether to undo) or abort-undo").unwrap();
    p.send_line("YES").unwrap();
    assert_eq!(next_step(&mut p), "reset");
    p.send_line("Run").unwrap();
    let third = next_step(&mut p);
    p.send_line(" Abort-Undo ").unwrap();
    p.exp_string("status:  cancelled").unwrap();
    assert_eq!(exit_code(&mut p), 5, "aborted before `{third}`");
    assert_eq!(picture(&r), before, "the undo put back the tree, HEAD, branch and index");
    assert_eq!(only_run(&r)["status"], "undone");
}

#[test]
fn abort_without_undo_leaves_a_cancelled_run_that_can_be_undone_later() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "snapshot");
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "reset");
    p.send_line("abort").unwrap();
    p.exp_string("[yes/no]:").unwrap();
    p.send_line("no").unwrap();
    p.exp_string("status:  cancelled").unwrap();
    assert_eq!(exit_code(&mut p), 5);

    // Nothing after the snapshot ran: the tree is as it was.
    assert_eq!(picture(&r), before);
    let run = only_run(&r);
    assert_eq!(run["status"], "cancelled");
    let id = run["run_id"].as_str().unwrap().to_owned();
    // A cancelled run does not block a new one, and can still be undone (its snapshot exists).
    let out = fr(&r, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(picture(&r), before);
}

#[test]
fn an_interrupted_manual_run_resumes_asking_for_the_remaining_steps() {
    let (r, _) = messy_repo();
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "end:reset")]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "snapshot");
    p.send_line("yes").unwrap();
    assert_eq!(next_step(&mut p), "reset");
    p.send_line("yes").unwrap();
    // Killed by the failpoint right after the reset was journaled.
    p.exp_eof().unwrap();
    let run = only_run(&r);
    assert_eq!(run["interrupted"], true);
    let id = run["run_id"].as_str().unwrap().to_owned();

    let mut p = spawn(&r, &["resume", &id], &[]);
    let mut asked = Vec::new();
    loop {
        let step = next_step(&mut p);
        let last = step == "record";
        p.send_line(if step == "clear_caches" { "no" } else { "yes" }).unwrap();
        asked.push(step);
        if last {
            break;
        }
    }
    p.exp_string("status:  succeeded").unwrap();
    assert_eq!(exit_code(&mut p), 0);
    assert!(!asked.contains(&"snapshot".to_owned()) && !asked.contains(&"reset".to_owned()), "{asked:?}");
    assert!(asked.contains(&"remove_untracked".to_owned()), "{asked:?}");
    // clear_caches was skipped on resume: the cache is still there.
    assert!(r.exists("app/__pycache__/main.cpython-311.pyc"));
}

/// The operator skips `reset`: the run ends without claiming the tree is at the target, and
/// its report says the code stayed where it was.
#[test]
fn a_manual_run_with_its_reset_skipped_does_not_claim_the_target() {
    let (r, _) = messy_repo();
    let head = r.head();
    let mut p = spawn(&r, &["run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    loop {
        let step = next_step(&mut p);
        p.send_line(if step == "reset" { "no" } else { "yes" }).unwrap();
        if step == "record" {
            break;
        }
    }
    p.exp_string("Manual rollback finished with step `reset` skipped: the code in").unwrap();
    assert_eq!(exit_code(&mut p), 0);
    assert_eq!(r.head(), head, "the reset was skipped");
    let id = only_run(&r)["run_id"].as_str().unwrap().to_owned();
    let report = fr(&r, &["report", &id]);
    report.ok();
    assert!(
        report
            .stdout
            .contains(&format!("with step `reset` skipped by the operator: the code stayed at {}", &head[..7])),
        "{}",
        report.stdout
    );
}

/// The operator skips `verify` although checks are configured: the report says so, instead of
/// claiming none are configured or the run did not reach them.
#[test]
fn a_skipped_verify_is_reported_as_skipped_by_the_operator() {
    let (r, _) = messy_repo();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("rollback.toml");
    std::fs::write(&cfg, "[[checks]]\nname = \"ok\"\nkind = \"command\"\nargv = [\"true\"]\n").unwrap();
    let cfg = cfg.display().to_string();
    let mut p = spawn(&r, &["--config", &cfg, "run", "--manual", "--target", "v1"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    let mut seen = Vec::new();
    loop {
        let step = next_step(&mut p);
        p.send_line(if step == "verify" { "no" } else { "yes" }).unwrap();
        let last = step == "record";
        seen.push(step);
        if last {
            break;
        }
    }
    assert!(seen.contains(&"verify".to_owned()), "{seen:?}");
    assert_eq!(exit_code(&mut p), 0);
    let id = only_run(&r)["run_id"].as_str().unwrap().to_owned();
    let report = fr(&r, &["report", &id]);
    report.ok();
    assert!(
        report.stdout.contains(
            "Service checks: the service checks are configured but were skipped by the operator (manual run)."
        ),
        "{}",
        report.stdout
    );
    assert!(!report.stdout.contains("none are configured"), "{}", report.stdout);
}

/// The confirmation counts a config file with uncommitted edits as kept, not among the local
/// changes discarded: the reset puts it back as it was.
#[test]
fn the_confirmation_lists_a_tool_file_with_local_edits_as_kept() {
    let (r, cfg) = crate::common::repo_with_an_edited_tool_file();
    let mut p = spawn(&r, &["run", "--manual", "--target", "HEAD~1"], &[]);
    p.exp_string("Local changes discarded (snapshotted first): 0").unwrap();
    p.exp_string(&format!("Kept as they are (not reset): {cfg}")).unwrap();
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("no").unwrap();
    assert_eq!(exit_code(&mut p), 5);
}
