//! What happens around a run is kept: commits made on top of the rolled-back release (undo),
//! files written while the run works, and runs undone or resumed only where they ran.

use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::{AutoConfirm, Confirmation, Prompter};
use rollback_core::{Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

/// Answers yes and keeps what it was asked.
#[derive(Default)]
struct Keep(std::sync::Mutex<Vec<String>>);

impl Prompter for Keep {
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        self.0.lock().unwrap().push(request.summary.clone());
        Ok(true)
    }
}

#[test]
fn a_hotfix_committed_after_the_rollback_is_kept_on_a_branch_when_the_run_is_undone() {
    let r = TestRepo::new();
    r.three_releases();
    let v3 = r.head();
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let run = rb.run(&opts, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let id = run.run_id.unwrap();

    // Production runs v1; someone commits a hotfix on the rolled-back branch.
    r.write("app/hotfix.py", "FIX = 1\n");
    r.git(&["add", "app/hotfix.py"]);
    r.git(&["commit", "-q", "-m", "hotfix on v1"]);
    let hotfix = r.head();

    let asked = Keep::default();
    let undo = rb.undo(&id, &asked, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(r.head(), v3, "the undo moved the branch back to where the run started");

    let branch = format!("forge-rollback/kept-{id}");
    assert_eq!(r.git(&["rev-parse", &branch]).trim(), hotfix.trim(), "the hotfix is kept on its own branch");
    let summary = asked.0.lock().unwrap().join("\n");
    assert!(summary.contains(&branch) && summary.contains("hotfix on v1"), "the confirmation names it:\n{summary}");
    assert!(
        undo.warnings.iter().any(|w| w.contains(&branch) && w.contains("hotfix on v1")),
        "the outcome says so: {:?}",
        undo.warnings
    );
}

#[test]
fn an_undo_with_nothing_committed_since_makes_no_branch() {
    let r = TestRepo::new();
    r.three_releases();
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let id = rb.run(&opts, &AutoConfirm, &Recorder::default()).unwrap().run_id.unwrap();
    rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(r.git(&["branch", "--list", "forge-rollback/*"]).trim(), "");
}

#[test]
fn a_run_is_undone_and_resumed_only_from_the_work_tree_it_ran_in() {
    let r = TestRepo::new();
    r.three_releases();
    let v3 = r.head();
    // A linked work tree shares the repository and so the state folder.
    let other = tempfile::tempdir().unwrap();
    let b = other.path().join("B");
    r.git(&["worktree", "add", "-q", "-b", "side", b.to_str().unwrap(), "v2"]);
    let b_head = r.git(&["-C", b.to_str().unwrap(), "rev-parse", "HEAD"]);

    let in_a = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let in_b = Rollback::builder(&b).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let id = in_a.run(&opts, &AutoConfirm, &Recorder::default()).unwrap().run_id.unwrap();
    assert_eq!(in_b.runs().unwrap().len(), 1, "the state folder is shared");

    for err in [
        in_b.undo(&id, &AutoConfirm, &Recorder::default()).unwrap_err(),
        in_b.resume(&id, &Recorder::default()).unwrap_err(),
    ] {
        assert_eq!(err.kind(), rollback_core::ErrorKind::Refused, "{err}");
        assert!(err.to_string().contains("ran in the main work tree; this is linked work tree `B`"), "{err}");
        assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("git worktree list"), "{err}");
    }
    assert_eq!(r.git(&["-C", b.to_str().unwrap(), "rev-parse", "HEAD"]), b_head, "B untouched");
    assert_eq!(r.git(&["-C", b.to_str().unwrap(), "rev-parse", "--abbrev-ref", "HEAD"]).trim(), "side");
    assert_eq!(r.head(), r.git(&["rev-parse", "v1"]), "A still rolled back");

    // From A, where it ran, the undo works.
    let undo = in_a.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded);
    assert_eq!(r.head(), v3);
}

/// Runs `action` when step `at` starts: a process touching the work tree during the rollback.
struct OnStep<F: Fn() + Send + Sync> {
    at: &'static str,
    action: F,
}

impl<F: Fn() + Send + Sync> rollback_core::event::Observer for OnStep<F> {
    fn event(&self, event: &rollback_core::event::Event) {
        if let rollback_core::event::Event::StepStarted { step, .. } = event
            && step == self.at
        {
            (self.action)();
        }
    }
}

/// Appends to `path` when `remove_untracked` starts: a process writing a log.
fn log_writer(path: std::path::PathBuf) -> OnStep<impl Fn() + Send + Sync> {
    OnStep {
        at: "remove_untracked",
        action: move || {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"written during the rollback\n").unwrap();
        },
    }
}

