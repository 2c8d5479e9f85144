//! Journals written before step details were typed (`StepDetail`): every step kind's old
//! `step_end` detail, as the engine wrote it then (no `"kind"` tag), still loads into the
//! right variant, so runs started by an older forge-rollback resume and undo.

use rollback_core::detail::{FailureDetail, StepDetail};
use rollback_core::journal::{Record, RunState};
use rollback_core::plan::{Plan, RunKind, Step};
use rollback_core::time::Timestamp;
use rollback_core::vcs::{CommitId, Head};

const C: &str = "1111111111111111111111111111111111111111";

/// Step name and the detail exactly as the engine journaled it before `StepDetail`.
const OLD: &[(&str, &str)] = &[
    (
        "snapshot",
        r#"{"snapshot":"20251210-173900-abcdef","entries":3,"bytes":120,"new_blobs":2,"new_bytes":80,"verified_blobs":3}"#,
    ),
    (
        "db_snapshot",
        r#"{"snapshot":"20251210-173901-db-abcdef","bytes":8192,"format":"sqlite-backup","revisions":["0003"]}"#,
    ),
    ("downgrade", r#"{"from":["0003"],"to":["0002"]}"#),
    ("downgrade", r#"{"from":["0002"],"to":["0002"],"already":true}"#),
    (
        "reset",
        r#"{"target":"1111111111111111111111111111111111111111","cleared":1,"changed":4,"kept":["forge-rollback.toml"]}"#,
    ),
    ("remove_untracked", r#"{"removed":2}"#),
    ("restore_env", r#"{"restored":0,"recorded":false}"#),
    (
        "restore_env",
        r#"{"record":"20251210-173800-env-abcdef","files":[".env"],"stats":{"files":1,"symlinks":0,"removed":0,"removed_dirs":0,"kept_dirs":0,"skipped":0}}"#,
    ),
    ("clear_caches", r#"{"removed":5}"#),
    ("restart", r#"{"steps":[{"name":"api","ok":true,"exit_code":0,"millis":12,"ready_millis":30,"detail":"ok"}]}"#),
    ("deploy", r#"{"summary":"no [deploy] configured"}"#),
    ("deploy", r#"{"summary":"run X did not change `origin`: the undo leaves it as it is","skipped":true}"#),
    (
        "deploy",
        r#"{"strategy":"push","remote":"origin","branch":"main","pushed_commit":"1111111111111111111111111111111111111111","hook_status":null,"millis":40,"detail":"pushed 1111111 to origin/main","summary":"pushed 1111111 to origin/main"}"#,
    ),
    ("verify", r#"{"passed":true,"started_at":"2025-12-10T17:39:05Z","duration_ms":12,"checks":[]}"#),
    ("restore_files", r#"{"files":3,"symlinks":1,"removed":2,"removed_dirs":0,"kept_dirs":0,"skipped":0}"#),
    ("restore_index", r#"{"restored":true,"objects_written":1}"#),
    ("restore_index", r#"{"restored":false}"#),
    ("restore_database", r#"{"snapshot":"20251210-173901-db-abcdef","revisions":["0003"]}"#),
    ("record", r#"{"head":"1111111111111111111111111111111111111111","branch":"main"}"#),
];

fn journal_with(lines: &[String], steps: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let commit = CommitId::try_from(C.to_owned()).unwrap();
    let plan = Plan {
        kind: RunKind::Rollback,
        level: None,
        workdir: dir.path().to_path_buf(),
        backend: "git2".into(),
        from: Head { commit: commit.clone(), branch: Some("main".into()) },
        to: commit,
        to_summary: "v1".into(),
        undo_of: None,
        steps: vec![Step::Record; steps],
        data_loss: Vec::new(),
        risks: Vec::new(),
    };
    let started = Record::Started {
        at: Timestamp::now(),
        run_id: "20251210-173900-abcdef".into(),
        plan,
        reason: None,
        severity: None,
        worktree: None,
        git_dir: None,
        actor: None,
        format: rollback_core::journal::JOURNAL_FORMAT,
        seq: None,
    };
    let mut text = serde_json::to_string(&started).unwrap();
    text.push('\n');
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(dir.path().join("journal.jsonl"), text).unwrap();
    dir
}

#[test]
fn every_old_step_detail_loads_into_its_variant() {
    let at = serde_json::to_string(&Timestamp::now()).unwrap();
    let lines: Vec<String> = OLD
        .iter()
        .enumerate()
        .map(|(i, (step, detail))| {
            format!(r#"{{"record":"step_end","at":{at},"index":{i},"step":"{step}","detail":{detail}}}"#)
        })
        .collect();
    let dir = journal_with(&lines, OLD.len());
    let state = RunState::load(&dir.path().join("journal.jsonl")).expect("an old journal loads");
    let kinds: Vec<String> = state
        .done
        .iter()
        .map(|d| {
            let d = d.as_ref().expect("every step completed");
            serde_json::to_value(d).unwrap()["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    let names: Vec<&str> = OLD.iter().map(|(s, _)| *s).collect();
    assert_eq!(kinds, names, "each old detail became the variant of its step");

    // The fields the engine reads back are there, typed.
    assert_eq!(state.done[0].as_ref().unwrap().snapshot().unwrap().as_str(), "20251210-173900-abcdef");
    assert!(matches!(&state.done[3], Some(StepDetail::Downgrade { already: true, .. })));
    assert!(matches!(&state.done[6], Some(StepDetail::RestoreEnv { recorded: Some(false), .. })));
    assert!(
        matches!(&state.done[7], Some(StepDetail::RestoreEnv { files, stats: Some(s), .. }) if files == &[".env"] && s.files == 1)
    );
    assert!(matches!(&state.done[10], Some(StepDetail::Deploy { report: None, skipped: false, .. })));
    assert!(state.done[11].as_ref().unwrap().is_skipped());
    match &state.done[12] {
        Some(StepDetail::Deploy { report: Some(r), summary, .. }) => {
            assert_eq!(r.pushed_commit.as_deref(), Some(C));
            assert_eq!(summary, "pushed 1111111 to origin/main");
        }
        other => panic!("a push deploy keeps its report: {other:?}"),
    }
    assert!(matches!(&state.done[16], Some(StepDetail::RestoreIndex { restored: false, objects_written: None })));

    // Written again today, a detail carries its kind and reads back the same.
    for d in state.done.iter().flatten() {
        let text = serde_json::to_string(d).unwrap();
        let back: StepDetail = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, d, "{text}");
    }
}

#[test]
fn an_old_failed_downgrade_says_whether_the_database_changed() {
    let at = serde_json::to_string(&Timestamp::now()).unwrap();
    let lines = vec![
        format!(r#"{{"record":"step_begin","at":{at},"index":0,"step":"downgrade"}}"#),
        format!(
            r#"{{"record":"step_failed","at":{at},"index":0,"step":"downgrade","error":"boom","detail":{{"database_changed":false}}}}"#
        ),
        format!(r#"{{"record":"step_begin","at":{at},"index":1,"step":"downgrade"}}"#),
        format!(
            r#"{{"record":"step_failed","at":{at},"index":1,"step":"downgrade","error":"boom","detail":{{"database_changed":true}}}}"#
        ),
    ];
    let dir = journal_with(&lines, 2);
    let state = RunState::load(&dir.path().join("journal.jsonl")).unwrap();
    assert!(!state.step_changed(0), "put back whole: nothing for an undo to restore");
    assert!(state.step_changed(1));
    let failed: Vec<FailureDetail> = state
        .records
        .iter()
        .filter_map(|r| match r {
            Record::StepFailed { detail, .. } => *detail,
            _ => None,
        })
        .collect();
    assert_eq!(failed, [FailureDetail { database_changed: false }, FailureDetail { database_changed: true }]);
}

#[test]
fn a_detail_that_fits_no_variant_is_a_damaged_journal_not_a_silent_default() {
    let at = serde_json::to_string(&Timestamp::now()).unwrap();
    let lines =
        vec![format!(r#"{{"record":"step_end","at":{at},"index":0,"step":"snapshot","detail":{{"entries":"many"}}}}"#)];
    let dir = journal_with(&lines, 1);
    let err = RunState::load(&dir.path().join("journal.jsonl")).unwrap_err();
    assert!(err.to_string().contains("is damaged at line 2"), "{err}");
}
