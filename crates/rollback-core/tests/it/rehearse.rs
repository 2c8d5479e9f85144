//! `Rollback::rehearse` as embedders (and the Python bindings) call it: a typed result that
//! round-trips through JSON, the copy's step events passed on to the caller's observer, and
//! nothing real written.

use rollback_core::event::{Event, Recorder};
use rollback_core::{Level, Rehearsal, RehearseOptions, Rollback, RunStatus};
use rollback_testkit::TestRepo;

#[test]
fn a_fast_rehearsal_through_the_api() {
    let r = TestRepo::new();
    let [_, v2, _] = r.three_releases();
    r.write("app/main.py", "# edited\n").write("notes.md", "untracked\n");
    let tree = r.tree();
    let (head, index) = (r.head(), r.index_state());

    let rb = Rollback::open(r.path(), None).unwrap();
    let recorder = Recorder::default();
    let opts = RehearseOptions { level: Some(Level::Fast), target: Some("v2".into()), ..RehearseOptions::default() };
    let rehearsal = rb.rehearse(&opts, &recorder).unwrap();

    assert!(rehearsal.passed && rehearsal.undo_identical, "{rehearsal:?}");
    assert_eq!(rehearsal.to.as_str(), v2);
    assert_eq!(rehearsal.rollback.status, RunStatus::Succeeded);
    assert!(rehearsal.differences.is_empty());
    assert!(rehearsal.database.is_none() && rehearsal.database_copy.is_none());
    // Every step that ran has its time, taken from the events the caller saw too.
    let finished = recorder.events().iter().filter(|e| matches!(e, Event::StepFinished { .. })).count();
    let undo = rehearsal.undo.as_ref().expect("the rollback changed the copy, so it was undone");
    assert_eq!(finished, rehearsal.rollback.steps.len() + undo.steps.len());
    assert!(rehearsal.rollback.steps.iter().chain(&undo.steps).all(|s| s.status == "done" && s.millis.is_some()));

    // Typed and serializable: what `--json` prints reads back as the same value.
    let json = serde_json::to_string(&rehearsal).unwrap();
    let back: Rehearsal = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rehearsal);

    assert_eq!(r.tree(), tree);
    assert_eq!((r.head(), r.index_state()), (head, index));
    assert!(!r.path().join(".git/forge-rollback").exists(), "not even the state folder was created");
}
