//! Snapshots of what operators read: assess, plan, run, runs list, errors, and the JSON shape.
//! Times, run and backup ids, temp paths and commit hashes are redacted.

use rollback_testkit::redact;

use crate::common::{fr, messy_repo};

fn clean(text: &str, r: &rollback_testkit::TestRepo, ids: &[String; 3]) -> String {
    let named = [(ids[0].as_str(), "v1"), (ids[1].as_str(), "v2"), (ids[2].as_str(), "v3")];
    let mut s = redact(text, r.path(), &named);
    // Durations and pids vary run to run.
    s = regex_lite_replace(&s, "time:    ", " ms", "[MS]");
    s
}

/// Replaces what stands between `start` and `end` on each line.
fn regex_lite_replace(s: &str, start: &str, end: &str, with: &str) -> String {
    s.lines()
        .map(|l| match (l.find(start), l.rfind(end)) {
            (Some(a), Some(b)) if b > a + start.len() => format!("{}{with}{}", &l[..a + start.len()], &l[b..]),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn assess_output() {
    let (r, ids) = messy_repo();
    fr(&r, &["known-good", "mark", "v2", "--note", "verified"]).ok();
    let out = fr(&r, &["assess"]);
    out.ok();
    insta::assert_snapshot!("assess", clean(&out.stdout, &r, &ids));
}

#[test]
fn plan_output() {
    let (r, ids) = messy_repo();
    let out = fr(&r, &["plan", "--fast", "--target", "v1"]);
    out.ok();
    insta::assert_snapshot!("plan_fast", clean(&out.stdout, &r, &ids));
}

#[test]
fn plan_json_is_stable() {
    let (r, ids) = messy_repo();
    let out = fr(&r, &["plan", "--fast", "--target", "v1", "--json"]);
    out.ok();
    insta::assert_snapshot!("plan_fast_json", clean(&out.stdout, &r, &ids));
}

#[test]
fn run_and_undo_output() {
    let (r, ids) = messy_repo();
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1", "--reason", "v3 answers 500"]);
    out.ok();
    insta::assert_snapshot!("run_stdout", clean(&out.stdout, &r, &ids));
    insta::assert_snapshot!("run_stderr", clean(&out.stderr, &r, &ids));
    let run_id = out.stdout.lines().next().unwrap().split_whitespace().nth(1).unwrap().to_owned();
    let list = fr(&r, &["runs", "list"]);
    insta::assert_snapshot!("runs_list", clean(&list.stdout, &r, &ids));
    let undo = fr(&r, &["undo", &run_id, "--yes"]);
    undo.ok();
    insta::assert_snapshot!("undo_stderr", clean(&undo.stderr, &r, &ids));
}

#[test]
fn run_json_has_the_documented_keys() {
    let (r, _) = messy_repo();
    let j = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]).json();
    for key in ["run_id", "status", "level", "from", "to", "backup_id", "steps", "duration_ms"] {
        assert!(j.get(key).is_some_and(|v| !v.is_null()), "{key} in {j}");
    }
    assert_eq!(j["level"], "fast");
    assert_eq!(j["from"].as_str().unwrap().len(), 40);
}

#[test]
fn refused_error_output() {
    let (r, ids) = messy_repo();
    let out = fr(&r, &["run", "--fast", "--target", "v1"]);
    out.code(4);
    insta::assert_snapshot!("refused_no_terminal", clean(&out.stderr, &r, &ids));
}
