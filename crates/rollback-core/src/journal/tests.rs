use super::*;

fn started(workdir: &[u8]) -> Record {
    use std::os::unix::ffi::OsStrExt;
    let mut plan: Plan = serde_json::from_value(serde_json::json!({
        "kind": "rollback", "level": "fast", "workdir": "/w", "backend": "git-cli",
        "from": {"commit": "a".repeat(40), "branch": "main"}, "to": "b".repeat(40),
        "to_summary": "v1", "undo_of": null, "steps": [],
    }))
    .unwrap();
    plan.workdir = std::ffi::OsStr::from_bytes(workdir).into();
    Record::Started {
        at: Timestamp::now(),
        run_id: "20261205-000000-abcdef".into(),
        plan,
        reason: None,
        severity: None,
        worktree: None,
        git_dir: None,
        actor: None,
        format: crate::journal::JOURNAL_FORMAT,
        seq: Some(1),
    }
}

#[test]
fn a_new_journal_holds_its_first_record_and_never_replaces_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    // A work tree in a folder whose name is not UTF-8 (it was unwritable, and left an
    // empty journal that every later `runs list` called damaged).
    let mut j = Journal::create(&path, &started(b"/srv/caf\xe9")).unwrap();
    j.append(&Record::StepBegin { at: Timestamp::now(), index: 0, step: "snapshot".into() }).unwrap();
    let records = read(&path).unwrap();
    assert_eq!(records.len(), 2);
    let Record::Started { plan, .. } = &records[0] else { panic!("first record: {:?}", records[0]) };
    assert_eq!(plan.workdir.as_os_str().as_encoded_bytes(), b"/srv/caf\xe9");
    let before = std::fs::read(&path).unwrap();
    let err = Journal::create(&path, &started(b"/w")).unwrap_err();
    assert!(err.to_string().contains(&format!("create `{}`", path.display())), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the existing journal is untouched");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("journal.jsonl")], "no temp file left behind");
}
fn finished() -> Record {
    Record::Finished { at: Timestamp::now(), status: RunStatus::Succeeded, error: None, warnings: Vec::new() }
}

/// A journal holding `started` and `resumed`, with `extra` written after them.
fn journal_with(dir: &Path, extra: &[u8]) -> PathBuf {
    let path = dir.join("journal.jsonl");
    let mut j = Journal::create(&path, &started(b"/w")).unwrap();
    j.append(&Record::Resumed { at: Timestamp::now() }).unwrap();
    drop(j);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(extra).unwrap();
    path
}

#[test]
fn the_next_writer_cuts_a_torn_last_line_and_keeps_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    // A power loss in the middle of appending `finished`.
    let whole = line_of(&finished(), Path::new("j")).unwrap();
    let torn = &whole[..whole.len() - 20];
    let path = journal_with(dir.path(), torn);
    assert_eq!(read(&path).unwrap().len(), 2, "the reader ignores the torn line");
    let mut j = Journal::open(&path).unwrap();
    j.append(&Record::Undone { at: Timestamp::now(), by: "r2".into() }).unwrap();
    drop(j);
    let records = read(&path).unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(matches!(&records[2], Record::Undone { by, .. } if by == "r2"), "{records:?}");
    assert!(std::fs::read(&path).unwrap().ends_with(b"\n"));
    // The cut bytes are kept, each piece on a line of its own.
    let kept = std::fs::read(torn_path(&path)).unwrap();
    assert_eq!(kept, [torn, b"\n"].concat());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(torn_path(&path)).unwrap().permissions()) & 0o777,
        0o600
    );
    // Opening a sound journal changes nothing.
    let before = std::fs::read(&path).unwrap();
    drop(Journal::open(&path).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_whole_last_record_that_lost_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let whole = line_of(&finished(), Path::new("j")).unwrap();
    let path = journal_with(dir.path(), &whole[..whole.len() - 1]);
    assert_eq!(read(&path).unwrap().len(), 3);
    Journal::open(&path).unwrap().append(&Record::Undone { at: Timestamp::now(), by: "r2".into() }).unwrap();
    let records = read(&path).unwrap();
    assert!(matches!(records[2], Record::Finished { .. }) && matches!(records[3], Record::Undone { .. }));
    assert!(!torn_path(&path).exists(), "nothing was cut");
}

#[test]
fn only_the_last_line_may_be_torn() {
    let dir = tempfile::tempdir().unwrap();
    // A bad line in the middle is damage, named by its line.
    let path =
        journal_with(dir.path(), b"{\"record\":\"step_e\n{\"record\":\"resumed\",\"at\":\"2026-12-05T00:00:00Z\"}\n");
    let err = read(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("damaged at line 3"), "{err}");
    // So is a bad last line that has its newline: it was written whole.
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), b"{\"record\":\"nonsense\"}\n");
    assert!(matches!(read(&path).unwrap_err(), Error::Corrupt { line: 3, .. }));
    // The records before the damage still read, for listing.
    let (state, damage) = RunState::load_readable(&path).unwrap();
    assert!(matches!(damage, Some(Error::Corrupt { line: 3, .. })), "{damage:?}");
    assert_eq!((state.records.len(), state.status), (2, RunStatus::Running));
    // The writer does not "mend" real damage: it has a newline, nothing is cut.
    drop(Journal::open(&path).unwrap());
    assert!(!torn_path(&path).exists());
}

#[test]
fn a_record_unknown_in_a_newer_journal_names_the_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut newer = started(b"/w");
    if let Record::Started { format, .. } = &mut newer {
        *format = JOURNAL_FORMAT + 1;
    }
    let path = dir.path().join("journal.jsonl");
    let mut text = line_of(&newer, &path).unwrap();
    text.extend_from_slice(b"{\"record\":\"from_the_future\",\"at\":\"2027-01-01T00:00:00Z\"}\n");
    std::fs::write(&path, text).unwrap();
    let err = read(&path).unwrap_err().to_string();
    assert!(err.contains("damaged at line 2") && err.contains("unknown variant `from_the_future`"), "{err}");
    assert!(
        err.contains(&format!("journaled by a newer forge-rollback (journal format {}", JOURNAL_FORMAT + 1)),
        "{err}"
    );
    // This version's own journals say nothing of the kind.
    let ours = tempfile::tempdir().unwrap();
    let path = journal_with(ours.path(), b"{\"record\":\"from_the_future\"}\n");
    assert!(!read(&path).unwrap_err().to_string().contains("newer"));
}
