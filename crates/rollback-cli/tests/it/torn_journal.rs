//! A journal torn by a crash or a power loss in the middle of an append must not become a
//! permanent block: the next writer cuts the torn line (keeping it aside) before appending. A
//! journal damaged otherwise is listed as damaged, and blocks a new run only when the run
//! might be unfinished.

use crate::common::{failed_run, fr, messy_repo, picture, rollback, state_dir};

fn journal_path(repo: &rollback_testkit::TestRepo, run_id: &str) -> std::path::PathBuf {
    state_dir(repo).join("runs").join(run_id).join("journal.jsonl")
}

/// Cuts the last `n` bytes of a run's journal (its last record loses its end and newline);
/// returns the bytes left at its end after the last newline.
fn tear(repo: &rollback_testkit::TestRepo, run_id: &str, n: usize) -> Vec<u8> {
    let path = journal_path(repo, run_id);
    let bytes = std::fs::read(&path).unwrap();
    let kept = &bytes[..bytes.len() - n];
    std::fs::write(&path, kept).unwrap();
    let cut = kept.iter().rposition(|b| *b == b'\n').unwrap() + 1;
    kept[cut..].to_vec()
}

/// Every line of a run's journal is a whole JSON record, the last one ended by a newline.
#[track_caller]
fn whole_lines(repo: &rollback_testkit::TestRepo, run_id: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(journal_path(repo, run_id)).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{text}"))).collect()
}

fn runs(repo: &rollback_testkit::TestRepo) -> Vec<serde_json::Value> {
    let out = fr(repo, &["--json", "runs", "list"]);
    out.ok();
    out.json().as_array().unwrap().clone()
}

#[test]
fn undo_of_a_run_whose_journal_was_torn_leaves_a_valid_journal() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let id = rollback(&r, "v1");
    // Power loss while `finished` was being appended.
    let torn = tear(&r, &id, 20);
    assert_eq!(runs(&r)[0]["interrupted"], true);
    let undo = fr(&r, &["undo", &id, "--yes", "--json"]);
    undo.ok();
    assert_eq!(picture(&r), before, "the undo put everything back");
    let records = whole_lines(&r, &id);
    assert_eq!(records.last().unwrap()["record"], "undone");
    // The cut bytes are kept next to the journal.
    let aside = std::fs::read(journal_path(&r, &id).with_file_name("journal.jsonl.torn")).unwrap();
    assert_eq!(aside, [torn.as_slice(), b"\n"].concat());
    // Nothing is blocked: the runs list, and a new rollback.
    let list = runs(&r);
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|run| run["damaged"].is_null()), "{list:?}");
    assert_eq!(list[0]["status"], "undone");
    rollback(&r, "v2");
}

#[test]
fn resume_of_a_run_whose_journal_was_torn_leaves_a_valid_journal() {
    let (r, _) = messy_repo();
    let out = failed_run(&r, "before:clear_caches");
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    // Torn in the middle of `finished`: the run reads as interrupted.
    tear(&r, &id, 15);
    fr(&r, &["resume", &id, "--yes", "--json"]).ok();
    let records = whole_lines(&r, &id);
    assert_eq!(records.last().unwrap()["record"], "finished");
    assert_eq!(records.last().unwrap()["status"], "succeeded");
    assert_eq!(runs(&r)[0]["status"], "succeeded");
}

#[test]
fn a_damaged_journal_is_listed_and_blocks_new_runs_only_while_its_run_may_be_unfinished() {
    let (r, _) = messy_repo();
    let first = rollback(&r, "v1");
    let undo = fr(&r, &["undo", &first, "--yes", "--json"]);
    undo.ok();
    let by = undo.json()["run_id"].as_str().unwrap().to_owned();

    // Damage after `finished`: the `undone` record, whole line with its newline, is garbage.
    let path = journal_path(&r, &first);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.len();
    *lines.last_mut().unwrap() = "{\"record\":\"undo";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let list = runs(&r);
    assert_eq!(list.len(), 2, "the other runs are still listed: {list:?}");
    let damaged = list[0]["damaged"].as_str().unwrap();
    assert!(damaged.contains(&format!("damaged at line {last}")), "{damaged}");
    assert_eq!(list[0]["status"], "succeeded", "what the readable records say");
    assert!(list[1]["damaged"].is_null());
    let text_list = fr(&r, &["runs", "list"]);
    text_list.ok();
    assert!(text_list.stdout.contains(&format!("{first}  damaged")), "{}", text_list.stdout);
    // It finished before the damage: nothing can make it unfinished again, so runs go on.
    let second = rollback(&r, "v2");
    fr(&r, &["undo", &second, "--yes"]).ok();
    // Acting on the damaged run itself is refused (exit 4), naming the file.
    let refused = fr(&r, &["undo", &first, "--yes"]);
    refused.code(4);
    assert!(refused.stderr.contains("damaged at line") && refused.stderr.contains("hint:"), "{}", refused.stderr);

    // Damage in the middle, before any `finished`: the run may be unfinished.
    let text = std::fs::read_to_string(journal_path(&r, &by)).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "garbage";
    std::fs::write(journal_path(&r, &by), lines.join("\n") + "\n").unwrap();
    let list = runs(&r);
    assert_eq!(list.len(), 4, "{list:?}");
    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(out.stderr.contains(&format!("run {by} may be unfinished")), "{}", out.stderr);
    assert!(out.stderr.contains("damaged at line 3"), "{}", out.stderr);
    assert_eq!(picture(&r), before, "nothing changed");
    assert_eq!(runs(&r).len(), 4, "no run was started");
}