#[test]
fn an_untracked_file_written_after_the_snapshot_is_left_in_place_not_deleted() {
    let r = TestRepo::new();
    r.three_releases();
    r.write("logs/app.log", "before\n").write("notes/todo.txt", "t\n");
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let writer = log_writer(r.path().join("logs/app.log"));
    let out = rb.run(&opts, &AutoConfirm, &writer).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(
        r.read("logs/app.log"),
        b"before\nwritten during the rollback\n",
        "the late bytes are in no backup: kept"
    );
    assert!(!r.exists("notes/todo.txt"), "an unchanged untracked file is removed as before");
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("left `logs/app.log` in place") && w.contains("changed after the snapshot")),
        "{:?}",
        out.warnings
    );
}

/// The undo of that run keeps the late bytes too: the file left in place holds the latest
/// content, and the undo leaves it as it is (with a warning) instead of writing back the
/// older content from the snapshot.
#[test]
fn undo_keeps_the_latest_content_of_a_file_written_during_the_run() {
    let r = TestRepo::new();
    r.three_releases();
    r.write("logs/app.log", "before\n").write("notes/todo.txt", "t\n");
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let writer = log_writer(r.path().join("logs/app.log"));
    let out = rb.run(&opts, &AutoConfirm, &writer).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(r.read("logs/app.log"), b"before\nwritten during the rollback\n", "the latest content");
    assert_eq!(r.read("notes/todo.txt"), b"t\n", "an unchanged file comes back from the snapshot");
    assert!(
        undo.warnings.iter().any(|w| w.contains("kept `logs/app.log` as it is now: it changed after backup")),
        "{:?}",
        undo.warnings
    );
}

/// A release marked bad after a rollback stays marked bad when the rollback is undone: undo
/// keeps the registry as it is, it does not put back the file from before the run.
#[test]
fn a_mark_made_after_the_run_survives_its_undo() {
    let r = TestRepo::new();
    r.three_releases();
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    rb.mark_good("v1", Some("24h uptime")).unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let id = rb.run(&opts, &AutoConfirm, &Recorder::default()).unwrap().run_id.unwrap();

    // Production on v1; the operator (or `watch`) marks v3 bad.
    rb.mark_bad("v3", Some("500s on /login")).unwrap();
    let undo = rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);

    let reg = rb.registry().unwrap();
    let v3 = r.git(&["rev-parse", "v3"]);
    let v3_entry = reg.commits.iter().find(|e| e.hash == v3.trim()).expect("v3 still listed");
    assert!(v3_entry.known_bad, "the bad mark survived the undo: {v3_entry:?}");
    assert!(reg.commits.iter().any(|e| e.verified && e.notes == "24h uptime"), "older marks too");
}

/// The clean-up step trusts a file's stat (size, times, inode) when this run's snapshot read
/// it an hour after it was last written, instead of reading it again. Same-size bytes with the
/// old modification time put back still change the change time: the file is seen as changed
/// and kept, and an untouched file with an old time is removed.
#[test]
fn an_untracked_file_swapped_for_same_size_bytes_with_its_old_mtime_is_still_kept() {
    let r = TestRepo::new();
    r.three_releases();
    r.write("logs/app.log", "BEFORE\n").write("notes/todo.txt", "t\n");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for p in ["logs/app.log", "notes/todo.txt"] {
        std::fs::File::options().write(true).open(r.path().join(p)).unwrap().set_modified(hour_ago).unwrap();
    }
    // The change time cannot be set back: wait out its tick so the files are not "racy".
    std::thread::sleep(std::time::Duration::from_millis(50));
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    // Same-size bytes, and the modification time put back: only the change time tells.
    let log = r.path().join("logs/app.log");
    let swapper = OnStep {
        at: "remove_untracked",
        action: || {
            let mtime = std::fs::metadata(&log).unwrap().modified().unwrap();
            std::fs::write(&log, b"AFTER!\n").unwrap();
            std::fs::File::options().write(true).open(&log).unwrap().set_modified(mtime).unwrap();
        },
    };
    let out = rb.run(&opts, &AutoConfirm, &swapper).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(r.read("logs/app.log"), b"AFTER!\n", "bytes in no backup are kept");
    assert!(!r.exists("notes/todo.txt"), "the unchanged file is removed");
    assert!(out.warnings.iter().any(|w| w.contains("left `logs/app.log` in place")), "{:?}", out.warnings);
}
